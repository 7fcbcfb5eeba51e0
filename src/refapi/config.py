"""Every setting refapi reads, with its default and meaning.

Each setting is read from the environment variable ``REFAPI_<NAME>``; ``create_app`` applies,
in order, these defaults, the environment, then the mapping it was given. The README's
configuration table is checked against ``SETTINGS`` by a test, so the two never drift.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

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


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise ValueError(f"expected a positive integer, got {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError(f"expected zero or a positive integer, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise ValueError(f"expected a positive number, got {text!r}")
    return value


def _log_level(text: str) -> str:
    level = text.strip().upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise ValueError(f"expected DEBUG, INFO, WARNING, ERROR or CRITICAL, got {text!r}")
    return level


def _text(text: str) -> str:
    return text.strip()


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "DATABASE_URL",
        "sqlite:///refapi.sqlite3",
        _text,
        "SQLAlchemy database URL. A relative SQLite path is inside the instance folder. "
        "Production: `postgresql+psycopg://user:password@host:5432/refapi`.",
    ),
    Setting(
        "REDIS_URL",
        "",
        _text,
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
        _text,
        "Where the health index is downloaded from: Statbel's ZIP of every base year.",
    ),
    Setting(
        "STATBEL_TIMEOUT",
        10.0,
        _positive_float,
        "Seconds to connect to Statbel and between bytes of its answer.",
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
        "Seconds between attempts to refresh stale health index data after one has failed.",
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
        _text,
        "(gunicorn) Address and port the server listens on.",
    ),
    Setting(
        "WORKERS",
        0,
        _non_negative_int,
        "(gunicorn) Worker processes; 0: one per CPU core. Use Redis when more than one.",
    ),
    Setting(
        "THREADS",
        4,
        _positive_int,
        "(gunicorn) Threads per worker (gthread workers).",
    ),
    Setting(
        "WORKER_TIMEOUT",
        30,
        _positive_int,
        "(gunicorn) Seconds a request may run before its worker is restarted; above "
        "STATBEL_TIMEOUT.",
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
