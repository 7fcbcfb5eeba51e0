"""Fixtures shared by every test: an app per test, in configuration A or B.

Configuration A (the default): SQLite in the test's own folder, SimpleCache.
Configuration B (``REFAPI_TEST_CONFIG=B``, tox's ``services`` env): PostgreSQL and Redis, from
``REFAPI_TEST_DATABASE_URL`` and ``REFAPI_TEST_REDIS_URL``. Every test gets its own PostgreSQL
schema and its own Redis key prefix, both removed afterwards, so tests are isolated from each
other and the suite can run twice in a row on the same database.

Under ``CI=true`` configuration B must run: unreachable services fail the run loudly.
Elsewhere, the tests that need them skip with one clear reason.
"""

from __future__ import annotations

import logging
import os
import runpy
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import redis
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner

from refapi import create_app
from refapi.extensions import cache, db

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TEST_KEY = "tester-secret-0123456789abcdef"
OTHER_KEY = "other-secret-0123456789abcdef"
API_KEYS = f"tester:{TEST_KEY},other:{OTHER_KEY}"
GUNICORN_CONF = PROJECT_ROOT / "gunicorn.conf.py"


def run_gunicorn_conf(patch: pytest.MonkeyPatch) -> dict[str, Any]:
    """gunicorn.conf.py's settings, as gunicorn reads them (set REFAPI_* with ``patch`` first).

    The file turns off logging's caller lookups for the server's process: ``patch`` gives them
    back to this one (pytest's own log format names the file and line) when it is undone.
    """
    patch.setattr(logging, "_srcfile", logging._srcfile)
    return runpy.run_path(str(GUNICORN_CONF))


DEFAULT_TEST_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
DEFAULT_TEST_REDIS_URL = "redis://127.0.0.1:6379/15"

TEST_DATABASE_URL = os.environ.get("REFAPI_TEST_DATABASE_URL", DEFAULT_TEST_DATABASE_URL)
TEST_REDIS_URL = os.environ.get("REFAPI_TEST_REDIS_URL", DEFAULT_TEST_REDIS_URL)
CONFIGURATION = os.environ.get("REFAPI_TEST_CONFIG", "A").upper()
IN_CI = os.environ.get("CI", "").lower() == "true"


def memoize_version_key(module: str, name: str) -> str:
    """The key of Flask-Caching's memoize version for function ``name`` of ``module``.

    Earlier releases memoized functions that are gone: a stand-in of the same name asks
    Flask-Caching itself what it called their keys.
    """
    from flask_caching import function_namespace

    def stand_in() -> None: ...

    stand_in.__module__, stand_in.__name__, stand_in.__qualname__ = module, name, name
    namespace, _ = function_namespace(stand_in)
    return cache._memvname(namespace)


