"""The zipcode risk table: one row per Belgian postal code."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from refapi.extensions import db

RISK_FACTORS = ("A", "B", "C")
MIN_ZIPCODE = 1000
MAX_ZIPCODE = 9999


class Zipcode(db.Model):  # type: ignore[name-defined]
    __tablename__ = "zipcodes"
    __table_args__ = (
        sa.CheckConstraint("risk_factor IN ('A', 'B', 'C')", name="ck_zipcodes_risk_factor"),
        sa.CheckConstraint(
            f"zipcode BETWEEN {MIN_ZIPCODE} AND {MAX_ZIPCODE}", name="ck_zipcodes_zipcode_range"
        ),
        # Serves "every zipcode of a factor, in order" from the index alone.
        sa.Index("ix_zipcodes_risk_factor_zipcode", "risk_factor", "zipcode"),
    )

    zipcode: Mapped[int] = mapped_column(sa.Integer(), primary_key=True, autoincrement=False)
    risk_factor: Mapped[str] = mapped_column(sa.String(1))
