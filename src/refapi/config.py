"""Every setting refapi reads, with its default and meaning.

Each setting is read from the environment variable ``REFAPI_<NAME>``; ``create_app`` applies,
in order, these defaults, the environment, then the mapping it was given. The README's
configuration table is checked against ``SETTINGS`` by a test, so the two never drift.
"""

from __future__ import annotations

import math
import os
import re
import socket
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from gunicorn.util import parse_address as bind_address
from redis import connection as redis_connection
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

ENV_PREFIX = "REFAPI_"


class ConfigError(RuntimeError):
    """The configuration cannot start the service; the message says how to fix it."""


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    parse: Callable[[str], Any]
    meaning: str

    @property
    def env_var(self) -> str:
        return ENV_PREFIX + self.name


def _integer(text: str) -> int:
    # Digits 0-9 only: int() also reads "1_000" and other scripts' digits. Never negative.
    digits = text.strip()
    if not re.fullmatch(r"[0-9]+", digits):
        raise ValueError(f"expected a whole number in digits 0-9, without a unit, got {text!r}")
    return int(digits)


def _positive_int(text: str) -> int:
    value = _integer(text)
    if value <= 0:
        raise ValueError(f"expected a positive whole number, got {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    return _integer(text)  # digits alone: zero or more


def _positive_float(text: str) -> float:
    # Digits 0-9 and a point: float() also reads "1_0", other scripts' digits, "nan" and "inf".
    number = text.strip()
    if not re.fullmatch(r"[0-9]+(\.[0-9]*)?|\.[0-9]+", number):
        raise ValueError(f"expected a number of seconds such as 0.5 (no unit), got {text!r}")
    value = float(number)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"expected a positive number, got {text!r}")
    return value


def _log_level(text: str) -> str:
    level = text.strip().upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise ValueError(f"expected DEBUG, INFO, WARNING, ERROR or CRITICAL, got {text!r}")
    return level


def _text(text: str) -> str:
    return text.strip()


# gunicorn's worker classes refapi runs under (gunicorn.conf.py), by REFAPI_WORKER_CLASS.
WORKER_CLASSES = {
    "gthread": "refapi.worker.ThreadWorker",
    "gevent": "refapi.gevent_worker.GeventWorker",
}


def _worker_class(text: str) -> str:
    name = text.strip().lower()
    if name not in WORKER_CLASSES:
        raise ValueError(f"expected {' or '.join(WORKER_CLASSES)}, got {text!r}")
    return name


# The database URLs refapi runs on, as the message that says so.
DATABASE_FORMS = (
    "SQLite (sqlite:///refapi.sqlite3, sqlite:////absolute/path.sqlite3) or PostgreSQL "
    "(postgresql://user:password@host:5432/refapi)"
)


@dataclass(frozen=True)
class Database:
    """A database URL scheme refapi accepts, and how refapi connects to it."""

    # What a URL may write after "+" ("": nothing): the driver refapi connects with.
    drivers: frozenset[str]
    # The SQLAlchemy driver name a URL without a driver is given (app.database_url).
    drivername: str
    # The driver installed with refapi, as messages name it.
    installed: str


# The one table of database drivers: which a URL may name, and which refapi connects with.
DATABASES = {
    "sqlite": Database(frozenset({"", "pysqlite"}), "sqlite", "sqlite3"),
    "postgresql": Database(frozenset({"", "psycopg"}), "postgresql+psycopg", "psycopg 3"),
    "postgres": Database(frozenset({""}), "postgresql+psycopg", "psycopg 3"),
}


def _database_url(text: str) -> str:
    """A SQLAlchemy URL of a supported database. Messages never quote it: it holds a password."""
    text = text.strip()
    try:
        url = make_url(text)
    except (ArgumentError, ValueError):
        # ValueError: a port that is not a number.
        raise ValueError(f"not a database URL; expected {DATABASE_FORMS}") from None
    backend, _, driver = url.drivername.partition("+")
    database = DATABASES.get(backend)
    if database is None:
        raise ValueError(f"{backend} is not supported: refapi runs on {DATABASE_FORMS}")
    if driver not in database.drivers:
        forms = [
            f"{name}+{accepted}://" if accepted else f"{name}://"
            for name, accepted in sorted(
                (name, accepted)
                for name, same in DATABASES.items()
                if same.drivername == database.drivername
                for accepted in same.drivers
            )
        ]
        raise ValueError(
            f"{url.drivername}:// is not supported: write {', '.join(forms[:-1])} or "
            f"{forms[-1]} (refapi uses {database.installed})"
        )
    return text


