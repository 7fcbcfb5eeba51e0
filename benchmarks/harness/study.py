"""The concurrency study: does this I/O-bound service need async? Answered with numbers.

The same endpoints under sync, gthread and gevent workers (same number of processes), with
every SQL statement made 20 ms slower (apps/slow_db.py) and with a slow upstream (the local
Statbel answering after 2 s while the stored index is stale), at 1, 8, 32 and 128 connections.
The FastAPI peer (uvicorn, a thread pool for its blocking reads) takes the same 20 ms per query,
as the async stack's answer to the same question.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
# Agg: no display; chosen before pyplot is imported.
import matplotlib.pyplot as plt

from harness import backends, bench, data, servers, wrk
from harness.context import Context

DB_DELAY = 0.02
UPSTREAM_DELAY = 2.0
STUDY_TIMEOUT = 10.0


@dataclass(frozen=True)
class Model:
    name: str
    description: str
    extra_args: tuple[str, ...]
    threads: int
    # REFAPI_WORKER_CLASS (sync: gunicorn's own, by extra_args).
    worker_class: str = "gthread"


@dataclass(frozen=True)
class Phase:
    """One server variant and the scenarios loaded against it."""

    name: str
    app: str
    env: dict[str, str]
    upstream_delay: float
    scenarios: tuple[tuple[str, str], ...]  # (scenario label, endpoint name)


def models(workers: int, thread_counts: list[int]) -> list[Model]:
    """sync workers, gthread workers with each number of threads, then gevent workers (same
    processes; gevent's database pools as configuration B's)."""
    return [
        Model("sync", f"sync, {workers} workers", ("--worker-class", "sync"), 1),
        *(
            Model(
                f"gthread{threads}", f"gthread, {workers} workers x {threads} threads", (), threads
            )
            for threads in thread_counts
        ),
        Model(
            "gevent",
            f"gevent, {workers} workers, pools of {backends.B_POOL_SIZE}",
            (),
            1,
            worker_class="gevent",
        ),
    ]


PHASES = (
    Phase(
        "slow-db",
        "slow_db:app",
        {"BENCH_DB_DELAY": str(DB_DELAY)},
        0.0,
        (
            ("GET /ping (no I/O)", "ping"),
            (f"GET /get/<key> miss, database +{DB_DELAY * 1000:.0f} ms", "get-miss"),
            (f"POST /save, database +{DB_DELAY * 1000:.0f} ms", "save"),
        ),
    ),
    Phase(
        "fresh-index",
        "wsgi:app",
        {},
        0.0,
        (("GET /indices/health?base_year=2013, fresh", "indices"),),
    ),
    Phase(
        "slow-upstream",
        "wsgi:app",
        # Stored data is stale after a second, and a refresh may start a second after the last
        # attempt (INDEX_RETRY_INTERVAL, on the indices branch): requests keep starting them.
        {"REFAPI_INDEX_MAX_AGE": "1", "REFAPI_INDEX_RETRY_INTERVAL": "1"},
        UPSTREAM_DELAY,
        (
            (
                f"GET /indices/health?base_year=2013, stale, upstream +{UPSTREAM_DELAY:.0f} s",
                "indices",
            ),
        ),
    ),
    Phase(
        "slow-upstream-default",
        "wsgi:app",
        # The same stale data and slow Statbel, at the default retry interval (60 s): what a
        # deployment sees, where one request a minute may wait for a refresh.
        {"REFAPI_INDEX_MAX_AGE": "1"},
        UPSTREAM_DELAY,
        (
            (
                f"GET /indices/health?base_year=2013, stale, upstream +{UPSTREAM_DELAY:.0f} s, "
                "default retry interval",
                "indices",
            ),
        ),
    ),
)
PEER_SCENARIO = f"GET /get/<key> miss, database +{DB_DELAY * 1000:.0f} ms"


def run(
    ctx: Context,
    meta: dict[str, Any],
    configuration: str,
    connection_levels: list[int],
    thread_counts: list[int],
    phase_names: list[str],
    log: Callable[[str], None],
) -> dict[str, Any]:
    settings = ctx.settings
    if configuration == "A":
        backend = backends.configuration_a(ctx.workdir, threads=settings.threads)
        workers = 1
    else:
        backend = backends.configuration_b(
            database_url=ctx.database_url,
            redis_url=ctx.redis_url,
            workers=settings.workers_b,
            threads=settings.threads,
            worker_class=settings.b_worker_class,  # each model sets its own
        )
        workers = settings.workers_b
    results: dict[str, Any] = {
        "meta": meta,
        "settings": {
            "configuration": configuration,
            "backend": "PostgreSQL, Redis" if configuration == "B" else "SQLite, SimpleCache",
            "workers": workers,
            "duration": settings.duration,
            "warmup": settings.warmup,
            "connections": connection_levels,
            "gthread_threads": thread_counts,
            "db_delay_seconds": DB_DELAY,
            "upstream_delay_seconds": UPSTREAM_DELAY,
            "timeout": STUDY_TIMEOUT,
        },
        "rows": [],
    }
    study_ctx = dataclasses.replace(
        ctx, settings=dataclasses.replace(settings, timeout=STUDY_TIMEOUT)
    )
    try:
        env = study_ctx.env(**backend.env)
        log(f"[study {configuration}] seeding")
        seed = backends.seed(
            bin_dir=ctx.bin_dir,
            project_root=ctx.project_root,
            env=env,
            store_file=ctx.files["store"],
        )
        results["seed"] = seed
        if seed["migrate"]["status"] != "ok":
            raise RuntimeError("migrations failed:\n" + "\n".join(seed["migrate"]["output"]))
        endpoints = {e.name: e for e in bench.refapi_endpoints(study_ctx, [])}
        for model in models(workers, thread_counts):
            for phase in (phase for phase in PHASES if phase.name in phase_names):
                rows = _phase(study_ctx, env, model, phase, endpoints, connection_levels, log)
                results["rows"].extend(rows)
        if "slow-db" in phase_names:
            results["rows"].extend(_peer(study_ctx, workers, endpoints, connection_levels, log))
    finally:
        ctx.upstream.delay = 0.0
        backend.cleanup()
    return results


def _phase(
    ctx: Context,
    env: dict[str, str],
    model: Model,
    phase: Phase,
    endpoints: dict[str, bench.Endpoint],
    connection_levels: list[int],
    log: Callable[[str], None],
) -> list[dict[str, Any]]:
    server = servers.gunicorn(
        f"study-{model.name}-{phase.name}",
        bin_dir=ctx.bin_dir,
        project_root=ctx.project_root,
        app=phase.app,
        env={
            **env,
            **phase.env,
            "REFAPI_THREADS": str(model.threads),
            "REFAPI_WORKER_CLASS": model.worker_class,
        },
        log_path=ctx.log_path(f"study-{model.name}-{phase.name}"),
        extra_args=model.extra_args,
    )
    rows = []
    with servers.running(server):
        ctx.upstream.delay = phase.upstream_delay
        try:
            for scenario, endpoint_name in phase.scenarios:
                endpoint = endpoints[endpoint_name]
                reason = bench.probe(server, ctx, endpoint)
                for connections in connection_levels:
                    row: dict[str, Any] = {
                        "model": model.description,
                        "scenario": scenario,
                        "connections": connections,
                    }
                    if reason is not None:
                        rows.append({**row, "available": False, "reason": reason})
                        continue
                    upstream_before = ctx.upstream.requests
                    try:
                        result = bench.measure(
                            server,
                            ctx,
                            endpoint,
                            tag=f"study-{model.name}",
                            connections=connections,
                            balanced=False,
                        )
                    except wrk.WrkFailed as error:
                        rows.append({**row, "available": False, "reason": f"load failed: {error}"})
                        continue
                    # Proof that the slow-upstream scenario did reach the upstream.
                    result["upstream_requests"] = ctx.upstream.requests - upstream_before
                    _log_row(log, row, result)
                    rows.append({**row, "available": True, **result})
        finally:
            ctx.upstream.delay = 0.0
    return rows


def _peer(
    ctx: Context,
    workers: int,
    endpoints: dict[str, bench.Endpoint],
    connection_levels: list[int],
    log: Callable[[str], None],
) -> list[dict[str, Any]]:
    description = f"FastAPI peer, uvicorn, {workers} workers (thread pool)"
    server = servers.uvicorn(
        "study-peer",
        bin_dir=ctx.bin_dir,
        app="peer_fastapi:app",
        workers=workers,
        env={
            **servers.base_env(),
            "PEER_DATABASE": str(ctx.files["peer_db"]),
            "PEER_API_KEY": ctx.secret,
            "PEER_CLIENT": data.CLIENT,
            "PEER_DB_DELAY": str(DB_DELAY),
        },
        log_path=ctx.log_path("study-peer"),
        ready_path="/ping",
    )
    # The peer answers a missing key with FastAPI's own 404 body: no problem code to check.
    endpoint = bench.Endpoint(
        "peer-get-miss", PEER_SCENARIO, "GET", endpoints["get-miss"].targets, frozenset({404})
    )
    rows = []
    with servers.running(server):
        for connections in connection_levels:
            row = {"model": description, "scenario": PEER_SCENARIO, "connections": connections}
            result = bench.measure(
                server, ctx, endpoint, tag="study-peer", connections=connections, balanced=False
            )
            _log_row(log, row, result)
            rows.append({**row, "available": True, **result})
    return rows


def _log_row(log: Callable[[str], None], row: dict[str, Any], result: dict[str, Any]) -> None:
    log(
        f"[study] {row['model']} | {row['scenario']} | {row['connections']} conn: "
        f"{result['requests_per_second']} req/s, p99 {result['latency_ms']['p99']} ms, "
        f"socket errors {result['socket_errors']}, unexpected {result['unexpected']}"
    )


def markdown(results: dict[str, Any]) -> str:
    meta, settings = results["meta"], results["settings"]
    levels = settings["connections"]
    lines = ["# refapi concurrency study", ""]
    if "quick" in meta["mode"]:
        lines += [
            "**Smoke test only**: a --quick run (short loads); not the service's performance.",
            "",
        ]
    lines += [
        f"Run {meta['started_at']} on commit `{meta['commit'][:12]}`, {meta['cpus']} CPUs, "
        f"load average {meta['load_average_before']} before, "
        f"{meta.get('load_average_after', '-')} after. Configuration "
        f"{settings['configuration']} ({settings['backend']}); each cell: "
        f"{settings['duration']}s of wrk after {settings['warmup']}s of warm-up, timeout "
        f"{settings['timeout']}s. Cells: req/s, p99 ms, then errors (socket errors + "
        "unexpected statuses) when not zero.",
        "",
    ]
    scenarios: dict[str, list[dict[str, Any]]] = {}
    for row in results["rows"]:
        scenarios.setdefault(row["scenario"], []).append(row)
    for scenario, rows in scenarios.items():
        lines += [
            f"## {scenario}",
            "",
            "| Workers | " + " | ".join(f"{n} conn" for n in levels) + " |",
            "| --- |" + " ---: |" * len(levels),
        ]
        by_model: dict[str, dict[int, dict[str, Any]]] = {}
        for row in rows:
            by_model.setdefault(row["model"], {})[row["connections"]] = row
        for model, cells in by_model.items():
            rendered = []
            for level in levels:
                row = cells.get(level)
                if row is None:
                    rendered.append("-")
                elif not row.get("available"):
                    rendered.append("unavailable")
                else:
                    bad = row["socket_errors"] + row["unexpected"]
                    text = f"{row['requests_per_second']:,.0f} / {row['latency_ms']['p99']:,.0f}"
                    rendered.append(text + (f" / **{bad:,} err**" if bad else ""))
            lines.append(f"| {model} | " + " | ".join(rendered) + " |")
        reasons = sorted({row["reason"] for row in rows if not row.get("available")})
        lines += ["", *(f"Unavailable: {reason}." for reason in reasons)] if reasons else []
        lines.append("")
    return "\n".join(lines)


def chart(path: Path, results: dict[str, Any]) -> None:
    scenarios: dict[str, list[dict[str, Any]]] = {}
    for row in results["rows"]:
        if row.get("available"):
            scenarios.setdefault(row["scenario"], []).append(row)
    if not scenarios:
        return
    figure, axes = plt.subplots(2, len(scenarios), figsize=(4 * len(scenarios), 7), squeeze=False)
    for column, (scenario, rows) in enumerate(scenarios.items()):
        by_model: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            by_model.setdefault(row["model"], []).append(row)
        for model, points in by_model.items():
            points.sort(key=lambda row: row["connections"])
            x = [row["connections"] for row in points]
            axes[0][column].plot(
                x, [row["requests_per_second"] for row in points], "o-", label=model
            )
            axes[1][column].plot(x, [row["latency_ms"]["p99"] for row in points], "o-", label=model)
        axes[0][column].set_title(scenario, fontsize=8)
        for row_axes in (axes[0][column], axes[1][column]):
            row_axes.set_xscale("log", base=2)
            row_axes.set_xlabel("connections", fontsize=8)
            row_axes.grid(alpha=0.3)
        axes[1][column].set_yscale("log")
    axes[0][0].set_ylabel("requests / s")
    axes[1][0].set_ylabel("p99 latency (ms, log)")
    handles, labels = [], []
    for axis in axes[0]:
        for handle, label in zip(*axis.get_legend_handles_labels(), strict=True):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
    figure.legend(handles, labels, loc="lower center", ncol=3, fontsize=8)
    title = "Concurrency study"
    if "quick" in results["meta"]["mode"] or results["meta"].get("smoke_note"):
        title += " (SMOKE TEST ONLY)"
    figure.suptitle(title)
    figure.tight_layout(rect=(0, 0.06, 1, 0.96))
    figure.savefig(path, dpi=100)
    plt.close(figure)
