"""`flask deploy`, the compose migrate service: migrations, then seeding when asked."""

from __future__ import annotations

import sqlalchemy as sa

from refapi import create_app
from refapi.extensions import db
from tests.test_migrations import MIGRATIONS


def test_deploy_applies_every_migration_and_is_idempotent(app_config):
    app = create_app(app_config)
    runner = app.test_cli_runner()
    for _ in range(2):
        result = runner.invoke(args=["deploy", "--directory", MIGRATIONS])
        assert result.exit_code == 0, result.output
        assert "up to date" in result.output
    with app.app_context():
        tables = set(sa.inspect(db.engine).get_table_names())
        db.engine.dispose()
    assert {table.name for table in db.metadata.sorted_tables} <= tables
