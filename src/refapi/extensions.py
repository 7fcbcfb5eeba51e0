"""The extensions, created unbound; ``create_app`` binds each to the app it builds."""

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from flask_caching import Cache
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase

from refapi.api import Api


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
cache = Cache()
api = Api()


@contextmanager
def read_connection() -> Iterator[sa.Connection]:
    """A Core connection for a hot read that fills the cache (a store entry, a zipcode).

    Without the ORM session, which costs more than the query itself (issue 8: a store miss spent
    three times longer in ``Session.execute`` and its teardown than SQLite spent answering), and
    in autocommit mode on PostgreSQL, as ``read_outside_a_transaction``. When the request's
    session is in a transaction, its connection, so that the read sees its own writes.
    """
    if db.session.registry.has() and db.session().in_transaction():
        yield db.session.connection()
        return
    with db.engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection = connection.execution_options(isolation_level="AUTOCOMMIT")
        yield connection


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
