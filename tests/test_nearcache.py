"""Each worker's near cache: reads served in process, and never a value a returned write replaced.

Two apps on one database and one Redis prefix stand for two workers (or two replicas).
"""

from __future__ import annotations

import logging
import os
import pickle
import resource
import select
import socket
import subprocess
import sys
import threading
import time
import warnings

import pytest
import redis

from refapi.caching import read_through
from refapi.extensions import cache as flask_cache
from refapi.store import services as store_services
from refapi.zipcodes import services as zipcode_services
from tests.conftest import TEST_KEY
from tests.indices.conftest import HEALTH, statbel_rows, statbel_text

TEST_CLIENT = "tester"

pytestmark = pytest.mark.services


def backend(app):
    return app.extensions["cache"][next(iter(app.extensions["cache"]))]


def near_of(app):
    return backend(app).near


def wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def read(app, key, value=None):
    with app.app_context():
        return read_through(flask_cache, key, lambda: value)


def warm(app, key, value):
    """Read ``key`` until this app's near cache holds it."""
    near = near_of(app)
    wait_for(lambda: read(app, key, value) == value and near.get(key) is not None)


def store_key(key):
    return store_services._cache_key(TEST_CLIENT, key)


def redis_commands_of_this_thread(app, monkeypatch):
    """The commands ``app``'s cache sends Redis from now on, from the calling thread."""
    cache = backend(app)
    here = threading.current_thread()
    commands = []
    for client in {cache._read_client, cache._write_client}:
        original = client.execute_command

        def counted(*args, _original=original, **kwargs):
            if threading.current_thread() is here:
                commands.append(args[0])
            return _original(*args, **kwargs)

        monkeypatch.setattr(client, "execute_command", counted)
    return commands


@pytest.fixture
def redis_client(services):
    client = redis.Redis.from_url(services["redis"])
    yield client
    client.close()


def test_a_repeated_read_makes_no_round_trip_to_redis(make_app, services_config, monkeypatch):
    app = make_app(**services_config)
    warm(app, "k", {"value": 1})
    commands = redis_commands_of_this_thread(app, monkeypatch)
    assert read(app, "k", {"value": 2}) == {"value": 1}
    assert commands == []


@pytest.mark.parametrize(
    "path",
    [
        "/zipcodes/1000",
        "/zipcodes?risk_factor=A",
        "/zipcodes?risk_factor=a&page=2&page_size=1",
        # Past any table: only the total is cached.
        "/zipcodes?risk_factor=A&page=1000&page_size=1000",
    ],
)
def test_repeated_zipcode_reads_make_no_round_trip_to_redis(
    make_app, services_config, monkeypatch, path
):
    app = make_app(**services_config)
    with app.app_context():
        zipcode_services.replace_table(factors={1000: "A", 1300: "A", 9000: "B"})
    commands = redis_commands_of_this_thread(app, monkeypatch)
    reader = app.test_client()

    def read_without_a_round_trip():
        commands.clear()
        assert reader.get(path, headers={"X-API-Key": TEST_KEY}).status_code == 200
        return commands == []

    wait_for(read_without_a_round_trip)


def import_index(app, path, health=None):
    """Store the sample health index (or ``health``) from a file, as `indices refresh --file`."""
    path.write_bytes(statbel_text(statbel_rows(health)))
    result = app.test_cli_runner().invoke(args=["indices", "refresh", "--file", str(path)])
    assert result.exit_code == 0, result.output


INDEXATION = {"amount": 850, "base_year": 2013, "start_month": "2019-04", "target_month": "2020-09"}


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/indices/health", None),
        # Not a latest month: not in the summary.
        ("/indices/health/2020-10", None),
        ("/indices/health/2019-04?base_year=2013", None),
        ("/indices/health/history?base_year=2013", None),
        ("/indices/health/history?base_year=1988&page=2&page_size=3", None),
        # Past any series: only the total is read.
        ("/indices/health/history?base_year=2013&page=99999999999999999999", None),
        ("/indices/health/indexation", INDEXATION),
    ],
)
def test_repeated_index_reads_make_no_round_trip_to_redis(
    make_app, services_config, monkeypatch, tmp_path, path, body
):
    app = make_app(**services_config)
    import_index(app, tmp_path / "cpi.txt")
    commands = redis_commands_of_this_thread(app, monkeypatch)
    reader = app.test_client()

    def read_without_a_round_trip():
        commands.clear()
        headers = {"X-API-Key": TEST_KEY}
        if body is None:
            response = reader.get(path, headers=headers)
        else:
            response = reader.post(path, json=body, headers=headers)
        assert response.status_code == 200, response.get_json()
        return commands == []

    wait_for(read_without_a_round_trip)


