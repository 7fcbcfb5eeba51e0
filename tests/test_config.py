from __future__ import annotations

import importlib.util
import re
import runpy
from pathlib import Path

import click
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from flask import current_app
from flask.cli import FlaskGroup, with_appcontext

from refapi import create_app
from refapi.app import database_url
from refapi.config import DATABASES, SETTINGS, ConfigError, from_environment
from tests.conftest import API_KEYS, command_env, run_flask

README = Path(__file__).resolve().parent.parent / "README.md"
GUNICORN_CONF = README.parent / "gunicorn.conf.py"


def test_environment_values_are_parsed_by_type():
    values = from_environment(
        {"REFAPI_MAX_CONTENT_LENGTH": "2048", "REFAPI_LOG_LEVEL": "debug", "OTHER": "x"}
    )
    assert values == {"MAX_CONTENT_LENGTH": 2048, "LOG_LEVEL": "DEBUG"}


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("REFAPI_MAX_CONTENT_LENGTH", "lots"),
        ("REFAPI_MAX_CONTENT_LENGTH", "0"),
        ("REFAPI_LOG_LEVEL", "LOUD"),
        ("REFAPI_REDIS_TIMEOUT", "-1"),
        ("REFAPI_CACHE_DEFAULT_TIMEOUT", "-5"),
        ("REFAPI_REDIS_TIMEOUT", "inf"),
        ("REFAPI_STATBEL_TIMEOUT", "nan"),
    ],
)
def test_an_invalid_environment_value_refuses_to_start_naming_the_variable(variable, value):
    with pytest.raises(ConfigError, match=variable):
        from_environment({variable: value})


# Each wrong value a new user tried, and what the message must tell them. Before, most of these
# were a traceback from SQLAlchemy, redis-py or int(), or were accepted and failed later.
@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("REFAPI_DATABASE_URL", "nonsense", "SQLite .* or PostgreSQL"),
        ("REFAPI_DATABASE_URL", "postgresql://refapi:pw@db:port/refapi", "not a database URL"),
        ("REFAPI_DATABASE_URL", "mysql://x", "mysql is not supported: refapi runs on SQLite"),
        (
            "REFAPI_DATABASE_URL",
            "postgresql+psycopg2://u@db/refapi",
            r"postgresql\+psycopg2:// is not supported: write postgres://, postgresql:// or "
            r"postgresql\+psycopg:// \(refapi uses psycopg 3\)",
        ),
        (
            "REFAPI_DATABASE_URL",
            "postgres+psycopg://u@db/refapi",
            r"postgres\+psycopg:// is not supported: write postgres://, postgresql:// or",
        ),
        ("REFAPI_DATABASE_URL", "sqlite+aiosqlite:///x", r"write sqlite:// or sqlite\+pysqlite://"),
        ("REFAPI_REDIS_URL", "http://x", r"redis://\[:password@\]host:6379/0"),
        ("REFAPI_REDIS_URL", "redis://cache:port/0", "not a Redis URL"),
        ("REFAPI_REDIS_URL", "redis://cache:6379/zero", "database after the host must be a number"),
        ("REFAPI_REDIS_URL", "redis://cache:6379/²", "database after the host must be a number"),
        (
            "REFAPI_MAX_CONTENT_LENGTH",
            "1MB",
            r"whole number in digits 0-9, without a unit, got '1MB'",
        ),
        ("REFAPI_REDIS_TIMEOUT", "500ms", r"number of seconds such as 0\.5"),
        ("REFAPI_REDIS_TIMEOUT", "0_5", r"number of seconds such as 0\.5"),
        ("REFAPI_STATBEL_TIMEOUT", "\uff11\uff10", r"number of seconds such as 0\.5"),
        ("REFAPI_WORKERS", "abc", "whole number in digits 0-9, without a unit, got 'abc'"),
        ("REFAPI_WORKERS", "\uff12", "whole number in digits 0-9"),
        ("REFAPI_THREADS", "1_0", "whole number in digits 0-9"),
        ("REFAPI_WORKER_CLASS", "eventlet", "expected gthread or gevent, got 'eventlet'"),
        ("REFAPI_DATABASE_POOL_SIZE", "0", "positive whole number"),
        ("REFAPI_BIND", "127.0.0.1:\uff15\uff10\uff10\uff10", "host:port"),
        ("REFAPI_STATBEL_URL", "ftp://x", "http:// or https:// URL, or empty"),
        ("REFAPI_STATBEL_URL", "statbel.fgov.be/file.zip", "http:// or https:// URL"),
        ("REFAPI_BIND", "nonsense", r"host:port \(127\.0\.0\.1:5000"),
        ("REFAPI_BIND", "5000", "host:port"),
        ("REFAPI_BIND", "127.0.0.1:70000", "port must be 0 to 65535"),
        ("REFAPI_BIND", "no-such-host.invalid:5000", "neither an IP address nor a known name"),
        ("REFAPI_BIND", "unix:", "socket's path"),
    ],
)
def test_a_wrong_value_is_refused_with_what_to_write_instead(variable, value, says):
    with pytest.raises(ConfigError, match=rf"^{variable}: ") as refused:
        from_environment({variable: value})
    assert re.search(says, str(refused.value)), str(refused.value)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("REFAPI_DATABASE_URL", "sqlite:///refapi.sqlite3"),
        ("REFAPI_DATABASE_URL", "sqlite://"),
        ("REFAPI_DATABASE_URL", "postgres://u@db/refapi"),
        ("REFAPI_DATABASE_URL", "postgresql+psycopg://u:p@db:5432/refapi?sslmode=require"),
        ("REFAPI_REDIS_URL", ""),
        ("REFAPI_REDIS_URL", "rediss://:p@cache:6380/2"),
        ("REFAPI_REDIS_URL", "unix:///run/redis/redis.sock?db=1"),
        ("REFAPI_STATBEL_URL", ""),
        ("REFAPI_STATBEL_URL", "http://mirror.internal:8080/cpi.zip"),
        ("REFAPI_BIND", "0.0.0.0:5000"),
        ("REFAPI_BIND", "[::1]:5000"),
        ("REFAPI_BIND", "localhost:8080"),
        ("REFAPI_BIND", "unix:/run/refapi/refapi.sock"),
    ],
)
def test_every_documented_form_of_a_url_or_address_is_accepted(variable, value):
    assert from_environment({variable: value}) == {variable.removeprefix("REFAPI_"): value}


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("REFAPI_DATABASE_URL", "postgresql://refapi:hunter2-secret@db:port/refapi"),
        ("REFAPI_DATABASE_URL", "mysql://refapi:hunter2-secret@db/refapi"),
        ("REFAPI_REDIS_URL", "redis://:hunter2-secret@cache:port/0"),
        ("REFAPI_REDIS_URL", "http://:hunter2-secret@cache"),
    ],
)
def test_a_refused_url_is_never_quoted_since_it_may_hold_a_password(variable, value):
    with pytest.raises(ConfigError) as refused:
        from_environment({variable: value})
    assert "hunter2" not in str(refused.value)


