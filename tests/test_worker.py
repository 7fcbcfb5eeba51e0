"""refapi.worker: gunicorn's own refusals, as problems; the body the app left, read before its
answer (tests/e2e/test_bodies.py has the same over a real server)."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import sys
import threading
import types
from collections.abc import Callable, Iterator

import gevent
import gevent.local
import gevent.socket
import pytest
from gunicorn.config import Config
from gunicorn.http import errors as http_errors
from gunicorn.http.parser import RequestParser
from gunicorn.http.unreader import SocketUnreader
from gunicorn.workers.ggevent import GeventWorker as GunicornGeventWorker
from gunicorn.workers.gthread import ThreadWorker as GthreadWorker

from refapi import gevent_worker as refapi_gevent_worker
from refapi.errors import problem_type
from refapi.gevent_worker import GeventWorker
from refapi.worker import ProblemPages, ThreadWorker


class Log:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.failures: list[str] = []  # the lines logged with a traceback

    def _record(self, message: str, *args: object, **_: object) -> None:
        self.lines.append(message % args if args else message)

    warning = debug = _record

    def exception(self, message: str, *args: object, **_: object) -> None:
        self._record(message, *args)
        self.failures.append(self.lines[-1])

    def access(self, *_: object) -> None:
        pass  # gunicorn's access log line: not what these tests look at


@pytest.fixture(params=[ThreadWorker, GeventWorker], ids=["gthread", "gevent"])
def worker(request: pytest.FixtureRequest) -> ProblemPages:
    # Only what handle_error uses: no process, no sockets of its own.
    found = request.param.__new__(request.param)
    found.cfg, found.log = Config(), Log()
    return found


def refused(worker: ProblemPages, exc: Exception) -> tuple[str, dict[str, str], dict]:
    server, client = socket.socketpair()
    with server, client:
        client.shutdown(socket.SHUT_WR)  # the request is all sent: a closing server reads no more
        worker.handle_error(None, server, ("127.0.0.1", 5000), exc)
        server.close()
        received = b""
        while chunk := client.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    return status_line, dict(line.split(": ", 1) for line in lines), json.loads(body)


def test_a_malformed_header_is_a_400_problem(worker):
    status_line, headers, problem = refused(worker, http_errors.InvalidHeaderName("Bad Name"))
    assert status_line == "HTTP/1.1 400 Bad Request"
    assert headers["Content-Type"] == "application/problem+json"
    assert int(headers["Content-Length"]) == len(json.dumps(problem, separators=(",", ":")))
    assert problem == {
        "type": problem_type("BAD_REQUEST"),
        "title": "Bad Request",
        "status": 400,
        "detail": "A request header is malformed.",
        "code": "BAD_REQUEST",
    }
    # gunicorn's own warning is still logged, and nothing of the request is echoed back.
    assert worker.log.lines == [
        "Invalid request from ip=127.0.0.1: Invalid HTTP header name: 'Bad Name'"
    ]


def test_a_response_header_the_app_may_not_send_is_a_500_that_names_nothing(worker):
    # InvalidResponseHeader is an InvalidHeader, but the app's fault.
    exc = http_errors.InvalidResponseHeader("X-Bad\n")
    status_line, _, problem = refused(worker, exc)
    assert status_line == "HTTP/1.1 500 Internal Server Error"
    assert (problem["code"], problem["detail"]) == (
        "INTERNAL_ERROR",
        "The server failed to handle the request.",
    )


def test_a_client_already_gone_is_only_a_debug_line(worker):
    server, client = socket.socketpair()
    client.close()
    with server:
        worker.handle_error(None, server, ("127.0.0.1", 5000), http_errors.InvalidRequestLine("x"))
    assert worker.log.lines[-1] == "Failed to send error message."


@pytest.fixture
def connection() -> Iterator[tuple[socket.socket, socket.socket]]:
    server, client = socket.socketpair()
    with server, client:
        server.settimeout(10)
        yield server, client


def serving(
    server: socket.socket, client: socket.socket, raw: bytes, *, later: bytes = b""
) -> types.SimpleNamespace:
    """gthread's connection that has received ``raw`` (``later`` comes half a second after):
    the request's head parsed, its body unread."""
    if len(raw) < 65536:
        client.sendall(raw)  # all there before the app answers
    else:
        threading.Thread(target=_send, args=(client, raw), daemon=True).start()
    if later:
        threading.Timer(0.5, _send, args=(client, later)).start()
    parser = RequestParser(Config(), server, ("127.0.0.1", 5000))
    next(parser)
    return types.SimpleNamespace(parser=parser, sock=server)


