"""The run's results as JSON, a Markdown table and a PNG chart, and the issue's goals as ratios."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

from harness import bench

matplotlib.use("Agg")
# Agg: no display; chosen before pyplot is imported.
import matplotlib.pyplot as plt

SMOKE_WARNING = (
    "**Smoke test only**: {why}. These numbers check that the harness works; they are not "
    "the service's performance."
)


def write_json(path: Path, results: dict[str, Any]) -> None:
    path.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _endpoint(config: dict[str, Any], name: str) -> dict[str, Any] | None:
    for entry in config.get("endpoints", []):
        if entry["name"] == name and entry.get("available"):
            return entry
    return None


# A ceiling that moved more than this between its two loads: the machine was busy, the ratios
# of that configuration are not to be trusted.
NOISY_DRIFT = 0.25


def goals(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's goals, each with the measured value; None where it could not be measured."""
    rows: list[dict[str, Any]] = []

    def ratio(config: dict[str, Any], name: str) -> float | None:
        entry = _endpoint(config, name)
        return entry.get("ratio_to_bare_ping") if entry else None

    def goal(name: str, measured: float | None, target: float, unit: str = "x bare /ping") -> None:
        rows.append(
            {
                "goal": name,
                "target": f">= {target} {unit}",
                "threshold": target,
                "measured": measured,
                "met": None if measured is None else measured >= target,
            }
        )

    def compared_goal(
        paired: dict[str, Any], key: str, name: str, single: float | None, target: float, unit: str
    ) -> None:
        """A goal the head-to-head rounds measure: their median when they ran, else the ratio
        of the single loads."""
        rounds = paired.get(f"{key}_ratio")
        goal(name, rounds["median"] if rounds else single, target, unit)
        if rounds:
            _from_rounds(rows[-1], rounds)

    for label, config in results["configurations"].items():
        if "endpoints" not in config:
            continue
        first = len(rows)
        paired = config.get("head_to_head", {})
        compared_goal(
            paired,
            "ping",
            f"[{label}] full-stack /ping",
            ratio(config, "ping"),
            0.9,
            "x bare /ping",
        )
        for key, name, text, target in (
            ("hit", "get-hit", "GET /get cache hit", 0.6),
            ("miss", "get-miss", "GET /get cache miss", 0.3),
        ):
            compared_goal(
                paired, key, f"[{label}] {text}", ratio(config, name), target, "x bare /ping"
            )
        hit = _endpoint(config, "get-hit")
        peer = config.get("peer", {})
        compared_goal(
            paired,
            "peer",
            f"[{label}] GET /get cache hit vs the FastAPI peer",
            round(hit["requests_per_second"] / peer["requests_per_second"], 3)
            if hit and peer.get("available")
            else None,
            1.0,
            "x peer (must be ahead)",
        )
        for name, text in (
            ("zipcode", "GET /zipcodes/<zipcode>"),
            ("indices", "GET /indices/health?base_year=2013"),
        ):
            entry = _endpoint(config, name)
            compared_goal(
                paired,
                name,
                f"[{label}] {text} at the level of the cached GET /get",
                round(entry["requests_per_second"] / hit["requests_per_second"], 3)
                if entry and hit
                else None,
                0.9,
                "x cached GET /get",
            )
        loads = [entry for entry in config["endpoints"] if entry.get("available")]
        # refapi's loads in the rounds too; the other stacks' are not refapi's errors.
        loads += [pair["ours"] for entry in paired.get("rounds", ()) for pair in entry.values()]
        bad = sum(entry["unexpected"] + entry["socket_errors"] for entry in loads)
        rows.append(
            {
                "goal": f"[{label}] zero errors, zero unexpected statuses",
                "target": "0",
                "measured": bad if loads else None,
                "met": (bad == 0) if loads else None,
            }
        )
        drift = config["ceiling"].get("drift") or 0
        for row in rows[first:-1]:
            if "basis" in row:  # the rounds do not lean on the ceiling's two loads
                if row["low"] < row["threshold"] <= row["high"]:
                    row["noisy"] = "its rounds fall on both sides of the target"
            elif drift > NOISY_DRIFT:
                row["noisy"] = f"ceiling drift {drift:.0%}"
    return rows