REDIS_FORMS = (
    "redis://[:password@]host:6379/0, rediss://... (TLS) or unix:///path/to/redis.sock; "
    "empty for the in-process cache"
)


def _redis_url(text: str) -> str:
    """A URL redis-py reads (its own parser), or empty. Messages never quote it: a password."""
    text = text.strip()
    if not text:
        return text
    try:
        redis_connection.parse_url(text)
    except ValueError:
        raise ValueError(f"not a Redis URL; expected {REDIS_FORMS}") from None
    parts = urlsplit(text)
    # redis-py ignores a database that is not a number and uses database 0: say so instead.
    database = parts.path.strip("/")
    if parts.scheme != "unix" and database and not re.fullmatch("[0-9]+", database):
        raise ValueError(f"the database after the host must be a number, as in {REDIS_FORMS}")
    return text


def _http_url_or_empty(text: str) -> str:
    text = text.strip()
    if not text:
        return text
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError when the port is not a number
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError(
            "expected an http:// or https:// URL, or empty to import the health index from a "
            "file only (flask --app wsgi indices refresh --file FILE)"
        )
    return text


BIND_FORMS = "host:port (127.0.0.1:5000, 0.0.0.0:5000, [::1]:5000) or unix:/path/to/socket"


def _bind(text: str) -> str:
    """An address gunicorn can listen on, read by gunicorn's own parser.

    gunicorn reads a bare host as port 8000 and an unknown host as one to look up; both only
    fail when a worker binds ("Can't connect to ('nonsense', 8000)"), so the port is required
    and the host must resolve here.
    """
    text = text.strip()
    if text.startswith("unix:"):
        if not bind_address(text):
            raise ValueError(f"unix: needs the socket's path; expected {BIND_FORMS}")
        return text
    if text.startswith("fd://") or not re.fullmatch(r"(\[[^\]]*\]|[^\[\]:/]+):[0-9]+", text):
        raise ValueError(f"expected {BIND_FORMS}, got {text!r}")
    host, port = bind_address(text)
    # 0 is any free port, as gunicorn allows: the master then binds it (gunicorn.conf.py).
    if not 0 <= port < 65536:
        raise ValueError(f"the port must be 0 to 65535, got {text!r}")
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError):
        raise ValueError(f"the host {host!r} is neither an IP address nor a known name") from None
    return text


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "DATABASE_URL",
        "sqlite:///refapi.sqlite3",
        _database_url,
        "SQLAlchemy database URL, SQLite or PostgreSQL. A relative SQLite path is inside the "
        "instance folder. "
        "Production: `postgresql+psycopg://user:password@host:5432/refapi`.",
    ),
    Setting(
        "REDIS_URL",
        "",
        _redis_url,
        "Redis URL for the shared cache (`redis://host:6379/0`). Empty: an in-process "
        "SimpleCache, coherent only with a single worker process.",
    ),
    Setting(
        "API_KEYS",
        "",
        _text,
        "Pre-shared keys as comma-separated `client:secret` pairs. Set this or `API_KEYS_FILE`, "
        "not both.",
    ),
    Setting(
        "API_KEYS_FILE",
        "",
        _text,
        "Path of a file with one `client:secret` per line (a Docker secret such as "
        "`/run/secrets/api_keys`). Blank lines and lines starting with `#` are ignored.",
    ),
    Setting(
        "MAX_CONTENT_LENGTH",
        1024 * 1024,
        _positive_int,
        "Largest request body in bytes; a larger one is answered 413.",
    ),
    Setting(
        "LOG_LEVEL",
        "INFO",
        _log_level,
        "Level of the application log: DEBUG, INFO, WARNING, ERROR or CRITICAL.",
    ),
    Setting(
        "CACHE_DEFAULT_TIMEOUT",
        300,
        _non_negative_int,
        "Seconds a cached read is kept (0: until invalidated). Writes invalidate at once.",
    ),
    Setting(
        "CACHE_THRESHOLD",
        20_000,
        _positive_int,
        "Most entries the in-process SimpleCache holds before it evicts (no effect with Redis).",
    ),
    Setting(
        "NEAR_CACHE_BYTES",
        64 * 1024 * 1024,
        _non_negative_int,
        "With Redis, bytes of cached reads each worker also keeps in memory, coherent with "
        "Redis (every invalidation waits until each worker has dropped the key; 0: none).",
    ),
    Setting(
        "CACHE_KEY_PREFIX",
        "refapi:",
        _text,
        "Prefix of every Redis key refapi writes, so that several deployments can share a Redis.",
    ),
    Setting(
        "REDIS_TIMEOUT",
        0.5,
        _positive_float,
        "Seconds to connect to Redis and to wait for an answer before a read falls back to the "
        "database.",
    ),
    Setting(
        "STORE_MAX_VALUE_BYTES",
        512 * 1024,
        _positive_int,
        "Largest stored value, in bytes of its JSON serialisation; a larger one is answered 413.",
    ),
    Setting(
        "STATBEL_URL",
        "https://statbel.fgov.be/sites/default/files/files/opendata/"
        "Consumptieprijsindex%20en%20gezondheidsindex/CPI%20All%20base%20years.zip",
        _http_url_or_empty,
        "Where the health index is downloaded from: Statbel's ZIP of every base year (http or "
        "https). Empty: never downloaded; import a file with `flask indices refresh --file`.",
    ),
    Setting(
        "STATBEL_TIMEOUT",
        10.0,
        _positive_float,
        "Seconds to connect to Statbel and between bytes of its answer; a whole download "
        "(headers and body included) is given up after ten times that.",
    ),
    Setting(
        "STATBEL_MAX_BYTES",
        20 * 1024 * 1024,
        _positive_int,
        "Largest download accepted from Statbel, in bytes.",
    ),
    Setting(
        "INDEX_MAX_AGE",
        12 * 3600,
        _positive_int,
        "Seconds after which stored index data is refreshed from Statbel on the next request.",
    ),
    Setting(
        "INDEX_REFRESH_BUDGET",
        2.0,
        _positive_float,
        "Seconds a request waits for the first health index download when nothing is stored "
        "yet (then 503); with stored data no request waits, it answers marked `stale`.",
    ),
    Setting(
        "INDEX_RETRY_INTERVAL",
        60,
        _positive_int,
        "Seconds after any attempt to refresh the health index (a failed download, a file "
        "import) before stale data starts another.",
    ),
    Setting(
        "PROXY_X_FOR",
        0,
        _non_negative_int,
        "Trusted proxies that set `X-Forwarded-For` in front of refapi (0: none). One nginx or "
        "Traefik: 1. A wrong number lets clients forge their address.",
    ),
    Setting(
        "PROXY_X_PROTO",
        0,
        _non_negative_int,
        "Trusted proxies that set `X-Forwarded-Proto` (0: none); 1 behind a TLS-terminating proxy.",
    ),
    Setting(
        "PROXY_X_HOST",
        0,
        _non_negative_int,
        "Trusted proxies that set `X-Forwarded-Host` (0: none).",
    ),
    Setting(
        "BIND",
        "0.0.0.0:5000",
        _bind,
        "(gunicorn) Address the server listens on: `host:port` (`[::1]:5000` for IPv6) or "
        "`unix:/path/to/socket`; port 0 takes any free port, which the log's `Listening at` line "
        "names. `make run` uses `127.0.0.1:5000`.",
    ),
    Setting(
        "WORKERS",
        0,
        _non_negative_int,
        "(gunicorn) Worker processes; 0: one per CPU core. Use Redis when more than one.",
    ),
    Setting(
        "WORKER_CLASS",
        "gthread",
        _worker_class,
        "(gunicorn) `gthread`: threads in each worker (`REFAPI_THREADS`), the embedded default. "
        "`gevent`: a greenlet per connection, for PostgreSQL and Redis (`compose.yaml`): about "
        "twice the requests per second of gthread on a small machine (`benchmarks/`). Size "
        "`REFAPI_DATABASE_POOL_SIZE` for it.",
    ),
    Setting(
        "THREADS",
        4,
        _positive_int,
        "(gunicorn) Threads per worker (gthread workers).",
    ),
    Setting(
        "DATABASE_POOL_SIZE",
        5,
        _positive_int,
        "PostgreSQL connections each worker keeps open, for reads and for writes each. With "
        "gevent workers, about the requests one worker has at the database at once (20 in "
        "`compose.yaml`). Keep `workers x 2 x (this + REFAPI_DATABASE_POOL_OVERFLOW)` under "
        "PostgreSQL's `max_connections`.",
    ),
    Setting(
        "DATABASE_POOL_OVERFLOW",
        10,
        _non_negative_int,
        "PostgreSQL connections each pool opens beyond its size for a burst, each closed when "
        "it comes back to a full pool. 0 with gevent workers (`compose.yaml`): a request then "
        "waits for a pooled connection, which is quicker than opening one.",
    ),
    Setting(
        "WORKER_TIMEOUT",
        30,
        _positive_int,
        "(gunicorn) Seconds a worker may go without its heartbeat before the master restarts "
        "it (a hung process). With gthread workers it does not bound a request; with gevent "
        "workers, a request that computes for that long without waiting gets its whole worker "
        "restarted, with every connection on it.",
    ),
    Setting(
        "GRACEFUL_TIMEOUT",
        20,
        _positive_int,
        "(gunicorn) Seconds in-flight requests get to finish after SIGTERM.",
    ),
    Setting(
        "INSTANCE_PATH",
        "",
        _text,
        "Folder for local state (the default SQLite database, the development key). "
        "Empty: `instance/` in the working directory.",
    ),
)

