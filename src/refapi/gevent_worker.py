"""refapi's gunicorn gevent worker (``REFAPI_WORKER_CLASS=gevent``): a greenlet per connection.

What `refapi.worker.ThreadWorker` does for gthread, it does here: problems for gunicorn's own
error pages, and the rest of a request body read before the answer goes out (`refapi.worker`).

And one thing of its own: **each greenlet lets the others run after every request.** gunicorn
serves a kept-alive connection in a loop, and a greenlet runs until it waits. A client that
sends its next request as soon as it has read an answer (a proxy's pool, a load generator)
often has it there before the loop reads again, so the greenlet never waits, and serves that
connection request after request while every other connection's waits. Under wrk's 32
connections on one worker (issue 8's `benchmarks/results/worker-classes/`), the p99 was 740 ms
for a bare Flask `/ping` served in 0.3 ms at the median; with the yield, 8 ms, for the same
requests per second (twice gthread's).

And it closes a connection as gthread does (``util.close_graceful``): its side shut, what the
client still sends read for a moment, then closed. gunicorn's async workers close at once, and
a socket closed with unread data sends a reset, which can destroy an answer the client has not
read yet: a 413 for a body too long, a problem for a malformed request.

And it stops as gthread does. A stopping gunicorn async worker waits until every connection has
ended, and a kept-alive connection waiting for its next request ends only when its keep-alive
runs out: each SIGTERM, reload or max-requests restart behind a proxy that keeps idle upstream
connections (nginx's ``keepalive``) took the whole keep-alive, or the graceful timeout where
that is longer. Here, a connection that waits for its next request when the stop begins, or
starts to wait during it, is kept for `STOP_KEEPALIVE_LINGER` more at most (gthread's), then shut
down if the client has still sent nothing of a request; a request that comes meanwhile is
answered, with Connection: close. A request arriving just as the connection is shut is the race
every kept-alive connection has with its server's close, which clients retry (RFC 9112, 9.3.1).
"""

from __future__ import annotations

import contextlib
import fcntl
import socket
import struct
import termios
from typing import Any

import gevent
import gevent.local
from gunicorn import util
from gunicorn.http.parser import RequestParser
from gunicorn.workers.ggevent import GeventWorker as GunicornGeventWorker

from refapi.worker import ProblemPages, ReadsWhatTheAppLeft

# How long a stopping worker keeps a connection that waits for its next request (at most its
# keep-alive): gthread's STOP_KEEPALIVE_LINGER.
STOP_KEEPALIVE_LINGER = 2.0


def _unread_bytes(sock: Any) -> int:
    """How many bytes the kernel holds for ``sock`` (FIONREAD), asked without waiting: gevent's
    select and poll may switch greenlets, even with no timeout."""
    try:
        return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0" * 4))[0]
    except OSError:  # closed meanwhile
        return 0


class _Connection:
    """What `ReadsWhatTheAppLeft` reads the rest of a body through, for one async request.

    gthread keeps a connection object with the request's parser; the async workers keep their
    parser in a local variable of ``handle``. This is gunicorn's parser over the request's own
    reader, which is all its ``finish_body`` uses.
    """

    def __init__(self, req: Any, sock: Any) -> None:
        self.parser = RequestParser.__new__(RequestParser)
        self.parser.mesg = req
        self.parser.unreader = req.unreader
        self.sock = sock


class GeventWorker(ProblemPages, ReadsWhatTheAppLeft, GunicornGeventWorker):
    """gunicorn's gevent worker, with refapi's problems and body reading, yielding after each
    request, and closing idle connections when it stops (see the module)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Per greenlet, whether or not threading.local is patched yet (it is not in __init__,
        # which runs before gunicorn's monkey-patching).
        self._serving = gevent.local.local()
        # The connections waiting for their next request with nothing of it read yet, each with
        # a token of that wait (a connection waits again after its next answer).
        self._waiting: dict[Any, object] = {}
        # The connections a stop shut while they waited.
        self._shut: set[Any] = set()

    @property
    def alive(self) -> bool:
        return self._alive

    @alive.setter
    def alive(self, alive: bool) -> None:
        # Every way a worker starts to stop sets this: SIGTERM, SIGQUIT, max_requests.
        stopping = not alive and getattr(self, "_alive", False)
        self._alive = alive
        if stopping:
            # A greenlet of its own, as gunicorn's quit: this may run in a signal handler.
            gevent.spawn(self._close_waiting_after_linger)

    def _close_waiting_after_linger(self) -> None:
        waiting = dict(self._waiting)
        gevent.sleep(STOP_KEEPALIVE_LINGER)
        for sock, wait in waiting.items():
            self._close_if_still_waiting(sock, wait)

    def _close_if_still_waiting(self, sock: Any, wait: object) -> None:
        """Shut ``sock`` if it is in the same wait for a request and the client sent nothing.

        Nothing here switches greenlets between the check and the shutdown. gevent then ends the
        connection's read with EBADF, if it still waits (`_wait_for_next_request` reads that as
        the client's close); gunicorn closes the socket.
        """
        if self._waiting.get(sock) is wait and not _unread_bytes(sock):
            del self._waiting[sock]
            self._shut.add(sock)
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _wait_for_next_request(self, unreader: Any, sock: Any) -> None:
        """Note that ``sock``'s next request has not begun, until the parser reads any of it."""
        if unreader.buf.getvalue():
            return  # read already, with the request before (pipelined)
        if "chunk" not in vars(unreader):  # once per connection: a wait ends with a read
            read, waiting, shut = unreader.chunk, self._waiting, self._shut

            def chunk(size_hint: int | None = None) -> bytes:
                try:
                    data = read(size_hint)
                except OSError:
                    if sock in shut:  # by the stop, while it waited: as if the client had gone
                        return b""
                    raise
                waiting.pop(sock, None)
                return data

            unreader.chunk = chunk
        wait = self._waiting[sock] = object()
        if not self.alive:  # answered as the stop began, saying keep-alive
            gevent.spawn_later(STOP_KEEPALIVE_LINGER, self._close_if_still_waiting, sock, wait)

    def handle(self, listener: Any, client: Any, addr: Any) -> None:
        try:
            super().handle(listener, client, addr)
        finally:
            self._waiting.pop(client, None)
            self._shut.discard(client)

    def handle_request(self, listener_name: Any, req: Any, sock: Any, addr: Any) -> Any:
        with self.serving(_Connection(req, sock)):
            try:
                super().handle_request(listener_name, req, sock, addr)
            except StopIteration:
                # gunicorn closes the connection after this answer (said Connection: close).
                with contextlib.suppress(gevent.GreenletExit):  # stopped while it lingered
                    util.close_graceful(sock)
                raise
        try:
            gevent.sleep(0)
        except gevent.GreenletExit:  # stopped while others ran: the answer has gone out
            raise StopIteration from None
        self._wait_for_next_request(req.unreader, sock)

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        super().handle_error(req, client, addr, exc)
        util.close_graceful(client)