def test_the_gunicorn_master_refuses_a_wrong_setting_with_the_message(monkeypatch, tmp_path):
    # The master reads gunicorn.conf.py before any worker boots: a bad URL stops it there, with
    # the message, rather than as "Worker failed to boot" after a traceback in every worker.
    monkeypatch.setenv("REFAPI_API_KEYS", API_KEYS)
    monkeypatch.setenv("REFAPI_DATABASE_URL", "mysql://refapi:hunter2-secret@db/refapi")
    with pytest.raises(SystemExit) as stopped:
        runpy.run_path(str(GUNICORN_CONF))
    assert str(stopped.value).startswith("refapi cannot start: REFAPI_DATABASE_URL: mysql is not")
    assert "hunter2" not in str(stopped.value)


def test_the_gunicorn_master_refuses_an_empty_key_prefix_with_redis(monkeypatch):
    monkeypatch.setenv("REFAPI_API_KEYS", API_KEYS)
    monkeypatch.setenv("REFAPI_REDIS_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("REFAPI_CACHE_KEY_PREFIX", "")
    with pytest.raises(SystemExit, match="REFAPI_CACHE_KEY_PREFIX must not be empty"):
        runpy.run_path(str(GUNICORN_CONF))


def test_an_instance_folder_that_cannot_be_created_refuses_to_start(app_config, tmp_path):
    # A relative SQLite file goes into the instance folder, which Flask-SQLAlchemy would create
    # with a FileNotFoundError traceback.
    blocker = tmp_path / "a-file"
    blocker.write_text("", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"^REFAPI_INSTANCE_PATH: cannot create"):
        create_app(
            {
                **app_config,
                "DATABASE_URL": "sqlite:///refapi.sqlite3",
                "INSTANCE_PATH": str(blocker / "instance"),
            }
        )


def test_the_mapping_overrides_the_environment_which_overrides_defaults(monkeypatch, app_config):
    monkeypatch.setenv("REFAPI_MAX_CONTENT_LENGTH", "4096")
    monkeypatch.setenv("REFAPI_LOG_LEVEL", "WARNING")
    app = create_app({**app_config, "LOG_LEVEL": "ERROR"})
    assert app.config["MAX_CONTENT_LENGTH"] == 4096
    assert app.config["LOG_LEVEL"] == "ERROR"
    assert app.config["CACHE_DEFAULT_TIMEOUT"] == 300


def test_the_environment_configures_the_keys(monkeypatch, tmp_path):
    monkeypatch.setenv("REFAPI_API_KEYS", API_KEYS)
    monkeypatch.setenv("REFAPI_DATABASE_URL", f"sqlite:///{tmp_path}/env.sqlite3")
    monkeypatch.setenv("REFAPI_INSTANCE_PATH", str(tmp_path / "instance"))
    app = create_app()
    assert app.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path}/env.sqlite3"
    assert app.instance_path == str(tmp_path / "instance")


