"""Request bodies as gunicorn hands them to the app: chunked ones, malformed or over the limit.

Raw HTTP over a socket, since HTTP clients neither send a malformed chunked body nor let a test
choose the chunks.
"""

from __future__ import annotations

import json

import pytest

from tests.conftest import TEST_KEY
from tests.e2e.conftest import exchange

pytestmark = pytest.mark.e2e

LIMIT = 1_048_576  # REFAPI_MAX_CONTENT_LENGTH's default


def chunked_save(body: bytes, chunk_size: int = 65536) -> bytes:
    chunks = b"".join(
        b"%x\r\n%s\r\n" % (len(part), part)
        for part in (body[start : start + chunk_size] for start in range(0, len(body), chunk_size))
    )
    return (
        b"POST /save HTTP/1.1\r\nHost: x\r\nX-API-Key: " + TEST_KEY.encode() + b"\r\n"
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\n" + chunks + b"0\r\n\r\n"
    )


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
