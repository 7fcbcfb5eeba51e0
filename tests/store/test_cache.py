"""Reads are cached, and no read that starts after a write has returned sees the old value."""

from __future__ import annotations

import hashlib
import threading

import pytest
import sqlalchemy as sa

from refapi.extensions import cache, db
from refapi.store import services


@pytest.fixture
def store_selects(app):
    """How many statements have read store_entries so far."""
    count = {"n": 0}

    def count_selects(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT") and "store_entries" in statement:
            count["n"] += 1

    with app.app_context():
        engines = list(db.engines.values())  # the reads engine too, on PostgreSQL
    for engine in engines:
        sa.event.listen(engine, "before_cursor_execute", count_selects)
    yield lambda: count["n"]
    for engine in engines:
        sa.event.remove(engine, "before_cursor_execute", count_selects)


def test_a_second_read_is_served_from_the_cache(client, auth_headers, store_selects):
    client.post("/save", json={"key": "k", "value": 1}, headers=auth_headers)
    before = store_selects()
    assert client.get("/get/k", headers=auth_headers).status_code == 200
    assert store_selects() == before + 1
    assert client.get("/get/k", headers=auth_headers).get_json()["value"] == 1
    assert store_selects() == before + 1


def test_a_cached_read_answers_exactly_what_the_read_that_filled_the_cache_answered(
    client, auth_headers, store_selects
):
    value = {"premium": 1234.5, "risk": "B", "holder": "Zoë", "tags": [None, True]}
    saved = client.post("/save", json={"key": "contracts/1", "value": value}, headers=auth_headers)
    before = store_selects()
    filled = client.get("/get/contracts/1", headers=auth_headers)
    cached = client.get("/get/contracts/1", headers=auth_headers)
    assert store_selects() == before + 1  # the second came from the cache
    assert cached.data == filled.data
    # /save serialises the same entry through flask-smorest and EntrySchema: the same bytes.
    assert filled.data == saved.data
    assert cached.mimetype == filled.mimetype == "application/json"
    assert cached.headers["ETag"] == filled.headers["ETag"] == '"1"'
    assert set(cached.get_json()) == {"key", "value", "version", "created_at", "updated_at"}
    assert cached.get_json()["value"] == value


@pytest.mark.parametrize("write", ["save", "delete"])
def test_a_write_also_deletes_what_the_release_before_json_entries_cached(
    app, client, auth_headers, write
):
    # That release cached a dict under "store.entry.<sha256 of client, newline, key>"; during a
    # rolling deploy its replicas share the Redis and would serve it after this write.
    client.post("/save", json={"key": "k", "value": "old"}, headers=auth_headers)
    legacy = "store.entry." + hashlib.sha256(b"tester\nk").hexdigest()
    with app.app_context():
        cache.set(legacy, {"key": "k", "value": "old", "version": 1})
    if write == "save":
        client.post("/save", json={"key": "k", "value": "new"}, headers=auth_headers)
    else:
        client.delete("/delete/k", headers=auth_headers)
    with app.app_context():
        assert cache.get(legacy) is None


def test_a_save_replaces_the_cached_value(client, auth_headers, store_selects):
    client.post("/save", json={"key": "k", "value": "old"}, headers=auth_headers)
    client.get("/get/k", headers=auth_headers)
    client.post("/save", json={"key": "k", "value": "new"}, headers=auth_headers)
    response = client.get("/get/k", headers=auth_headers)
    assert response.get_json()["value"] == "new"
    assert response.headers["ETag"] == '"2"'


def test_a_delete_removes_the_cached_value(client, auth_headers):
    client.post("/save", json={"key": "k", "value": 1}, headers=auth_headers)
    assert client.get("/get/k", headers=auth_headers).status_code == 200
    client.delete("/delete/k", headers=auth_headers)
    assert client.get("/get/k", headers=auth_headers).status_code == 404


def test_a_missing_key_is_not_cached_as_missing(client, auth_headers):
    assert client.get("/get/k", headers=auth_headers).status_code == 404
    client.post("/save", json={"key": "k", "value": 1}, headers=auth_headers)
    assert client.get("/get/k", headers=auth_headers).status_code == 200


def test_a_cached_value_is_not_shared_between_clients(client, auth_headers, other_auth_headers):
    client.post("/save", json={"key": "k", "value": "mine"}, headers=auth_headers)
    client.get("/get/k", headers=auth_headers)
    assert client.get("/get/k", headers=other_auth_headers).status_code == 404


@pytest.fixture
def paused_reader(app, auth_headers, monkeypatch):
    """Starts a GET that stops after it has read the database, before it fills the cache."""
    has_read = threading.Event()
    resume = threading.Event()
    original = services._entry_data

    def entry_data_then_pause(row):
        data = original(row)
        if threading.current_thread().name == "paused-reader":
            has_read.set()
            resume.wait(timeout=10)
        return data

    monkeypatch.setattr(services, "_entry_data", entry_data_then_pause)
    outcome = {}
    threads = []

    def read():
        outcome["response"] = app.test_client().get("/get/k", headers=auth_headers)

    def start():
        thread = threading.Thread(target=read, name="paused-reader")
        threads.append(thread)
        thread.start()
        assert has_read.wait(timeout=10)

        def finish():
            resume.set()
            thread.join(timeout=10)
            return outcome["response"]

        return finish

    yield start
    # Never leave the reader waiting, even when the test failed before finishing it.
    resume.set()
    for thread in threads:
        thread.join(timeout=10)


def test_a_read_racing_a_save_cannot_leave_the_replaced_value_cached(
    client, auth_headers, paused_reader
):
    client.post("/save", json={"key": "k", "value": "old"}, headers=auth_headers)
    finish = paused_reader()
    saved = client.post("/save", json={"key": "k", "value": "new"}, headers=auth_headers)
    assert saved.status_code == 200
    # The racing read began before the save and answers the old value, then caches it...
    assert finish().get_json()["value"] == "old"
    # ...where no later read looks.
    assert client.get("/get/k", headers=auth_headers).get_json()["value"] == "new"


def test_a_read_racing_a_delete_cannot_leave_the_deleted_value_cached(
    client, auth_headers, paused_reader
):
    client.post("/save", json={"key": "k", "value": "old"}, headers=auth_headers)
    finish = paused_reader()
    assert client.delete("/delete/k", headers=auth_headers).status_code == 204
    assert finish().status_code == 200
    assert client.get("/get/k", headers=auth_headers).status_code == 404


def test_a_write_in_one_process_is_seen_by_another_through_redis(
    make_app, services_config, auth_headers
):
    # Two apps with their own cache clients and connection pools, like two gunicorn workers.
    first = make_app(**services_config).test_client()
    second = make_app(**services_config).test_client()
    first.post("/save", json={"key": "k", "value": "old"}, headers=auth_headers)
    assert second.get("/get/k", headers=auth_headers).get_json()["value"] == "old"
    assert first.get("/get/k", headers=auth_headers).get_json()["value"] == "old"
    first.post("/save", json={"key": "k", "value": "new"}, headers=auth_headers)
    assert second.get("/get/k", headers=auth_headers).get_json()["value"] == "new"
    second.delete("/delete/k", headers=auth_headers)
    assert first.get("/get/k", headers=auth_headers).status_code == 404