def _send(client: socket.socket, data: bytes) -> None:
    with contextlib.suppress(OSError):  # the test may close the connection before
        client.sendall(data)


KEEPING = types.SimpleNamespace(must_close=False)  # gunicorn's Response, not closing


def post(head: bytes, body: bytes = b"") -> bytes:
    return b"POST /save HTTP/1.1\r\nHost: x\r\n" + head + b"\r\n" + body


def test_a_short_body_the_app_left_is_read_and_the_connection_kept(connection):
    conn = serving(*connection, post(b"Content-Length: 1000\r\n", b" " * 1000 + b"GET / HTTP/1.1"))
    ThreadWorker._finish_body(conn, KEEPING)
    assert conn.parser.mesg.must_close is False
    assert conn.parser.mesg.body.read() == b""
    assert conn.parser.unreader.read().startswith(b"GET / HTTP/1.1")  # the next request, whole


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(post(b"Content-Length: 200000\r\n", b" " * 200_000), id="over-64-KiB"),
        pytest.param(
            post(b"Transfer-Encoding: chunked\r\n", b"5\r\nhello\r\nzz\r\n"), id="malformed"
        ),
    ],
)
def test_a_body_the_app_left_that_cannot_be_read_closes_the_connection(connection, raw):
    conn = serving(*connection, raw)
    ThreadWorker._finish_body(conn, KEEPING)  # without raising: the answer still goes out
    assert conn.parser.mesg.must_close is True


def test_a_request_that_closes_the_connection_anyway_has_nothing_read(connection):
    conn = serving(*connection, post(b"Connection: close\r\nContent-Length: 10\r\n", b"x" * 10))
    ThreadWorker._finish_body(conn, KEEPING)
    assert conn.parser.mesg.body.read(10) == b"x" * 10


def test_a_body_still_on_its_way_is_not_waited_for_and_the_answer_says_close(connection):
    # It was waited for, up to 1 KiB per wait of at most 5 s: a client sending a byte now and
    # then held its own 401 or 413 (twenty seconds for 100 bytes, one every 0.2 s).
    conn = serving(*connection, post(b"Content-Length: 10\r\n", b"hello"), later=b"world")
    ThreadWorker._finish_body(conn, KEEPING)
    assert conn.parser.mesg.must_close is True
    assert connection[0].gettimeout() == 10  # the socket as gthread left it


def test_an_answer_gunicorn_closes_after_anyway_has_nothing_read(connection):
    # max_requests reached, the worker stopping, keep-alive off: gunicorn has decided to close.
    conn = serving(*connection, post(b"Content-Length: 10\r\n", b"x" * 10))
    ThreadWorker._finish_body(conn, types.SimpleNamespace(must_close=True))
    assert conn.parser.mesg.body.read(10) == b"x" * 10


def test_the_app_is_wrapped_to_read_the_body_it_left_once_it_has_answered(connection):
    conn = serving(*connection, post(b"Content-Length: 5\r\n", b"hello"))
    worker = ThreadWorker.__new__(ThreadWorker)
    worker._serving = threading.local()
    worker.cfg, worker.log = Config(), Log()
    worker.app = types.SimpleNamespace(wsgi=lambda: lambda environ, start_response: [b"answer"])
    worker.load_wsgi()
    assert worker.wsgi({}, None) == [b"answer"]  # HTTP/2 streams: no connection, nothing read
    assert conn.parser.mesg.body.reader.length == 5
    with worker.serving(conn):
        assert worker.wsgi({}, None) == [b"answer"]
    assert conn.parser.mesg.body.reader.length == 0


# How gunicorn's handle_request can end: the connection kept, closed after the answer
# (StopIteration), or the client gone.
ENDINGS = [
    pytest.param(None, id="kept-alive"),
    pytest.param(StopIteration, id="closing"),
    pytest.param(ConnectionResetError, id="client-gone"),
]


def ended(ending: type[BaseException] | None) -> contextlib.AbstractContextManager[object]:
    return contextlib.nullcontext() if ending is None else pytest.raises(ending)


@pytest.mark.parametrize("ending", ENDINGS)
def test_a_gthread_worker_knows_the_connection_while_it_serves_a_request_and_only_then(
    monkeypatch, ending
):
    seen = []

    def gunicorns(self: ThreadWorker, req: object, conn: object) -> bool:
        seen.append(self._serving.connection)
        if ending is not None:
            raise ending
        return True  # gthread's: keep the connection

    monkeypatch.setattr(GthreadWorker, "handle_request", gunicorns)
    worker = ThreadWorker.__new__(ThreadWorker)
    worker._serving = threading.local()
    conn = types.SimpleNamespace()
    with ended(ending):
        assert worker.handle_request(None, conn) is True
    assert seen == [conn]
    assert worker._serving.connection is None


