"""The application factory: it only wires, in named steps."""

from __future__ import annotations

import inspect
import logging
import sqlite3
import sys
import threading
import types
from collections.abc import Callable, Mapping
from typing import IO, Any, cast

import click
import sqlalchemy as sa
from flask import Blueprint, Flask, Request
from flask.cli import ScriptInfo
from gunicorn.http.errors import ParseException
from sqlalchemy.engine import make_url
from swagger_ui_bundle import swagger_ui_path
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.utils import cached_property
from werkzeug.wsgi import LimitedStream

from refapi import auth, config, errors, requestid
from refapi.auth.routes import blp as auth_blp
from refapi.cli import cache_group, deploy
from refapi.extensions import READS_BIND, api, cache, db, migrate
from refapi.health.routes import blp as health_blp
from refapi.indices.routes import blp as indices_blp
from refapi.proxyfix import ProxyFix
from refapi.store.routes import blp as store_blp
from refapi.zipcodes.routes import blp as zipcodes_blp

API_VERSION = "1.0"

BLUEPRINTS = (health_blp, auth_blp, store_blp, zipcodes_blp, indices_blp)


class _ServerEndedBody(LimitedStream):
    """A request body that the server ends itself (chunked), read up to ``max_length`` bytes.

    Werkzeug's stream for it, with two differences. A body longer than ``max_length`` is 413:
    werkzeug's stops reading at exactly the limit without an error, so a longer body was parsed
    cut there (stored, if the cut was valid JSON); this one reads one byte past the limit to
    know. And the server's own error while decoding the body is the client's malformed body,
    400: gunicorn raises its ParseException (InvalidChunkSize...), not the OSError or ValueError
    werkzeug turns into a 400, and that escaped as a 500.
    """

    def __init__(self, stream: IO[bytes], max_length: int) -> None:
        super().__init__(stream, max_length + 1, is_max=True)
        self.max_length = max_length

    def readinto(self, buffer: bytearray) -> int | None:  # type: ignore[override]
        try:
            size = super().readinto(buffer)
        except ParseException as error:
            raise errors.BadRequest(
                "The request body could not be read: its chunked encoding (chunk sizes, "
                "extensions or trailers) is malformed."
            ) from error
        if self.tell() > self.max_length:
            raise RequestEntityTooLarge()
        return size


class _Request(Request):
    @cached_property
    def args(self) -> Any:
        # Werkzeug decodes the query string as UTF-8 and raises on a raw byte that is not (a
        # 500). gunicorn refuses such a request line itself (400); other WSGI servers pass it.
        try:
            return super().args
        except UnicodeDecodeError as error:
            raise errors.BadRequest(
                "The query string is not UTF-8 text; percent-encode UTF-8 (é is %C3%A9)."
            ) from error

    @cached_property
    def stream(self) -> IO[bytes]:
        # Werkzeug's checks first (a Content-Length over the limit is 413 before any read).
        stream = super().stream
        limit = self.max_content_length
        if limit is None or "wsgi.input_terminated" not in self.environ:
            return stream
        return cast(IO[bytes], _ServerEndedBody(self.input_stream, limit))


class _Flask(Flask):
    """Flask, checking whether a hook or view is a coroutine function once rather than per call.

    Flask asks ``ensure_sync`` for every hook, view and teardown function of every request (eight
    times for ``/ping``), and ``inspect.iscoroutinefunction`` was a tenth of the app's own time
    there (issue 8's profile). The answer for a function never changes.

    And its requests read a body the server ends (chunked) as ``_ServerEndedBody`` says.
    """

    request_class = _Request

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._is_coroutine: dict[Callable[..., Any], bool] = {}

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        # A bound method is a new object per call: remember its function, which is not.
        target = getattr(func, "__func__", func)
        if not isinstance(target, types.FunctionType):
            return super().ensure_sync(func)
        is_coroutine = self._is_coroutine.get(target)
        if is_coroutine is None:
            is_coroutine = self._is_coroutine[target] = inspect.iscoroutinefunction(target)
        return self.async_to_sync(func) if is_coroutine else func


def create_app(config_overrides: Mapping[str, Any] | None = None) -> Flask:
    """Build the app from defaults, then ``REFAPI_*`` environment variables, then the mapping.

    Refuses to start (``config.ConfigError``) when a setting is invalid or no API key is set;
    a ``flask`` command other than ``flask run`` starts without keys (see ``_keyring``).
    """
    settings = {**config.defaults(), **config.from_environment(), **(config_overrides or {})}
    config.check(settings)
    app = _Flask("refapi", instance_path=config.instance_path(settings))
    app.config.update(settings)
    # No automatic OPTIONS answers: no browser calls this API (no CORS), and every route's
    # methods are exactly the documented ones; a 405 lists them in Allow.
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = False
    app.config.update(_extension_config(settings))
    _configure_logging(app)
    keyring = _keyring(app.config)
    _init_extensions(app)
    _register_blueprints(app)
    _init_request_ids(app)
    auth.init_app(app, keyring, public_endpoints=_DOCS_ENDPOINTS)
    _trust_proxies(app)
    app.cli.add_command(deploy)
    app.cli.add_command(cache_group)
    return app


