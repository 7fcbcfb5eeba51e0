"""The main run: every endpoint under the same load, in configurations A and B, with the limits.

Per configuration: seed through the CLI; the bare Flask /ping (the ceiling) before and after;
refapi's endpoints, each probed first (a route that is not there yet is reported unavailable);
the FastAPI peer's one-row read.
"""

from __future__ import annotations

import contextlib
import json
import statistics
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from harness import backends, data, http, servers, wrk
from harness.context import Context, load_average

MIB = 1024 * 1024
# With two workers each should do about half; a load where one did more than this is measured
# again, up to BALANCE_ATTEMPTS loads in all.
UNBALANCED_SHARE = 0.75
BALANCE_ATTEMPTS = 3
# No proxy's headers: configuration A and the study are served directly.
EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True)
class Endpoint:
    name: str
    label: str
    method: str
    targets: tuple[str, ...]
    expected: frozenset[int]
    bodies: tuple[str, ...] | None = None
    # For an endpoint whose due answer is an error: the problem code that shows the route exists.
    probe_code: str | None = None
    authenticated: bool = True
    warm: bool = False


# The names of refapi_endpoints(), which --endpoints accepts: keep the two lists in step.
ENDPOINT_NAMES = (
    "ping",
    "authorize",
    "get-hit",
    "get-miss",
    "save",
    "zipcode",
    "zipcodes-a",
    "zipcodes-a-1000",
    "indices",
)


def refapi_endpoints(ctx: Context, zipcodes: list[int]) -> list[Endpoint]:
    hot = [data.store_key(number) for number in range(ctx.settings.hot_keys)]
    ok = frozenset({200})
    return [
        Endpoint("ping", "GET /ping", "GET", ("/ping",), ok, authenticated=False),
        Endpoint("authorize", "GET /authorize", "GET", ("/authorize",), ok),
        Endpoint(
            "get-hit",
            "GET /get/<key> (cache hit)",
            "GET",
            tuple("/get/" + data.path_of(key) for key in hot),
            ok,
            warm=True,
        ),
        Endpoint(
            "get-miss",
            "GET /get/<key> (no such key)",
            "GET",
            tuple(f"/get/missing/{number:05d}" for number in range(data.MISSING_KEYS)),
            frozenset({404}),
            probe_code="KEY_NOT_FOUND",
        ),
        Endpoint(
            "save",
            "POST /save",
            "POST",
            ("/save",) * data.SAVE_KEYS,
            frozenset({200, 201}),
            bodies=tuple(data.save_bodies()),
        ),
        Endpoint(
            "zipcode",
            "GET /zipcodes/<zipcode>",
            "GET",
            tuple(f"/zipcodes/{zipcode}" for zipcode in zipcodes or [9000]),
            ok,
            warm=True,
        ),
        Endpoint(
            "zipcodes-a", "GET /zipcodes?risk_factor=A", "GET", ("/zipcodes?risk_factor=A",), ok
        ),
        Endpoint(
            "zipcodes-a-1000",
            "GET /zipcodes?risk_factor=A&page_size=1000",
            "GET",
            ("/zipcodes?risk_factor=A&page_size=1000",),
            ok,
        ),
        Endpoint(
            "indices",
            "GET /indices/health?base_year=2013",
            "GET",
            ("/indices/health?base_year=2013",),
            ok,
        ),
    ]


def requests_file(ctx: Context, endpoint: Endpoint, tag: str) -> Path:
    path = ctx.workdir / f"requests-{tag}-{endpoint.name}.txt"
    bodies = list(endpoint.bodies) if endpoint.bodies is not None else None
    return data.write_requests(path, list(endpoint.targets), bodies)


def headers_for(
    ctx: Context, endpoint: Endpoint, forwarded: Mapping[str, str] = EMPTY
) -> dict[str, str]:
    """What each request of the endpoint sends: a proxy's headers (``forwarded``), the key."""
    headers = dict(forwarded)
    if endpoint.authenticated:
        headers.update(ctx.auth_header)
    if endpoint.bodies is not None:
        headers["Content-Type"] = "application/json"
    return headers


