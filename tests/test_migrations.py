"""The Alembic migrations build exactly the models' schema, and can go down and up again."""

from __future__ import annotations

from pathlib import Path

import flask_migrate
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from refapi import create_app
from refapi.extensions import db

MIGRATIONS = str(Path(__file__).resolve().parent.parent / "migrations")


@pytest.fixture
def bare_app(app_config):
    """An app whose database has no tables yet."""
    app = create_app(app_config)
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()


def pending_changes():
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, db.metadata)


def table_names():
    return set(sa.inspect(db.engine).get_table_names())


def test_upgrade_builds_the_models_schema_with_nothing_left_to_autogenerate(bare_app):
    flask_migrate.upgrade(directory=MIGRATIONS)
    assert table_names() >= {table.name for table in db.metadata.sorted_tables}
    assert pending_changes() == []


def test_downgrade_to_base_and_upgrade_again(bare_app):
    flask_migrate.upgrade(directory=MIGRATIONS)
    flask_migrate.downgrade(directory=MIGRATIONS, revision="base")
    assert table_names() <= {"alembic_version"}
    flask_migrate.upgrade(directory=MIGRATIONS)
    assert pending_changes() == []


def test_the_migrations_form_a_single_line(bare_app):
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory(MIGRATIONS)
    assert len(scripts.get_heads()) == 1
