"""The Redis cache backend degrades to "no cache" and never serves what a lost write replaced."""

from __future__ import annotations

import logging
import uuid

import pytest
import sqlalchemy as sa

from refapi.caching import KEY_FAMILIES, delete_prefixed, read_through
from refapi.extensions import cache as flask_cache
from tests.tcp_proxy import TcpProxy

# A key as the store caches it: emptying the cache deletes refapi's key families only.
ENTRY = "store.json.entry"


@pytest.fixture
def redis_proxy(services):
    url = sa.make_url(services["redis"].replace("redis://", "redis+x://"))
    proxy = TcpProxy((url.host or "127.0.0.1", url.port or 6379))
    proxy.restore()
    yield proxy, f"redis://127.0.0.1:{proxy.port}/{url.database or 0}"
    proxy.close()


@pytest.fixture
def cache_app(make_app, services_config, redis_proxy):
    _, url = redis_proxy
    return make_app(**{**services_config, "REDIS_URL": url, "REDIS_TIMEOUT": 0.3})


def backend(app):
    return app.extensions["cache"][next(iter(app.extensions["cache"]))]


def test_a_dead_redis_is_a_miss_and_is_logged_once(make_app, caplog):
    app = make_app(REDIS_URL="redis://127.0.0.1:1/0", REDIS_TIMEOUT=0.2)
    cache = backend(app)
    with caplog.at_level(logging.WARNING, logger="refapi.cache"):
        assert cache.get("k") is None
        assert cache.get_many("a", "b") == [None, None]
        assert cache.set("k", 1) is False
        assert cache.delete("k") is False
        assert cache.has("k") is False
        assert cache.available is False
    assert [record.getMessage() for record in caplog.records] == [
        "cache unavailable, serving from the database: ConnectionError"
    ]


def test_a_value_replaced_while_redis_was_unreachable_is_never_served(cache_app, redis_proxy):
    proxy, _ = redis_proxy
    cache = backend(cache_app)
    assert cache.set(ENTRY, "old") is True
    proxy.cut()
    # The write committed elsewhere; its invalidation cannot reach Redis.
    assert cache.delete(ENTRY) is False
    proxy.restore()
    assert cache.get(ENTRY) is None, "the old value must not come back"
    assert cache.available is True
    assert cache.set(ENTRY, "new") is True
    assert cache.get(ENTRY) == "new"


def test_ready_reports_the_cache_back_when_redis_returns(cache_app, redis_proxy):
    proxy, _ = redis_proxy
    client = cache_app.test_client()
    assert client.get("/ready").json["checks"]["cache"] == "ok"
    proxy.cut()
    assert client.get("/ready").json["checks"]["cache"] == "degraded"
    proxy.restore()
    assert client.get("/ready").json["checks"]["cache"] == "ok"


def test_memoized_reads_fall_through_to_the_function_when_redis_is_down(make_app):
    app = make_app(REDIS_URL="redis://127.0.0.1:1/0", REDIS_TIMEOUT=0.2)
    from refapi.extensions import cache

    calls = []

    @cache.memoize()
    def answer(number):
        calls.append(number)
        return number * 2

    with app.app_context():
        assert answer(21) == 42
        assert answer(21) == 42
    assert calls == [21, 21]


def test_clearing_deletes_this_deployments_keys_and_nothing_else(cache_app, services):
    import redis

    other = redis.Redis.from_url(services["redis"])
    cache = backend(cache_app)
    # Unique: tox runs two environments at once against the same Redis. The second is another
    # deployment whose prefix begins with this one's ("refapi:" and "refapi:staging:").
    elsewhere = [
        f"someone-else-{uuid.uuid4().hex}:store.json.key",
        f"{cache.key_prefix}staging-{uuid.uuid4().hex}:store.json.key",
    ]
    for key in elsewhere:
        other.set(key, "kept")
    try:
        for family in KEY_FAMILIES:
            for number in range(1500):
                cache.set(f"{family}k{number}", number)
        assert cache.clear() is True
        for family in KEY_FAMILIES:
            assert cache.get_many(f"{family}k0", f"{family}k1499") == [None, None]
        assert [other.get(key) for key in elsewhere] == [b"kept", b"kept"]
    finally:
        other.delete(*elsewhere)
        other.close()


def test_an_empty_key_prefix_with_redis_refuses_to_start(app_config):
    from refapi import create_app
    from refapi.config import ConfigError

    with pytest.raises(ConfigError, match="CACHE_KEY_PREFIX"):
        create_app({**app_config, "REDIS_URL": "redis://127.0.0.1:6379/15", "CACHE_KEY_PREFIX": ""})


# read_through, on whichever backend the configuration uses (A: in-process, B: Redis) ----------


def test_read_through_loads_a_miss_once_then_serves_it_from_the_cache(app):
    loads = []

    def load():
        loads.append(1)
        return {"value": 1}

    with app.app_context():
        assert read_through(flask_cache, "k", load) == {"value": 1}
        assert read_through(flask_cache, "k", load) == {"value": 1}
    assert len(loads) == 1


def test_read_through_never_caches_nothing(app):
    loads = []
    with app.app_context():
        for _ in range(2):
            assert read_through(flask_cache, "k", lambda: loads.append(1)) is None
    assert len(loads) == 2


