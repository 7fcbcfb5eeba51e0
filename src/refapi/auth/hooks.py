"""The one ``before_request`` hook that requires a valid API key on every non-public route."""

from __future__ import annotations

from collections.abc import Iterable

from flask import Flask, Request, g

from refapi.auth.keys import KeyRing
from refapi.context import current_request
from refapi.errors import Unauthorized

# The same challenge and body for a missing key and a wrong one: nothing tells them apart.
CHALLENGE = 'Bearer realm="refapi"'
DETAIL = "A valid API key is required: send it as X-API-Key: <key> or Authorization: Bearer <key>."


def presented_key(req: Request) -> bytes:
    """The key ``req`` presents, as the bytes that were sent ('' when none)."""
    # The headers as the WSGI environ holds them, where request.headers would read them.
    environ = req.environ
    value = environ.get("HTTP_X_API_KEY")
    if value is None:
        scheme, _, token = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
        value = token.strip() if scheme.lower() == "bearer" else ""
    try:
        # WSGI gives header values as latin-1 text: this recovers the bytes on the wire.
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return b""


def public_routes(app: Flask, public_endpoints: Iterable[str] = ()) -> frozenset[tuple[str, str]]:
    """Every (endpoint, method) whose view is marked ``@public``, plus the given endpoints."""
    always = frozenset(public_endpoints)
    routes = set()
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        view_class = getattr(view, "view_class", None)
        for method in rule.methods or ():
            if rule.endpoint in always:
                routes.add((rule.endpoint, method))
                continue
            target: object = view
            if view_class is not None:
                name = "get" if method == "HEAD" else method.lower()
                target = getattr(view_class, name, None)
            if getattr(target, "is_public", False):
                routes.add((rule.endpoint, method))
    return frozenset(routes)


def init_app(app: Flask, keyring: KeyRing, *, public_endpoints: Iterable[str] = ()) -> None:
    """Register the key check; call it after every blueprint is registered."""
    public = public_routes(app, public_endpoints)
    app.extensions["refapi.keyring"] = keyring

    def require_api_key() -> None:
        req = current_request()  # not the proxy: this reads three of its attributes
        if (req.endpoint, req.method) in public:
            return
        client = keyring.authenticate(presented_key(req))
        if client is None:
            raise Unauthorized(DETAIL, headers={"WWW-Authenticate": CHALLENGE})
        g.client = client

    app.before_request(require_api_key)