def command_env(folder: Path, **settings: str) -> dict[str, str]:
    """This process's environment without its REFAPI_* settings, on a SQLite file in ``folder``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("REFAPI_")}
    env.update(
        REFAPI_INSTANCE_PATH=str(folder),
        REFAPI_DATABASE_URL=f"sqlite:///{folder / 'refapi.sqlite3'}",
        **settings,
    )
    return env


def run_flask(*args: str, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """``flask --app wsgi ARGS`` in a process of its own, as an operator runs it."""
    return subprocess.run(
        [str(Path(sys.executable).parent / "flask"), "--app", "wsgi", *args],
        cwd=PROJECT_ROOT,
        env=dict(env),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def pytest_report_header() -> str:
    if CONFIGURATION == "B":
        return f"refapi configuration B: {sa.make_url(TEST_DATABASE_URL)!r} and {TEST_REDIS_URL}"
    return "refapi configuration A: SQLite and SimpleCache"


def _services_problem() -> str | None:
    try:
        engine = sa.create_engine(TEST_DATABASE_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
        engine.dispose()
    except Exception as error:
        return f"PostgreSQL at {sa.make_url(TEST_DATABASE_URL)!r}: {type(error).__name__}: {error}"
    try:
        redis.Redis.from_url(TEST_REDIS_URL, socket_connect_timeout=3).ping()
    except Exception as error:
        return f"Redis at {TEST_REDIS_URL}: {type(error).__name__}: {error}"
    return None


@pytest.fixture(scope="session")
def services() -> dict[str, str]:
    """PostgreSQL and Redis URLs; skips (fails under CI=true) when they do not answer."""
    problem = _services_problem()
    if problem:
        message = (
            f"configuration B needs PostgreSQL and Redis; {problem}. Start them, or point "
            "REFAPI_TEST_DATABASE_URL and REFAPI_TEST_REDIS_URL at running ones."
        )
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return {"database": TEST_DATABASE_URL, "redis": TEST_REDIS_URL}


@pytest.fixture
def postgres_url(services: dict[str, str]) -> Iterator[str]:
    """A PostgreSQL URL whose connections use a fresh schema of their own, dropped afterwards."""
    schema = f"test_{uuid.uuid4().hex}"
    admin = sa.create_engine(services["database"])
    with admin.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = sa.make_url(services["database"]).update_query_dict(
        {"options": f"-csearch_path={schema}"}
    )
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def redis_prefix(services: dict[str, str]) -> Iterator[str]:
    """A Redis key prefix of this test's own; its keys are deleted afterwards."""
    prefix = f"refapi-test-{uuid.uuid4().hex}:"
    yield prefix
    client = redis.Redis.from_url(services["redis"])
    keys = list(client.scan_iter(match=prefix + "*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def services_config(
    services: dict[str, str], postgres_url: str, redis_prefix: str
) -> dict[str, Any]:
    """Configuration B's settings for this test, whatever the suite's configuration: as in
    compose.yaml, gevent workers (the real-server tests run under them)."""
    return {
        "DATABASE_URL": postgres_url,
        "REDIS_URL": services["redis"],
        "CACHE_KEY_PREFIX": redis_prefix,
        "WORKER_CLASS": "gevent",
    }


@pytest.fixture
def backend_config(request: pytest.FixtureRequest, tmp_path: Any) -> dict[str, Any]:
    """The database and cache settings of the suite's configuration (A or B).

    A test marked ``services`` always gets configuration B: it is about PostgreSQL or Redis.
    """
    if CONFIGURATION == "B" or request.node.get_closest_marker("services"):
        return dict(request.getfixturevalue("services_config"))
    return {"DATABASE_URL": f"sqlite:///{tmp_path / 'refapi.sqlite3'}", "REDIS_URL": ""}


@pytest.fixture
def app_config(backend_config: dict[str, Any], tmp_path: Any) -> dict[str, Any]:
    return {
        **backend_config,
        "API_KEYS": API_KEYS,
        "API_KEYS_FILE": "",
        # No test reaches the internet: tests of the index serve Statbel's file themselves.
        "STATBEL_URL": "",
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "TESTING": True,
    }


@pytest.fixture
def make_app(app_config: dict[str, Any]) -> Iterator[Callable[..., Flask]]:
    """Build an app with this test's database and cache, plus the given settings.

    The schema is created on first use; the cache starts empty.
    """
    built: list[Flask] = []

    def build(**overrides: Any) -> Flask:
        app = create_app({**app_config, **overrides})
        with app.app_context():
            # The models' tables, which are all in the default bind (the reads bind of
            # PostgreSQL apps names the same database).
            db.create_all(bind_key=None)
        built.append(app)
        return app

    yield build
    for app in built:
        with app.app_context():
            near = getattr(cache.cache, "near", None)
            if near is not None:
                near.close()
            db.session.remove()
            for engine in db.engines.values():
                engine.dispose()


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    return app.test_cli_runner()


@pytest.fixture
def auth_headers() -> dict[str, str]:
    return {"X-API-Key": TEST_KEY}


@pytest.fixture
def other_auth_headers() -> dict[str, str]:
    return {"X-API-Key": OTHER_KEY}


# The local Statbel that serves the health index file, for every test that needs one.
from tests.indices.conftest import upstream  # noqa: E402, F401