def _from_rounds(row: dict[str, Any], ratio: dict[str, Any]) -> None:
    """Mark a goal's row as read off the head-to-head rounds: their count and range."""
    count = ratio["rounds"]
    row["basis"] = (
        f"median of {count} interleaved round{'s' if count != 1 else ''}, "
        f"{ratio['min']:.2f} to {ratio['max']:.2f}"
    )
    row["low"], row["high"] = ratio["min"], ratio["max"]


def _cell(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _row(label: str, entry: dict[str, Any]) -> str:
    if not entry.get("available", True):
        return f"| {label} | unavailable: {entry.get('reason', '')} | | | | | | | |"
    latency = entry["latency_ms"]
    statuses = ", ".join(f"{status}: {count:,}" for status, count in entry["statuses"].items())
    rss = entry.get("peak_rss_mib_per_worker") or []
    return (
        f"| {label} | {_cell(entry['requests_per_second'])} "
        f"| {_cell(entry.get('ratio_to_bare_ping'), 2)} "
        f"| {_cell(latency['p50'], 2)} | {_cell(latency['p99'], 2)} "
        f"| {entry['socket_errors']} | {entry['non_2xx']:,} | {entry['unexpected']:,} "
        f"| {', '.join(f'{mib:.0f}' for mib in rss)} | {statuses} |"
    )


TABLE_HEADER = (
    "| Endpoint | req/s | x bare /ping | p50 ms | p99 ms | socket errors | non-2xx "
    "| unexpected | peak RSS MiB per worker | statuses |\n"
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"
)


REDIS_FLOOR_LABEL = "bare Flask /ping + one Redis GET (floor of a Redis-cached read)"
CPU_HEADER = (
    "| Endpoint | server | PostgreSQL | Redis | wrk | whole machine | busiest worker's share "
    "| loads |\n"
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
)
CPU_PARTS = ("server", "postgres", "redis", "load generator", "machine")


def _cpu_row(label: str, entry: dict[str, Any]) -> str | None:
    cpu = entry.get("cpu_us_per_request") if entry.get("available", True) else None
    if not cpu:
        return None
    share = entry.get("busiest_worker_cpu_share")
    return (
        f"| {label} | "
        + " | ".join(_cell(cpu.get(part)) for part in CPU_PARTS)
        + f" | {'-' if share is None else f'{share:.0%}'} | {entry.get('attempts', 1)} |"
    )


def _cpu_table(config: dict[str, Any]) -> list[str]:
    """Where each request's CPU time went: the server's processes, the database, the cache."""
    ceiling = config["ceiling"]
    entries = [
        *((f"bare Flask /ping ({when})", ceiling[when]) for when in ("before", "after")),
        *((entry["label"], entry) for entry in config["endpoints"]),
        ("FastAPI peer: GET /get/<key> (SQLite row)", config["peer"]),
    ]
    if (ping := _peer_ping(config)) is not None:
        entries.append((PEER_PING_LABEL, ping))
    if "redis_floor" in config:
        entries.insert(2, (REDIS_FLOOR_LABEL, config["redis_floor"]))
    rows = [row for row in (_cpu_row(label, entry) for label, entry in entries) if row]
    if not rows:
        return []
    return [
        "CPU time per request, in microseconds (user + system, during the measured load). "
        "PostgreSQL and Redis count every process of theirs on the machine; whole machine is "
        "every CPU's busy time, so it also holds what nothing here accounts for. The busiest "
        "worker's share of the server's workers' CPU time: about 50% with two workers sharing "
        f"the load; a load where one did more than {bench.UNBALANCED_SHARE:.0%} was measured "
        f"again, up to {bench.BALANCE_ATTEMPTS} loads (the last column).",
        "",
        CPU_HEADER,
        *rows,
        "",
    ]


def markdown(results: dict[str, Any]) -> str:
    meta = results["meta"]
    settings = results["settings"]
    lines = ["# refapi benchmark", ""]
    if meta.get("smoke_reason"):
        lines += [SMOKE_WARNING.format(why=meta["smoke_reason"]), ""]
    lines += [
        f"Run {meta['started_at']} on commit `{meta['commit'][:12]}` ({meta['branch']}"
        f"{', uncommitted changes' if meta['dirty'] else ''}), {meta['cpus']} CPUs, "
        f"Python {meta['python']}, {meta['wrk']}. Load average {meta['load_average_before']} "
        f"before, {meta.get('load_average_after', '-')} after.",
        "",
        f"Each load: wrk on 127.0.0.1, {settings['connections']} connections, "
        f"{settings['wrk_threads']} wrk thread(s), {settings['warmup']}s warm-up then "
        f"{settings['duration']}s measured. Ratios are to the bare Flask /ping of the same "
        "configuration in the same run (the mean of its loads before and after refapi's).",
        "",
    ]
    for label, config in results["configurations"].items():
        lines += [f"## Configuration {label}: {config.get('description', '')}", ""]
        if "error" in config:
            lines += [f"Not measured: {config['error']}", ""]
            continue
        ceiling = config["ceiling"]
        lines += [TABLE_HEADER]
        for when in ("before", "after"):
            lines.append(_row(f"bare Flask /ping ({when})", ceiling[when]))
        if "redis_floor" in config:
            lines.append(_row(REDIS_FLOOR_LABEL, config["redis_floor"]))
        for entry in config["endpoints"]:
            lines.append(_row(entry["label"], entry))
        lines.append(_row("FastAPI peer: GET /get/<key> (SQLite row)", config["peer"]))
        if (ping := _peer_ping(config)) is not None:
            lines.append(_row(PEER_PING_LABEL, ping))
        lines += [
            "",
            f"Ceiling: {ceiling['requests_per_second']:,.0f} req/s; it moved by "
            f"{(ceiling['drift'] or 0) * 100:.0f}% between its two loads.",
            "",
        ]
        lines += _cpu_table(config)
        lines += _head_to_head_table(config)
        if (ceiling["drift"] or 0) > NOISY_DRIFT:
            lines += [
                f"**The ceiling moved by more than {NOISY_DRIFT:.0%}: the machine was busy "
                "with something else during these loads, and this configuration's ratios are "
                "not reliable.**",
                "",
            ]
        seed = config.get("seed", {})
        if seed:
            lines.append(
                "Seeding: "
                + "; ".join(f"`{step['command']}` {step['status']}" for step in seed.values())
                + "."
            )
            lines.append("")
    lines += [
        "## Goals of issue 8",
        "",
        "| Goal | Target | Measured | Met |",
        "| --- | --- | ---: | --- |",
    ]
    for row in results["goals"]:
        met = {True: "yes", False: "**no**", None: "not measured"}[row["met"]]
        if row.get("noisy"):
            met += f" (unreliable: {row['noisy']})"
        measured = _cell(row["measured"], 3)
        if row.get("basis"):
            measured += f" ({row['basis']})"
        lines.append(f"| {row['goal']} | {row['target']} | {measured} | {met} |")
    lines.append("")
    for label, config in results["configurations"].items():
        floor = config.get("redis_floor", {}).get("ratio_to_bare_ping")
        if floor is not None:
            lines += [
                f"For scale, in {label}: the bare Flask /ping plus one Redis GET ran at "
                f"{floor:.3f} x the bare /ping. No read that makes a Redis round trip can be "
                "faster than that here, whatever it does besides.",
                "",
            ]
        stacks = _stack_gap(label, config)
        if stacks is not None:
            lines += [stacks, ""]
    return "\n".join(lines)


HEAD_TO_HEAD_LABELS = {
    "ping": ("GET /ping", "bare Flask /ping"),
    "peer": ("GET /get/<key> (cache hit)", "FastAPI peer GET /get/<key>"),
    "zipcode": ("GET /zipcodes/<zipcode>", "GET /get/<key> (cache hit)"),
    "indices": ("GET /indices/health", "GET /get/<key> (cache hit)"),
    "hit": ("GET /get/<key> (cache hit)", "bare Flask /ping"),
    "miss": ("GET /get/<key> (no such key)", "bare Flask /ping"),
}


def _head_to_head_table(config: dict[str, Any]) -> list[str]:
    """The interleaved rounds (bench.head_to_head): each pair's two loads, and their ratio."""
    paired = config.get("head_to_head", {})
    if not paired.get("available"):
        return [f"Head to head: not measured ({paired['reason']}).", ""] if paired else []
    lines = [
        "Head to head: refapi and the other stacks running at once; in each round, the two sides "
        f"of each pair loaded back to back ({paired['duration']:g}s each), the first side "
        "alternating from round to round. The goals below read the median of each ratio.",
        "",
        "| Round | refapi | req/s | against | req/s | ratio | loaded first |",
        "| --- | --- | ---: | --- | ---: | ---: | --- |",
    ]
    for number, entry in enumerate(paired["rounds"], 1):
        for key, pair in entry.items():
            ours, theirs = HEAD_TO_HEAD_LABELS[key]
            first = ours if pair["first"] == "ours" else theirs
            lines.append(
                f"| {number} | {ours} | {_cell(pair['ours']['requests_per_second'])} | {theirs} "
                f"| {_cell(pair['theirs']['requests_per_second'])} | {_cell(pair['ratio'], 3)} "
                f"| {first} |"
            )
    for key, reason in paired.get("skipped", {}).items():
        lines.append(f"| - | {HEAD_TO_HEAD_LABELS[key][0]} | - | not measured: {reason} | | | |")
    return [*lines, ""]


# A plain `def`, as the peer's read is: FastAPI runs both in its thread pool.
PEER_PING_LABEL = "FastAPI peer: GET /ping (its stack, no work)"


def _peer_ping(config: dict[str, Any]) -> dict[str, Any] | None:
    """The load of the peer's own /ping, when it was measured."""
    peer = config.get("peer", {})
    return peer["ping"] if peer.get("available") and "ping" in peer else None


def _stack_gap(label: str, config: dict[str, Any]) -> str | None:
    """The two stacks' ceilings side by side, and what being ahead of the peer would take."""
    peer, ping = config.get("peer", {}), _peer_ping(config)
    bare = config.get("ceiling", {}).get("requests_per_second")
    if not (ping and bare and ping["requests_per_second"]):
        return None
    peer_ping = ping["requests_per_second"]
    noisy = (config["ceiling"].get("drift") or 0) > NOISY_DRIFT
    return ("(Unreliable: the ceiling moved during these loads.) " if noisy else "") + (
        f"The two stacks side by side, in {label}: the bare Flask /ping under gunicorn ran at "
        f"{bare / peer_ping:.3f} x the FastAPI peer's own /ping under uvicorn, and the peer's "
        f"SQLite read at {peer['requests_per_second'] / bare:.3f} x the bare Flask /ping. "
        "A read through refapi is ahead of the peer only if it runs at that ratio of the bare "
        "Flask /ping or more, the whole app included."
    )


def chart(path: Path, results: dict[str, Any]) -> None:
    """Throughput and p99 per endpoint, one bar per configuration."""
    configs = [(label, c) for label, c in results["configurations"].items() if "endpoints" in c]
    if not configs:
        return
    labels: list[str] = ["bare Flask /ping"]
    for _, config in configs:
        for entry in config["endpoints"]:
            if entry["label"] not in labels:
                labels.append(entry["label"])
    labels += ["FastAPI peer GET", "FastAPI peer /ping"]

    def value(config: dict[str, Any], label: str, metric: str) -> float:
        if label == "bare Flask /ping":
            entry: dict[str, Any] | None = config["ceiling"]["before"]
            if metric == "rps":
                return float(config["ceiling"]["requests_per_second"])
        elif label == "FastAPI peer GET":
            entry = config["peer"] if config["peer"].get("available") else None
        elif label == "FastAPI peer /ping":
            entry = _peer_ping(config)
        else:
            entry = next(
                (e for e in config["endpoints"] if e["label"] == label and e.get("available")),
                None,
            )
        if entry is None:
            return 0.0
        return float(
            entry["requests_per_second"] if metric == "rps" else entry["latency_ms"]["p99"]
        )

    figure, (top, bottom) = plt.subplots(2, 1, figsize=(12, 9), sharex=True)
    width = 0.8 / max(1, len(configs))
    positions = range(len(labels))
    for index, (label, config) in enumerate(configs):
        offsets = [p + (index - (len(configs) - 1) / 2) * width for p in positions]
        name = f"{label}: {config['description']}"
        top.bar(offsets, [value(config, x, "rps") for x in labels], width, label=name)
        bottom.bar(offsets, [value(config, x, "p99") for x in labels], width, label=name)
    title = "refapi under wrk, 32 connections on loopback"
    if results["meta"].get("smoke_reason"):
        title += " (SMOKE TEST ONLY)"
    top.set_title(title)
    top.set_ylabel("requests / s")
    bottom.set_ylabel("p99 latency (ms)")
    bottom.set_xticks(list(positions))
    bottom.set_xticklabels(labels, rotation=35, ha="right", fontsize=8)
    top.legend(fontsize=8)
    for axis in (top, bottom):
        axis.grid(axis="y", alpha=0.3)
    figure.text(0.01, 0.01, "A missing bar: the endpoint was unavailable in that run.", fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