@pytest.mark.parametrize(
    "path", ["/indices/health/2020-10?base_year=2013", "/indices/health/history?base_year=2013"]
)
def test_a_refresh_from_another_process_is_seen_by_the_next_read(
    make_app, services_config, tmp_path, path
):
    # The reader's near cache holds the month (or the page); the refresh runs elsewhere (another
    # worker, or `flask indices refresh` on the command line) and the next read has its value.
    first, second = make_app(**services_config), make_app(**services_config)
    import_index(second, tmp_path / "first.txt")
    reader = first.test_client()
    headers = {"X-API-Key": TEST_KEY}
    near = near_of(first)

    def october(response):
        body = response.get_json()
        items = body.get("items", [body | {"month": "2020-10"}])
        return next(item["value"] for item in items if item["month"] == "2020-10")

    wait_for(lambda: october(reader.get(path, headers=headers)) == 110.11 and len(near) >= 2)
    held = len(near)
    revised = {**HEALTH, (2020, 10): {**HEALTH[(2020, 10)], 2013: ("110.12", "107.86")}}
    import_index(second, tmp_path / "revised.txt", revised)
    assert len(near) < held
    assert october(reader.get(path, headers=headers)) == 110.12


def test_a_write_through_another_worker_is_seen_by_the_next_read(make_app, services_config):
    first, second = make_app(**services_config), make_app(**services_config)
    reader, writer = first.test_client(), second.test_client()
    headers = {"X-API-Key": TEST_KEY}
    near = near_of(first)
    for version in range(1, 31):
        saved = writer.post("/save", json={"key": "doc", "value": version}, headers=headers)
        assert saved.json["version"] == version
        # The read right after the write returned sees it...
        assert reader.get("/get/doc", headers=headers).json["value"] == version
        # ... though the reader's near cache held the entry the write replaced.
        wait_for(
            lambda: (
                reader.get("/get/doc", headers=headers).json["value"] == version  # noqa: B023
                and store_key("doc") in near
            )
        )


def test_a_delete_through_another_worker_is_seen_by_the_next_read(make_app, services_config):
    first, second = make_app(**services_config), make_app(**services_config)
    reader, writer = first.test_client(), second.test_client()
    headers = {"X-API-Key": TEST_KEY}
    assert writer.post("/save", json={"key": "doc", "value": 1}, headers=headers).status_code in (
        200,
        201,
    )
    near = near_of(first)
    wait_for(
        lambda: (
            reader.get("/get/doc", headers=headers).status_code == 200 and store_key("doc") in near
        )
    )
    assert writer.delete("/delete/doc", headers=headers).status_code == 204
    assert reader.get("/get/doc", headers=headers).status_code == 404


def test_a_change_made_in_redis_by_anything_else_is_dropped(
    make_app, services_config, redis_client
):
    # An older release, another service or an operator: Redis itself names the changed key.
    app = make_app(**services_config)
    warm(app, "k", "old")
    near = near_of(app)
    redis_client.set(backend(app).key_prefix + "k", "anything")
    wait_for(lambda: len(near) == 0)
    assert near.get("k") is None


def test_a_change_right_after_the_layer_read_a_key_drops_it(
    make_app, services_config, redis_client, monkeypatch
):
    # Redis sends the invalidation after the answer that read the key: the layer keeps the
    # answer, then drops it, never the other way round.
    app = make_app(**services_config)
    warm(app, "other", 1)
    near = near_of(app)
    name = backend(app).key_prefix + "k"
    keep_answer = near._keep_answer

    def change_then_keep(key, raw):
        redis_client.set(name, b"!" + pickle.dumps("changed"))
        keep_answer(key, raw)

    monkeypatch.setattr(near, "_keep_answer", change_then_keep)
    assert read(app, "k", "first") == "first"
    assert read(app, "k") == "first"
    wait_for(lambda: read(app, "k") == "changed")
    assert all(read(app, "k") == "changed" for _ in range(20))


