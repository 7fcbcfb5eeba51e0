from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from refapi import create_app
from refapi.app import database_url
from refapi.config import SETTINGS, ConfigError, from_environment
from tests.conftest import API_KEYS

README = Path(__file__).resolve().parent.parent / "README.md"


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
    ],
)
def test_an_invalid_environment_value_refuses_to_start_naming_the_variable(variable, value):
    with pytest.raises(ConfigError, match=variable):
        from_environment({variable: value})


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
    monkeypatch.setattr("refapi.app.sqlite3.sqlite_version_info", (3, 31, 1))
    with pytest.raises(ConfigError, match=r"3\.35 or newer"):
        create_app({**app_config, "DATABASE_URL": "sqlite:///refapi.sqlite3"})


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
