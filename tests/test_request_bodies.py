"""Bodies that the server ends itself (chunked), in process: the WSGI environ gunicorn makes.

gunicorn decodes a chunked body, sets ``wsgi.input_terminated`` and no Content-Length; the e2e
tests in tests/e2e/test_bodies.py send the same bodies to the real server.
"""

from __future__ import annotations

import io
import json

import pytest
from gunicorn.http.errors import InvalidChunkSize

LIMIT = 1024


@pytest.fixture
def client(make_app):
    return make_app(MAX_CONTENT_LENGTH=LIMIT).test_client()


def post_server_ended(client, auth_headers, stream):
    return client.post(
        "/save",
        headers={
            **auth_headers,
            "Content-Type": "application/json",
            "Transfer-Encoding": "chunked",
        },
        environ_overrides={"wsgi.input": stream, "wsgi.input_terminated": True},
    )


def padded(document, size):
    encoded = json.dumps(document).encode()
    return encoded + b" " * (size - len(encoded))


class MalformedChunks(io.RawIOBase):
    """gunicorn's body reader, finding a chunk size that is not hexadecimal."""

    def readable(self):
        return True

    def readinto(self, buffer):
        raise InvalidChunkSize(b"zz")


def test_a_body_whose_chunked_encoding_is_malformed_is_400(client, auth_headers):
    response = post_server_ended(client, auth_headers, MalformedChunks())
    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["code"] == "BAD_REQUEST"
    assert "chunked encoding" in response.get_json()["detail"]