def test_a_listener_that_does_not_answer_stops_serving_and_a_write_waits_for_it(
    make_app, services_config, caplog
):
    first, second = make_app(**services_config), make_app(**services_config)
    reader, writer = first.test_client(), second.test_client()
    headers = {"X-API-Key": TEST_KEY}
    stuck = near_of(first)
    for near in (stuck, near_of(second)):
        near.freshness = 0.5
    assert writer.post("/save", json={"key": "doc", "value": 1}, headers=headers).status_code in (
        200,
        201,
    )
    wait_for(
        lambda: (
            reader.get("/get/doc", headers=headers).json["value"] == 1
            and stuck.get(store_key("doc")) is not None
        )
    )
    # The reader's listener hangs on the next thing Redis sends it (the write's invalidation).
    release = threading.Event()
    apply = stuck._apply
    stuck._apply = lambda push, me: release.wait(10) and apply(push, me)
    try:
        with caplog.at_level(logging.WARNING, logger="refapi.cache"):
            assert writer.post(
                "/save", json={"key": "doc", "value": 2}, headers=headers
            ).status_code in (200, 201)
        assert "did not acknowledge" in caplog.text
        assert reader.get("/get/doc", headers=headers).json["value"] == 2
    finally:
        release.set()


def test_losing_the_listeners_connection_empties_the_layer_until_it_is_back(
    make_app, services_config, redis_client
):
    app = make_app(**services_config)
    warm(app, "k", "v")
    near = near_of(app)
    host, port = near._socket.getsockname()[:2]
    redis_client.client_kill(f"{host}:{port}")
    wait_for(lambda: len(near) == 0)
    assert near.get("k") is None
    # It listens again by itself, and holds what is read after that.
    warm(app, "k", "v")


def test_the_layer_keeps_within_its_byte_budget_oldest_out_first(
    make_app, services_config, monkeypatch
):
    app = make_app(**services_config, NEAR_CACHE_BYTES=1000)
    near = near_of(app)
    for number in range(6):
        warm(app, f"k{number}", str(number) * 300)
        assert near.size <= 1000
    assert "k5" in near
    assert "k0" not in near
    # A value larger than the whole budget is read from Redis every time, never kept, and the
    # listener is not asked to read it again only to drop it.
    asked = []
    send = near._send
    monkeypatch.setattr(near, "_send", lambda *args: asked.append(args[1]) or send(*args))
    for _ in range(3):
        assert read(app, "large", "x" * 2000) == "x" * 2000
    assert "large" not in near
    assert ("fill", "large") not in asked
    assert "k5" in near


def test_each_hit_gets_its_own_copy(make_app, services_config):
    app = make_app(**services_config)
    warm(app, "k", {"months": ["2026-10"]})
    read(app, "k")["months"].append("changed by a caller")
    assert read(app, "k") == {"months": ["2026-10"]}


def test_without_a_budget_there_is_no_near_cache(make_app, services_config):
    app = make_app(**services_config, NEAR_CACHE_BYTES=0)
    assert near_of(app) is None
    assert read(app, "k", 1) == 1
    assert read(app, "k", 2) == 1


def test_a_redis_that_refuses_tracking_leaves_the_layer_off_and_says_so(
    make_app, services_config, monkeypatch, caplog
):
    app = make_app(**services_config)
    near = near_of(app)

    send_command = redis.connection.Connection.send_command

    def refuse(self, *args, **kwargs):
        if args[:2] == ("CLIENT", "TRACKING"):
            raise redis.exceptions.ResponseError("unknown subcommand 'TRACKING'")
        return send_command(self, *args, **kwargs)

    monkeypatch.setattr(redis.connection.Connection, "send_command", refuse)
    with caplog.at_level(logging.ERROR, logger="refapi.cache"):
        assert read(app, "k", 1) == 1
        wait_for(lambda: "near cache off" in caplog.text)
    monkeypatch.undo()
    assert read(app, "k", 2) == 1
    assert read(app, "k", 3) == 1
    assert "k" not in near


def test_deployments_that_differ_only_by_database_do_not_wait_for_each_other(
    make_app, services_config, caplog
):
    url = redis.connection.parse_url(services_config["REDIS_URL"])
    other_database = 14 if url.get("db", 0) != 14 else 13
    other_url = services_config["REDIS_URL"].rsplit("/", 1)[0] + f"/{other_database}"
    writer = make_app(**services_config)
    other = make_app(**{**services_config, "REDIS_URL": other_url})
    try:
        warm(other, "k", 1)
        with caplog.at_level(logging.WARNING, logger="refapi.cache"):
            assert backend(writer).delete("k") is False
        assert "did not acknowledge" not in caplog.text
        assert "k" in near_of(other)
    finally:
        with other.app_context():
            flask_cache.clear()


def test_an_entry_past_the_cache_timeout_is_read_again_and_kept_again(
    make_app, services_config, monkeypatch
):
    app = make_app(**services_config, CACHE_DEFAULT_TIMEOUT=1)
    near = near_of(app)
    wait_for(lambda: read(app, "k", "first") == "first" and near.get("k") is not None)
    # Redis's own expiry would invalidate the entry too: the layer must not need it.
    with monkeypatch.context() as deaf:
        deaf.setattr(near, "_drop", lambda names: None)
        time.sleep(1.1)
        assert near.get("k") is None
    # Redis's copy expired too: the value is loaded again, then held again.
    wait_for(lambda: read(app, "k", "second") == "second" and near.get("k") is not None)