def probe(
    server: servers.Server, ctx: Context, endpoint: Endpoint, forwarded: Mapping[str, str] = EMPTY
) -> str | None:
    """None when the endpoint answers as it is due to; otherwise why it is unavailable."""
    body = endpoint.bodies[0] if endpoint.bodies is not None else None
    try:
        status, answer = http.call(
            server.url + endpoint.targets[0],
            method=endpoint.method,
            headers=headers_for(ctx, endpoint, forwarded),
            body=body,
        )
    except OSError as error:
        return f"probe failed: {error}"
    code = answer.get("code") if isinstance(answer, dict) else None
    if status in endpoint.expected and (endpoint.probe_code is None or code == endpoint.probe_code):
        return None
    return f"probe answered {status}" + (f" {code}" if code else "")


def warm(
    server: servers.Server, ctx: Context, endpoint: Endpoint, forwarded: Mapping[str, str] = EMPTY
) -> list[int]:
    """Read every target once, so that the load that follows hits the cache."""
    statuses = http.call_many(
        ((endpoint.method, server.url + target, None) for target in endpoint.targets),
        headers=headers_for(ctx, endpoint, forwarded),
    )
    return sorted(set(statuses))


def measure(
    server: servers.Server,
    ctx: Context,
    endpoint: Endpoint,
    *,
    tag: str,
    connections: int | None = None,
    duration: float | None = None,
    warmup: float | None = None,
    balanced: bool = True,
    forwarded: Mapping[str, str] = EMPTY,
) -> dict[str, Any]:
    """Warm-up load (discarded), then the measured load, sampling each worker's memory.

    ``balanced``: measure again (up to ``BALANCE_ATTEMPTS`` loads) while one worker of several
    does more than ``UNBALANCED_SHARE`` of the work; the study's loads of a few connections
    cannot be balanced, and pass False.
    """
    settings = ctx.settings
    connections = connections or settings.connections
    header_args = tuple(
        f"{name}: {value}" for name, value in headers_for(ctx, endpoint, forwarded).items()
    )
    load = wrk.Load(endpoint.method, requests_file(ctx, endpoint, tag), header_args)
    options = {
        "url": server.url,
        "connections": connections,
        "threads": settings.wrk_threads,
        "timeout": settings.timeout,
    }
    warmup = settings.warmup if warmup is None else warmup
    if warmup > 0:
        wrk.run(load, duration=warmup, **options)
    for attempt in range(1, BALANCE_ATTEMPTS + 1):
        with servers.sampling_rss(server) as peaks, servers.measuring_cpu(server) as cpu:
            result = wrk.run(load, duration=duration or settings.duration, **options)
        share = cpu.pop("busiest worker")
        result["busiest_worker_cpu_share"] = None if share is None else round(share, 2)
        result["attempts"] = attempt
        # Every worker should have a fair part of the connections: otherwise load again (new
        # connections, a new spread), so that a ratio compares servers rather than luck.
        if not balanced or share is None or share <= UNBALANCED_SHARE:
            break
    result["connections"] = connections
    result["unexpected"] = sum(
        count for status, count in result["statuses"].items() if status not in endpoint.expected
    )
    result["expected_statuses"] = sorted(endpoint.expected)
    result["peak_rss_mib_per_worker"] = sorted(
        (round(rss / MIB, 1) for rss in peaks.values()), reverse=True
    )
    # Where the machine's CPU went, per request: the server, the database, the cache, wrk.
    result["cpu_us_per_request"] = {
        name: round(seconds * 1e6 / result["requests"], 1) if result["requests"] else None
        for name, seconds in cpu.items()
    }
    result["load_average_after"] = load_average()
    return result


def existing_zipcodes(server: servers.Server, ctx: Context) -> list[int]:
    found = []
    for zipcode in data.ZIPCODE_CANDIDATES:
        status, _ = http.call(f"{server.url}/zipcodes/{zipcode}", headers=ctx.auth_header)
        if status == 404:
            continue
        if status != 200:
            return []
        found.append(zipcode)
    return found


