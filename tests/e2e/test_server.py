"""The real gunicorn server over real HTTP, in the suite's configuration."""

from __future__ import annotations

import concurrent.futures
import http.client
import itertools
import re
import signal
import subprocess
import time

import psutil
import pytest
import requests

from tests.conftest import API_KEYS, TEST_KEY
from tests.e2e.conftest import (
    BIN,
    GUNICORN_ARGS,
    PROJECT_ROOT,
    connect,
    read_answer,
    start_gunicorn,
)

pytestmark = pytest.mark.e2e


def test_ping_ready_and_authorize_over_http(serve):
    server = serve()
    assert server.get("/ping").json() == {"status": "ok"}
    ready = server.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"]["database"] == "ok"

    authorized = server.get("/authorize", headers={"X-API-Key": TEST_KEY})
    assert authorized.status_code == 200
    assert authorized.json() == {"authorized": True, "client": "tester"}

    refused = server.get("/authorize")
    assert refused.status_code == 401
    assert refused.headers["Content-Type"] == "application/problem+json"
    assert refused.headers["WWW-Authenticate"] == 'Bearer realm="refapi"'


def test_the_access_log_has_one_parseable_line_per_request_with_its_id(serve):
    server = serve()
    response = server.get("/authorize", headers={"X-API-Key": TEST_KEY, "X-Request-ID": "e2e-1"})
    assert response.headers["X-Request-ID"] == "e2e-1"
    server.stop()
    lines = [line for line in server.log.splitlines() if "request_id=e2e-1" in line]
    assert len(lines) == 1
    fields = dict(part.split("=", 1) for part in lines[0].split(" ") if "=" in part)
    assert fields["method"] == "GET"
    assert fields["path"] == '"/authorize"'
    assert fields["status"] == "200"
    assert TEST_KEY not in server.log


def test_the_log_says_where_the_server_listens(serve):
    # gunicorn's line named no address ("Listening at:  (pid)"): with reuse_port the master
    # holds no socket.
    server = serve()
    assert f"Listening at: {server.url} (" in server.log
    assert "Listening at:  (" not in server.log


def test_sigterm_is_a_clean_exit(serve):
    server = serve()
    assert server.get("/ping").status_code == 200
    assert server.stop() == 0
    with pytest.raises(requests.ConnectionError):
        server.get("/ping")