def _keyring(settings: Mapping[str, Any]) -> auth.KeyRing:
    """The API keys. None configured refuses to start, but for a command of the flask CLI.

    The keys protect the HTTP routes; ``flask zipcodes import`` or ``flask db upgrade`` serves
    none, and whoever runs it has the shell already. Keys that are configured are still checked,
    and ``flask run`` serves HTTP, so it needs them. Without keys every protected route answers
    401 (an empty key ring matches nothing), should such an app ever serve a request.
    """
    if not (settings["API_KEYS"] or settings["API_KEYS_FILE"]) and _loaded_for_a_flask_command():
        return auth.KeyRing(())
    return auth.load_keyring(settings)


def _loaded_for_a_flask_command() -> bool:
    """Whether the flask CLI is loading the app for a command, other than ``flask run``."""
    context = click.get_current_context(silent=True)
    if context is None or context.find_object(ScriptInfo) is None:
        return False  # gunicorn, another WSGI server, or a caller of create_app
    return context.command.name != "run"


_DOCS_ENDPOINTS = frozenset(
    {"api-docs.openapi_json", "api-docs.openapi_swagger_ui", "swagger_ui_assets.static"}
)


def database_url(url: str) -> str:
    """The SQLAlchemy URL, with a URL that names no driver pointed at the installed one
    (``config.DATABASES``: psycopg 3 for PostgreSQL)."""
    parsed = make_url(url)
    backend, _, driver = parsed.drivername.partition("+")
    database = config.DATABASES.get(backend)
    if database is not None and not driver:
        parsed = parsed.set(drivername=database.drivername)
    return parsed.render_as_string(hide_password=False)


