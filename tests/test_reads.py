"""Cache-filling reads run outside a transaction on PostgreSQL, and leave writes transactional."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from psycopg.pq import TransactionStatus

from refapi.extensions import db, read_connection, read_outside_a_transaction
from refapi.store.models import Entry


def _status():
    return db.session.connection().connection.dbapi_connection.info.transaction_status


def _entries():
    return db.session.scalar(sa.select(sa.func.count()).select_from(Entry))


@pytest.mark.services
def test_a_read_runs_without_a_transaction_and_a_write_after_it_keeps_one(
    make_app, services_config
):
    app = make_app(**services_config)
    with app.app_context():
        with read_outside_a_transaction():
            assert _entries() == 0
            # No BEGIN went to the server, so no ROLLBACK has to follow.
            assert _status() == TransactionStatus.IDLE
        # The write after it is a transaction again: all of it, or nothing.
        db.session.add(Entry(client="c", key="k", value=1, version=1))
        db.session.flush()
        assert _status() == TransactionStatus.INTRANS
        db.session.rollback()
        assert _entries() == 0


@pytest.mark.services
def test_inside_a_transaction_the_read_joins_it(make_app, services_config):
    app = make_app(**services_config)
    with app.app_context():
        db.session.add(Entry(client="c", key="k", value=1, version=1))
        db.session.flush()
        with read_outside_a_transaction():
            assert _entries() == 1  # sees the transaction's own uncommitted row
        assert _status() == TransactionStatus.INTRANS
        db.session.rollback()
        assert _entries() == 0


def _count(connection: sa.Connection) -> int:
    return connection.execute(sa.select(sa.func.count()).select_from(Entry)).scalar_one()


@pytest.mark.services
def test_a_core_read_runs_without_a_transaction_and_a_write_after_it_keeps_one(
    make_app, services_config
):
    app = make_app(**services_config)
    with app.app_context():
        with read_connection() as connection:
            assert _count(connection) == 0
            assert connection.connection.dbapi_connection.info.transaction_status == (
                TransactionStatus.IDLE
            )
        db.session.add(Entry(client="c", key="k", value=1, version=1))
        db.session.flush()
        assert _status() == TransactionStatus.INTRANS
        db.session.rollback()
        assert _entries() == 0


def test_inside_the_sessions_transaction_a_core_read_joins_it(app):
    # On both databases: a connection of its own would not see the uncommitted row (and on
    # SQLite could wait for the session's lock).
    with app.app_context():
        db.session.add(Entry(client="c", key="k", value=1, version=1))
        db.session.flush()
        with read_connection() as connection:
            assert _count(connection) == 1
        assert db.session().in_transaction()
        db.session.rollback()
        with read_connection() as connection:
            assert _count(connection) == 0
