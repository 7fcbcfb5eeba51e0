"""Requests gunicorn refuses before the app sees them, answered in the API's error format.

Raw HTTP over a socket: HTTP clients do not send such requests.
"""

from __future__ import annotations

import json

import pytest

from refapi.errors import problem_type
from tests.e2e.conftest import exchange

pytestmark = pytest.mark.e2e

HEAD = b"Host: x\r\nConnection: close\r\n"

# Each request, and the status and code gunicorn's refusal has (its HTML page before).
MALFORMED = [
    (b"GET /ping HTTP/1.1 junk\r\n" + HEAD + b"\r\n", 400, "BAD_REQUEST", "HTTP version"),
    (b"GET\r\n" + HEAD + b"\r\n", 400, "BAD_REQUEST", "request line"),
    (b"GET /ping HTTP/1.1\r\n" + HEAD + b"Bad Name: 1\r\n\r\n", 400, "BAD_REQUEST", "header"),
    (b"GET /" + b"a" * 8200 + b" HTTP/1.1\r\n" + HEAD + b"\r\n", 414, "URI_TOO_LONG", "line"),
    (
        b"GET /ping HTTP/1.1\r\n"
        + HEAD
        + b"".join(b"X-%d: 1\r\n" % n for n in range(120))
        + b"\r\n",
        431,
        "HEADERS_TOO_LARGE",
        "headers",
    ),
    (
        b"POST /save HTTP/1.1\r\n" + HEAD + b"Transfer-Encoding: br, chunked\r\n\r\n0\r\n\r\n",
        501,
        "NOT_IMPLEMENTED",
        "Transfer-Encoding",
    ),
]


def test_requests_gunicorn_refuses_are_answered_as_problems(serve):
    server = serve()
    for raw, status, code, named in MALFORMED:
        answered, headers, body = exchange(server, raw)
        assert answered == status, raw[:40]
        assert headers["content-type"] == "application/problem+json"
        assert headers["connection"] == "close"
        assert int(headers["content-length"]) == len(body)
        problem = json.loads(body)
        assert problem["status"] == status
        assert problem["code"] == code
        assert problem["type"] == problem_type(code)
        assert named in problem["detail"]
    # The API still answers, and gunicorn still logged each refusal.
    assert server.get("/ping").status_code == 200
    server.stop()
    assert server.log.count("[WARNING] Invalid request from ip=127.0.0.1: ") == len(MALFORMED)
    assert "Traceback" not in server.log
