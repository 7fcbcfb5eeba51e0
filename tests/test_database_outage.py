"""A database that cannot be reached is a 503 the client may retry, not a 500; bugs stay 500."""

from __future__ import annotations

import logging
import sqlite3
import uuid

import psycopg
import pytest
import sqlalchemy as sa
from flask.views import MethodView
from psycopg import errors as pg_errors

from refapi import app as app_module
from refapi import create_app
from refapi.api import Blueprint
from refapi.errors import database_unavailable, problem_type
from refapi.extensions import api, db
from tests.e2e.conftest import free_port
from tests.tcp_proxy import TcpProxy

PASSWORD = "db-password-hunter2"
REQUESTS = [
    ("GET", "/get/k", None),
    ("GET", "/zipcodes/1234", None),
    ("POST", "/save", {"key": "k", "value": 1}),
]


def assert_database_503(response, code, retry_after):
    """A 503 the client may retry: the problem format, its code and Retry-After."""
    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["code"] == code
    assert body["type"] == problem_type(code)
    assert body["request_id"] == response.headers["X-Request-ID"]
    assert response.headers["Retry-After"] == retry_after
    return body


def assert_database_unavailable(response):
    return assert_database_503(response, "DATABASE_UNAVAILABLE", "5")


def outage_logs(caplog):
    return [record for record in caplog.records if record.name == "refapi.errors"]


@pytest.fixture
def unreachable_app(app_config):
    # Nothing listens on that port: every connection is refused at once.
    url = f"postgresql+psycopg://refapi:{PASSWORD}@127.0.0.1:{free_port()}/refapi"
    app = create_app({**app_config, "DATABASE_URL": url})
    yield app
    with app.app_context():
        for engine in db.engines.values():
            engine.dispose()


@pytest.mark.parametrize(("method", "path", "body"), REQUESTS)
def test_an_unreachable_database_is_503_with_retry_after_and_one_warning_without_the_password(
    unreachable_app, auth_headers, caplog, method, path, body
):
    caplog.set_level(logging.WARNING)
    response = unreachable_app.test_client().open(
        path, method=method, json=body, headers=auth_headers
    )
    assert_database_unavailable(response)
    assert PASSWORD not in response.get_data(as_text=True)
    assert "127.0.0.1" not in response.get_data(as_text=True)
    logged = outage_logs(caplog)
    assert len(logged) == 1
    assert logged[0].levelno == logging.WARNING
    # One line with the driver's reason, for the operator; no traceback, no secret.
    assert "Connection refused" in logged[0].getMessage()
    assert logged[0].exc_info is None
    assert PASSWORD not in caplog.text


def test_ready_still_says_not_ready_when_the_database_is_unreachable(unreachable_app):
    response = unreachable_app.test_client().get("/ready")
    assert response.status_code == 503
    assert response.get_json()["code"] == "NOT_READY"


@pytest.fixture
def postgres_proxy(postgres_url):
    url = sa.make_url(postgres_url)
    proxy = TcpProxy((url.host or "127.0.0.1", url.port or 5432))
    proxy.restore()
    yield proxy, url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    proxy.close()


@pytest.mark.services
def test_postgresql_cut_off_mid_run_is_503_and_its_return_is_served_again(
    make_app, postgres_proxy, auth_headers, caplog
):
    proxy, url = postgres_proxy
    client = make_app(DATABASE_URL=url).test_client()

    def save(key):
        return client.post("/save", json={"key": key, "value": 1}, headers=auth_headers)

    assert save("before").status_code == 201
    # Pooled connections exist now; the cut drops them and refuses new ones.
    proxy.cut()
    caplog.set_level(logging.WARNING)
    assert_database_unavailable(save("during"))
    # A key never read is not in the cache: its read goes to the database.
    assert_database_unavailable(client.get("/get/never-read", headers=auth_headers))
    assert_database_unavailable(client.get("/zipcodes/1234", headers=auth_headers))
    assert len(outage_logs(caplog)) == 3
    proxy.restore()
    assert save("after").status_code == 201
    assert client.get("/get/before", headers=auth_headers).status_code == 200


