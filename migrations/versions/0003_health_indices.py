"""health indices, their refreshes and the refresh lease

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 01:44:44

"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "health_indices",
        sa.Column("base_year", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("year", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("month", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("health", sa.Numeric(precision=10, scale=2), nullable=True),
        sa.Column("smoothed", sa.Numeric(precision=10, scale=2), nullable=True),
        sa.Column("cpi", sa.Numeric(precision=10, scale=2), nullable=True),
        sa.CheckConstraint("month BETWEEN 1 AND 12", name="ck_health_indices_month"),
        sa.PrimaryKeyConstraint("base_year", "year", "month"),
    )
    op.create_table(
        "index_refreshes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "started_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("source", sa.String(length=2048), nullable=False),
        sa.Column("succeeded", sa.Boolean(), nullable=False),
        sa.Column("months_added", sa.Integer(), nullable=False),
        sa.Column("rows_changed", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "index_refresh_leases",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade():
    op.drop_table("index_refresh_leases")
    op.drop_table("index_refreshes")
    op.drop_table("health_indices")
