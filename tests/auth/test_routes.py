from __future__ import annotations

import logging

import pytest
from flask import g

from tests.conftest import OTHER_KEY, TEST_KEY


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_authorize_names_the_client_of_a_good_key(client, method):
    response = client.open("/authorize", method=method, headers={"X-API-Key": TEST_KEY})
    assert response.status_code == 200
    assert response.get_json() == {"authorized": True, "client": "tester"}


def test_a_bearer_token_is_the_same_key(client):
    response = client.get("/authorize", headers={"Authorization": f"Bearer {OTHER_KEY}"})
    assert response.status_code == 200
    assert response.get_json() == {"authorized": True, "client": "other"}


def test_the_bearer_scheme_is_case_insensitive(client):
    response = client.get("/authorize", headers={"Authorization": f"bearer {TEST_KEY}"})
    assert response.get_json()["client"] == "tester"


def _unauthorized(response):
    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="refapi"'
    body = response.get_json()
    body.pop("request_id")
    return body


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_missing_and_a_wrong_key_get_the_same_401(client, method):
    missing = _unauthorized(client.open("/authorize", method=method))
    wrong = _unauthorized(
        client.open("/authorize", method=method, headers={"X-API-Key": TEST_KEY + "x"})
    )
    assert missing == wrong
    assert missing["code"] == "UNAUTHORIZED"
    assert missing["status"] == 401


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": f"Basic {TEST_KEY}"},
        {"Authorization": "Bearer"},
        {"Authorization": TEST_KEY},
        {"X-API-Key": ""},
        {"X-API-Key": "k" * 100_000},
        {"X-API-Key": "clé-non-ascii-ключ-🔑"},
        {"X-API-Key": TEST_KEY + "\u00e9"},
    ],
)
def test_malformed_odd_or_absurd_headers_are_401_never_500(client, headers):
    _unauthorized(client.get("/authorize", headers=headers))


def test_non_latin1_bytes_on_the_wire_are_401(client):
    environ = {"HTTP_X_API_KEY": "\udcff\udcfe"}
    response = client.get("/authorize", environ_overrides=environ)
    assert response.status_code == 401


def test_an_unknown_route_is_401_without_a_key_and_404_with_one(client, auth_headers):
    _unauthorized(client.get("/no-such-route"))
    response = client.get("/no-such-route", headers=auth_headers)
    assert response.status_code == 404
    assert response.get_json()["code"] == "NOT_FOUND"


@pytest.mark.parametrize("path", ["/ping", "/ready", "/openapi.json", "/docs"])
def test_health_and_docs_need_no_key(client, path):
    assert client.get(path).status_code == 200


def test_a_public_path_with_another_method_still_needs_a_key(client, auth_headers):
    _unauthorized(client.post("/ping"))
    response = client.post("/ping", headers=auth_headers)
    assert response.status_code == 405


def test_every_view_knows_its_client(app, auth_headers):
    @app.get("/whoami-for-test")
    def whoami():
        return {"client": g.client}

    from refapi import auth

    auth.init_app(app, app.extensions["refapi.keyring"])  # recompute routes for the new view
    response = app.test_client().get("/whoami-for-test", headers=auth_headers)
    assert response.get_json() == {"client": "tester"}


def test_no_key_appears_in_logs_or_bodies(client, caplog):
    caplog.set_level(logging.DEBUG)
    bodies = [
        client.get("/authorize", headers={"X-API-Key": TEST_KEY}).get_data(as_text=True),
        client.get("/authorize", headers={"X-API-Key": TEST_KEY + "wrong"}).get_data(as_text=True),
        client.get("/openapi.json").get_data(as_text=True),
        client.get("/nope", headers={"Authorization": f"Bearer {OTHER_KEY}"}).get_data(
            as_text=True
        ),
    ]
    for text in [*bodies, caplog.text]:
        assert TEST_KEY not in text
        assert OTHER_KEY not in text
