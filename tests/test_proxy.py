"""Behind a reverse proxy: forwarded headers count only when their proxies are trusted."""

from __future__ import annotations

import pytest
from flask import request, url_for
from hypothesis import given
from hypothesis import strategies as st
from werkzeug.http import parse_list_header as werkzeug_parse_list_header
from werkzeug.middleware import proxy_fix as proxy_fix_module
from werkzeug.middleware.proxy_fix import ProxyFix as WerkzeugProxyFix

from refapi import auth
from refapi.proxyfix import ProxyFix

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


# Forwarded headers as proxies and clients may send them: commas, blanks, escapes, quotes.
_HEADER_TEXT = st.text(alphabet=st.sampled_from(' ,\t\\"abc1.:[]\u00a0\u2003\x0b'), max_size=24)


@given(value=st.one_of(_HEADER_TEXT, st.none()), trusted=st.integers(min_value=0, max_value=4))
def test_refapis_proxy_fix_reads_each_forwarded_header_as_werkzeugs_does(value, trusted):
    ours = ProxyFix(None)._get_real_value(trusted, value)
    assert ours == WerkzeugProxyFix(None)._get_real_value(trusted, value)


@pytest.mark.parametrize(
    ("forwarded_for", "parsed"), [("203.0.113.7", []), ("6.6.6.6, 203.0.113.7", ["for"])]
)
def test_one_plain_forwarded_value_skips_werkzeugs_list_parser(
    make_proxied_app, auth_headers, monkeypatch, forwarded_for, parsed
):
    # Werkzeug still asks _get_real_value for each header, so the override is what runs.
    calls = []

    def parse_list_header(value):
        calls.append("for" if value == forwarded_for else value)
        return werkzeug_parse_list_header(value)

    monkeypatch.setattr(proxy_fix_module, "parse_list_header", parse_list_header)
    app = make_proxied_app(PROXY_X_FOR=1, PROXY_X_PROTO=1)
    headers = {**auth_headers, **FORWARDED, "X-Forwarded-For": forwarded_for}
    body = app.test_client().get("/where-for-test", headers=headers).json
    assert calls == parsed
    assert body == {"client_address": "203.0.113.7", "ping_url": "https://localhost/ping"}