def seed_store_through_api(server: servers.Server, ctx: Context) -> dict[str, Any]:
    """The fallback when `flask store import` is missing: POST /save, eight at a time."""
    lines = ctx.files["store"].read_text(encoding="utf-8").splitlines()
    bodies = []
    for line in lines:
        entry = json.loads(line)
        bodies.append(json.dumps({"key": entry["key"], "value": entry["value"]}))
    headers = {**ctx.auth_header, "Content-Type": "application/json"}
    statuses = http.call_many(
        (("POST", server.url + "/save", body) for body in bodies), headers=headers
    )
    failed = sum(1 for status in statuses if status not in (200, 201))
    return {
        "command": f"POST /save x {len(bodies)}",
        "status": "ok" if not failed else "failed",
        "output": [f"{len(bodies) - failed} saved, {failed} failed"],
    }


def bare_server(
    ctx: Context, backend: backends.Backend, when: str, app: str = "bare_flask:app"
) -> tuple[servers.Server, Endpoint]:
    """A bare app under refapi's gunicorn settings, started (stop it: ``servers.running``), and
    its /ping."""
    name = app.partition(":")[0].replace("_", "-")
    ping = Endpoint(
        "bare-ping",
        f"{name} GET /ping",
        "GET",
        ("/ping",),
        frozenset({200}),
        authenticated=False,
    )
    server = servers.gunicorn(
        f"{name}-{backend.name}-{when}",
        bin_dir=ctx.bin_dir,
        project_root=ctx.project_root,
        app=app,
        env=ctx.env(**backend.env),
        log_path=ctx.log_path(f"{name}-{backend.name}"),
        extra_args=ctx.settings.worker_args,
    )
    return server, ping


def ceiling(
    ctx: Context, backend: backends.Backend, when: str, app: str = "bare_flask:app"
) -> dict[str, Any]:
    """A bare app's /ping (``bare_flask``: the ceiling; ``bare_redis``: plus one Redis GET)."""
    server, ping = bare_server(ctx, backend, when, app)
    name = app.partition(":")[0].replace("_", "-")
    with servers.running(server):
        return measure(server, ctx, ping, tag=f"{backend.name}-{name}", forwarded=backend.forwarded)


def peer_server(ctx: Context, backend: backends.Backend) -> tuple[servers.Server, Endpoint]:
    """The FastAPI peer under uvicorn, started (stop it: ``servers.running``), and its read of
    the hot keys."""
    hot = [data.store_key(number) for number in range(ctx.settings.hot_keys)]
    endpoint = Endpoint(
        "peer-get",
        "FastAPI peer GET /get/<key> (one SQLite row)",
        "GET",
        tuple("/get/" + data.path_of(key) for key in hot),
        frozenset({200}),
    )
    server = servers.uvicorn(
        f"peer-{backend.name}",
        bin_dir=ctx.bin_dir,
        app="peer_fastapi:app",
        workers=backend.workers,
        env={
            **servers.base_env(),
            "PEER_DATABASE": str(ctx.files["peer_db"]),
            "PEER_API_KEY": ctx.secret,
            "PEER_CLIENT": data.CLIENT,
        },
        log_path=ctx.log_path(f"peer-{backend.name}"),
        ready_path="/ping",
    )
    return server, endpoint


def peer(ctx: Context, backend: backends.Backend) -> dict[str, Any]:
    server, endpoint = peer_server(ctx, backend)
    # The peer's stack doing nothing: its /ping (a plain `def`, run in FastAPI's thread pool as
    # its read is), on the same server. Set against the bare Flask /ping, it says how far apart
    # the two stacks are before either app does any work (report.py's _stack_gap).
    ping = Endpoint(
        "peer-ping",
        "FastAPI peer GET /ping",
        "GET",
        ("/ping",),
        frozenset({200}),
        authenticated=False,
    )
    with servers.running(server):
        unavailable = probe(server, ctx, endpoint, backend.forwarded)
        if unavailable:
            return {"available": False, "reason": unavailable}
        result = measure(
            server, ctx, endpoint, tag=f"{backend.name}-peer", forwarded=backend.forwarded
        )
        if ctx.settings.quick:  # a smoke run: the two stacks' ceilings are for the full one
            return {"available": True, **result}
        return {
            "available": True,
            **result,
            "ping": measure(
                server, ctx, ping, tag=f"{backend.name}-peer-ping", forwarded=backend.forwarded
            ),
        }


