"""Request bodies as gunicorn hands them to the app: chunked ones, malformed or over the limit.

Raw HTTP over a socket, since HTTP clients neither send a malformed chunked body nor let a test
choose the chunks.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading

import pytest
import requests

from tests.conftest import TEST_KEY
from tests.e2e.conftest import connect, exchange, read_answer

pytestmark = pytest.mark.e2e

LIMIT = 1_048_576  # REFAPI_MAX_CONTENT_LENGTH's default


def chunked(body: bytes, chunk_size: int = 65536) -> bytes:
    """``body`` in chunked encoding, in chunks of ``chunk_size`` bytes, and its last chunk."""
    parts = (body[start : start + chunk_size] for start in range(0, len(body), chunk_size))
    return b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in parts) + b"0\r\n\r\n"


def chunked_save(body: bytes, chunk_size: int = 65536) -> bytes:
    return (
        b"POST /save HTTP/1.1\r\nHost: x\r\nX-API-Key: " + TEST_KEY.encode() + b"\r\n"
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\n" + chunked(body, chunk_size)
    )


def post(
    body: bytes,
    *,
    framing: str = "length",
    path: str = "/save",
    key: str = TEST_KEY,
    content_type: str = "application/json",
) -> bytes:
    """A whole POST of ``body``, sent with Content-Length or chunked, on a kept-alive connection."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nX-API-Key: {key}\r\nContent-Type: {content_type}\r\n"
    ).encode()
    if framing == "chunked":
        return head + b"Transfer-Encoding: chunked\r\n\r\n" + chunked(body)
    return head + b"Content-Length: %d\r\n\r\n" % len(body) + body


def send_in_background(connection: socket.socket, raw: bytes) -> threading.Thread:
    """Send ``raw`` while the test reads: the server may answer, and close, before it is all in."""

    def send() -> None:
        # The server may close the connection while this sends: what some tests check.
        with contextlib.suppress(OSError):
            connection.sendall(raw)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    return sender


def padded(document: dict, size: int) -> bytes:
    encoded = json.dumps(document).encode()
    return encoded + b" " * (size - len(encoded))


def test_a_malformed_chunk_size_is_400_in_the_problem_format(serve):
    server = serve()
    raw = (
        b"POST /save HTTP/1.1\r\nHost: x\r\nX-API-Key: " + TEST_KEY.encode() + b"\r\n"
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"
    )
    status, headers, body = exchange(server, raw)
    assert status == 400
    assert headers["content-type"] == "application/problem+json"
    assert json.loads(body)["code"] == "BAD_REQUEST"
    assert "chunked" in json.loads(body)["detail"]
    server.stop()
    assert "Traceback" not in server.log


def test_a_chunked_body_over_the_limit_is_413_though_its_first_megabyte_is_valid(serve):
    server = serve()
    # Cut at the limit, this body is a valid save; it goes on with garbage after it.
    body = padded({"key": "cut", "value": "ok"}, LIMIT) + b"x" * 16384
    status, headers, answer = exchange(server, chunked_save(body))
    assert status == 413
    assert headers["content-type"] == "application/problem+json"
    problem = json.loads(answer)
    assert problem["code"] == "PAYLOAD_TOO_LARGE"
    assert problem["max_bytes"] == LIMIT
    assert server.get("/get/cut", headers={"X-API-Key": TEST_KEY}).status_code == 404


def test_a_valid_chunked_body_over_the_limit_is_413_not_malformed(serve):
    server = serve()
    body = json.dumps({"key": "big", "value": "v" * (LIMIT + 100_000)}).encode()
    status, _, answer = exchange(server, chunked_save(body))
    assert status == 413
    assert json.loads(answer)["code"] == "PAYLOAD_TOO_LARGE"


def test_a_chunked_body_of_exactly_the_limit_is_read_whole(serve):
    server = serve()
    status, _, answer = exchange(server, chunked_save(padded({"key": "at", "value": 1}, LIMIT)))
    assert status == 201, answer
    assert server.get("/get/at", headers={"X-API-Key": TEST_KEY}).json()["value"] == 1


