"""refapi's gunicorn worker: gthread, answering gunicorn's own errors in the API's error format.

gunicorn refuses a request it cannot parse (a malformed request line or header, a request line
or headers over its limits, a chunked body it cannot read) before the app sees it, and answers
with an HTML page. A client of this API reads ``application/problem+json`` for every error, so
`ThreadWorker` sends the same status as a problem instead (see `refapi.errors`). gunicorn still
decides the status, logs the error and writes its access-log line; only the page it would
send is replaced. `gunicorn.conf.py` selects the worker with ``worker_class``.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from gunicorn import util
from gunicorn.http import errors as http_errors
from gunicorn.workers.gthread import ThreadWorker as GthreadWorker

from refapi import errors

# What went wrong, for a client, by what gunicorn raised; the first class that matches wins.
_DETAILS: tuple[tuple[type[Exception] | tuple[type[Exception], ...], str], ...] = (
    (http_errors.InvalidRequestLine, "The request line is malformed."),
    (http_errors.InvalidRequestMethod, "The request method is not a valid HTTP method."),
    (http_errors.InvalidHTTPVersion, "The request's HTTP version is not supported."),
    (
        (http_errors.InvalidHeader, http_errors.InvalidHeaderName, http_errors.ObsoleteFolding),
        "A request header is malformed.",
    ),
    (
        (
            http_errors.InvalidChunkSize,
            http_errors.ChunkMissingTerminator,
            http_errors.InvalidChunkExtension,
        ),
        "The request body could not be read: its chunked encoding is malformed.",
    ),
    (http_errors.LimitRequestLine, "The request line is longer than this server accepts."),
    (http_errors.LimitRequestHeaders, "The request headers are larger than this server accepts."),
    (http_errors.UnsupportedTransferCoding, "The request's Transfer-Encoding is not supported."),
    (http_errors.ExpectationFailed, "The request's Expect header cannot be met."),
    (http_errors.InvalidSchemeHeaders, "The request's scheme headers contradict each other."),
    (http_errors.InvalidProxyLine, "The PROXY protocol line is malformed."),
    (http_errors.ForbiddenProxyRequest, "This address may not send a PROXY protocol line."),
)
_SERVER_FAULT = "The server failed to handle the request."


def problem(status: int, exc: BaseException) -> bytes:
    """The whole HTTP response for what gunicorn answers with ``status`` to ``exc``."""
    if status == 500:  # the app's fault (a response header it may not send), whatever was raised
        detail = _SERVER_FAULT
    else:
        found = (text for kinds, text in _DETAILS if isinstance(exc, kinds))
        detail = next(found, HTTPStatus(status).phrase)
    code = errors.HTTP_CODES.get(status, HTTPStatus(status).name)
    body = json.dumps(
        errors.problem_document(status=status, code=code, detail=detail), separators=(",", ":")
    ).encode()
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
        "Connection: close\r\n"
        f"Content-Type: {errors.PROBLEM_MIMETYPE}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


class _Page:
    """The client's socket, but for the error page gunicorn writes: that is kept, not sent."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self.written = b""

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)

    def sendall(self, data: bytes) -> None:
        self.written += data

    def status(self) -> int | None:
        """The status of the page gunicorn wrote ("HTTP/1.1 400 Bad Request..."), if any."""
        parts = self.written.split(b" ", 2)
        return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None


class ThreadWorker(GthreadWorker):
    """gunicorn's gthread worker, its error pages replaced by problems (see the module)."""

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        page = _Page(client)
        super().handle_error(req, page, addr, exc)
        status = page.status()
        if status is None:
            return
        try:
            util.write_nonblock(client, problem(status, exc))
        except OSError:  # the client may be gone, as gunicorn says
            self.log.debug("Failed to send error message.")
