"""A transaction PostgreSQL rolls back as colliding with another: 503 TRANSACTION_CONFLICT."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from flask.views import MethodView
from psycopg import errors as pg_errors

from refapi.api import Blueprint
from refapi.errors import database_unavailable, transaction_conflict
from refapi.extensions import api
from tests.test_database_outage import assert_database_503

# A row lock or an advisory lock the test holds: how long a request may wait on it.
LOCK_WAIT_SECONDS = 20


def assert_transaction_conflict(response):
    body = assert_database_503(response, "TRANSACTION_CONFLICT", "1")
    assert "nothing was changed" in body["detail"]
    return body


def _wrapped(cause, kind=sa.exc.OperationalError):
    return kind("UPDATE store_entries SET value = %(value)s", {"value": "x"}, cause)


@pytest.mark.parametrize(
    ("error", "conflict"),
    [
        (_wrapped(pg_errors.SerializationFailure()), True),
        (_wrapped(pg_errors.DeadlockDetected()), True),
        (_wrapped(pg_errors.TransactionIntegrityConstraintViolation()), False),  # 40002
        (_wrapped(pg_errors.LockNotAvailable()), False),  # unavailable: a 503 of its own
        (_wrapped(pg_errors.UniqueViolation(), sa.exc.IntegrityError), False),
        (sa.exc.TimeoutError("QueuePool limit of size 5 overflow 10 reached"), False),
    ],
)
def test_which_database_errors_are_transaction_conflicts(error, conflict):
    assert transaction_conflict(error) is conflict
    if conflict:
        assert not database_unavailable(error)  # one answer for each error


@pytest.mark.parametrize("cause", [pg_errors.SerializationFailure, pg_errors.DeadlockDetected])
def test_a_conflict_is_503_that_reveals_neither_statement_nor_values(
    make_app, auth_headers, caplog, cause
):
    app = make_app()
    app.config["PROPAGATE_EXCEPTIONS"] = False  # as in production
    secret = f"precious-{uuid.uuid4().hex}"
    # As PostgreSQL words a deadlock: its DETAIL quotes the other session's statement.
    message = "\n".join(
        [
            "deadlock detected",
            "DETAIL:  Process 1 waits for ShareLock on transaction 2; blocked by process 3.",
            f"Process 3: UPDATE store_entries SET value = '{secret}'",  # noqa: S608 - never run
        ]
    )
    blp = Blueprint(f"conflict_for_tests_{cause.__name__}", __name__)

    @blp.route("/conflict-for-tests")
    class Conflict(MethodView):
        def post(self):
            raise sa.exc.OperationalError(
                "UPDATE store_entries SET value = %(value)s", {"value": secret}, cause(message)
            )

    api.register_blueprint(blp)
    caplog.set_level(logging.WARNING)
    response = app.test_client().post("/conflict-for-tests", headers=auth_headers)
    assert_transaction_conflict(response)
    assert secret not in response.get_data(as_text=True)
    assert "store_entries" not in response.get_data(as_text=True)
    logged = [record for record in caplog.records if record.name == "refapi.errors"]
    assert [record.getMessage() for record in logged] == [
        f"database transaction conflict: {cause.__name__}: deadlock detected"
    ]
    assert logged[0].exc_info is None
    assert secret not in caplog.text


# On PostgreSQL, for real: the test's own connection makes a request's transaction collide.


def _with_options(url: str, *options: str) -> str:
    parsed = sa.make_url(url)
    given = parsed.query.get("options", "")
    return parsed.update_query_dict(
        {"options": " ".join([given, *options]).strip()}
    ).render_as_string(hide_password=False)


@pytest.fixture
def other_session(postgres_url: str) -> Iterator[sa.Connection]:
    """A connection of the test's own, in the test's schema."""
    engine = sa.create_engine(postgres_url)
    with engine.connect() as connection:
        yield connection
    engine.dispose()


def _in_background(request: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    answers: list[Any] = []
    thread = threading.Thread(target=lambda: answers.append(request()), daemon=True)
    thread.start()
    return thread, answers


def _wait_until_it_waits_for(connection: sa.Connection, thread: threading.Thread) -> None:
    """Until another session waits for a lock this connection holds."""
    waiting = sa.text(
        "SELECT count(*) FROM pg_stat_activity WHERE pg_backend_pid() = ANY(pg_blocking_pids(pid))"
    )
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    while not connection.execute(waiting).scalar():
        assert thread.is_alive(), "the request ended without waiting for the test's lock"
        assert time.monotonic() < deadline, "the request never waited for the test's lock"
        time.sleep(0.01)


@pytest.mark.services
def test_a_serialization_failure_on_postgresql_is_503_and_the_retry_succeeds(
    make_app, postgres_url, other_session, auth_headers
):
    # Serializable transactions, as a database whose default an operator has set so.
    url = _with_options(postgres_url, "-cdefault_transaction_isolation=serializable")
    client = make_app(DATABASE_URL=url).test_client()
    assert (
        client.post("/save", json={"key": "k", "value": 1}, headers=auth_headers).status_code == 201
    )

    def save():
        return client.post("/save", json={"key": "k", "value": 3}, headers=auth_headers)

    with other_session.begin():
        other_session.execute(sa.text("UPDATE store_entries SET value = '2', version = 2"))
        thread, answers = _in_background(save)
        _wait_until_it_waits_for(other_session, thread)
    # The other transaction committed an update of the row the request's snapshot predates.
    thread.join(LOCK_WAIT_SECONDS)
    assert_transaction_conflict(answers[0])
    entry = client.get("/get/k", headers=auth_headers).get_json()
    assert (entry["value"], entry["version"]) == (2, 2)  # the other's, not the request's
    retried = save()
    assert retried.status_code == 200
    assert (retried.get_json()["value"], retried.get_json()["version"]) == (3, 3)


@pytest.mark.services
def test_a_deadlock_on_postgresql_is_503_and_the_retry_succeeds(
    make_app, postgres_url, other_session, auth_headers
):
    client = make_app().test_client()
    assert (
        client.post("/save", json={"key": "k", "value": 1}, headers=auth_headers).status_code == 201
    )
    # An update of an entry then waits for an advisory lock, which the test holds (advisory
    # locks are the database's: a key of this test's own).
    lock = uuid.uuid4().int >> 65
    other_session.execute(
        sa.text(
            "CREATE FUNCTION wait_for_the_test() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN PERFORM pg_advisory_xact_lock({lock}); RETURN NEW; END $$"
        )
    )
    other_session.execute(
        sa.text(
            "CREATE TRIGGER wait_for_the_test BEFORE UPDATE ON store_entries "
            "FOR EACH ROW EXECUTE FUNCTION wait_for_the_test()"
        )
    )
    other_session.commit()

    def save():
        return client.post("/save", json={"key": "k", "value": 2}, headers=auth_headers)

    with other_session.begin():
        other_session.execute(sa.text(f"SELECT pg_advisory_xact_lock({lock})"))
        thread, answers = _in_background(save)
        # The request holds the entry's row lock and waits for the advisory lock...
        _wait_until_it_waits_for(other_session, thread)
        # ...and the test waits for the row: a deadlock, which the request's session, waiting
        # for longer, detects first (after deadlock_timeout, 1 s) and ends by rolling back.
        other_session.execute(sa.text("UPDATE store_entries SET version = version"))
    thread.join(LOCK_WAIT_SECONDS)
    assert_transaction_conflict(answers[0])
    entry = client.get("/get/k", headers=auth_headers).get_json()
    assert (entry["value"], entry["version"]) == (1, 1)
    retried = save()
    assert retried.status_code == 200
    assert (retried.get_json()["value"], retried.get_json()["version"]) == (2, 2)