def test_a_body_over_the_limit_with_a_content_length_is_413_stating_the_limit(serve):
    server = serve()
    response = server.request(
        "POST",
        "/save",
        data=b" " * (LIMIT + 1),
        headers={"X-API-Key": TEST_KEY, "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["max_bytes"] == LIMIT


# Bodies the app answers before reading them, longer than the 64 KiB gunicorn reads (and
# throws away) after such an answer to keep the connection: it closes the connection instead.
UNDER_THE_LIMIT = 200_000
REFUSED_UNREAD = [
    pytest.param(b" " * 1_200_000, "length", {}, 413, id="413-content-length"),
    pytest.param(b" " * 1_200_000, "chunked", {}, 413, id="413-chunked"),
    pytest.param(b" " * UNDER_THE_LIMIT, "length", {"key": "wrong"}, 401, id="401-content-length"),
    pytest.param(b" " * UNDER_THE_LIMIT, "chunked", {"key": "wrong"}, 401, id="401-chunked"),
    pytest.param(b" " * UNDER_THE_LIMIT, "length", {"content_type": "text/plain"}, 415, id="415"),
    pytest.param(b" " * UNDER_THE_LIMIT, "length", {"path": "/nowhere"}, 404, id="404"),
]


@pytest.mark.parametrize(("body", "framing", "options", "status"), REFUSED_UNREAD)
def test_an_answer_that_leaves_a_long_body_unread_says_connection_close_and_closes(
    serve, body, framing, options, status
):
    server = serve()
    with connect(server) as connection:
        sender = send_in_background(connection, post(body, framing=framing, **options))
        answered, headers, _ = read_answer(connection)
        assert answered == status
        # It said keep-alive, and the next request on the connection met a closed socket.
        assert headers["connection"] == "close"
        # Closed (reset, when some of the body was still on its way).
        with contextlib.suppress(ConnectionResetError):
            assert connection.recv(65536) == b""
        sender.join(timeout=10)


@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_an_answer_that_leaves_a_short_body_unread_keeps_the_connection(serve, framing):
    # gunicorn reads the rest (up to 64 KiB) and the connection serves the next request.
    server = serve()
    with connect(server) as connection:
        connection.sendall(post(b" " * 1000, framing=framing, key="wrong"))
        status, headers, _ = read_answer(connection)
        assert (status, headers["connection"]) == (401, "keep-alive")
        connection.sendall(post(b'{"key": "after", "value": 1}', framing=framing))
        status, headers, _ = read_answer(connection)
        assert (status, headers["connection"]) == (201, "keep-alive")


def test_a_session_saves_again_after_a_body_over_the_limit(serve):
    # requests reused the connection gunicorn had closed, and the save failed: RemoteDisconnected.
    server = serve()
    headers = {"X-API-Key": TEST_KEY, "Content-Type": "application/json"}
    with requests.Session() as session:
        refused = session.post(
            server.url + "/save", data=b" " * (LIMIT + 150_000), headers=headers, timeout=10
        )
        assert refused.status_code == 413
        # Connection: close, so that the server's stop need not wait out the keep-alive.
        saved = session.post(
            server.url + "/save",
            json={"key": "next", "value": 1},
            headers={**headers, "Connection": "close"},
            timeout=10,
        )
        assert saved.status_code == 201


def test_an_unread_body_malformed_further_on_gets_one_answer_saying_connection_close(serve):
    # gunicorn read the rest after the 401 and met the bad chunk size: it sent a 400 of its
    # own after the 401, an answer to no request.
    server = serve()
    raw = (
        b"POST /save HTTP/1.1\r\nHost: x\r\nX-API-Key: wrong\r\n"
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\nzz\r\nmore\r\n0\r\n\r\n"
    )
    status, headers, body = exchange(server, raw)
    assert (status, headers["connection"]) == (401, "close")
    assert json.loads(body)["code"] == "UNAUTHORIZED"
