"""`benchmarks/run`: arguments, the run's work folder, and where the results go."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from harness import backends, bench, inprocess, report, study
from harness.context import BENCHMARKS, Context, Settings, describe_machine, load_average
from harness.upstream import Upstream

FULL = {"duration": 10.0, "warmup": 2.0, "hot_keys": 1000}
QUICK = {"duration": 2.0, "warmup": 0.5, "hot_keys": 200}


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="benchmarks/run",
        description="Load refapi's endpoints with wrk, next to a bare Flask /ping and a FastAPI "
        "peer, in configurations A and B; or, with --study, the concurrency study.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="short loads (a smoke run); results go to results/quick/",
    )
    parser.add_argument(
        "--study",
        action="store_true",
        help="the concurrency study (sync vs gthread, slow database, slow "
        "upstream, 1 to 128 connections) instead of the endpoint benchmark",
    )
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="instead of loads: each hot path's cost in the app itself, calling it directly "
        "(microseconds per request, no server); see harness/inprocess.py",
    )
    parser.add_argument(
        "--cprofile",
        metavar="PATH_NAME",
        help="with --in-process: cProfile one path (ping, authorize, get-hit, get-miss, "
        "zipcode, zipcodes-a, indices, save)",
    )
    parser.add_argument(
        "--configs",
        default="A,B",
        help="configurations to run (default A,B; the study runs the last one)",
    )
    parser.add_argument(
        "--endpoints",
        help="only these refapi endpoints, comma-separated (ping, authorize, get-hit, get-miss, "
        "save, zipcode, zipcodes-a, zipcodes-a-1000, indices); the ceiling and the peer always "
        "run",
    )
    parser.add_argument("--duration", type=float, help="seconds of each measured load")
    parser.add_argument("--warmup", type=float, help="seconds of warm-up load before each")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--wrk-threads",
        type=int,
        default=1,
        help="wrk threads (default 1: leaves the CPUs to the servers)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=5.0,
        help="seconds before wrk counts a request as timed out",
    )
    parser.add_argument("--threads", type=int, default=4, help="gthread threads per worker")
    parser.add_argument("--workers-b", type=int, default=2, help="workers in configuration B")
    parser.add_argument(
        "--b-worker-class",
        choices=("gevent", "gthread"),
        default=backends.B_WORKER_CLASS,
        help="REFAPI_WORKER_CLASS in configuration B (default gevent, as compose.yaml); "
        "A is always gthread",
    )
    parser.add_argument(
        "--worker-class",
        help="gunicorn worker class for refapi and the bare Flask apps instead of refapi's own "
        "(REFAPI_WORKER_CLASS's, refapi/worker.py), e.g. gevent; the peer is unchanged. "
        "Not the committed record: results go to results/quick/ unless --output",
    )
    parser.add_argument(
        "--study-connections", default="1,8,32,128", help="connection levels of the study"
    )
    parser.add_argument(
        "--study-threads",
        default="4,32",
        help="threads per gthread worker compared in the study (default 4,32)",
    )
    parser.add_argument(
        "--study-phases",
        default=",".join(phase.name for phase in study.PHASES),
        help="server variants of the study (default: all): slow-db (with the peer), "
        "fresh-index, slow-upstream, slow-upstream-default",
    )
    parser.add_argument("--output", type=Path, help="folder for the results")
    parser.add_argument("--project-root", type=Path, default=BENCHMARKS.parent)
    parser.add_argument(
        "--database-url",
        default=backends.DEFAULT_DATABASE_URL,
        help="PostgreSQL for configuration B (a schema of its own is created)",
    )
    parser.add_argument(
        "--redis-url",
        default=backends.DEFAULT_REDIS_URL,
        help="Redis for configuration B (keys under a prefix of their own)",
    )
    parser.add_argument(
        "--render",
        type=Path,
        help="only write benchmark.md and .png again from this benchmark.json",
    )
    parser.add_argument(
        "--smoke-note",
        default="",
        help="mark the results as a smoke test only, for this reason",
    )
    parser.add_argument(
        "--keep-workdir",
        action="store_true",
        help="keep the run's logs and databases (printed at the end)",
    )
    return parser.parse_args(argv)


def log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)


def render(path: Path) -> int:
    """Write the Markdown and the chart of a benchmark's JSON again (after a report change)."""
    results = json.loads(path.read_text(encoding="utf-8"))
    results["goals"] = report.goals(results)
    report.write_json(path, results)
    path.with_suffix(".md").write_text(report.markdown(results), encoding="utf-8")
    report.chart(path.with_suffix(".png"), results)
    return 0


