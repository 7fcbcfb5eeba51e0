"""Every request's id: the proxy's ``X-Request-ID`` when usable, else one of ours, echoed back.

A WSGI middleware rather than a pair of Flask hooks: issue 8's profile of ``/ping`` found the
two hooks (each a ``LocalProxy`` lookup of ``request`` or ``g``, a header parsed into
``EnvironHeaders``, a ``Headers`` write) a third of the full stack's cost beyond a bare Flask
app. Here it is one ``environ`` lookup and one header appended to the answer's list.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from flask import has_request_context, request

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

# Where the id is kept for the request: the WSGI environ, which every layer can read.
ENVIRON_KEY = "refapi.request_id"

# A request id from a proxy is kept when it is short and plain; otherwise we make our own: 32
# random hex digits, like nginx's $request_id.
_USABLE = re.compile(r"[A-Za-z0-9._:+=/-]{1,128}")


class RequestIds:
    """Wraps a WSGI app: sets ``environ[ENVIRON_KEY]`` and answers it in ``X-Request-ID``."""

    def __init__(self, app: WSGIApplication) -> None:
        self.app = app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        incoming = environ.get("HTTP_X_REQUEST_ID", "")
        request_id = incoming if _USABLE.fullmatch(incoming) else secrets.token_hex(16)
        environ[ENVIRON_KEY] = request_id

        def sending_the_id(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Callable[[bytes], object]:
            headers.append(("X-Request-ID", request_id))
            return start_response(status, headers, exc_info)

        return self.app(environ, sending_the_id)


def current() -> str | None:
    """The id of the request being served, or None outside a request (a CLI command, a thread)."""
    if not has_request_context():
        return None
    return request.environ.get(ENVIRON_KEY)
