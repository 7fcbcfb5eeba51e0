"""store values as text on PostgreSQL too

jsonb keeps numbers as PostgreSQL numerics and writes them back without an exponent: 1e300 came
back as a 301-digit integer (a float read back as an int, 50 times the bytes, over the size limit
when saved again) and -0.0 as 0. A text column keeps the document refapi wrote, as on SQLite.
Values already stored keep the text jsonb gives them.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 17:20:00

"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE store_entries ALTER COLUMN value TYPE text USING value::text")


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE store_entries ALTER COLUMN value TYPE jsonb USING value::jsonb")
