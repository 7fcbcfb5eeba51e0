"""The whole API over real HTTP: several gunicorn workers sharing Redis, and separate CLI runs."""

from __future__ import annotations

import concurrent.futures
import urllib.parse

import pytest

from tests.conftest import TEST_KEY, run_flask

pytestmark = pytest.mark.e2e

KEY = {"X-API-Key": TEST_KEY}


@pytest.fixture
def two_workers_on_redis(serve, services_config):
    """gunicorn with two worker processes on PostgreSQL and Redis (configuration B)."""
    return serve(
        {
            "REFAPI_DATABASE_URL": services_config["DATABASE_URL"],
            "REFAPI_REDIS_URL": services_config["REDIS_URL"],
            "REFAPI_CACHE_KEY_PREFIX": services_config["CACHE_KEY_PREFIX"],
            "REFAPI_WORKERS": "2",
            "REFAPI_THREADS": "4",
        }
    )


def get_many(server, path, count=40):
    # A new connection per request, so the requests spread over both workers.
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(lambda _: server.get(path, headers=KEY), range(count)))


def test_no_worker_serves_a_replaced_or_deleted_value(two_workers_on_redis):
    server = two_workers_on_redis
    assert server.request("POST", "/save", json={"key": "doc", "value": 1}, headers=KEY).ok
    assert {response.json()["value"] for response in get_many(server, "/get/doc")} == {1}

    assert server.request("POST", "/save", json={"key": "doc", "value": 2}, headers=KEY).ok
    assert {response.json()["value"] for response in get_many(server, "/get/doc")} == {2}

    assert server.request("DELETE", "/delete/doc", headers=KEY).status_code == 204
    assert {response.status_code for response in get_many(server, "/get/doc")} == {404}


def test_a_read_right_after_a_write_is_never_stale(two_workers_on_redis):
    server = two_workers_on_redis
    for version in range(1, 31):
        saved = server.request("POST", "/save", json={"key": "k", "value": version}, headers=KEY)
        assert saved.json()["version"] == version
        assert server.get("/get/k", headers=KEY).json()["value"] == version


def test_a_value_both_workers_hold_in_memory_is_never_served_after_its_write(
    two_workers_on_redis,
):
    # Both workers' near caches hold the entry when it is replaced (each read is a new
    # connection, spread over the workers): the first read after the write is the new value.
    server = two_workers_on_redis
    for version in range(1, 16):
        saved = server.request("POST", "/save", json={"key": "k", "value": version}, headers=KEY)
        assert saved.json()["version"] == version
        assert server.get("/get/k", headers=KEY).json()["value"] == version
        assert {response.json()["value"] for response in get_many(server, "/get/k")} == {version}


def test_concurrent_create_only_saves_across_workers_create_once(two_workers_on_redis):
    server = two_workers_on_redis

    def create(number):
        return server.request(
            "POST",
            "/save",
            json={"key": "once", "value": number},
            headers={**KEY, "If-None-Match": "*"},
        ).status_code

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(create, range(16)))
    assert statuses.count(201) == 1
    assert statuses.count(412) == 15


def import_zipcodes(server, table, text):
    """`flask zipcodes import`, in a process of its own, against the server's database."""
    table.write_text(text)
    run = run_flask("zipcodes", "import", str(table), env=server.env)
    assert run.returncode == 0, run.stderr


def test_a_zipcode_import_run_elsewhere_is_seen_by_every_worker_at_once(
    two_workers_on_redis, tmp_path
):
    server = two_workers_on_redis
    for factor in ("A", "C"):
        import_zipcodes(server, tmp_path / "table.csv", f"1000 - 9992,{factor}\n")
        assert {r.json()["risk_factor"] for r in get_many(server, "/zipcodes/9000")} == {factor}


def test_a_dead_redis_leaves_every_worker_answering_and_logs_it_once_each(serve):
    server = serve({"REFAPI_REDIS_URL": "redis://127.0.0.1:1/0", "REFAPI_WORKERS": "2"})
    for version in range(1, 6):
        saved = server.request("POST", "/save", json={"key": "k", "value": version}, headers=KEY)
        assert saved.status_code in (200, 201)
        assert {r.json()["value"] for r in get_many(server, "/get/k", count=8)} == {version}
    assert server.get("/ready").json()["checks"]["cache"] == "degraded"
    server.stop()
    assert 1 <= server.log.count("cache unavailable") <= 2


def test_malformed_zipcodes_over_http_are_400(serve):
    server = serve()
    for raw in ["%209000", "9000.5", "999", "10000", "abc", "%00"]:
        response = server.get(f"/zipcodes/{raw}", headers=KEY)
        assert response.status_code == 400, raw
        assert response.headers["Content-Type"] == "application/problem+json"
        assert response.json()["code"] == "ZIPCODE_NOT_VALID"


def test_the_health_index_over_http_from_a_local_statbel(serve, upstream):
    server = serve({"REFAPI_STATBEL_URL": upstream.url})
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(
            pool.map(lambda _: server.get("/indices/health?base_year=2013", headers=KEY), range(16))
        )
    assert {response.status_code for response in answers} <= {200, 503}
    fresh = server.get("/indices/health?base_year=2013", headers=KEY).json()
    assert fresh["base_year"] == 2013
    assert fresh["stale"] is False
    assert upstream.hits == 1


def test_keys_are_percent_decoded_over_http(serve):
    server = serve()
    key = "clients/Émile 50%/report"
    assert server.request("POST", "/save", json={"key": key, "value": {}}, headers=KEY).ok
    response = server.get("/get/" + urllib.parse.quote(key, safe=""), headers=KEY)
    assert response.json()["key"] == key
