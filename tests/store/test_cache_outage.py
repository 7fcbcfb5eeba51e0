"""Redis down: the store keeps answering from the database, and never serves a stale value."""

from __future__ import annotations

import logging

import pytest


def _cache_errors(caplog):
    return [r for r in caplog.records if r.name == "refapi.cache" and r.levelno >= logging.ERROR]


def test_with_redis_unreachable_every_operation_works_from_the_database(
    make_app, auth_headers, caplog
):
    # Port 1 on loopback: nothing listens, the connection is refused at once.
    app = make_app(REDIS_URL="redis://127.0.0.1:1/0", REDIS_TIMEOUT=0.2)
    client = app.test_client()
    caplog.set_level(logging.INFO, logger="refapi")

    assert (
        client.post("/save", json={"key": "k", "value": 1}, headers=auth_headers).status_code == 201
    )
    assert client.get("/get/k", headers=auth_headers).get_json()["value"] == 1
    saved = client.post("/save", json={"key": "k", "value": 2}, headers=auth_headers)
    assert saved.status_code == 200
    assert client.get("/get/k", headers=auth_headers).get_json() | {"created_at": 0} == {
        **saved.get_json(),
        "created_at": 0,
    }
    conflict = client.post(
        "/save",
        json={"key": "k", "value": 3},
        headers={**auth_headers, "If-None-Match": "*"},
    )
    assert conflict.status_code == 412
    assert client.get("/keys", headers=auth_headers).get_json()["total"] == 1
    assert client.delete("/delete/k", headers=auth_headers).status_code == 204
    assert client.get("/get/k", headers=auth_headers).status_code == 404
    # The outage is logged when it starts, not on every request.
    assert len(_cache_errors(caplog)) == 1


@pytest.fixture
def proxied_app(make_app, services_config, redis_proxy_url):
    """An app on PostgreSQL whose Redis goes through the test's cuttable proxy."""
    return make_app(**{**services_config, "REDIS_URL": redis_proxy_url, "REDIS_TIMEOUT": 0.5})


def test_redis_lost_mid_test_then_back_never_serves_a_replaced_value(
    proxied_app, redis_proxy, auth_headers, caplog
):
    client = proxied_app.test_client()
    client.post("/save", json={"key": "k", "value": "old"}, headers=auth_headers)
    assert client.get("/get/k", headers=auth_headers).get_json()["value"] == "old"  # now cached

    redis_proxy.cut()
    assert client.get("/get/k", headers=auth_headers).get_json()["value"] == "old"
    saved = client.post("/save", json={"key": "k", "value": "new"}, headers=auth_headers)
    assert saved.status_code == 200
    assert client.get("/get/k", headers=auth_headers).get_json()["value"] == "new"
    assert client.get("/ready").get_json()["checks"]["cache"] == "degraded"

    # Redis still holds "old", and the invalidation never reached it.
    redis_proxy.restore()
    assert client.get("/ready").get_json()["checks"]["cache"] == "ok"
    assert client.get("/get/k", headers=auth_headers).get_json()["value"] == "new"
    assert client.get("/get/k", headers=auth_headers).get_json()["value"] == "new"
    assert len(_cache_errors(caplog)) == 1


def test_a_delete_while_redis_is_lost_stays_deleted_when_it_is_back(
    proxied_app, redis_proxy, auth_headers
):
    client = proxied_app.test_client()
    client.post("/save", json={"key": "k", "value": "old"}, headers=auth_headers)
    client.get("/get/k", headers=auth_headers)

    redis_proxy.cut()
    assert client.delete("/delete/k", headers=auth_headers).status_code == 204
    assert client.get("/get/k", headers=auth_headers).status_code == 404

    redis_proxy.restore()
    assert client.get("/get/k", headers=auth_headers).status_code == 404


def test_a_write_whose_invalidation_fails_still_answers_its_success(
    proxied_app, redis_proxy, auth_headers
):
    client = proxied_app.test_client()
    redis_proxy.cut()
    created = client.post(
        "/save", json={"key": "k", "value": 1}, headers={**auth_headers, "If-None-Match": "*"}
    )
    assert created.status_code == 201
    assert created.headers["ETag"] == '"1"'
    updated = client.post(
        "/save", json={"key": "k", "value": 2}, headers={**auth_headers, "If-Match": '"1"'}
    )
    assert updated.status_code == 200
    assert updated.get_json()["version"] == 2
