"""refapi.worker: gunicorn's own refusals, as problems."""

from __future__ import annotations

import json
import socket

import pytest
from gunicorn.config import Config
from gunicorn.http import errors as http_errors

from refapi.errors import problem_type
from refapi.worker import ThreadWorker


class Log:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def _record(self, message: str, *args: object, **_: object) -> None:
        self.lines.append(message % args if args else message)

    warning = exception = debug = _record


@pytest.fixture
def worker() -> ThreadWorker:
    # Only what handle_error uses: no process, no sockets of its own.
    found = ThreadWorker.__new__(ThreadWorker)
    found.cfg, found.log = Config(), Log()
    return found


def refused(worker: ThreadWorker, exc: Exception) -> tuple[str, dict[str, str], dict]:
    server, client = socket.socketpair()
    with server, client:
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
