"""Configuration A's database: SQLite in write-ahead-log mode."""

from __future__ import annotations

import sqlite3

from refapi.extensions import db


def _sqlite_app(make_app, tmp_path):
    return make_app(DATABASE_URL=f"sqlite:///{tmp_path / 'wal.sqlite3'}", REDIS_URL="")


def test_sqlite_runs_in_write_ahead_log_mode_with_full_sync(make_app, tmp_path):
    app = _sqlite_app(make_app, tmp_path)
    with app.app_context(), db.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        # Each commit is on disk before the API answers: FULL, not NORMAL.
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2


def test_a_read_is_answered_while_another_process_holds_the_write_lock(
    make_app, tmp_path, auth_headers
):
    """An import or a migration writing from another process does not stall the API's reads:
    with the default rollback journal, a reader waits for an exclusive lock (5 s, then fails)."""
    app = _sqlite_app(make_app, tmp_path)
    client = app.test_client()
    # The save leaves nothing in the cache: the read below goes to the database.
    assert (
        client.post("/save", json={"key": "k", "value": 1}, headers=auth_headers).status_code == 201
    )
    other = sqlite3.connect(tmp_path / "wal.sqlite3", timeout=0)
    try:
        other.execute("BEGIN EXCLUSIVE")
        other.execute("UPDATE store_entries SET version = version")
        response = client.get("/get/k", headers=auth_headers)
    finally:
        other.rollback()
        other.close()
    assert response.status_code == 200
    assert response.get_json()["value"] == 1