def test_a_write_to_a_sqlite_database_locked_past_the_busy_timeout_is_503(
    make_app, tmp_path, auth_headers, monkeypatch
):
    # SQLite's busy timeout is 5 s by default: a short one keeps the test fast.
    engine_options = app_module._engine_options
    monkeypatch.setattr(
        app_module,
        "_engine_options",
        lambda url, **kwargs: {**engine_options(url, **kwargs), "connect_args": {"timeout": 0.05}},
    )
    path = tmp_path / "locked.sqlite3"
    client = make_app(DATABASE_URL=f"sqlite:///{path}", REDIS_URL="").test_client()
    other = sqlite3.connect(path, timeout=0)
    try:
        other.execute("BEGIN EXCLUSIVE")
        response = client.post("/save", json={"key": "k", "value": 1}, headers=auth_headers)
    finally:
        other.rollback()
        other.close()
    assert_database_unavailable(response)
    # The lock released, the same write goes through.
    assert (
        client.post("/save", json={"key": "k", "value": 1}, headers=auth_headers).status_code == 201
    )


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT * FROM no_such_table",  # on SQLite, an OperationalError too
        "SELEC 1",
        "INSERT INTO store_entries (client) VALUES (NULL)",  # IntegrityError
    ],
)
def test_a_database_error_that_is_a_bug_stays_a_logged_500(
    make_app, auth_headers, caplog, statement
):
    app = make_app()
    app.config["PROPAGATE_EXCEPTIONS"] = False  # as in production
    blp = Blueprint("bad_sql_for_tests", __name__)

    @blp.route("/bad-sql-for-tests")
    class BadSql(MethodView):
        def get(self):
            db.session.execute(sa.text(statement))

    api.register_blueprint(blp)
    caplog.set_level(logging.ERROR)
    response = app.test_client().get("/bad-sql-for-tests", headers=auth_headers)
    assert response.status_code == 500
    assert response.get_json()["code"] == "INTERNAL_ERROR"
    assert "Retry-After" not in response.headers
    assert [record for record in caplog.records if record.exc_info]


def _wrapped(cause, kind=sa.exc.OperationalError, **kwargs):
    return kind("SELECT 1", {}, cause, **kwargs)


@pytest.mark.parametrize(
    ("error", "unavailable"),
    [
        (_wrapped(psycopg.OperationalError("connection timeout expired")), True),
        (_wrapped(pg_errors.AdminShutdown()), True),
        (_wrapped(pg_errors.CannotConnectNow()), True),
        (_wrapped(pg_errors.TooManyConnections()), True),
        (_wrapped(pg_errors.QueryCanceled()), True),  # statement_timeout
        (_wrapped(pg_errors.LockNotAvailable()), True),  # lock_timeout
        (_wrapped(pg_errors.SerializationFailure()), False),
        (_wrapped(pg_errors.UndefinedTable(), sa.exc.ProgrammingError), False),
        (_wrapped(pg_errors.UniqueViolation(), sa.exc.IntegrityError), False),
        (_wrapped(Exception(), sa.exc.DBAPIError, connection_invalidated=True), True),
        (_wrapped(sqlite3.OperationalError("database is locked")), True),
        (_wrapped(sqlite3.OperationalError("no such table: entries")), False),
        (_wrapped(sqlite3.OperationalError("unable to open database file")), True),
        (_wrapped(sqlite3.OperationalError("database or disk is full")), True),
        (_wrapped(sqlite3.OperationalError("disk I/O error")), True),
        (sa.exc.TimeoutError("QueuePool limit of size 5 overflow 10 reached"), True),
        (sa.exc.NoResultFound(), False),
    ],
)
def test_which_database_errors_mean_the_database_is_unavailable(error, unavailable):
    assert database_unavailable(error) is unavailable


def test_an_sqlite_file_that_cannot_be_opened_is_503(app_config, tmp_path, auth_headers):
    # Its folder is gone (a volume not mounted, say): the database does not answer, as /ready says.
    app = create_app({**app_config, "DATABASE_URL": f"sqlite:///{tmp_path}/gone/refapi.sqlite3"})
    app.config["PROPAGATE_EXCEPTIONS"] = False  # as in production
    client = app.test_client()
    for path in ("/get/k", "/zipcodes/1000"):
        response = client.get(path, headers=auth_headers)
        assert response.status_code == 503, path
        assert response.get_json()["code"] == "DATABASE_UNAVAILABLE"
        assert response.headers["Retry-After"] == "5"
    assert client.get("/ready").status_code == 503


def test_a_500_from_the_database_does_not_log_the_statements_values(make_app, auth_headers, caplog):
    app = make_app()
    app.config["PROPAGATE_EXCEPTIONS"] = False  # as in production
    blp = Blueprint("values_in_sql_for_tests", __name__)
    # Made at run time: the logged traceback quotes this file's source lines.
    value = f"precious-{uuid.uuid4().hex}"

    @blp.route("/values-in-sql-for-tests")
    class ValuesInSql(MethodView):
        def get(self):
            statement = sa.text("INSERT INTO no_such_table (secret) VALUES (:secret)")
            db.session.execute(statement, {"secret": value})

    api.register_blueprint(blp)
    caplog.set_level(logging.ERROR)
    response = app.test_client().get("/values-in-sql-for-tests", headers=auth_headers)
    assert response.status_code == 500
    assert [record for record in caplog.records if record.exc_info]  # the traceback is logged
    assert value not in caplog.text