def test_a_write_whose_wait_for_acknowledgements_fails_still_waits_out_the_freshness(
    make_app, services_config, monkeypatch, caplog
):
    # Redis ran the invalidation; only the wait failed (a timeout, say). The write must not
    # answer while a worker that did not acknowledge may still serve the old value.
    first, second = make_app(**services_config), make_app(**services_config)
    reader, writer = first.test_client(), second.test_client()
    headers = {"X-API-Key": TEST_KEY}
    stuck, waiting = near_of(first), near_of(second)
    for near in (stuck, waiting):
        near.freshness = 0.5
    assert writer.post("/save", json={"key": "doc", "value": 1}, headers=headers).status_code == 201
    wait_for(
        lambda: (
            reader.get("/get/doc", headers=headers).json["value"] == 1 and store_key("doc") in stuck
        )
    )
    release = threading.Event()
    apply = stuck._apply
    monkeypatch.setattr(stuck, "_apply", lambda *args: release.wait(10) and apply(*args))

    class FailingWaits:
        def blpop(self, *args, **kwargs):
            raise redis.exceptions.TimeoutError("Timeout reading from socket")

    monkeypatch.setattr(waiting, "_waiter", FailingWaits)
    try:
        with caplog.at_level(logging.WARNING, logger="refapi.cache"):
            saved = writer.post("/save", json={"key": "doc", "value": 2}, headers=headers)
        assert saved.status_code == 200
        assert "waiting for acknowledgements failed" in caplog.text
        assert reader.get("/get/doc", headers=headers).json["value"] == 2
        # The invalidation itself went through: nothing to empty when Redis answers again.
        assert backend(second)._must_flush is False
    finally:
        release.set()


def test_a_listener_whose_connection_a_failed_send_closed_starts_again_with_tracking(
    make_app, services_config, redis_client, monkeypatch
):
    app = make_app(**services_config)
    warm(app, "k", "v")
    near = near_of(app)
    name = backend(app).key_prefix + "k"
    # While the listener is busy with something Redis sent, a request's send fails, and
    # redis-py closes the connection, as it does when a send fails.
    busy, release = threading.Event(), threading.Event()
    apply = near._apply

    def slow_apply(*args):
        busy.set()
        release.wait(10)
        apply(*args)

    monkeypatch.setattr(near, "_apply", slow_apply)
    redis_client.set(name, b"!" + pickle.dumps("changed"))
    assert busy.wait(5)
    connection = near._connection

    def failing_send(*args, **kwargs):
        connection.disconnect()
        raise redis.exceptions.ConnectionError("Error 32 while writing to socket")

    monkeypatch.setattr(connection, "send_command", failing_send)
    near.fill("other", 10)
    monkeypatch.undo()
    release.set()
    # It starts again on a tracked connection: it serves, and hears of changes.
    warm(app, "k", "changed")
    redis_client.set(name, b"!" + pickle.dumps("changed again"))
    wait_for(lambda: "k" not in near)


def test_the_unread_data_check_works_past_select_s_descriptor_limit(make_app, services_config):
    # A worker with many connections gives the listener's socket a descriptor past 1024, where
    # select() fails: the layer would never serve again.
    near = near_of(make_app(**services_config))
    # Descriptor 1500 must be allowed: raise a soft limit of 1024 (a common default) as far as
    # the hard limit lets, for this test only.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft <= 1500:
        resource.setrlimit(resource.RLIMIT_NOFILE, (1501, hard))
    ours, theirs = socket.socketpair()
    high = socket.socket(fileno=os.dup2(ours.fileno(), 1500))
    try:
        near._socket = high
        assert near._behind() is False
        theirs.send(b"an invalidation")
        assert near._behind() is True
    finally:
        near._socket = None
        for end in (high, ours, theirs):
            end.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.fixture
def held_listener(make_app, services_config, monkeypatch):
    """An app whose near cache holds "k", and a listener kept from reading until released."""
    app = make_app(**services_config)
    warm(app, "k", "v")
    near = near_of(app)
    connection = near._connection
    can_read = connection.can_read
    waiting, release = threading.Event(), threading.Event()

    def held(*args, **kwargs):
        waiting.set()
        release.wait(30)  # longer than any wait_for: the test, not a timeout, releases it
        return can_read(*args, **kwargs)

    monkeypatch.setattr(connection, "can_read", held)
    assert waiting.wait(5)
    # Fresh for the whole test, heartbeats or not: only what the test does stops the serving.
    near._fresh_until = time.monotonic() + 60
    yield app, near
    release.set()