# The goals that are a ratio between two loads at their margin are also measured in this many
# interleaved rounds: refapi's /ping, its cached read and its miss against the bare Flask /ping,
# its cached read against the peer's, and the reference data against the cached read. Five, not
# three: one pair of loads moves by up to 8% on this machine, and the median of three was
# decided by a single round's luck (issue 8, benchmarks/results/4-december).
HEAD_TO_HEAD_ROUNDS = 5
# (the goal's key, refapi's endpoint, the load it is set against)
HEAD_TO_HEAD_PAIRS = (
    ("ping", "ping", "bare-ping"),
    ("peer", "get-hit", "peer-get"),
    ("zipcode", "zipcode", "get-hit"),
    ("indices", "indices", "get-hit"),
    ("hit", "get-hit", "bare-ping"),
    ("miss", "get-miss", "bare-ping"),
)
# refapi's endpoints in the pairs; the other sides are the bare app's and the peer's.
HEAD_TO_HEAD_REFAPI = tuple(dict.fromkeys(ours for _, ours, _ in HEAD_TO_HEAD_PAIRS))


# What head_to_head keeps of each side's load.
_PAIR_LOAD_FIELDS = (
    "requests_per_second",
    "unexpected",
    "socket_errors",
    "busiest_worker_cpu_share",
    "attempts",
)


def _other_stacks(
    ctx: Context,
    backend: backends.Backend,
    needed: set[str],
    stack: contextlib.ExitStack,
) -> tuple[dict[str, tuple[servers.Server, Endpoint]], dict[str, str]]:
    """The bare Flask app and the peer, those of ``needed``: started, each stopped by ``stack``
    however the rounds end, from the moment it has started, and probed. The sides that answered,
    and why each of the others is unavailable.
    """
    starters = {
        "bare-ping": lambda: bare_server(ctx, backend, "head-to-head"),
        "peer-get": lambda: peer_server(ctx, backend),
    }
    sides: dict[str, tuple[servers.Server, Endpoint]] = {}
    unavailable: dict[str, str] = {}
    for name, start in starters.items():
        if name not in needed:
            continue
        server, endpoint = start()
        stack.enter_context(servers.running(server))
        reason = probe(server, ctx, endpoint, backend.forwarded)
        if reason is None:
            sides[name] = (server, endpoint)
        else:
            unavailable[name] = reason
    return sides, unavailable


def _load_pair(
    ctx: Context,
    backend: backends.Backend,
    sides: Mapping[str, tuple[servers.Server, Endpoint]],
    pair: tuple[str, str, str],
    number: int,
    duration: float,
) -> dict[str, Any]:
    """Round ``number``'s two loads of ``pair``, back to back (refapi's side first in an even
    round, the other's in an odd one), and their ratio."""
    key, ours, theirs = pair
    order = (ours, theirs) if number % 2 == 0 else (theirs, ours)
    loaded: dict[str, dict[str, Any]] = {}
    for side in order:
        server, endpoint = sides[side]
        result = measure(
            server,
            ctx,
            endpoint,
            tag=f"{backend.name}-h2h-{key}-{side}",
            duration=duration,
            warmup=ctx.settings.warmup if number == 0 else 0,
            forwarded=backend.forwarded,
        )
        loaded[side] = {name: result.get(name) for name in _PAIR_LOAD_FIELDS}
    theirs_rps = loaded[theirs]["requests_per_second"]
    return {
        "ours": loaded[ours],
        "theirs": loaded[theirs],
        "first": "ours" if order[0] == ours else "theirs",
        "ratio": (
            round(loaded[ours]["requests_per_second"] / theirs_rps, 3) if theirs_rps else None
        ),
    }


