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
"""

from __future__ import annotations

import contextlib
from typing import Any

import gevent
import gevent.local
from gunicorn import util
from gunicorn.http.parser import RequestParser
from gunicorn.workers.ggevent import GeventWorker as GunicornGeventWorker

from refapi.worker import ProblemPages, ReadsWhatTheAppLeft


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
    request (see the module)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Per greenlet, whether or not threading.local is patched yet (it is not in __init__,
        # which runs before gunicorn's monkey-patching).
        self._serving = gevent.local.local()

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

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        super().handle_error(req, client, addr, exc)
        util.close_graceful(client)
