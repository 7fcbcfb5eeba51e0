"""Concurrent writers, from threads, against the suite's database (SQLite or PostgreSQL)."""

from __future__ import annotations

from tests.store.conftest import run_together

THREADS = 8
WRITES_PER_THREAD = 4


def test_concurrent_saves_of_one_key_lose_no_write(app, auth_headers):
    def write(index):
        client = app.test_client()
        return [
            client.post("/save", json={"key": "counter", "value": [index, n]}, headers=auth_headers)
            for n in range(WRITES_PER_THREAD)
        ]

    responses = [response for batch in run_together(THREADS, write) for response in batch]
    assert {response.status_code for response in responses} == {200, 201}
    assert [response.status_code for response in responses].count(201) == 1
    # Every write got its own version: none was lost or applied twice.
    versions = sorted(response.get_json()["version"] for response in responses)
    assert versions == list(range(1, THREADS * WRITES_PER_THREAD + 1))
    final = app.test_client().get("/get/counter", headers=auth_headers).get_json()
    assert final["version"] == THREADS * WRITES_PER_THREAD
    last = next(r for r in responses if r.get_json()["version"] == final["version"])
    assert final["value"] == last.get_json()["value"]


def test_exactly_one_of_concurrent_create_only_saves_succeeds(app, auth_headers):
    def create(index):
        return app.test_client().post(
            "/save",
            json={"key": "once", "value": index},
            headers={**auth_headers, "If-None-Match": "*"},
        )

    responses = run_together(THREADS, create)
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [201] + [412] * (THREADS - 1)
    assert {r.get_json()["code"] for r in responses if r.status_code == 412} == {"ALREADY_EXISTS"}
    winner = next(r for r in responses if r.status_code == 201).get_json()
    stored = app.test_client().get("/get/once", headers=auth_headers).get_json()
    assert (stored["value"], stored["version"]) == (winner["value"], 1)


def test_exactly_one_of_concurrent_saves_if_match_the_same_version_succeeds(app, auth_headers):
    app.test_client().post("/save", json={"key": "k", "value": "start"}, headers=auth_headers)

    def update(index):
        return app.test_client().post(
            "/save",
            json={"key": "k", "value": index},
            headers={**auth_headers, "If-Match": '"1"'},
        )

    responses = run_together(THREADS, update)
    assert sorted(response.status_code for response in responses) == [200] + [412] * (THREADS - 1)
    mismatches = [r.get_json() for r in responses if r.status_code == 412]
    assert {(p["code"], p["current_version"]) for p in mismatches} == {("VERSION_MISMATCH", 2)}
    stored = app.test_client().get("/get/k", headers=auth_headers).get_json()
    assert stored["version"] == 2


def test_concurrent_read_modify_write_loops_with_if_match_count_every_increment(app, auth_headers):
    app.test_client().post("/save", json={"key": "n", "value": 0}, headers=auth_headers)
    increments = 3

    def increment(_index):
        client = app.test_client()
        done = 0
        while done < increments:
            current = client.get("/get/n", headers=auth_headers)
            response = client.post(
                "/save",
                json={"key": "n", "value": current.get_json()["value"] + 1},
                headers={**auth_headers, "If-Match": current.headers["ETag"]},
            )
            assert response.status_code in (200, 412)
            done += response.status_code == 200
        return done

    run_together(4, increment)
    stored = app.test_client().get("/get/n", headers=auth_headers).get_json()
    assert stored["value"] == 4 * increments
    assert stored["version"] == 4 * increments + 1


def test_concurrent_deletes_of_one_key_delete_it_once(app, auth_headers):
    app.test_client().post("/save", json={"key": "k", "value": 1}, headers=auth_headers)

    def delete(_index):
        return app.test_client().delete("/delete/k", headers=auth_headers).status_code

    assert sorted(run_together(THREADS, delete)) == [204] + [404] * (THREADS - 1)