def head_to_head(
    ctx: Context,
    backend: backends.Backend,
    refapi: servers.Server,
    endpoints: Mapping[str, Endpoint],
    log: Any,
) -> dict[str, Any]:
    """The pairs of HEAD_TO_HEAD_PAIRS in interleaved rounds, with refapi and the other stacks
    (the bare Flask app, the peer: only those a pair needs) running at once.

    The tables' single loads stand a minute or more apart, and this machine moved by a third
    between them. Here each round loads the two sides of each pair back to back, the pair's own
    side first in one round and the other's first in the next (so a machine slowing down or
    speeding up within a round favours neither side), the pairs in an order that rotates; each
    ratio is taken within its pair, and a goal reads the median of the rounds.
    """
    rounds = 1 if ctx.settings.quick else HEAD_TO_HEAD_ROUNDS
    duration = max(1.0, ctx.settings.duration / 2)
    pairs = [pair for pair in HEAD_TO_HEAD_PAIRS if pair[1] in endpoints]
    sides: dict[str, tuple[servers.Server, Endpoint]] = {
        name: (refapi, endpoints[name]) for name in HEAD_TO_HEAD_REFAPI if name in endpoints
    }
    summary: dict[str, Any] = {"available": True, "duration": duration, "skipped": {}}
    measured: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        others, unavailable = _other_stacks(ctx, backend, {theirs for _, _, theirs in pairs}, stack)
        sides.update(others)
        for key, _, theirs in pairs:
            if theirs not in sides:
                why = unavailable.get(theirs, "not loaded in this run (--endpoints)")
                summary["skipped"][key] = f"{theirs} unavailable: {why}"
        pairs = [pair for pair in pairs if pair[0] not in summary["skipped"]]
        for number in range(rounds):
            shift = number % len(pairs) if pairs else 0
            entry = {
                pair[0]: _load_pair(ctx, backend, sides, pair, number, duration)
                for pair in pairs[shift:] + pairs[:shift]
            }
            log(
                f"[{backend.name}]   round {number + 1}: "
                + ", ".join(f"{key} {pair['ratio']}" for key, pair in entry.items())
            )
            measured.append(entry)
    summary["rounds"] = measured
    for key, _, _ in HEAD_TO_HEAD_PAIRS:
        ratios = [
            entry[key]["ratio"]
            for entry in measured
            if key in entry and entry[key]["ratio"] is not None
        ]
        if ratios:
            summary[f"{key}_ratio"] = {
                "median": round(statistics.median(ratios), 3),
                "min": min(ratios),
                "max": max(ratios),
                "rounds": len(ratios),
            }
    return summary


