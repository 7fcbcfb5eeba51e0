"""Statbel's health index, one row per (base year, year, month), and the record of refreshes."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from refapi.extensions import db

IndexValue = sa.Numeric(10, 2)


class MonthlyIndex(db.Model):  # type: ignore[name-defined]
    __tablename__ = "health_indices"
    __table_args__ = (sa.CheckConstraint("month BETWEEN 1 AND 12", name="ck_health_indices_month"),)

    base_year: Mapped[int] = mapped_column(sa.Integer(), primary_key=True, autoincrement=False)
    year: Mapped[int] = mapped_column(sa.Integer(), primary_key=True, autoincrement=False)
    month: Mapped[int] = mapped_column(sa.Integer(), primary_key=True, autoincrement=False)
    health: Mapped[Decimal | None] = mapped_column(IndexValue)
    smoothed: Mapped[Decimal | None] = mapped_column(IndexValue)
    cpi: Mapped[Decimal | None] = mapped_column(IndexValue)


class Refresh(db.Model):  # type: ignore[name-defined]
    """One download or import of the upstream data, successful or not."""

    __tablename__ = "index_refreshes"

    id: Mapped[int] = mapped_column(
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True
    )
    started_at: Mapped[datetime] = mapped_column(
        sa.DateTime(timezone=True), server_default=sa.func.now()
    )
    finished_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    source: Mapped[str] = mapped_column(sa.String(2048))
    succeeded: Mapped[bool] = mapped_column(sa.Boolean(), default=False)
    months_added: Mapped[int] = mapped_column(sa.Integer(), default=0)
    rows_changed: Mapped[int] = mapped_column(sa.Integer(), default=0)
    error: Mapped[str | None] = mapped_column(sa.Text())


class RefreshLease(db.Model):  # type: ignore[name-defined]
    """Who may refresh now: one row per lock, held until ``expires_at``.

    A row in the database (not a process lock) so that one refresh runs at a time across every
    thread and worker process, on SQLite and PostgreSQL alike; the expiry frees a lock whose
    holder died.
    """

    __tablename__ = "index_refresh_leases"

    name: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(sa.String(64))
    expires_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