@pytest.mark.parametrize("ending", ENDINGS)
def test_a_gevent_worker_knows_the_connection_while_it_serves_a_request_and_only_then(
    monkeypatch, connection, ending
):
    server, client = connection
    client.shutdown(socket.SHUT_WR)  # a closing connection lingers for nothing more
    req = types.SimpleNamespace(unreader=SocketUnreader(server))
    seen = []

    def gunicorns(self: GeventWorker, listener_name: object, *_: object) -> None:
        seen.append(self._serving.connection)
        if ending is not None:
            raise ending

    monkeypatch.setattr(GunicornGeventWorker, "handle_request", gunicorns)
    worker = GeventWorker.__new__(GeventWorker)
    worker._serving, worker._waiting, worker._shut = gevent.local.local(), {}, set()
    worker.alive = True
    with ended(ending):
        worker.handle_request(("127.0.0.1", 5000), req, server, ("127.0.0.1", 5000))
    [served] = seen
    assert (served.parser.mesg, served.parser.unreader, served.sock) == (req, req.unreader, server)
    assert worker._serving.connection is None


def answer(environ: dict, start_response: Callable[..., object]) -> list[bytes]:
    start_response("200 OK", [("Content-Length", "2")])
    return [b"ok"]


def gevent_worker() -> GeventWorker:
    """refapi's gevent worker as far as serving a connection goes, with gunicorn's own loop and
    request handling, answering `answer`."""
    worker = GeventWorker.__new__(GeventWorker)
    worker._serving, worker._waiting, worker._shut = gevent.local.local(), {}, set()
    worker.cfg, worker.log = Config(), Log()
    worker.nr, worker.max_requests, worker.alive = 0, sys.maxsize, True
    worker.app = types.SimpleNamespace(wsgi=lambda: answer)
    worker.load_wsgi()
    return worker


LISTENER = types.SimpleNamespace(getsockname=lambda: ("127.0.0.1", 5000))
GET = b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n"


def received(client: socket.socket) -> bytes:
    data = b""
    while chunk := client.recv(65536):
        data += chunk
    return data


def answers(data: bytes) -> list[bytes]:
    """The status lines of the answers in what a client received."""
    return re.findall(rb"HTTP/1\.1 [0-9]{3} [^\r]*", data)


def test_a_gevent_worker_yields_to_other_greenlets_after_each_request(monkeypatch, connection):
    server, client = connection
    client.sendall(GET + GET)
    client.shutdown(socket.SHUT_WR)
    yields = []
    monkeypatch.setattr(gevent, "sleep", lambda seconds=0: yields.append(seconds))
    worker = gevent_worker()
    worker.handle(LISTENER, server, ("127.0.0.1", 5000))
    assert answers(received(client)) == [b"HTTP/1.1 200 OK"] * 2
    assert yields == [0, 0]


def test_a_gevent_worker_stopped_while_others_run_ends_the_connection_after_its_answer(
    monkeypatch, connection
):
    # The stop (gevent's kill: GreenletExit) comes during the yield after an answer has gone
    # out. It ends the connection as an answer that said Connection: close does (StopIteration),
    # not as a failed request: gunicorn would log an error and send a 500 after the 200.
    server, client = connection
    client.sendall(GET + GET)
    client.shutdown(socket.SHUT_WR)

    def stopped(seconds: float = 0) -> None:
        raise gevent.GreenletExit

    monkeypatch.setattr(gevent, "sleep", stopped)
    worker = gevent_worker()
    worker.handle(LISTENER, server, ("127.0.0.1", 5000))
    assert answers(received(client)) == [b"HTTP/1.1 200 OK"]  # the second request is not served
    assert worker.log.failures == []


def test_a_gevent_worker_stopped_while_a_closing_connection_lingers_ends_quietly():
    # After an answer that said Connection: close, the worker reads what the client still sends
    # for up to 2 seconds (util.close_graceful). A stop then ends the connection, closed, as
    # without the stop, not as a failed request (an error logged, a 500 sent to a closed socket).
    server, client = gevent.socket.socketpair()
    with server, client:
        client.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        worker = gevent_worker()
        serving_greenlet = gevent.spawn(worker.handle, LISTENER, server, ("127.0.0.1", 5000))
        # The answer, and the end of it: the worker has shut its side and lingers.
        assert answers(received(client)) == [b"HTTP/1.1 200 OK"]
        assert not serving_greenlet.dead
        serving_greenlet.kill()  # GreenletExit in the linger's wait
        assert serving_greenlet.successful()
        assert server.fileno() == -1
        assert worker.log.failures == []