def test_without_a_key_the_server_refuses_to_start_and_says_how(tmp_path):
    env = {"PATH": str(BIN), "REFAPI_BIND": "127.0.0.1:0", "REFAPI_INSTANCE_PATH": str(tmp_path)}
    process = subprocess.run(
        [str(BIN / "gunicorn"), *GUNICORN_ARGS],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert process.returncode != 0
    assert "refapi cannot start" in process.stdout + process.stderr
    assert "REFAPI_API_KEYS" in process.stdout + process.stderr


def test_a_request_in_flight_completes_on_sigterm(serve, upstream):
    # A request that is surely in flight: the first read of the index waits for Statbel,
    # which holds its answer until the test lets go, after SIGTERM.
    upstream.held = True
    server = serve({"REFAPI_STATBEL_URL": upstream.url, "REFAPI_INDEX_REFRESH_BUDGET": "15"})
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        in_flight = pool.submit(
            server.get, "/indices/health?base_year=2013", headers={"X-API-Key": TEST_KEY}
        )
        _wait_for_statbel_to_be_asked(upstream)
        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert server.process.poll() is None, "gunicorn quit with a request in flight"
        upstream.release.set()
        response = in_flight.result(timeout=30)
    assert response.status_code == 200
    assert response.json()["month"] == "2021-01"
    assert server.process.wait(timeout=40) == 0
    server.exit_code = 0


# A keep-alive of 60 s and a graceful timeout longer still: only the keep-alive could end a stop
# that waited for a kept-alive connection.
LONG_KEEP_ALIVE = {"GUNICORN_CMD_ARGS": "--keep-alive 60", "REFAPI_GRACEFUL_TIMEOUT": "120"}
PING = b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.mark.parametrize("worker_class", ["gthread", "gevent"])
def test_a_stop_closes_kept_alive_connections_that_wait_for_a_request(serve, worker_class):
    # A proxy keeps idle connections to its upstream (nginx's keepalive). gunicorn's gevent
    # worker kept each until its keep-alive ran out, and every stop or reload waited for it.
    server = serve({"REFAPI_WORKER_CLASS": worker_class, **LONG_KEEP_ALIVE})
    with connect(server) as idle:
        idle.sendall(PING)
        status, headers, _ = read_answer(idle)
        assert (status, headers["connection"]) == (200, "keep-alive")
        server.process.send_signal(signal.SIGTERM)
        idle.settimeout(30)
        assert idle.recv(1) == b"", "the stop closed no connection"
    assert server.process.wait(timeout=30) == 0
    server.exit_code = 0


@pytest.mark.parametrize("worker_class", ["gthread", "gevent"])
def test_the_request_after_one_answered_during_a_stop_is_answered_saying_close(
    serve, upstream, worker_class
):
    # The answer to a request in flight at SIGTERM said keep-alive, so the client may send its
    # next request on the connection at once: it is answered, not met by a closed socket.
    upstream.held = True
    server = serve(
        {
            "REFAPI_WORKER_CLASS": worker_class,
            "REFAPI_STATBEL_URL": upstream.url,
            "REFAPI_INDEX_REFRESH_BUDGET": "15",
            **LONG_KEEP_ALIVE,
        }
    )
    with connect(server) as connection:
        connection.sendall(
            b"GET /indices/health?base_year=2013 HTTP/1.1\r\nHost: x\r\n"
            b"X-API-Key: " + TEST_KEY.encode() + b"\r\n\r\n"
        )
        _wait_for_statbel_to_be_asked(upstream)
        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        upstream.release.set()
        connection.settimeout(30)
        status, headers, _ = read_answer(connection)
        assert (status, headers["connection"]) == (200, "keep-alive")
        connection.sendall(PING)
        status, headers, _ = read_answer(connection)
        assert (status, headers["connection"]) == (200, "close")
        assert connection.recv(1) == b""
    assert server.process.wait(timeout=30) == 0
    server.exit_code = 0


def test_keep_alive_connections_opened_at_once_are_spread_over_the_workers(serve):
    # A proxy's pool or a load generator opens its connections in a burst and keeps them. With
    # one shared listening socket, one worker could take them all and leave the others idle.
    server = serve({"REFAPI_WORKERS": "2"})
    port = int(server.url.rsplit(":", 1)[1])
    workers = _listening_workers(server, port, count=2)
    connections = [http.client.HTTPConnection("127.0.0.1", port, timeout=10) for _ in range(24)]
    try:
        for connection in connections:
            connection.connect()
        for connection in connections:
            connection.request("GET", "/ping")
            assert connection.getresponse().read() == b'{"status":"ok"}\n'
        held = [
            sum(
                1
                for socket in worker.net_connections(kind="tcp")
                if socket.status == psutil.CONN_ESTABLISHED and socket.laddr.port == port
            )
            for worker in workers
        ]
    finally:
        for connection in connections:
            connection.close()
    assert sum(held) == 24
    # The kernel spreads connections by hash: all 24 on one worker has odds of 2 in 2**24.
    assert min(held) > 0, held


def _listening_workers(server, port, *, count):
    """The server's workers, once ``count`` of them listen on ``port`` (each has its socket)."""
    deadline = time.monotonic() + 30
    while True:
        workers = psutil.Process(server.process.pid).children()
        listening = [
            worker
            for worker in workers
            if any(
                socket.status == psutil.CONN_LISTEN and socket.laddr.port == port
                for socket in worker.net_connections(kind="tcp")
            )
        ]
        if len(listening) == count:
            return listening
        assert time.monotonic() < deadline, f"{len(listening)} of {count} workers listen"
        time.sleep(0.1)


def test_on_any_free_port_every_worker_serves_the_one_port_the_log_names(tmp_path):
    env = {
        "PATH": str(BIN),
        "REFAPI_API_KEYS": API_KEYS,
        "REFAPI_BIND": "127.0.0.1:0",
        "REFAPI_WORKERS": "2",
        "REFAPI_INSTANCE_PATH": str(tmp_path),
    }
    log_path = tmp_path / "gunicorn.log"
    process = start_gunicorn(env, log_path)
    try:
        deadline = time.monotonic() + 30
        while not (
            found := re.search(r"Listening at: (http://127\.0\.0\.1:(\d+)) ", log_path.read_text())
        ):
            assert process.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
        url, port = found.group(1), int(found.group(2))
        assert port != 0
        workers = psutil.Process(process.pid).children
        while len(workers()) < 2 or any(not w.net_connections("tcp") for w in workers()):
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
        # Every worker listens on that port, and on no other.
        for worker in workers():
            listening = {
                c.laddr.port for c in worker.net_connections("tcp") if c.status == "LISTEN"
            }
            assert listening == {port}
        assert requests.get(f"{url}/ping", timeout=10).json() == {"status": "ok"}
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=40)


