"""zipcodes

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 01:44:44

"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "zipcodes",
        sa.Column("zipcode", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("risk_factor", sa.String(length=1), nullable=False),
        sa.CheckConstraint("risk_factor IN ('A', 'B', 'C')", name="ck_zipcodes_risk_factor"),
        sa.CheckConstraint("zipcode BETWEEN 1000 AND 9999", name="ck_zipcodes_zipcode_range"),
        sa.PrimaryKeyConstraint("zipcode"),
    )
    with op.batch_alter_table("zipcodes", schema=None) as batch_op:
        batch_op.create_index(
            "ix_zipcodes_risk_factor_zipcode", ["risk_factor", "zipcode"], unique=False
        )


def downgrade():
    with op.batch_alter_table("zipcodes", schema=None) as batch_op:
        batch_op.drop_index("ix_zipcodes_risk_factor_zipcode")
    op.drop_table("zipcodes")