def test_a_hit_is_passed_over_while_the_listener_has_unread_data(held_listener, monkeypatch):
    # Any unread data, even the answer to one of the listener's own commands: when Redis drops a
    # listener that has fallen behind, the end of the connection waits behind what Redis still
    # has to send, and only the unread data tells (benchmarks/results/3-december-midday).
    app, near = held_listener
    near.fill("other", 10)  # Redis answers it on the listener's connection; nobody reads it yet
    wait_for(lambda: bool(select.select([near._socket], [], [], 0)[0]))
    assert near.get("k") is None
    assert "k" in near
    commands = redis_commands_of_this_thread(app, monkeypatch)
    assert read(app, "k") == "v"
    assert commands == ["EVALSHA"]


def test_a_hit_is_passed_over_once_redis_closed_the_listeners_connection(
    held_listener, redis_client
):
    # Redis no longer counts this listener in fences: a write elsewhere would not wait for it.
    app, near = held_listener
    host, port = near._socket.getsockname()[:2]
    redis_client.client_kill(f"{host}:{port}")
    wait_for(lambda: near.get("k") is None)
    assert "k" in near  # the listener has not read the end of its connection yet
    redis_client.set(backend(app).key_prefix + "k", b"!" + pickle.dumps("changed"))
    assert read(app, "k") == "changed"


def test_a_forked_child_starts_with_an_empty_layer_of_its_own(make_app, services_config):
    app = make_app(**services_config)
    warm(app, "k", "v")
    near = near_of(app)
    with warnings.catch_warnings():
        # Python 3.12 and later warn about forking a process with threads; gunicorn does it.
        warnings.simplefilter("ignore", DeprecationWarning)
        child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through its exit status
        inherited = len(near) or near._connection is not None or near._listener is not None
        os._exit(1 if inherited or near.get("k") is not None else 0)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert near.get("k") is not None


def test_emptying_the_cache_leaves_fences_acknowledgements_to_their_writers(
    make_app, services_config, redis_client
):
    app = make_app(**services_config)
    cache = backend(app)
    acknowledgement = cache.key_prefix + "near-ack:a-writer-waits-for-it"
    redis_client.rpush(acknowledgement, 1)
    cache.set("store.json.entry", 1)
    assert cache.clear() is True
    assert cache.get("store.json.entry") is None
    assert redis_client.llen(acknowledgement) == 1
    redis_client.delete(acknowledgement)


def test_an_error_answer_to_an_acknowledgement_leaves_the_listener_serving(
    make_app, services_config, monkeypatch, redis_client, caplog
):
    # Redis may refuse an acknowledgement (out of memory, say). The writer then waits out the
    # freshness instead; the listener goes on, on the same connection, with what it holds.
    first, second = make_app(**services_config), make_app(**services_config)
    listening = near_of(first)
    for near in (listening, near_of(second)):
        near.freshness = 0.5
    warm(first, "held", "kept")
    warm(first, "k", "old")
    connection = listening._connection
    not_a_list = f"{listening._prefix}not-a-list"
    redis_client.set(not_a_list, "RPUSH onto a string is an error answer")
    send = listening._send

    def refused_acknowledgements(connection, marker, *commands):
        if marker[0] == "ack":
            commands = tuple(
                ("RPUSH", not_a_list, 1) if command[0] == "RPUSH" else command
                for command in commands
            )
        return send(connection, marker, *commands)

    monkeypatch.setattr(listening, "_send", refused_acknowledgements)
    with caplog.at_level(logging.WARNING, logger="refapi.cache"), second.app_context():
        flask_cache.delete("k")
    assert "did not acknowledge" in caplog.text
    assert read(first, "k", "new") == "new"
    assert listening._connection is connection
    assert "held" in listening
    redis_client.delete(not_a_list)


def test_in_a_gevent_worker_a_hit_checks_for_invalidations_without_waiting_on_the_hub():
    # gevent's poll waits on its hub even for a zero timeout: each hit let every other greenlet
    # of the worker run first (a cached read's p99 twice as long under load).
    script = (
        "from gevent import monkey\n"
        "monkey.patch_all()\n"
        "import select\n"
        "from refapi import nearcache\n"
        "assert select.poll is not monkey.get_original('select', 'poll')\n"
        "assert nearcache._poll is monkey.get_original('select', 'poll'), nearcache._poll\n"
    )
    ran = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    assert ran.returncode == 0, ran.stderr
