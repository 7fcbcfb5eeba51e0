"""`benchmarks/run --in-process`: what each hot path costs the app itself, without a server.

Calls the WSGI app directly in a loop (no gunicorn, no sockets, no load generator), so that a
change to the app's own code shows up without the noise of a whole load test: microseconds per
request, and as a multiple of a bare Flask /ping timed in the same process right before each
round (this machine's speed drifts too much for anything but neighbours to compare).
`--cprofile PATH_NAME` prints where one path's time goes. `--project-root` measures another
checkout (a commit before a change, say): "before" and "after" from the same command.
"""

from __future__ import annotations

import cProfile
import importlib
import io
import json
import os
import pstats
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from harness import data
from harness.context import BENCHMARKS
from harness.upstream import statbel_zip

KEY = "bench-in-process-0123456789abcdef"
ROUNDS = 7
CALLS = 1000

PATHS: dict[str, tuple[str, bool]] = {
    "ping": ("/ping", False),
    "authorize": ("/authorize", True),
    "get-hit": ("/get/contracts/BE-2026%2000042", True),
    "get-miss": ("/get/no-such-key", True),
    "zipcode": ("/zipcodes/1000", True),
    "zipcodes-a": ("/zipcodes?risk_factor=A", True),
    "indices": ("/indices/health?base_year=2013", True),
    # A write replacing one key again and again, with the load benchmark's first document.
    "save": ("/save", True),
}

WsgiApp = Callable[..., Iterable[bytes]]


def _environ(path: str, with_key: bool) -> dict[str, Any]:
    from werkzeug.test import EnvironBuilder

    headers = {"X-API-Key": KEY} if with_key else {}
    if path == "/save":
        body = data.save_bodies(1)[0].encode()
        return EnvironBuilder(
            path=path, method="POST", headers=headers, data=body, content_type="application/json"
        ).get_environ()
    return EnvironBuilder(path=path, headers=headers).get_environ()


def _call(app: WsgiApp, environ: dict[str, Any]) -> str:
    statuses: list[str] = []
    environ = dict(environ)
    if environ["REQUEST_METHOD"] == "POST":
        # Each call reads its body afresh.
        environ["wsgi.input"] = io.BytesIO(environ["wsgi.input"].getvalue())
    body = app(environ, lambda status, headers, exc_info=None: statuses.append(status))
    try:
        b"".join(body)
    finally:
        getattr(body, "close", lambda: None)()
    return statuses[0]


def _round(app: WsgiApp, environ: dict[str, Any]) -> float:
    started = time.perf_counter()
    for _ in range(CALLS):
        _call(app, environ)
    return (time.perf_counter() - started) / CALLS * 1e6


def measure(
    app: WsgiApp, environ: dict[str, Any], bare: WsgiApp, bare_environ: dict[str, Any]
) -> dict[str, float]:
    """Microseconds per request, and as a multiple of the bare Flask /ping's.

    Each round times the bare /ping, then the path, back to back: this machine's speed drifts
    by tens of percent within a minute, and a ratio of neighbours mostly does not. The medians of
    ``ROUNDS`` rounds.
    """
    for _ in range(CALLS // 4):
        _call(app, environ)  # warm caches, pools and the interpreter
        _call(bare, bare_environ)
    times, ratios = [], []
    for _ in range(ROUNDS):
        bare_us = _round(bare, bare_environ)
        path_us = _round(app, environ)
        times.append(path_us)
        ratios.append(path_us / bare_us)
    times.sort()
    ratios.sort()
    middle = ROUNDS // 2
    return {
        "median_us": round(times[middle], 1),
        "min_us": round(times[0], 1),
        "x_bare_ping": round(ratios[middle], 2),
    }


def _profile(app: WsgiApp, environ: dict[str, Any], limit: int = 40) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(CALLS):
        _call(app, environ)
    profiler.disable()
    stats = pstats.Stats(profiler, stream=sys.stdout)
    stats.sort_stats("cumulative").print_stats(limit)
    # Where the time is spent, not only under what: the functions' own time.
    stats.sort_stats("tottime").print_stats(limit // 2)


def _refapi_app(config: str, workdir: Path, database_url: str, redis_url: str) -> tuple[Any, Any]:
    """refapi's app in configuration A or B, seeded; and a clean-up function."""
    from refapi.app import create_app

    settings: dict[str, Any] = {
        "API_KEYS": f"bench:{KEY}",
        "API_KEYS_FILE": "",
        "STATBEL_URL": "",
        "LOG_LEVEL": "WARNING",
        "INSTANCE_PATH": str(workdir / "instance"),
    }
    cleanup: Callable[[], None] = lambda: None  # noqa: E731
    if config == "A":
        settings.update(DATABASE_URL=f"sqlite:///{workdir}/in-process.sqlite3", REDIS_URL="")
    else:
        import redis
        import sqlalchemy as sa

        schema = f"refapi_inprocess_{uuid.uuid4().hex[:8]}"
        engine = sa.create_engine(sa.make_url(database_url).set(drivername="postgresql+psycopg"))
        with engine.begin() as connection:
            connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
        prefix = f"refapi-inprocess-{schema}:"
        settings.update(
            DATABASE_URL=f"{database_url}?options=-csearch_path%3D{schema}",
            REDIS_URL=redis_url,
            CACHE_KEY_PREFIX=prefix,
        )

        def cleanup() -> None:
            with engine.begin() as connection:
                connection.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
            engine.dispose()
            client = redis.Redis.from_url(redis_url)
            for key in client.scan_iter(match=prefix + "*"):
                client.unlink(key)

    app = create_app(settings)
    with app.app_context():
        import flask_migrate

        from refapi.extensions import db

        flask_migrate.upgrade(directory=str(Path(app.root_path).parents[1] / "migrations"))
        importlib.import_module("refapi.zipcodes.services").import_sample(if_empty=True)
        archive = workdir / "cpi.zip"
        archive.write_bytes(statbel_zip())
        importlib.import_module("refapi.indices.services").refresh(path=str(archive))
        importlib.import_module("refapi.store.services").save(
            client="bench", key="contracts/BE-2026 00042", value={"premium": 1234.5, "risk": "B"}
        )
        db.session.remove()
    return app, cleanup


def main(
    *,
    project_root: Path,
    configs: list[str],
    database_url: str,
    redis_url: str,
    cprofile: str | None,
    output: Path | None,
) -> int:
    sys.path[:0] = [str(project_root / "src"), str(BENCHMARKS / "apps")]
    os.chdir(project_root)  # the migrations folder, as flask db upgrade finds it
    import bare_flask

    results: dict[str, Any] = {"project_root": str(project_root), "configs": {}}
    bare_environ = _environ("/ping", False)
    for config in configs:
        with tempfile.TemporaryDirectory(prefix="refapi-inprocess-") as folder:
            app, cleanup = _refapi_app(config, Path(folder), database_url, redis_url)
            try:
                measured = {}
                for name, (path, with_key) in PATHS.items():
                    environ = _environ(path, with_key)
                    status = _call(app, environ)
                    measured[name] = {
                        "status": status,
                        **measure(app, environ, bare_flask.app, bare_environ),
                    }
                    print(
                        f"[{config}] {name}: {measured[name]['median_us']} us, "
                        f"{measured[name]['x_bare_ping']} x the bare /ping ({status})"
                    )
                    if cprofile == name:
                        _profile(app, environ)
                results["configs"][config] = measured
            finally:
                cleanup()
    if output:
        output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0