def run_configuration(ctx: Context, backend: backends.Backend, log: Any) -> dict[str, Any]:
    env = ctx.env(**backend.env)
    description = backend.description
    if ctx.settings.worker_class:
        description += f"; gunicorn's {ctx.settings.worker_class} workers, not refapi's own"
    report: dict[str, Any] = {
        "description": description,
        "workers": backend.workers,
        "threads": backend.threads,
    }
    log(f"[{backend.name}] seeding: migrations, 10 000 keys, zipcodes, a year of index data")
    seed = backends.seed(
        bin_dir=ctx.bin_dir, project_root=ctx.project_root, env=env, store_file=ctx.files["store"]
    )
    report["seed"] = seed
    for step, outcome in seed.items():
        log(f"[{backend.name}]   {step}: {outcome['status']}")
    if seed["migrate"]["status"] != "ok":
        raise RuntimeError("migrations failed:\n" + "\n".join(seed["migrate"]["output"]))

    log(f"[{backend.name}] ceiling: bare Flask /ping")
    before = ceiling(ctx, backend, "before")
    if "REFAPI_REDIS_URL" in backend.env:
        log(f"[{backend.name}] floor of a Redis-cached read: bare Flask /ping + one Redis GET")
        try:
            report["redis_floor"] = ceiling(ctx, backend, "before", app="bare_redis:app")
        except (servers.ServerFailed, wrk.WrkFailed) as error:  # a reference: the run goes on
            log(f"[{backend.name}]   not measured: {error}")
            report["redis_floor"] = {"available": False, "reason": str(error)}
    endpoints: list[dict[str, Any]] = []
    server = servers.gunicorn(
        f"refapi-{backend.name}",
        bin_dir=ctx.bin_dir,
        project_root=ctx.project_root,
        app="wsgi:app",
        env=env,
        log_path=ctx.log_path(f"refapi-{backend.name}"),
        extra_args=ctx.settings.worker_args,
    )
    with servers.running(server):
        if seed.get("store", {}).get("status") == "unavailable":
            save_probe = http.call(
                server.url + "/save",
                method="POST",
                headers={**ctx.auth_header, "Content-Type": "application/json"},
                body='{"key": "probe", "value": 1}',
            )[0]
            if save_probe in (200, 201):
                log(f"[{backend.name}]   store: no CLI import, seeding through POST /save")
                seed["store"] = seed_store_through_api(server, ctx)
        zipcodes = existing_zipcodes(server, ctx)
        chosen = ctx.settings.endpoints
        loaded: dict[str, Endpoint] = {}
        for endpoint in refapi_endpoints(ctx, zipcodes):
            if chosen is not None and endpoint.name not in chosen:
                continue
            entry: dict[str, Any] = {"name": endpoint.name, "label": endpoint.label}
            reason = probe(server, ctx, endpoint, backend.forwarded)
            if reason is None and endpoint.warm:
                statuses = warm(server, ctx, endpoint, backend.forwarded)
                if statuses != [200]:
                    reason = f"warming answered {statuses}"
            if reason is not None:
                log(f"[{backend.name}] {endpoint.label}: unavailable ({reason})")
                endpoints.append({**entry, "available": False, "reason": reason})
                continue
            started = time.monotonic()
            try:
                result = measure(
                    server, ctx, endpoint, tag=backend.name, forwarded=backend.forwarded
                )
            except wrk.WrkFailed as error:
                log(f"[{backend.name}] {endpoint.label}: load failed ({error})")
                endpoints.append({**entry, "available": False, "reason": f"load failed: {error}"})
                continue
            log(
                f"[{backend.name}] {endpoint.label}: {result['requests_per_second']} req/s, "
                f"p99 {result['latency_ms']['p99']} ms, non-2xx {result['non_2xx']}, "
                f"unexpected {result['unexpected']} ({time.monotonic() - started:.0f}s)"
            )
            endpoints.append({**entry, "available": True, **result})
            loaded[endpoint.name] = endpoint
        if any(name in loaded for name in HEAD_TO_HEAD_REFAPI):
            log(f"[{backend.name}] head to head: interleaved rounds with the bare app and the peer")
            try:
                report["head_to_head"] = head_to_head(ctx, backend, server, loaded, log)
            except (servers.ServerFailed, wrk.WrkFailed) as error:  # the run goes on
                log(f"[{backend.name}]   not measured: {error}")
                report["head_to_head"] = {"available": False, "reason": str(error)}
        report["server_log_tail"] = server.log_tail(5)

    log(f"[{backend.name}] ceiling again: bare Flask /ping")
    after = ceiling(ctx, backend, "after")
    log(f"[{backend.name}] peer: FastAPI under uvicorn")
    report["peer"] = peer(ctx, backend)
    bare_rps = (before["requests_per_second"] + after["requests_per_second"]) / 2
    report["ceiling"] = {
        "label": "bare Flask GET /ping",
        "before": before,
        "after": after,
        "requests_per_second": round(bare_rps, 1),
        # How much the ceiling moved during the configuration's loads: the run's noise.
        "drift": round(
            abs(before["requests_per_second"] - after["requests_per_second"]) / bare_rps, 3
        )
        if bare_rps
        else None,
    }
    floor = [report["redis_floor"]] if "redis_floor" in report else []
    peer_ping = [report["peer"]["ping"]] if "ping" in report["peer"] else []
    for entry in [*endpoints, report["peer"], *peer_ping, *floor]:
        if entry.get("available", True) and bare_rps:
            entry["ratio_to_bare_ping"] = round(entry["requests_per_second"] / bare_rps, 3)
    report["endpoints"] = endpoints
    return report