def _extension_config(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The Flask and extension settings derived from refapi's own."""
    url = database_url(settings["DATABASE_URL"])
    pool = (settings["DATABASE_POOL_SIZE"], settings["DATABASE_POOL_OVERFLOW"])
    derived: dict[str, Any] = {
        "SQLALCHEMY_DATABASE_URI": url,
        "SQLALCHEMY_ENGINE_OPTIONS": _engine_options(url, pool=pool),
        "SQLALCHEMY_BINDS": _read_binds(url, pool=pool),
        "CACHE_DEFAULT_TIMEOUT": settings["CACHE_DEFAULT_TIMEOUT"],
        "API_TITLE": "refapi",
        "API_VERSION": API_VERSION,
        "OPENAPI_VERSION": "3.0.3",
        "OPENAPI_URL_PREFIX": "/",
        "OPENAPI_JSON_PATH": "openapi.json",
        "OPENAPI_SWAGGER_UI_PATH": "docs",
        "OPENAPI_SWAGGER_UI_URL": "/docs/assets/",
        # No validator badge: it would call a public server, and the page must work offline.
        "OPENAPI_SWAGGER_UI_CONFIG": {"validatorUrl": None, "persistAuthorization": True},
        "API_SPEC_OPTIONS": {
            "info": {
                "description": (
                    "Reference data for Belgian insurance and property back offices "
                    "(zipcode risk factors, the health index) and a small keyed JSON store. "
                    "Every operation but the health checks and these docs needs the client's "
                    "pre-shared key, as `X-API-Key: <key>` or `Authorization: Bearer <key>`. "
                    "Errors are RFC 9457 problem details (`application/problem+json`)."
                )
            },
            "security": [{auth.API_KEY_SCHEME: []}, {auth.BEARER_SCHEME: []}],
        },
    }
    if settings["REDIS_URL"]:
        timeout = settings["REDIS_TIMEOUT"]
        derived.update(
            CACHE_TYPE="refapi.caching.ResilientRedisCache",
            CACHE_REDIS_URL=settings["REDIS_URL"],
            CACHE_KEY_PREFIX=settings["CACHE_KEY_PREFIX"],
            CACHE_OPTIONS={"socket_connect_timeout": timeout, "socket_timeout": timeout},
            CACHE_NEAR_BYTES=settings["NEAR_CACHE_BYTES"],
        )
    else:
        derived.update(
            CACHE_TYPE="refapi.caching.LocalCache", CACHE_THRESHOLD=settings["CACHE_THRESHOLD"]
        )
    return derived


# Seconds to wait for PostgreSQL to accept a connection: a database that does not answer must
# fail a request (and /ready) quickly, not hold a worker thread for the TCP timeout.
DATABASE_CONNECT_TIMEOUT = 5


def _engine_options(url: str, *, pool: tuple[int, int]) -> dict[str, Any]:
    # A statement's parameters are stored values: SQLAlchemy leaves them out of its errors' text,
    # so that a 500's logged traceback does not hold a client's data.
    options: dict[str, Any] = {"hide_parameters": True}
    if url.startswith("postgresql"):
        # Sessions in UTC, whatever the server's or the role's time zone: psycopg gives times
        # in the session's zone, and a time stored near the year 9999 (or 1) in UTC is past
        # what Python can hold in another (a 500 on every read of it). Added to the URL's own
        # options (a search_path, say), which connect_args would otherwise replace.
        given = make_url(url).query.get("options", "")
        given = " ".join(given) if isinstance(given, tuple) else given
        options.update(
            pool_size=pool[0],
            max_overflow=pool[1],
            pool_pre_ping=True,
            connect_args={
                "connect_timeout": DATABASE_CONNECT_TIMEOUT,
                "options": f"{given} -c timezone=UTC".strip(),
            },
        )
    return options


def _read_binds(url: str, *, pool: tuple[int, int]) -> dict[str, Any]:
    """On PostgreSQL, a pool of its own for the reads that fill the cache (``READS_BIND``).

    Autocommit, so a read is one round trip with no BEGIN and ROLLBACK around it, and without
    the pre-ping, which doubled that: ``refapi.extensions.read_rows`` instead runs a read again
    on a fresh connection when the database had dropped the one it got. Writes keep the default
    engine, pre-ping included: a write is not retried. On SQLite the reads use the default.
    """
    if not url.startswith("postgresql"):
        return {}
    default = _engine_options(url, pool=pool)
    return {
        READS_BIND: {
            **default,
            "url": url,
            "pool_pre_ping": False,
            "isolation_level": "AUTOCOMMIT",
            "connect_args": {**default["connect_args"], "application_name": "refapi reads"},
        }
    }


def _write_ahead_log(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
    """SQLite in write-ahead-log mode, on every connection of ours.

    A commit then syncs one file once, where the default rollback journal syncs the journal and
    the database each time (issue 8: the write ahead log took a save from 2.9 to 1.8 ms of CPU),
    and readers and the writer no longer wait for each other. ``synchronous`` is FULL, so a
    commit is on disk before the API answers (some SQLite builds default to NORMAL in this
    mode). The mode is kept in the database file; an in-memory database keeps its own, and a
    filesystem without the shared memory the log needs keeps the rollback journal: said once.
    """
    (mode,) = dbapi_connection.execute("PRAGMA journal_mode=WAL").fetchone()
    dbapi_connection.execute("PRAGMA synchronous=FULL")
    if mode not in ("wal", "memory") and not _WAL_REFUSED.is_set():
        _WAL_REFUSED.set()
        logging.getLogger("refapi").warning(
            "SQLite kept its %s journal instead of the write-ahead log: writes are slower, and "
            "reads wait for them",
            mode,
        )


_WAL_REFUSED = threading.Event()


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = requestid.current() or "-"
        return True


def _configure_logging(app: Flask) -> None:
    logger = logging.getLogger("refapi")
    logger.setLevel(app.config["LOG_LEVEL"])
    if not any(getattr(handler, "is_refapi", False) for handler in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.is_refapi = True  # type: ignore[attr-defined]
        handler.addFilter(_RequestIdFilter())
        handler.setFormatter(
            logging.Formatter(
                "%(asctime)s %(levelname)s [%(process)d] [%(request_id)s] %(name)s: %(message)s"
            )
        )
        logger.addHandler(handler)


def _init_extensions(app: Flask) -> None:
    db.init_app(app)
    with app.app_context():
        for engine in db.engines.values():
            if engine.dialect.name == "sqlite":
                sa.event.listen(engine, "connect", _write_ahead_log)
    # Alembic's scripts are the top-level migrations/ folder: commands run from the project root.
    migrate.init_app(app, db, compare_type=True, render_as_batch=True)
    cache.init_app(app)
    api.init_app(app)


def _register_blueprints(app: Flask) -> None:
    for blueprint in BLUEPRINTS:
        api.register_blueprint(blueprint)
    # Swagger UI's assets, served by the app itself so /docs works without a network.
    app.register_blueprint(
        Blueprint(
            "swagger_ui_assets",
            __name__,
            static_folder=str(swagger_ui_path),
            static_url_path="/docs/assets",
        )
    )


def _trust_proxies(app: Flask) -> None:
    """Behind a reverse proxy, take the client's address, scheme and host from its headers."""
    hops = {
        "x_for": app.config["PROXY_X_FOR"],
        "x_proto": app.config["PROXY_X_PROTO"],
        "x_host": app.config["PROXY_X_HOST"],
    }
    if any(hops.values()):
        app.wsgi_app = ProxyFix(app.wsgi_app, **hops)  # type: ignore[method-assign]


def _init_request_ids(app: Flask) -> None:
    """Every answer carries ``X-Request-ID`` (see refapi.requestid), a 401 and an error too."""
    app.wsgi_app = requestid.RequestIds(app.wsgi_app)  # type: ignore[method-assign]
