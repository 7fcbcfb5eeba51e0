"""Keys in the path over real HTTP: what gunicorn hands the app is not what the test client does."""

from __future__ import annotations

import pytest

from tests.conftest import TEST_KEY

pytestmark = pytest.mark.e2e

KEY = {"X-API-Key": TEST_KEY}


def test_a_path_that_is_not_utf8_reaches_no_key(serve):
    server = serve()
    saved = server.request(
        "POST", "/save", json={"key": "\ufffd", "value": "precious"}, headers=KEY
    )
    assert saved.status_code == 201
    for method, path in [("DELETE", "/delete/%FF"), ("GET", "/get/%FF"), ("GET", "/get/%C0%AF")]:
        response = server.request(method, path, headers=KEY)
        assert response.status_code == 422, (method, path)
        assert response.headers["Content-Type"] == "application/problem+json"
        assert response.json()["code"] == "VALIDATION_ERROR"
    # The key itself, sent as UTF-8, is still there.
    assert server.get("/get/%EF%BF%BD", headers=KEY).json()["value"] == "precious"
    assert server.request("DELETE", "/delete/%EF%BF%BD", headers=KEY).status_code == 204


def test_a_prefix_that_is_not_utf8_lists_no_key_and_a_utf8_one_does(serve):
    server = serve()
    for key in ("\ufffd-stored", "%FF-literal", "caf\u00e9/1"):
        assert server.request("POST", "/save", json={"key": key, "value": 1}, headers=KEY).ok
    refused = server.get("/keys?prefix=%FF", headers=KEY)
    assert refused.status_code == 422
    assert refused.json()["errors"]["query"]["prefix"]
    listed = server.get("/keys?prefix=caf%C3%A9", headers=KEY).json()["items"]
    assert [item["key"] for item in listed] == ["caf\u00e9/1"]


def test_a_newline_in_a_key_path_is_422_like_any_control_character(serve):
    server = serve()
    for path in ["/get/a%0Ab", "/delete/a%0Db", "/get/a%0A"]:
        method = "GET" if path.startswith("/get/") else "DELETE"
        response = server.request(method, path, headers=KEY)
        assert response.status_code == 422, path
        assert response.json()["errors"]["path"]["key"] == [
            "A key cannot contain control characters."
        ]


def test_location_of_a_key_with_dot_segments_leads_back_to_it(serve):
    # requests removes dot segments and sends %2E as "."; curl and many proxies remove them too.
    server = serve()
    server.request("POST", "/save", json={"key": "y", "value": "another key"}, headers=KEY)
    for key in ["x/../y", ".."]:
        saved = server.request("POST", "/save", json={"key": key, "value": key}, headers=KEY)
        location = saved.headers["Location"]
        assert server.get(location, headers=KEY).json()["key"] == key
        assert server.request("DELETE", location.replace("/get/", "/delete/", 1), headers=KEY).ok
        assert server.get(location, headers=KEY).status_code == 404
    assert server.get("/get/y", headers=KEY).json()["value"] == "another key"
