"""refapi's gunicorn workers (gthread here, gevent in `refapi.gevent_worker`): gunicorn's own
errors answered in the API's error format, and ``Connection: close`` said when the worker will
close the connection.

gunicorn refuses a request it cannot parse (a malformed request line or header, a request line
or headers over its limits, a chunked body it cannot read) before the app sees it, and answers
with an HTML page. A client of this API reads ``application/problem+json`` for every error, so
the worker sends the same status as a problem instead (see `refapi.errors`). gunicorn still
decides the status, logs the error and writes its access-log line; only the page it would
send is replaced. `gunicorn.conf.py` selects the worker with ``worker_class``
(``REFAPI_WORKER_CLASS``).

An answer the app gives before reading the whole request body (a 413 for a body over the limit;
a 401, 404 or 415 before the body is looked at) leaves the rest of the body on the connection.
gunicorn reads and discards it after sending the answer (gthread: at most 64 KiB in at most 5
seconds; gevent: for at most the 5-second keep-alive, however many bytes), and closes the
connection when that is not enough: after an answer that said ``Connection: keep-alive``, so the
client's next request met a closed connection. Before the answer goes out, the worker reads what
of the rest has already arrived, without waiting for more: a body that is all there is read and
the connection kept; otherwise the answer says ``Connection: close``, and gunicorn closes after
it, as it would have. The app cannot say it itself: gunicorn drops a ``Connection`` header the
app sets (hop-by-hop) and closes only on its own decision.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

from gunicorn import util
from gunicorn.http import errors as http_errors
from gunicorn.http.body import LengthReader
from gunicorn.workers.base import Worker
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
# As much of a body the app left as gunicorn reads before it gives up and closes.
_DRAIN_BYTES = 64 * 1024


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


class ProblemPages(Worker):
    """gunicorn's error pages replaced by problems (see the module)."""

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


class _Serving:
    """The with-block of `ReadsWhatTheAppLeft.serving`.

    A class, not a ``contextlib.contextmanager`` generator: it is entered for every request,
    and costs about a third of what the generator does (0.6 us against 1.6 on a 2-core machine).
    """

    __slots__ = ("_connection", "_local")

    def __init__(self, local: Any, connection: Any) -> None:
        self._local = local
        self._connection = connection

    def __enter__(self) -> None:
        self._local.connection = self._connection

    def __exit__(self, *exc_info: object) -> None:
        self._local.connection = None


class ReadsWhatTheAppLeft(Worker):
    """The rest of a request body read once the app has answered, before the answer is sent
    (see the module). A worker class serves each HTTP/1 request in ``with
    self.serving(connection):``."""

    wsgi: Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
    # The connection each thread (greenlet) is serving an HTTP/1 request on.
    _serving: Any

    def serving(self, connection: Any) -> _Serving:
        """A with-block in which this thread (greenlet) serves a request on ``connection``: an
        object with gunicorn's ``parser`` of the request and the client's ``sock``. However the
        block ends, the thread serves no connection after it."""
        return _Serving(self._serving, connection)

    def load_wsgi(self) -> None:
        super().load_wsgi()
        app = self.wsgi

        def reading_what_the_app_left(
            environ: dict[str, Any], start_response: Callable[..., Any]
        ) -> Iterable[bytes]:
            # The app has answered (start_response only records the status and headers) and
            # gunicorn has sent nothing yet: the Connection header can still be decided.
            answer = app(environ, start_response)
            connection = getattr(self._serving, "connection", None)
            if connection is not None:
                # start_response is gunicorn's Response's: it knows whether it will close.
                self._finish_body(connection, getattr(start_response, "__self__", None))
            return answer

        self.wsgi = reading_what_the_app_left

    @staticmethod
    def _finish_body(conn: Any, responder: Any) -> None:
        """Read the rest of the request body that has already arrived, as gunicorn would after
        the answer; when that is not all of it (still on its way, too long, malformed), the
        answer says ``Connection: close``. Never waits for the client: the answer goes out now.
        """
        req = conn.parser.mesg
        reader = req.body.reader
        if isinstance(reader, LengthReader) and reader.length == 0:
            return  # all read, or none sent: the common case, without the socket calls below
        if req.should_close() or getattr(responder, "must_close", False):
            return  # closing anyway (asked, or max_requests, stopping, keep-alive off): says so
        sock = conn.sock
        prior = sock.gettimeout()
        try:
            sock.setblocking(False)  # what has arrived, without waiting for the rest
            finished = conn.parser.finish_body(max_bytes=_DRAIN_BYTES)
        except (OSError, http_errors.ParseException):
            # Not all there yet (EAGAIN), the client is gone, or the rest is malformed: where a
            # next request would start is not known now.
            finished = False
        finally:
            with contextlib.suppress(OSError):
                sock.settimeout(prior)
        if not finished:
            req.force_close()


class ThreadWorker(ProblemPages, ReadsWhatTheAppLeft, GthreadWorker):
    """gunicorn's gthread worker: its error pages replaced by problems, and the rest of a request
    body read before the answer is sent (see the module)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._serving = threading.local()

    def handle_request(self, req: Any, conn: Any) -> Any:
        with self.serving(conn):
            return super().handle_request(req, conn)