SETTINGS_BY_NAME = {setting.name: setting for setting in SETTINGS}


def defaults() -> dict[str, Any]:
    return {setting.name: setting.default for setting in SETTINGS}


def from_environment(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The settings given as ``REFAPI_*`` environment variables, parsed."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        raw = environ.get(setting.env_var)
        if raw is None:
            continue
        try:
            values[setting.name] = setting.parse(raw)
        except ValueError as error:
            raise ConfigError(f"{setting.env_var}: {error}") from None
    return values


def check(settings: Mapping[str, Any]) -> None:
    """What no single setting tells: settings that must agree, and the instance folder SQLite needs.

    ``create_app`` calls it, and so does gunicorn's master (gunicorn.conf.py), so that a mistake
    stops the server once with this message instead of failing every worker's boot.
    """
    if settings["REDIS_URL"] and not settings["CACHE_KEY_PREFIX"]:
        raise ConfigError(
            "REFAPI_CACHE_KEY_PREFIX must not be empty with Redis: refapi only ever deletes "
            "keys under its prefix."
        )
    _check_sqlite(settings)


# The store writes with INSERT/UPDATE ... RETURNING, which SQLite has from 3.35 on.
MIN_SQLITE_VERSION = (3, 35)


def _check_sqlite(settings: Mapping[str, Any]) -> None:
    """SQLite new enough, and the instance folder a relative database file goes in."""
    try:
        url = make_url(settings["DATABASE_URL"])
    except (ArgumentError, ValueError):
        return  # a URL given to create_app directly: SQLAlchemy's own error follows
    if url.get_backend_name() != "sqlite":
        return
    if sqlite3.sqlite_version_info < MIN_SQLITE_VERSION:
        raise ConfigError(
            f"SQLite {sqlite3.sqlite_version} is too old (3.35 or newer is needed): use a Python "
            "built with a newer SQLite, or PostgreSQL (REFAPI_DATABASE_URL)."
        )
    if url.database in {None, "", ":memory:"}:
        return
    if url.query.get("uri") or url.database.startswith("file:"):
        return  # a URI filename: SQLite's to interpret
    if os.path.isabs(url.database):
        # A missing folder there is a database that does not answer: /ready says so (503).
        return
    # Flask-SQLAlchemy puts a relative SQLite file in the instance folder, and creates that.
    folder = instance_path(settings)
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as error:
        raise ConfigError(
            f"REFAPI_INSTANCE_PATH: cannot create {folder} for the SQLite database "
            f"({error.strerror}): point REFAPI_INSTANCE_PATH at a writable folder, or give "
            "REFAPI_DATABASE_URL an absolute path (sqlite:////path/to/refapi.sqlite3)."
        ) from None


def instance_path(settings: Mapping[str, Any]) -> str:
    """The folder for local state: ``INSTANCE_PATH``, or ``instance/`` in the working directory."""
    return os.path.abspath(settings["INSTANCE_PATH"] or "instance")
