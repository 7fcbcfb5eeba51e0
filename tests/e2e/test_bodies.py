"""Request bodies as gunicorn hands them to the app: chunked ones, malformed or over the limit.

Raw HTTP over a socket, since HTTP clients neither send a malformed chunked body nor let a test
choose the chunks.
"""

from __future__ import annotations

import json
import socket
from urllib.parse import urlsplit

import pytest

from tests.conftest import TEST_KEY

pytestmark = pytest.mark.e2e

LIMIT = 1_048_576  # REFAPI_MAX_CONTENT_LENGTH's default


def exchange(server, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``raw`` (a whole request, with Connection: close); the status, headers and body."""
    address = urlsplit(server.url)
    with socket.create_connection((address.hostname, address.port), timeout=10) as connection:
        connection.sendall(raw)
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in header_lines)
    return int(status_line.split(" ")[1]), {k.lower(): v for k, v in headers.items()}, body


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
