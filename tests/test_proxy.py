"""Behind a reverse proxy: forwarded headers count only when their proxies are trusted."""

from __future__ import annotations

import pytest
from flask import request, url_for

from refapi import auth

FORWARDED = {
    "X-Forwarded-For": "203.0.113.7",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "api.example.be",
}


@pytest.fixture
def make_proxied_app(make_app):
    def build(**settings):
        app = make_app(**settings)

        @app.get("/where-for-test")
        def where():
            return {
                "client_address": request.remote_addr,
                "ping_url": url_for("health.Ping", _external=True),
            }

        auth.init_app(app, app.extensions["refapi.keyring"])
        return app

    return build


def test_without_trusted_proxies_forwarded_headers_change_nothing(make_proxied_app, auth_headers):
    app = make_proxied_app()
    body = app.test_client().get("/where-for-test", headers={**auth_headers, **FORWARDED}).json
    assert body == {"client_address": "127.0.0.1", "ping_url": "http://localhost/ping"}


def test_behind_one_trusted_tls_proxy_the_client_address_and_https_urls_are_used(
    make_proxied_app, auth_headers
):
    app = make_proxied_app(PROXY_X_FOR=1, PROXY_X_PROTO=1, PROXY_X_HOST=1)
    body = app.test_client().get("/where-for-test", headers={**auth_headers, **FORWARDED}).json
    assert body == {
        "client_address": "203.0.113.7",
        "ping_url": "https://api.example.be/ping",
    }


def test_a_client_cannot_forge_its_address_past_the_trusted_proxy(make_proxied_app, auth_headers):
    app = make_proxied_app(PROXY_X_FOR=1)
    # The client sent "X-Forwarded-For: 6.6.6.6"; the proxy appended the address it saw.
    headers = {**auth_headers, "X-Forwarded-For": "6.6.6.6, 203.0.113.7"}
    body = app.test_client().get("/where-for-test", headers=headers).json
    assert body["client_address"] == "203.0.113.7"