def test_no_redis_url_means_an_in_process_cache(app_config):
    app = create_app({**app_config, "REDIS_URL": ""})
    assert app.config["CACHE_TYPE"] == "refapi.caching.LocalCache"
    assert app.config["CACHE_THRESHOLD"] == 20_000


def test_a_redis_url_means_redis_with_connect_and_socket_timeouts(app_config):
    app = create_app({**app_config, "REDIS_URL": "redis://127.0.0.1:6379/3", "REDIS_TIMEOUT": 0.25})
    assert app.config["CACHE_TYPE"] == "refapi.caching.ResilientRedisCache"
    assert app.config["CACHE_REDIS_URL"] == "redis://127.0.0.1:6379/3"
    assert app.config["CACHE_OPTIONS"] == {
        "socket_connect_timeout": 0.25,
        "socket_timeout": 0.25,
    }


@pytest.mark.parametrize(
    ("given", "used"),
    [
        ("postgresql://u:p@db:5432/refapi", "postgresql+psycopg://u:p@db:5432/refapi"),
        ("postgres://u@db/refapi", "postgresql+psycopg://u@db/refapi"),
        ("postgresql+psycopg://u@db/refapi", "postgresql+psycopg://u@db/refapi"),
        ("sqlite:///refapi.sqlite3", "sqlite:///refapi.sqlite3"),
    ],
)
def test_postgresql_urls_use_the_installed_driver(given, used):
    assert database_url(given) == used


@pytest.mark.parametrize(
    ("scheme", "driver"),
    [(scheme, driver) for scheme, database in DATABASES.items() for driver in database.drivers],
)
def test_every_database_url_the_configuration_accepts_connects_with_an_installed_driver(
    scheme, driver
):
    # One table says both which drivers a URL may name and which one refapi connects with: a
    # URL accepted at start-up never fails later for want of a driver.
    given = f"{scheme}{'+' if driver else ''}{driver}://u@db/refapi"
    if scheme == "sqlite":
        given = f"{scheme}{'+' if driver else ''}{driver}:///refapi.sqlite3"
    assert from_environment({"REFAPI_DATABASE_URL": given}) == {"DATABASE_URL": given}
    engine = sa.create_engine(database_url(given))
    try:
        assert f"{engine.dialect.name}+{engine.dialect.driver}" in {
            "sqlite+pysqlite",
            "postgresql+psycopg",
        }
    finally:
        engine.dispose()


def test_the_readme_documents_every_setting_with_its_default():
    readme = README.read_text(encoding="utf-8")
    rows = {
        match.group(1): match.group(2)
        for match in re.finditer(r"^\| `(REFAPI_[A-Z_]+)` \| (.*?) \|", readme, re.MULTILINE)
    }
    for setting in SETTINGS:
        assert setting.env_var in rows, f"{setting.env_var} is missing from the README table"
        shown = f"`{setting.default}`" if setting.default != "" else "(empty)"
        assert shown in rows[setting.env_var], f"{setting.env_var}: README default is not {shown}"
    assert set(rows) == {setting.env_var for setting in SETTINGS}, "README lists unknown settings"


def test_an_sqlite_too_old_for_returning_refuses_to_start(app_config, monkeypatch):
    monkeypatch.setattr("refapi.config.sqlite3.sqlite_version_info", (3, 31, 1))
    with pytest.raises(ConfigError, match=r"3\.35 or newer"):
        create_app({**app_config, "DATABASE_URL": "sqlite:///refapi.sqlite3"})
    with pytest.raises(ConfigError, match=r"3\.35 or newer"):
        create_app({**app_config, "DATABASE_URL": "sqlite://"})


