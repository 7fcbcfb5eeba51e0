"""Each worker's in-process layer in front of Redis, kept coherent by Redis (issue 8).

A read cached in Redis costs a network round trip; the same read from this layer costs a
dictionary lookup. ``ResilientRedisCache.get_or_lease`` (``refapi.caching.read_through``) asks
it first; after a Redis hit, it asks the layer to ``fill`` the key. The layer keeps Redis's
bytes, so that each hit deserialises its own copy, within a byte budget. It never serves a value
that a write which has returned replaced:

- **Redis names every change, in order.** The layer reads what it keeps through its listener's
  own connection, which has ``CLIENT TRACKING ON`` (RESP3): from then on Redis pushes to that
  connection the name of each of those keys that changes (written, deleted, expired, evicted,
  flushed), whoever changed it (another worker, another replica, a CLI command, an older
  release), and always after the answer that read it. The listener applies the stream in
  order: a value is kept when its answer comes, dropped when its invalidation comes.
- **A write waits for every listener.** After a cache invalidation, ``fence`` publishes a fence
  on a channel that every listener subscribes to on that same connection. Redis delivers the
  fence after the invalidations it sent before it, so a listener that acknowledges the fence
  has dropped them. The writer returns once every listener has acknowledged (PUBLISH says how
  many there are).
- **A listener that does not answer stops serving.** A layer serves hits only for
  ``freshness`` seconds after its last heartbeat (a PING on that connection) came back; a writer
  that misses an acknowledgement waits ``freshness`` from before its fence, by when such a
  listener has stopped serving. A hit is also passed over while the listener has unread data
  (an invalidation, or the end of the connection). A lost connection empties the layer.

redis-py's own client-side cache needs Redis 7.4 and does not make writers wait; this works
with Redis 6 and later.
"""

from __future__ import annotations

import collections
import logging
import os
import secrets
import select
import socket
import sys
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, cast

import redis
from redis.maint_notifications import MaintNotificationsConfig

logger = logging.getLogger("refapi.cache")

# How long a layer may serve after its last heartbeat came back, and so how long a write waits
# at most for a listener that does not acknowledge it.
FRESHNESS_SECONDS = 2.0
# A heartbeat every quarter of that: one late heartbeat does not stop a healthy layer.
HEARTBEATS_PER_FRESHNESS = 4
# The keys of fences' acknowledgements, after the key prefix.
ACK_INFIX = "near-ack:"
# How long a fence's acknowledgements are kept in Redis, should the writer have gone.
ACK_TTL_SECONDS = 10
# What an entry costs beyond its bytes (its key, the tuple, the dictionary slot), roughly: the
# byte budget also bounds how many small entries there are.
ENTRY_OVERHEAD_BYTES = 200
# Between two attempts to reconnect to a Redis that is down.
RECONNECT_SECONDS = 0.5


# Every layer of this process, so that a forked child can reset them (a worker forked after its
# parent served requests, with gunicorn's --preload say).
_LAYERS: weakref.WeakSet[NearCache] = weakref.WeakSet()


def _unpatched_poll() -> Callable[[], Any]:
    """``select.poll`` as the system gives it, even in a gevent worker.

    gevent's (the worker monkey-patched ``select``) waits on its hub even with a zero timeout:
    every hit would let each other greenlet of the worker run before it answers. A poll with a
    zero timeout never waits, so the system's is right for greenlets too.
    """
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None and monkey.is_module_patched("select"):
        return cast(Callable[[], Any], monkey.get_original("select", "poll"))
    return select.poll


_poll = _unpatched_poll()


def _forget_parents() -> None:
    for layer in list(_LAYERS):
        layer._forget_parent()


os.register_at_fork(after_in_child=_forget_parents)


def _expired(entry: tuple[bytes, float], now: float) -> bool:
    expires = entry[1]
    return bool(expires) and now >= expires


class _Refused(Exception):
    """Redis refused CLIENT TRACKING."""