@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0", "[::]"])  # noqa: S104 - not bound
def test_a_second_server_on_a_port_in_use_refuses_to_start(serve, host):
    # With reuse_port its bind would succeed, and the kernel would split connections between
    # the two servers: a second `make run` on the same port must fail as a plain bind does.
    first = serve()
    port = first.url.rpartition(":")[2]
    second = subprocess.run(
        [str(BIN / "gunicorn"), *GUNICORN_ARGS],
        cwd=PROJECT_ROOT,
        env={**first.env, "REFAPI_BIND": f"{host}:{port}"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode != 0
    assert (
        f"refapi cannot start: cannot listen on {host}:{port}: a server already listens there"
        in (second.stderr)
    )
    assert first.get("/ping").status_code == 200


def test_a_gevent_worker_serves_other_connections_between_one_connections_requests(serve):
    # gunicorn serves a kept-alive connection in a loop, and a greenlet runs until it waits: a
    # connection whose next request was always there already was served to the end while every
    # other one waited (a p99 of 740 ms under wrk, for a 0.3 ms /ping).
    server = serve({"REFAPI_WORKER_CLASS": "gevent"})
    pipelined = 150
    ping = b"GET /ping HTTP/1.1\r\nHost: x\r\nUser-Agent: %s\r\n"
    with connect(server) as first, connect(server) as second:
        for connection, name in ((first, b"first"), (second, b"second")):
            connection.sendall(
                (ping % name + b"\r\n") * (pipelined - 1)
                + ping % name
                + b"Connection: close\r\n\r\n"
            )
        for connection in (first, second):
            assert _read_to_the_end(connection).count(b"HTTP/1.1 200 ") == pipelined
    server.stop()
    # The access log, in the order the answers were sent: the two connections take turns
    # (about once a request), where they were served one after the other (one turn).
    agents = re.findall(r'user_agent="(first|second)"', server.log)
    assert sorted(agents) == sorted(["first", "second"] * pipelined)
    turns = sum(1 for one, then in itertools.pairwise(agents) if one != then)
    assert turns > pipelined // 5, turns


def test_a_gevent_worker_patches_the_standard_library_before_the_app_imports_it(serve):
    # gevent names the modules that took ssl's classes before it patched them: urllib3's, when
    # the master imported the app, and an HTTPS download from Statbel blocked the whole worker.
    server = serve({"REFAPI_WORKER_CLASS": "gevent"})
    assert server.get("/ping").status_code == 200
    server.stop()
    warnings = [line for line in server.log.splitlines() if "MonkeyPatchWarning" in line]
    unpatched = {name for line in warnings for name in re.findall(r"'([\w.]+) \(", line)}
    # redis-py's asyncio client, which refapi does not use, comes with the redis package.
    assert unpatched <= {"redis.asyncio.connection"}, unpatched


def _wait_for_statbel_to_be_asked(upstream) -> None:
    deadline = time.monotonic() + 10
    while upstream.hits == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert upstream.hits == 1, "the request never reached Statbel"


def _read_to_the_end(connection) -> bytes:
    received = b""
    while chunk := connection.recv(65536):
        received += chunk
    return received