def test_a_value_loaded_before_an_invalidation_is_answered_but_not_cached(app):
    cache = backend(app)

    def load_while_a_write_lands():
        value = {"value": "old"}  # read from the database...
        cache.delete("k")  # ...then a write commits and invalidates the key
        return value

    with app.app_context():
        assert read_through(flask_cache, "k", load_while_a_write_lands) == {"value": "old"}
        assert read_through(flask_cache, "k", lambda: {"value": "new"}) == {"value": "new"}
        assert cache.get("k") == {"value": "new"}


def test_while_one_read_holds_the_lease_another_reads_without_filling(app):
    cache = backend(app)
    second = []

    def first_load():
        second.append(read_through(flask_cache, "k", lambda: {"value": "second"}))
        return {"value": "first"}

    with app.app_context():
        assert read_through(flask_cache, "k", first_load) == {"value": "first"}
        assert second == [{"value": "second"}]
        assert cache.get("k") == {"value": "first"}


@pytest.mark.services
def test_a_redis_hit_is_one_round_trip(make_app, services_config, monkeypatch):
    # Redis alone: with the near cache, a repeated hit makes none (tests/test_nearcache.py).
    app = make_app(**services_config, NEAR_CACHE_BYTES=0)
    cache = backend(app)
    context = app.app_context()
    context.push()
    assert read_through(flask_cache, "k", lambda: {"value": 1}) == {"value": 1}
    commands = []
    for client in {cache._read_client, cache._write_client}:
        original = client.execute_command

        def counted(*args, _original=original, **kwargs):
            commands.append(args[0])
            return _original(*args, **kwargs)

        monkeypatch.setattr(client, "execute_command", counted)
    assert read_through(flask_cache, "k", lambda: {"value": 2}) == {"value": 1}
    context.pop()
    assert len(commands) == 1, commands


@pytest.mark.services
def test_deleting_many_keys_is_one_command_and_a_key_leased_again_is_no_error(
    make_app, services_config, monkeypatch
):
    # cachelib's own delete_many asks about every key afterwards, and raised when a concurrent
    # read had leased one again: a write's invalidation must never fail that way.
    app = make_app(**services_config)
    cache = backend(app)
    cache.set("a", 1)
    cache.set("b", 2)
    commands = []
    original = cache._write_client.execute_command
    make_pipeline = cache._write_client.pipeline

    def counted(*args, **kwargs):
        commands.append(args[0])
        return original(*args, **kwargs)

    def pipeline(*args, **kwargs):
        batch = make_pipeline(*args, **kwargs)
        execute = batch.execute

        def delete_then_lease():
            commands.extend(command[0][0] for command in batch.command_stack)
            result = execute()
            original("SET", cache.key_prefix + "a", "a lease")
            return result

        batch.execute = delete_then_lease
        return batch

    monkeypatch.setattr(cache._write_client, "execute_command", counted)
    monkeypatch.setattr(cache._read_client, "execute_command", counted)
    monkeypatch.setattr(cache._write_client, "pipeline", pipeline)
    cache.delete_many("a", "b", "never-set")
    # One DEL for the keys, sent with the near caches' fence (no worker listens: no wait).
    assert commands == ["DEL", "PUBLISH"]
    assert cache.get("b") is None


def test_deleting_many_keys_deletes_those_after_a_key_that_was_not_cached(app):
    # Invalidations list keys that may or may not be cached (a store import, a write's two
    # key formats): every one must go.
    with app.app_context():
        flask_cache.set("cached", 1)
        flask_cache.delete_many("never-cached", "cached")
        assert flask_cache.get("cached") is None


def test_read_through_with_redis_unreachable_loads_every_time(make_app):
    app = make_app(REDIS_URL="redis://127.0.0.1:1/0", REDIS_TIMEOUT=0.2)
    loads = []
    with app.app_context():
        for _ in range(2):
            value = read_through(flask_cache, "k", lambda: loads.append(1) or {"value": 1})
            assert value == {"value": 1}
    assert len(loads) == 2


def test_deleting_a_prefix_deletes_its_keys_and_leases_and_nothing_else(app):
    with app.app_context():
        cache = backend(app)
        read_through(flask_cache, "zip.1000", lambda: {"factor": "A"})
        read_through(flask_cache, "zip*.other", lambda: {"factor": "B"})
        read_through(flask_cache, "store.k", lambda: {"value": 1})
        # A prefix is literal, never a pattern: "zip*" is not "zip" and anything.
        assert delete_prefixed(flask_cache, "zip*")
        assert cache.get("zip*.other") is None
        assert cache.get("zip.1000") == {"factor": "A"}

        def load_while_an_import_lands():
            value = {"factor": "old"}  # read from the table...
            assert delete_prefixed(flask_cache, "zip.")  # ...then an import commits
            return value

        assert read_through(flask_cache, "zip.2000", load_while_an_import_lands) == {
            "factor": "old"
        }
        assert cache.get("zip.1000") is None
        assert cache.get("zip.2000") is None, "a fill after the deletion must fail"
        assert cache.get("store.k") == {"value": 1}
