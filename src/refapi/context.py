"""The objects behind Flask's proxies, for the hot paths that read several of their attributes.

Each attribute read through ``flask.request`` (a ``LocalProxy``) costs about 1 us, against
0.03 us on the request itself; the auth hook made three such reads on every request, and the
cached read two more (issue 8, benchmarks/results/4-december). ``_get_current_object`` is the
proxy's documented way to the object it stands for (Flask's "Notes On Proxies").
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from flask import current_app, request

if TYPE_CHECKING:
    from flask import Flask, Request
    from werkzeug.local import LocalProxy

# Flask types its proxies as the objects they stand for; these are the proxies as they are.
_request = cast("LocalProxy[Request]", request)
_app = cast("LocalProxy[Flask]", current_app)


def current_request() -> Request:
    """The request being served (outside a request, the proxy's RuntimeError)."""
    return _request._get_current_object()


def current_flask_app() -> Flask:
    """The app of the active application context (outside one, the proxy's RuntimeError)."""
    return _app._get_current_object()
