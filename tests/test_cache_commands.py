"""A command whose change Redis does not hear of says so; `flask cache clear` empties the cache."""

from __future__ import annotations

import pytest
import redis
import sqlalchemy as sa

from refapi.caching import KEY_FAMILIES
from refapi.extensions import cache, db
from refapi.indices import services as indices
from refapi.store import services as store
from refapi.zipcodes import services as zipcodes
from tests.e2e.conftest import free_port


@pytest.fixture
def dead_redis_app(make_app, upstream):
    # Nothing listens on that port: every connection is refused at once.
    return make_app(
        REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",
        CACHE_KEY_PREFIX="dead:",
        STATBEL_URL=upstream.url,
    )


def zipcode_import(app, tmp_path):
    table = tmp_path / "table.csv"
    table.write_text("1000 - 1009,A\n")
    result = app.test_cli_runner().invoke(args=["zipcodes", "import", str(table)])
    with app.app_context():
        return result, zipcodes.count() == 10


def store_import(app, tmp_path):
    entries = tmp_path / "entries.jsonl"
    entries.write_text('{"client": "tester", "key": "k", "value": 1}\n')
    result = app.test_cli_runner().invoke(args=["store", "import", str(entries)])
    with app.app_context():
        return result, [e["value"] for e in store.export_entries(client="tester")] == [1]


def index_refresh(app, _tmp_path):
    result = app.test_cli_runner().invoke(args=["indices", "refresh"])
    with app.app_context():
        return result, indices._refresh_times_uncached()["retrieved_at"] is not None


@pytest.mark.parametrize(
    ("command", "what"),
    [
        (zipcode_import, "The risk table is imported"),
        (store_import, "The entries are imported"),
        (index_refresh, "The health index is stored"),
    ],
)
def test_a_change_redis_did_not_hear_of_exits_1_and_says_how_to_mend_it(
    dead_redis_app, tmp_path, command, what
):
    # Running servers go on answering the old data from the cache: the operator must know.
    result, stored = command(dead_redis_app, tmp_path)
    assert result.exit_code == 1, result.output
    assert f"{what}, but Redis did not answer" in result.output
    assert "flask --app wsgi cache clear" in result.output
    assert stored


def test_a_zipcode_import_that_changed_nothing_exits_0_though_redis_did_not_hear_of_it(
    dead_redis_app, tmp_path
):
    zipcode_import(dead_redis_app, tmp_path)
    again, _ = zipcode_import(dead_redis_app, tmp_path)
    assert "0 added, 0 changed, 0 removed." in again.output
    assert again.exit_code == 0, again.output


def test_cache_clear_with_redis_unreachable_fails_and_says_nothing_was_emptied(dead_redis_app):
    result = dead_redis_app.test_cli_runner().invoke(args=["cache", "clear"])
    assert result.exit_code == 1
    assert "Redis did not answer: the cache was not emptied" in result.output


def test_cache_clear_without_redis_says_there_is_no_shared_cache(make_app):
    app = make_app(REDIS_URL="", CACHE_KEY_PREFIX="")
    result = app.test_cli_runner().invoke(args=["cache", "clear"])
    assert result.exit_code == 1
    assert "no shared cache" in result.output


@pytest.mark.services
def test_cache_clear_makes_every_server_read_what_a_restore_put_in_the_database(
    make_app, client, auth_headers
):
    # A restore (pg_restore) changes the database behind the cache's back.
    assert (
        client.post("/save", json={"key": "k", "value": "old"}, headers=auth_headers).status_code
        == 201
    )
    assert client.get("/get/k", headers=auth_headers).get_json()["value"] == "old"
    server = client.application
    with server.app_context():
        db.session.execute(sa.text("UPDATE store_entries SET value = '\"restored\"'"))
        db.session.commit()
    assert client.get("/get/k", headers=auth_headers).get_json()["value"] == "old"

    # The operator's command runs in a process of its own: another app on the same services.
    operator = make_app()
    result = operator.test_cli_runner().invoke(args=["cache", "clear"])
    assert result.exit_code == 0, result.output
    assert "Cache emptied" in result.output
    assert client.get("/get/k", headers=auth_headers).get_json()["value"] == "restored"


@pytest.mark.services
def test_every_key_the_features_cache_is_in_a_family_cache_clear_deletes(
    make_app, upstream, auth_headers, services
):
    # `cache clear` deletes KEY_FAMILIES only (another deployment's prefix may begin with ours):
    # a key outside them would outlive it.
    app = make_app(STATBEL_URL=upstream.url)
    client = app.test_client()
    with app.app_context():
        indices.refresh()
        zipcodes.import_sample()
        prefix = cache.cache.key_prefix
    assert client.post("/save", json={"key": "k", "value": 1}, headers=auth_headers).status_code
    for path in (
        "/get/k",
        "/get/missing",
        "/keys",
        "/zipcodes/9000",
        "/zipcodes?risk_factor=A",
        "/zipcodes?risk_factor=A&page=99",
        "/indices/health",
        "/indices/health?base_year=2013",
        "/indices/health/2020-10",
        "/indices/health/history?base_year=2013",
        "/indices/health/history?base_year=2013&page=9999",
    ):
        assert client.get(path, headers=auth_headers).status_code < 500, path
    with redis.Redis.from_url(services["redis"]) as server:
        written = [key.decode()[len(prefix) :] for key in server.scan_iter(match=f"{prefix}*")]
    cached = [key for key in written if not key.startswith("near-ack:")]
    assert {family for family in KEY_FAMILIES if any(k.startswith(family) for k in cached)} >= {
        "store.",
        "zipcodes.",
        "indices.",
    }
    assert [key for key in cached if not key.startswith(KEY_FAMILIES)] == []