class NearCache:
    """A bounded in-process copy of values read from Redis, coherent with it (see above)."""

    def __init__(
        self,
        *,
        url: str,
        client: redis.Redis,
        prefix: str,
        max_bytes: int,
        entry_seconds: int,
        timeout: float,
        keep: Callable[[bytes], bool],
        freshness: float = FRESHNESS_SECONDS,
    ) -> None:
        self._url = url
        # Fences go through the backend's own client.
        self._client = client
        self._prefix = prefix
        # Channels are not per database: name the database, for deployments that differ only
        # by it.
        database = client.connection_pool.connection_kwargs.get("db", 0)
        self._channel = f"{prefix}near-fence:{database}"
        self._max_bytes = max_bytes
        self._entry_seconds = entry_seconds
        self._timeout = timeout
        self._keep = keep
        self.freshness = freshness
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[bytes, float]] = {}
        self._bytes = 0
        # What the listener's connection was asked, in order: ("fill", key), ("heartbeat",
        # sent at), ("ack", None). Appended under _send_lock with the command it stands for.
        self._pending: collections.deque[tuple[str, Any]] = collections.deque()
        self._requested: set[str] = set()
        self._send_lock = threading.Lock()
        self._fresh_until = 0.0
        self._stopped = threading.Event()
        self._listener: threading.Thread | None = None
        self._connection: redis.connection.Connection | None = None
        self._socket: socket.socket | None = None
        # Fence waits block for up to ``freshness``: longer than the backend's socket timeout.
        self._waiting_client: redis.Redis | None = None
        _LAYERS.add(self)

    # Reads --------------------------------------------------------------------------------

    def get(self, key: str) -> bytes | None:
        """What Redis held for ``key``, or None (not held, expired, or the layer is not fresh)."""
        if self._listener is None:
            self._start()
        now = time.monotonic()
        if now >= self._fresh_until:
            return None
        entry = self._entries.get(key)
        if entry is None or _expired(entry, now) or self._behind():
            return None
        return entry[0]

    def fill(self, key: str, size: int) -> None:
        """Have the listener read ``key`` and keep it (Redis just answered it, ``size`` bytes)."""
        connection = self._connection
        now = time.monotonic()
        if connection is None or now >= self._fresh_until or key in self._requested:
            return
        if not self._fits(size):
            # It would be read again only to be dropped.
            return
        held = self._entries.get(key)
        if held is not None and not _expired(held, now):
            return
        self._requested.add(key)
        if not self._send(connection, ("fill", key), ("GET", self._prefix + key)):
            # The connection changed meanwhile: a later hit asks again.
            self._requested.discard(key)

    def _fits(self, size: int) -> bool:
        """Whether a value of ``size`` bytes fits in the whole budget."""
        return size + ENTRY_OVERHEAD_BYTES <= self._max_bytes

    def _behind(self) -> bool:
        """Whether Redis sent something the listener has not read yet, or closed on it.

        The listener may be waiting for the interpreter while an invalidation, or the end of a
        connection that Redis dropped (and so stopped counting in fences), is already here.
        Any data, not only the end (POLLRDHUP): when Redis drops a listener that has fallen
        behind, the end waits behind the data queued before it, and the unread data is all that
        shows (issue 8, benchmarks/results/3-december-midday).
        """
        connection = self._socket
        if connection is None:
            return True
        # poll, not select: a worker with many connections has descriptors past select's 1024.
        # One poll object per call: two threads may not poll the same one at once.
        readiness = _poll()
        try:
            readiness.register(connection, select.POLLIN)
            return bool(readiness.poll(0))
        except (OSError, ValueError):
            return True

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: str) -> bool:
        """Whether the layer holds ``key`` (served or not: see ``get``)."""
        return key in self._entries

    @property
    def size(self) -> int:
        """Bytes held, counting each entry's overhead."""
        return self._bytes

    # Writes -------------------------------------------------------------------------------

    def fence(self, *commands: tuple[Any, ...]) -> list[Any]:
        """Run ``commands`` (invalidations), then wait until every listener has applied them.

        One round trip for the commands and the fence; returns their answers. Raises redis-py's
        errors when the commands could not be run; once they ran, waiting always ends in time.
        """
        ack_key = f"{self._prefix}{ACK_INFIX}{secrets.token_hex(16)}"
        pipeline = self._client.pipeline(transaction=False)
        for command in commands:
            pipeline.execute_command(*command)
        pipeline.publish(self._channel, "fence " + ack_key)
        *answers, listeners = pipeline.execute()
        # Redis ran the invalidation before this: a listener's last heartbeat that came back
        # before it was sent before this too.
        deadline = time.monotonic() + self.freshness
        acknowledged = 0
        try:
            while acknowledged < listeners:
                remaining = deadline - time.monotonic()
                # BLPOP's own timeout is coarse (Redis checks it about every 100 ms): the
                # waiting client's socket timeout is longer than any wait.
                if remaining <= 0 or not self._waiter().blpop([ack_key], timeout=remaining):
                    break
                acknowledged += 1
        except redis.exceptions.RedisError as error:
            logger.warning("near cache: waiting for acknowledgements failed: %r", error)
        if acknowledged < listeners:
            # A listener that did not answer stops serving freshness seconds after its last
            # heartbeat, by the deadline.
            logger.warning(
                "near cache: %d of %d listeners did not acknowledge an invalidation; waiting "
                "until they stop serving",
                listeners - acknowledged,
                listeners,
            )
            time.sleep(max(0.0, deadline - time.monotonic()))
        return answers

    def _waiter(self) -> redis.Redis:
        waiter = self._waiting_client
        if waiter is None:
            waiter = self._waiting_client = redis.Redis.from_url(
                self._url,
                socket_connect_timeout=self._timeout,
                socket_timeout=self.freshness + 1,
            )
        return waiter

    # The listener -------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the listener and empty the layer (tests; a process that ends needs nothing)."""
        self._stopped.set()
        self._drop_all()
        with self._send_lock:
            connection, self._connection = self._connection, None
            if connection is not None:
                connection.disconnect()
        if self._waiting_client is not None:
            self._waiting_client.close()
        if self._listener is not None and self._listener is not threading.current_thread():
            self._listener.join(timeout=5)

    def _start(self) -> None:
        with self._lock:
            if self._listener is not None:
                return
            listener = threading.Thread(target=self._listen, name="refapi-near-cache", daemon=True)
            listener.start()
            self._listener = listener

    def _forget_parent(self) -> None:
        """In a forked child: nothing of the parent's listener, locks or entries survives."""
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._connection = self._socket = None
        self._waiting_client = None
        self._listener = None
        self._pending.clear()
        self._drop_all_locked()

    def _send(self, connection: Any, marker: tuple[str, Any], *commands: tuple[Any, ...]) -> bool:
        """Send ``commands`` on the listener's connection; their answers come to the listener.

        False when they were not sent (the connection is gone, or failed).
        """
        with self._send_lock:
            # Never on a connection that has closed: redis-py would open a new, untracked one.
            current = self._connection
            if current is None or current is not connection or not current._sock:
                return False
            try:
                for command in commands:
                    self._pending.append(marker)
                    current.send_command(*command, check_health=False)
            except (redis.exceptions.RedisError, OSError):
                # The listener finds the connection broken, empties the layer and reconnects.
                self._socket = None
                return False
            return True

    def _drop_all(self) -> None:
        with self._lock:
            self._drop_all_locked()

    def _drop_all_locked(self) -> None:
        self._fresh_until = 0.0
        self._entries.clear()
        self._bytes = 0
        self._requested.clear()

    def _drop(self, names: list[bytes] | None) -> None:
        with self._lock:
            if names is None:
                # A FLUSHDB, FLUSHALL, or a full tracking table: everything may have changed.
                self._entries.clear()
                self._bytes = 0
                return
            for name in names:
                key = name.decode()[len(self._prefix) :]
                self._forget(key)

    def _forget(self, key: str) -> None:
        # Under the lock.
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= len(entry[0]) + ENTRY_OVERHEAD_BYTES

    def _keep_answer(self, key: str, raw: Any) -> None:
        self._requested.discard(key)
        # The budget first: keep() unpickles the value to spot a lease.
        if not isinstance(raw, bytes) or not self._fits(len(raw)) or not self._keep(raw):
            return
        size = len(raw) + ENTRY_OVERHEAD_BYTES
        with self._lock:
            self._forget(key)
            while self._bytes + size > self._max_bytes:
                # The oldest entry first: dicts keep insertion order.
                self._forget(next(iter(self._entries)))
            now = time.monotonic()
            expires = now + self._entry_seconds if self._entry_seconds else 0.0
            self._entries[key] = (raw, expires)
            self._bytes += size

    def _listen(self) -> None:
        was_down = False
        while not self._stopped.is_set():
            try:
                self._serve()
            except _Refused as error:
                # Redis refused to track (a proxy or managed Redis without CLIENT TRACKING, a
                # Redis older than 6): the layer stays off, and reads go to Redis as they would.
                logger.error(
                    "near cache off: Redis refused to track keys (%s); reads use Redis alone. "
                    "REFAPI_NEAR_CACHE_BYTES=0 turns the near cache off.",
                    error,
                )
                self._stopped.set()
            except Exception as error:
                # Whatever it was, the layer stops serving (below) and listens again.
                if self._stopped.is_set():
                    break
                if not was_down:
                    logger.warning("near cache off until Redis answers: %r", error)
                was_down = True
            finally:
                with self._send_lock:
                    self._drop_all()
                    self._socket = None
                    connection, self._connection = self._connection, None
                    self._pending.clear()
                    if connection is not None:
                        connection.disconnect()
            self._stopped.wait(RECONNECT_SECONDS)

    def _serve(self) -> None:
        """Track what the layer reads and apply what Redis sends, until the connection fails."""
        client = redis.Redis.from_url(
            self._url,
            protocol=3,
            single_connection_client=True,
            socket_connect_timeout=self._timeout,
            socket_timeout=self._timeout,
            client_name="refapi-near-cache",
            # Their pushes would be read as answers (None) and pair later answers wrongly.
            maint_notifications_config=MaintNotificationsConfig(enabled=False),
        )
        connection = client.connection
        if connection is None:
            raise redis.exceptions.ConnectionError("no connection")
        with self._send_lock:
            self._connection = connection
        connection.connect()
        # Pushes (invalidations, the channel's messages) come back marked, answers as they are.
        parser: Any = connection._parser
        parser.set_invalidation_push_handler(lambda push: ("push", push))
        parser.set_pubsub_push_handler(lambda push: ("push", push))
        try:
            connection.send_command("CLIENT", "TRACKING", "ON")
            connection.read_response()
        except redis.exceptions.ResponseError as error:
            raise _Refused(str(error)) from error
        connection.send_command("SUBSCRIBE", self._channel)
        connection.read_response(push_request=True)
        self._socket = connection._sock
        logger.info("near cache listening")
        next_heartbeat = 0.0
        while not self._stopped.is_set():
            now = time.monotonic()
            if now >= next_heartbeat:
                self._send(connection, ("heartbeat", now), ("PING",))
                next_heartbeat = now + self.freshness / HEARTBEATS_PER_FRESHNESS
            if connection._sock is None or self._socket is None:
                # A send failed and redis-py closed the connection; its next read would open
                # a new one, without tracking: start again instead.
                raise redis.exceptions.ConnectionError("the listener's connection was closed")
            if not connection.can_read(timeout=max(next_heartbeat - time.monotonic(), 0)):
                continue
            try:
                answer = connection.read_response(push_request=True)
            except redis.exceptions.ResponseError:
                # An error answer to an acknowledgement (Redis out of memory, say): that writer
                # waits out the freshness instead. To anything else: start again.
                if self._pending and self._pending[0][0] == "ack":
                    self._pending.popleft()
                    continue
                raise
            if isinstance(answer, tuple) and answer[0] == "push":
                self._apply(connection, answer[1])
                continue
            kind, detail = self._pending.popleft()
            if kind == "fill":
                if answer is not None and not isinstance(answer, bytes):
                    raise redis.exceptions.ConnectionError(f"a GET answered {answer!r}")
                self._keep_answer(detail, answer)
            elif kind == "heartbeat":
                if answer not in (b"PONG", "PONG"):
                    raise redis.exceptions.ConnectionError(f"a PING answered {answer!r}")
                # Everything Redis sent before this heartbeat's answer has been applied.
                self._fresh_until = detail + self.freshness

    def _apply(self, connection: Any, push: list[Any]) -> None:
        kind = push[0]
        if kind == b"invalidate":
            self._drop(push[1])
        elif kind == b"message":
            words = push[2].decode().split(" ")
            if words[0] == "fence":
                self._send(
                    connection,
                    ("ack", None),
                    ("RPUSH", words[1], 1),
                    ("EXPIRE", words[1], ACK_TTL_SECONDS),
                )
