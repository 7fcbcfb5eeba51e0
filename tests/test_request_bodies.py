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


def test_a_body_over_the_limit_is_413_though_it_parses_when_cut_at_the_limit(client, auth_headers):
    body = padded({"key": "cut", "value": "ok"}, LIMIT) + b"garbage"
    response = post_server_ended(client, auth_headers, io.BytesIO(body))
    assert response.status_code == 413
    assert response.get_json()["code"] == "PAYLOAD_TOO_LARGE"
    assert response.get_json()["max_bytes"] == LIMIT
    assert client.get("/get/cut", headers=auth_headers).status_code == 404


def test_a_valid_body_one_byte_over_the_limit_is_413(client, auth_headers):
    body = padded({"key": "k", "value": "ok"}, LIMIT + 1)
    response = post_server_ended(client, auth_headers, io.BytesIO(body))
    assert response.status_code == 413


def test_a_body_of_exactly_the_limit_is_read_whole(client, auth_headers):
    body = padded({"key": "at", "value": "ok"}, LIMIT)
    response = post_server_ended(client, auth_headers, io.BytesIO(body))
    assert response.status_code == 201
    assert client.get("/get/at", headers=auth_headers).get_json()["value"] == "ok"


def test_a_content_length_over_the_limit_is_413_stating_the_limit(client, auth_headers):
    response = client.post(
        "/save",
        data=padded({"key": "k", "value": 1}, LIMIT + 1),
        headers=auth_headers,
        content_type="application/json",
    )
    assert response.status_code == 413
    body = response.get_json()
    assert body["max_bytes"] == LIMIT
    assert str(LIMIT) in body["detail"]