def test_an_sqlite_too_old_stops_gunicorns_master_before_any_worker(monkeypatch, tmp_path):
    # Found by a worker, it would fail each worker's boot over and over instead.
    monkeypatch.setattr("refapi.config.sqlite3.sqlite_version_info", (3, 31, 1))
    monkeypatch.setenv("REFAPI_API_KEYS", API_KEYS)
    monkeypatch.setenv("REFAPI_INSTANCE_PATH", str(tmp_path))
    with pytest.raises(SystemExit, match=r"refapi cannot start: SQLite .*3\.35 or newer"):
        runpy.run_path(str(GUNICORN_CONF))


def test_the_app_still_tells_coroutine_functions_from_plain_ones(app_config):
    # create_app's Flask remembers, per function, whether it is a coroutine function.
    app = create_app(app_config)

    def plain():
        return "plain"

    async def coroutine():
        return "coroutine"

    class View:
        def get(self):
            return "bound"

    assert app.ensure_sync(plain) is plain
    assert app.ensure_sync(plain) is plain
    method = View().get
    assert app.ensure_sync(method) is method
    # Recognised every time: wrapped to run to completion, or refused where Flask's "async"
    # extra (asgiref) is not installed; never handed back to be called as a plain function.
    has_async_extra = importlib.util.find_spec("asgiref") is not None
    for _ in range(2):
        if has_async_extra:
            wrapped = app.ensure_sync(coroutine)
            assert wrapped is not coroutine
            assert wrapped() == "coroutine"
        else:
            with pytest.raises(RuntimeError, match="async"):
                app.ensure_sync(coroutine)


# API keys protect the HTTP routes. A flask command (an import, a migration) serves none and its
# user has the shell already: it starts without keys. Anything that serves HTTP still refuses.


def _no_keys(app_config):
    return {**app_config, "API_KEYS": "", "API_KEYS_FILE": ""}


def _flask_cli(app_config):
    return FlaskGroup(create_app=lambda: create_app(_no_keys(app_config)))


def test_a_flask_command_runs_without_an_api_key(app_config):
    result = CliRunner().invoke(_flask_cli(app_config), ["routes"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "/authorize" in result.output


def test_an_app_loaded_for_a_command_without_keys_refuses_every_protected_request(app_config):
    loaded = []

    @click.command("probe")
    @with_appcontext
    def probe():
        loaded.append(current_app._get_current_object())

    cli = _flask_cli(app_config)
    cli.add_command(probe)
    assert CliRunner().invoke(cli, ["probe"], catch_exceptions=False).exit_code == 0
    client = loaded[0].test_client()
    assert client.get("/authorize").status_code == 401
    assert client.get("/authorize", headers={"X-API-Key": ""}).status_code == 401
    assert client.get("/ping").status_code == 200


def test_flask_run_without_an_api_key_refuses_to_start(app_config, monkeypatch):
    def serve(*args, **kwargs):
        pytest.fail("flask run served without an API key")

    monkeypatch.setattr("werkzeug.serving.run_simple", serve)
    result = CliRunner().invoke(_flask_cli(app_config), ["run"])
    assert result.exit_code != 0
    assert isinstance(result.exception, ConfigError)
    assert "No API key is configured" in str(result.exception)


def test_create_app_without_an_api_key_refuses_to_start(app_config):
    # gunicorn's workers and any other WSGI server build the app this way.
    with pytest.raises(ConfigError, match="No API key is configured"):
        create_app(_no_keys(app_config))


def test_the_gunicorn_master_refuses_to_start_without_an_api_key(monkeypatch):
    monkeypatch.delenv("REFAPI_API_KEYS", raising=False)
    monkeypatch.delenv("REFAPI_API_KEYS_FILE", raising=False)
    with pytest.raises(SystemExit, match="refapi cannot start: No API key is configured"):
        runpy.run_path(str(GUNICORN_CONF))


def test_a_flask_command_still_refuses_keys_that_are_wrong(app_config):
    cli = FlaskGroup(create_app=lambda: create_app({**_no_keys(app_config), "API_KEYS": "x:short"}))
    result = CliRunner().invoke(cli, ["routes"])
    assert isinstance(result.exception, ConfigError)
    assert "short" not in str(result.exception)


def test_flask_commands_of_wsgi_need_no_key_in_the_environment(tmp_path):
    # What a new user runs after `make run`, which had set the key file for gunicorn only.
    result = run_flask("db", "upgrade", env=command_env(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "cannot start" not in result.stderr
