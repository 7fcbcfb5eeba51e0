"""The store's table: one row per (client, key)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Mapped, mapped_column

from refapi.extensions import db

MAX_KEY_LENGTH = 256
MAX_CLIENT_LENGTH = 64
# The version column is a 32-bit integer on PostgreSQL: no write goes past this version.
MAX_VERSION = 2**31 - 1

# Keys sort and compare byte-wise on every database ("C" collation on PostgreSQL), so that
# listing order and case sensitivity are the same on SQLite and PostgreSQL.
KeyString = sa.String(MAX_KEY_LENGTH).with_variant(
    sa.String(MAX_KEY_LENGTH, collation="C"), "postgresql"
)


class JSONText(sa.TypeDecorator[Any]):
    """JSON kept as text, for SQLite.

    SQLite gives a column declared ``JSON`` numeric affinity: the document ``1.0`` would come
    back as ``1`` and ``10**30`` as ``1e+30``. A TEXT column keeps the document as written.
    """

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> str:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))

    def process_result_value(self, value: str | None, dialect: sa.Dialect) -> Any:
        return None if value is None else json.loads(value)


class Entry(db.Model):  # type: ignore[name-defined]
    __tablename__ = "store_entries"
    __table_args__ = (sa.UniqueConstraint("client", "key", name="uq_store_entries_client_key"),)

    id: Mapped[int] = mapped_column(
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True
    )
    client: Mapped[str] = mapped_column(sa.String(MAX_CLIENT_LENGTH))
    key: Mapped[str] = mapped_column(KeyString)
    value: Mapped[Any] = mapped_column(JSONText().with_variant(postgresql.JSONB(), "postgresql"))
    version: Mapped[int] = mapped_column(sa.Integer())
    created_at: Mapped[datetime] = mapped_column(
        sa.DateTime(timezone=True), server_default=sa.func.now()
    )
    updated_at: Mapped[datetime] = mapped_column(
        sa.DateTime(timezone=True), server_default=sa.func.now()
    )
