"""Configurations A and B: where refapi keeps its data and cache during a run, and their seeding.

A: SQLite in the run's work folder, SimpleCache, one worker with threads.
B: PostgreSQL in a schema of its own, Redis under a key prefix of its own, two workers, gevent as
in compose.yaml (``b_worker_class``). Both are removed when the configuration's loads are done,
so runs never see each other's data.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import redis

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
# Configuration B's worker class and pool size, as compose.yaml serves refapi in production.
B_WORKER_CLASS = "gevent"
B_POOL_SIZE = 20
B_POOL_OVERFLOW = 0
# Configuration B is served behind compose.yaml's reverse proxy: refapi trusts one hop of
# X-Forwarded-For and X-Forwarded-Proto (REFAPI_PROXY_X_FOR, REFAPI_PROXY_X_PROTO, so Werkzeug's
# ProxyFix is in the stack), and every request of a load carries the headers that proxy adds.
B_PROXY_SETTINGS = {"REFAPI_PROXY_X_FOR": "1", "REFAPI_PROXY_X_PROTO": "1"}
B_FORWARDED_HEADERS = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}
OUTPUT_TAIL_LINES = 12


@dataclass
class Backend:
    name: str
    description: str
    env: dict[str, str]
    workers: int
    threads: int
    cleanup: Callable[[], None] = field(default=lambda: None, repr=False)
    # Headers every request carries, as a reverse proxy in front of the server adds them; the
    # bare apps and the peer get them too, so that every load sends the same requests.
    forwarded: dict[str, str] = field(default_factory=dict)


class BackendUnavailable(RuntimeError):
    pass


def configuration_a(workdir: Path, *, threads: int) -> Backend:
    database = workdir / f"refapi-a-{uuid.uuid4().hex[:8]}.sqlite3"
    return Backend(
        name="A",
        description=f"SQLite, SimpleCache, 1 gthread worker x {threads} threads",
        env={
            "REFAPI_DATABASE_URL": f"sqlite:///{database}",
            "REFAPI_WORKERS": "1",
            "REFAPI_THREADS": str(threads),
        },
        workers=1,
        threads=threads,
    )


def configuration_b(
    *, database_url: str, redis_url: str, workers: int, threads: int, worker_class: str
) -> Backend:
    run_id = uuid.uuid4().hex[:12]
    schema = f"refapi_bench_{run_id}"
    prefix = f"refapi-bench-{run_id}:"
    try:
        redis.Redis.from_url(redis_url, socket_connect_timeout=5).ping()
        with psycopg.connect(database_url, autocommit=True, connect_timeout=5) as connection:
            connection.execute(f'CREATE SCHEMA "{schema}"')
    except (psycopg.Error, redis.RedisError) as error:
        raise BackendUnavailable(f"{type(error).__name__}: {error}") from None

    def cleanup() -> None:
        with psycopg.connect(database_url, autocommit=True, connect_timeout=5) as connection:
            connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])
        client.close()

    separator = "&" if "?" in database_url else "?"
    options = quote(f"-csearch_path={schema}", safe="")
    url = database_url.replace("postgresql://", "postgresql+psycopg://", 1)
    return Backend(
        name="B",
        description=(
            f"PostgreSQL, Redis, {workers} gthread workers x {threads} threads"
            if worker_class == "gthread"
            else f"PostgreSQL, Redis, {workers} {worker_class} workers, pools of {B_POOL_SIZE}"
        ),
        env={
            "REFAPI_DATABASE_URL": f"{url}{separator}options={options}",
            "REFAPI_REDIS_URL": redis_url,
            "REFAPI_CACHE_KEY_PREFIX": prefix,
            "REFAPI_WORKERS": str(workers),
            "REFAPI_THREADS": str(threads),
            "REFAPI_WORKER_CLASS": worker_class,
            "REFAPI_DATABASE_POOL_SIZE": str(B_POOL_SIZE),
            "REFAPI_DATABASE_POOL_OVERFLOW": str(B_POOL_OVERFLOW),
            **B_PROXY_SETTINGS,
        },
        workers=workers,
        threads=threads,
        cleanup=cleanup,
        forwarded=dict(B_FORWARDED_HEADERS),
    )


def flask(
    args: list[str], *, bin_dir: Path, project_root: Path, env: Mapping[str, str]
) -> dict[str, Any]:
    """Run `flask --app wsgi ARGS` as an operator would; what it printed, and how it ended."""
    completed = subprocess.run(
        [str(bin_dir / "flask"), "--app", "wsgi", *args],
        cwd=project_root,
        env=dict(env),
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    output = (completed.stdout + completed.stderr).strip().splitlines()
    if completed.returncode == 0:
        status = "ok"
    elif any("No such command" in line for line in output):
        status = "unavailable"
    else:
        status = "failed"
    return {
        "command": "flask " + " ".join(args),
        "status": status,
        "exit_code": completed.returncode,
        "output": output[-OUTPUT_TAIL_LINES:],
    }


def seed(
    *, bin_dir: Path, project_root: Path, env: Mapping[str, str], store_file: Path
) -> dict[str, dict[str, Any]]:
    """Migrate, then load the store, the sample zipcode table and the index from the stub."""
    steps: dict[str, dict[str, Any]] = {}

    def step(name: str, args: list[str]) -> None:
        steps[name] = flask(args, bin_dir=bin_dir, project_root=project_root, env=env)

    step("migrate", ["db", "upgrade"])
    if steps["migrate"]["status"] != "ok":
        return steps
    step("store", ["store", "import", str(store_file)])
    step("zipcodes", ["zipcodes", "import"])
    step("indices", ["indices", "refresh"])
    return steps