# A stopping gevent worker and the kept-alive connections waiting for their next request.
LINGER = 0.2


@pytest.fixture
def kept_alive(monkeypatch) -> Iterator[tuple[GeventWorker, gevent.Greenlet, socket.socket]]:
    """A gevent worker serving a connection that has had one answer and waits for its next
    request (gunicorn's keep-alive of 60 s), a stop lingering `LINGER`."""
    monkeypatch.setattr(refapi_gevent_worker, "STOP_KEEPALIVE_LINGER", LINGER)
    server, client = gevent.socket.socketpair()
    with server, client:
        worker = gevent_worker()
        worker.cfg.set("keepalive", 60)
        serving_greenlet = gevent.spawn(worker.handle, LISTENER, server, ("127.0.0.1", 5000))
        client.sendall(GET)
        assert one_answer(client).startswith(b"HTTP/1.1 200 OK")
        gevent.sleep(0.01)  # the worker's greenlet is back in its read
        yield worker, serving_greenlet, client
        serving_greenlet.kill()


def one_answer(client: socket.socket) -> bytes:
    """One answer of `answer`'s (its body is "ok"), leaving the connection open."""
    data = b""
    while not data.endswith(b"\r\n\r\nok"):
        chunk = client.recv(65536)
        assert chunk, f"closed after {data!r}"
        data += chunk
    return data


def test_a_stopping_gevent_worker_closes_a_connection_waiting_for_its_next_request(kept_alive):
    # gunicorn's gevent worker kept it until its keep-alive ran out, and the stop waited for it.
    worker, serving_greenlet, client = kept_alive
    worker.alive = False
    serving_greenlet.join(timeout=10)  # the keep-alive is 60 s
    assert serving_greenlet.dead
    assert client.recv(1) == b""
    assert worker.log.failures == []
    assert (worker._waiting, worker._shut) == ({}, set())


def test_a_request_that_comes_while_the_stop_lingers_is_answered_saying_close(kept_alive):
    worker, serving_greenlet, client = kept_alive
    worker.alive = False
    client.sendall(GET)
    answered = received(client)
    assert answers(answered) == [b"HTTP/1.1 200 OK"]
    assert b"Connection: close" in answered
    client.shutdown(socket.SHUT_WR)  # the worker's lingering close reads no more
    serving_greenlet.join(timeout=10)
    assert serving_greenlet.dead
    assert worker.log.failures == []


def test_a_stop_keeps_a_connection_whose_next_request_has_begun(kept_alive):
    # Part of the next request has come and been read: shutting the connection would lose it.
    worker, serving_greenlet, client = kept_alive
    client.sendall(b"GET /ping HTTP/1.1\r\n")
    gevent.sleep(0.01)  # read by the worker's greenlet, which waits for the rest
    worker.alive = False
    gevent.sleep(LINGER * 3)
    assert not serving_greenlet.dead
    client.sendall(b"Host: x\r\n\r\n")
    answered = received(client)
    assert answers(answered) == [b"HTTP/1.1 200 OK"]
    assert b"Connection: close" in answered


def test_a_stop_keeps_a_connection_whose_next_request_the_kernel_holds_unread(kept_alive):
    # The request has come, and the worker's greenlet has not run yet to read it.
    worker, serving_greenlet, client = kept_alive
    client.sendall(GET)
    [(sock, wait)] = worker._waiting.items()
    worker.alive = False
    worker._close_if_still_waiting(sock, wait)  # the linger's end, before the greenlet runs
    assert answers(received(client)) == [b"HTTP/1.1 200 OK"]
    client.shutdown(socket.SHUT_WR)
    serving_greenlet.join(timeout=10)
    assert serving_greenlet.dead
    assert worker.log.failures == []


def test_a_connection_answered_saying_keep_alive_as_the_stop_began_lingers_then_closes(
    kept_alive,
):
    # SIGTERM while the request is served: its answer said keep-alive, and the client may be
    # sending its next request already, which is answered (as above) if it comes within the
    # linger. Nothing comes: the connection is closed then, not at the end of its keep-alive.
    worker, serving_greenlet, client = kept_alive

    def stopped_while_serving(environ: dict, start_response: Callable[..., object]) -> list:
        worker.alive = False
        return answer(environ, start_response)

    worker.wsgi = stopped_while_serving
    client.sendall(GET)
    assert b"Connection: close" not in one_answer(client)
    serving_greenlet.join(timeout=10)
    assert serving_greenlet.dead
    assert client.recv(1) == b""
