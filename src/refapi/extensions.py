"""The extensions, created unbound; ``create_app`` binds each to the app it builds."""

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from flask_caching import Cache
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase

from refapi.api import Api


class Base(DeclarativeBase):
    pass


class _SQLAlchemy(SQLAlchemy):
    """Flask-SQLAlchemy, not removing a session that the request never made.

    ``/ping`` and the cached reads open no session. Removing one that is not there looked it up
    twice and raised and caught a KeyError: most of the 2 us that the teardown cost the full
    stack's ``/ping`` (issue 8, benchmarks/results/4-december). Should Flask-SQLAlchemy rename
    its teardown, its own runs again, unchanged; tests/test_sessions.py holds it to doing no
    more than removing the session.
    """

    def _teardown_session(self, exc: BaseException | None) -> None:
        if self.session.registry.has():
            super()._teardown_session(exc)


db = _SQLAlchemy(model_class=Base)
migrate = Migrate()
cache = Cache()
api = Api()


# The engine of the reads that fill the cache, where it differs from the default (PostgreSQL:
# see refapi.app._read_binds).
READS_BIND = "reads"


def read_rows(statement: sa.Executable, parameters: Mapping[str, Any]) -> Sequence[sa.Row[Any]]:
    """The rows of one hot read that fills the cache (a store entry, a zipcode).

    On Core, without the ORM session, which cost more than the query itself (issue 8: a store
    miss spent three times longer in ``Session.execute`` and its teardown than SQLite spent
    answering). On PostgreSQL through the reads engine: autocommit and no pre-ping, so one round
    trip; a read that finds its connection dropped by the database (a restart, a failover) runs
    once more on a new one, which is safe for a read. When the request's session is in a
    transaction, on its connection, so that the read sees the transaction's own writes.
    """
    if db.session.registry.has() and db.session().in_transaction():
        return db.session.connection().execute(statement, parameters).all()
    engine = db.engines.get(READS_BIND) or db.engine
    connection = engine.connect()  # a database that cannot be reached: not tried twice
    try:
        rows = connection.execute(statement, parameters).all()
    except sa.exc.DBAPIError as error:
        if not _dropped(error):
            raise
        # Thrown away without the ROLLBACK a close sends, which would fail too and mask this.
        connection.invalidate()
        connection.close()
    else:
        connection.close()
        return rows
    # SQLAlchemy has invalidated the pool's connections as old as that one: this gets a new one.
    with engine.connect() as connection:
        return connection.execute(statement, parameters).all()


def _dropped(error: sa.exc.DBAPIError) -> bool:
    """Whether a read failed because the database had dropped its connection.

    SQLAlchemy may not tell: psycopg reports a connection the server has just terminated as
    "connection socket closed" (no SQLSTATE) before it marks it broken. A statement that failed
    with a SQLSTATE of its own (a timeout, a lock) is not a dropped connection.
    """
    sqlstate = getattr(error.orig, "sqlstate", None)
    return error.connection_invalidated or (
        isinstance(error, sa.exc.OperationalError)
        and (sqlstate is None or sqlstate.startswith("08") or sqlstate.startswith("57P0"))
    )


@contextmanager
def read_outside_a_transaction() -> Iterator[None]:
    """Run the reads inside on their own connection in autocommit mode, then hand it back.

    On PostgreSQL a read in a transaction costs a ``BEGIN`` and a ``ROLLBACK`` round trip
    around the query; a plain read needs neither (issue 8: a cache miss took four round trips,
    the pool's pre-ping included). Only for reads: nothing inside may write. When the session is
    already in a transaction, or on SQLite (whose transactions cost no round trip), the reads
    simply join the session as usual.
    """
    session = db.session()
    if session.in_transaction() or session.get_bind().dialect.name != "postgresql":
        yield
        return
    session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
    try:
        yield
    finally:
        # Ends the session's use of the connection: the next statement, a write say, gets one
        # in the default isolation level again.
        session.rollback()