def make_settings(args: argparse.Namespace) -> Settings:
    """The run's settings from its arguments: --quick's preset, then what was given."""
    preset = QUICK if args.quick else FULL
    return Settings(
        duration=args.duration or preset["duration"],
        warmup=preset["warmup"] if args.warmup is None else args.warmup,
        connections=args.connections,
        wrk_threads=args.wrk_threads,
        timeout=args.timeout,
        threads=args.threads,
        workers_b=args.workers_b,
        hot_keys=int(preset["hot_keys"]),
        quick=args.quick,
        worker_class=args.worker_class,
        b_worker_class=args.b_worker_class,
        endpoints=frozenset(name.strip() for name in args.endpoints.split(",") if name.strip())
        if args.endpoints
        else None,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.render:
        return render(args.render)
    if args.endpoints and (args.study or args.in_process):
        print("--endpoints applies to the endpoint benchmark only", file=sys.stderr)
        return 2
    if args.in_process:
        return inprocess.main(
            project_root=args.project_root.resolve(),
            configs=[name.strip() for name in args.configs.split(",") if name.strip()],
            database_url=args.database_url,
            redis_url=args.redis_url,
            cprofile=args.cprofile,
            output=args.output.resolve() if args.output else None,
        )
    settings = make_settings(args)
    if settings.endpoints is not None:
        known = set(bench.ENDPOINT_NAMES)
        if not settings.endpoints <= known:
            unknown = ", ".join(sorted(settings.endpoints - known))
            print(
                f"unknown endpoints: {unknown} (known: {', '.join(sorted(known))})", file=sys.stderr
            )
            return 2
    # A run of some endpoints only is not the committed record: it goes where --quick runs go.
    partial = args.quick or settings.endpoints is not None or args.worker_class is not None
    output = args.output or (BENCHMARKS / "results" / ("quick" if partial else ""))
    output.mkdir(parents=True, exist_ok=True)
    project_root = args.project_root.resolve()
    if not (project_root / "gunicorn.conf.py").is_file():
        print(f"{project_root} is not refapi's project root", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="refapi-bench-"))
    meta: dict[str, Any] = {
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "mode": ("study" if args.study else "benchmark") + (" (quick)" if args.quick else ""),
        "smoke_note": args.smoke_note or None,
        **describe_machine(project_root),
        "load_average_before": load_average(),
    }
    keep_workdir = args.keep_workdir
    try:
        with Upstream() as upstream:
            ctx = Context(
                project_root=project_root,
                workdir=workdir,
                settings=settings,
                upstream=upstream,
                database_url=args.database_url,
                redis_url=args.redis_url,
            )
            ctx.prepare_files()
            configs = [name.strip().upper() for name in args.configs.split(",") if name.strip()]
            if args.study:
                connections = [int(n) for n in args.study_connections.split(",")]
                thread_counts = [int(n) for n in args.study_threads.split(",")]
                phases = [name.strip() for name in args.study_phases.split(",")]
                results = study.run(ctx, meta, configs[-1], connections, thread_counts, phases, log)
                stem = "study"
            else:
                results = run_benchmark(ctx, meta, configs, args.smoke_note)
                stem = "benchmark"
        meta["load_average_after"] = load_average()
        meta["finished_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        if args.study:
            report.write_json(output / f"{stem}.json", results)
            (output / f"{stem}.md").write_text(study.markdown(results), encoding="utf-8")
            study.chart(output / f"{stem}.png", results)
        else:
            results["goals"] = report.goals(results)
            report.write_json(output / f"{stem}.json", results)
            (output / f"{stem}.md").write_text(report.markdown(results), encoding="utf-8")
            report.chart(output / f"{stem}.png", results)
        log(f"results: {output}/{stem}.json, {stem}.md, {stem}.png")
        failed = [
            name
            for name, config in results.get("configurations", {}).items()
            if "error" in config and "endpoints" not in config
        ]
        keep_workdir = keep_workdir or bool(failed)
    except backends.BackendUnavailable as error:
        print(f"the study needs PostgreSQL and Redis (or --configs A): {error}", file=sys.stderr)
        return 1
    except BaseException:
        keep_workdir = True
        raise
    finally:
        if keep_workdir:
            log(f"logs and databases kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


def smoke_reason(ctx: Context, results: dict[str, Any], note: str) -> str | None:
    reasons = [note] if note else []
    if ctx.settings.quick:
        reasons.append("a --quick run (short loads)")
    if ctx.settings.endpoints is not None:
        reasons.append("only these endpoints: " + ", ".join(sorted(ctx.settings.endpoints)))
    if ctx.settings.worker_class:
        reasons.append(f"gunicorn's {ctx.settings.worker_class} workers, not refapi's own")
    missing = sorted(
        {
            entry["label"]
            for config in results["configurations"].values()
            for entry in config.get("endpoints", [])
            if not entry.get("available")
        }
    )
    if missing:
        reasons.append("unavailable endpoints: " + ", ".join(missing))
    return "; ".join(reasons) or None


def run_benchmark(
    ctx: Context, meta: dict[str, Any], configs: list[str], note: str
) -> dict[str, Any]:
    settings = ctx.settings
    results: dict[str, Any] = {
        "meta": meta,
        "settings": {
            "duration": settings.duration,
            "warmup": settings.warmup,
            "connections": settings.connections,
            "wrk_threads": settings.wrk_threads,
            "timeout": settings.timeout,
            "hot_keys": settings.hot_keys,
            "endpoints": sorted(settings.endpoints) if settings.endpoints is not None else None,
            "worker_class": settings.worker_class,
            "b_worker_class": settings.b_worker_class,
        },
        "configurations": {},
    }

    for name in configs:
        try:
            backend = make_backend(ctx, name)
        except backends.BackendUnavailable as error:
            log(f"[{name}] not measured: {error}")
            results["configurations"][name] = {
                "description": "PostgreSQL and Redis" if name == "B" else "",
                "error": str(error),
            }
            continue
        try:
            results["configurations"][name] = bench.run_configuration(ctx, backend, log)
        except Exception as error:  # one configuration's failure is reported, the run goes on
            log(f"[{name}] failed: {type(error).__name__}: {error}")
            results["configurations"][name] = {
                "description": backend.description,
                "error": f"{type(error).__name__}: {error}",
            }
        finally:
            backend.cleanup()
    meta["smoke_reason"] = smoke_reason(ctx, results, note)
    return results


def make_backend(ctx: Context, name: str) -> backends.Backend:
    if name == "A":
        return backends.configuration_a(ctx.workdir, threads=ctx.settings.threads)
    if name == "B":
        return backends.configuration_b(
            database_url=ctx.database_url,
            redis_url=ctx.redis_url,
            workers=ctx.settings.workers_b,
            threads=ctx.settings.threads,
            worker_class=ctx.settings.b_worker_class,
        )
    raise SystemExit(f"unknown configuration {name!r}: A or B")
