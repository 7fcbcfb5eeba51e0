"""Each worker's in-process layer in front of Redis, kept coherent by Redis (issue 8).

A read cached in Redis costs a network round trip; the same read from this layer costs a
dictionary lookup. ``ResilientRedisCache.get_or_lease`` (``refapi.caching.read_through``) asks
it first, and offers it what Redis answered, as Redis's bytes: each hit deserialises its own
copy. A byte budget bounds it. It never serves a value that a write which has returned replaced:

- **Redis names every change.** The listener's own connection has ``CLIENT TRACKING ON BCAST
  PREFIX <key prefix>``: Redis pushes to it the name of every key under the prefix that changes
  (written, deleted, expired, evicted, flushed), whoever changed it: another worker, another
  replica, a CLI command, an older release. The listener drops those keys.
- **A write waits for every listener.** After a cache invalidation, ``fence`` publishes a fence
  on a channel that every listener subscribes to on that same connection. Redis delivers the
  fence after the invalidations it sent before it, so a listener that acknowledges the fence
  has dropped them. The writer returns once every listener has acknowledged (PUBLISH says how
  many there are).
- **A listener that does not answer stops serving.** A layer serves hits only for
  ``freshness`` seconds after it last heard back its own heartbeat through that connection;
  a writer that misses an acknowledgement waits ``freshness`` from before its fence, by when
  such a listener has stopped serving. A lost connection empties the layer.
- **A fill cannot bring an old value back.** A read takes a token before asking Redis; an
  invalidation of the key drops the token; the answer is kept only if its token survived.

redis-py's own client-side cache needs Redis 7.4 and does not make writers wait; this works
with Redis 6 and later.
"""

from __future__ import annotations

import logging
import os
import select
import socket
import threading
import time
import uuid
from typing import Any

import redis

logger = logging.getLogger("refapi.cache")

# How long a layer may serve after its last heartbeat came back, and so how long a write waits
# at most for a listener that does not acknowledge it.
FRESHNESS_SECONDS = 2.0
# A heartbeat every quarter of that: one late heartbeat does not stop a healthy layer.
HEARTBEATS_PER_FRESHNESS = 4
# How long a fence's acknowledgements are kept in Redis, should the writer have gone.
ACK_TTL_SECONDS = 10
# What an entry costs beyond its bytes (its key, the tuple, the dictionary slot), roughly: the
# byte budget also bounds how many small entries there are.
ENTRY_OVERHEAD_BYTES = 200
# Between two attempts to reconnect to a Redis that is down.
RECONNECT_SECONDS = 0.5


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
        freshness: float = FRESHNESS_SECONDS,
    ) -> None:
        self._url = url
        # Heartbeats, fences and acknowledgements go through the backend's own client.
        self._client = client
        self._prefix = prefix
        self._prefix_bytes = prefix.encode()
        self._channel = prefix + "near-fence"
        self._max_bytes = max_bytes
        self._bytes = 0
        self._entry_seconds = entry_seconds
        self._timeout = timeout
        self.freshness = freshness
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[bytes, float]] = {}
        self._filling: dict[str, object] = {}
        self._fresh_until = 0.0
        self._pid: int | None = None
        self._stopped = threading.Event()
        self._listener: threading.Thread | None = None
        self._connection: redis.connection.Connection | None = None
        self._socket: socket.socket | None = None

    # Reads --------------------------------------------------------------------------------

    def get(self, key: str) -> bytes | None:
        """What Redis held for ``key``, or None (not held, expired, or the layer is not fresh)."""
        if self._pid != os.getpid():
            self._start()
        now = time.monotonic()
        if now >= self._fresh_until:
            return None
        entry = self._entries.get(key)
        if entry is None:
            return None
        value, expires = entry
        if (expires and now >= expires) or self._behind():
            return None
        return value

    def _behind(self) -> bool:
        """Whether Redis sent something the listener has not read yet, or closed on it.

        The listener may be waiting for the interpreter while an invalidation, or the end of a
        connection that Redis dropped (and so stopped counting in fences), is already here.
        """
        connection = self._socket
        if connection is None:
            return True
        try:
            readable, _, _ = select.select([connection], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)

    def begin(self, key: str) -> object | None:
        """A token for a read of ``key`` about to ask Redis; None when the layer cannot fill."""
        if time.monotonic() >= self._fresh_until:
            return None
        token = object()
        with self._lock:
            self._filling[key] = token
        return token

    def offer(self, key: str, token: object, raw: bytes) -> bool:
        """Keep ``raw`` (Redis's bytes for ``key``) if no invalidation of ``key`` came since
        ``begin`` gave ``token``."""
        size = len(raw) + ENTRY_OVERHEAD_BYTES
        if size > self._max_bytes:
            return False
        with self._lock:
            if self._filling.get(key) is not token:
                return False
            del self._filling[key]
            now = time.monotonic()
            if now >= self._fresh_until:
                return False
            self._forget(key)
            while self._bytes + size > self._max_bytes:
                # The oldest entry first: dicts keep insertion order.
                self._forget(next(iter(self._entries)))
            expires = now + self._entry_seconds if self._entry_seconds else 0.0
            self._entries[key] = (raw, expires)
            self._bytes += size
            return True

    def _forget(self, key: str) -> None:
        # Under the lock.
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= len(entry[0]) + ENTRY_OVERHEAD_BYTES

    @property
    def size(self) -> int:
        """Bytes held, counting each entry's overhead."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    # Writes -------------------------------------------------------------------------------

    def fence(self) -> int:
        """Wait until every listener has applied the invalidations sent before this call.

        Returns how many acknowledged. Raises redis-py's errors when Redis cannot be reached.
        """
        started = time.monotonic()
        ack_key = f"{self._prefix}near-ack:{uuid.uuid4().hex}"
        listeners = int(self._client.publish(self._channel, "fence " + ack_key))
        acknowledged = 0
        deadline = started + self.freshness
        # Each wait is shorter than the client's socket timeout, which would end a longer one.
        step = max(min(self._timeout / 2, 0.25), 0.01)
        while acknowledged < listeners:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            if self._client.blpop([ack_key], timeout=min(remaining, step)) is not None:
                acknowledged += 1
        if acknowledged < listeners:
            # A listener that did not answer stops serving freshness seconds after its last
            # heartbeat, which it sent before this fence.
            logger.warning(
                "near cache: %d of %d listeners did not acknowledge an invalidation; waiting "
                "until they stop serving",
                listeners - acknowledged,
                listeners,
            )
            time.sleep(max(0.0, started + self.freshness - time.monotonic()))
            self._client.delete(ack_key)
        return acknowledged

    # The listener -------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the listener and empty the layer (tests; a process that ends needs nothing)."""
        self._stopped.set()
        self._drop_all()
        connection = self._connection
        if connection is not None:
            connection.disconnect()
        if self._listener is not None and self._listener is not threading.current_thread():
            self._listener.join(timeout=5)

    def _start(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                return
            # A forked worker inherits no listener: its own starts empty.
            self._pid = os.getpid()
            self._entries = {}
            self._filling = {}
            self._bytes = 0
            self._fresh_until = 0.0
            self._listener = threading.Thread(
                target=self._listen, name="refapi-near-cache", daemon=True
            )
            self._listener.start()

    def _drop_all(self) -> None:
        with self._lock:
            self._fresh_until = 0.0
            self._entries.clear()
            self._filling.clear()
            self._bytes = 0

    def _drop(self, keys: list[bytes] | None) -> None:
        with self._lock:
            if keys is None:
                # A FLUSHDB, FLUSHALL, or tracking turned off: everything may have changed.
                self._entries.clear()
                self._filling.clear()
                self._bytes = 0
                return
            for name in keys:
                if name.startswith(self._prefix_bytes):
                    key = name[len(self._prefix_bytes) :].decode()
                    self._forget(key)
                    self._filling.pop(key, None)

    def _listen(self) -> None:
        was_down = False
        while not self._stopped.is_set():
            try:
                self._serve()
            except Exception as error:
                # Whatever it was, the layer stops serving (finally) and listens again.
                if self._stopped.is_set():
                    break
                if not was_down:
                    logger.warning("near cache off until Redis answers: %r", error)
                was_down = True
            finally:
                self._drop_all()
                self._socket = None
                connection, self._connection = self._connection, None
                if connection is not None:
                    connection.disconnect()
            self._stopped.wait(RECONNECT_SECONDS)

    def _serve(self) -> None:
        """Track the prefix and apply what Redis sends, until the connection fails."""
        client = redis.Redis.from_url(
            self._url,
            protocol=3,
            single_connection_client=True,
            socket_connect_timeout=self._timeout,
            socket_timeout=self._timeout,
            client_name="refapi-near-cache",
        )
        connection = client.connection
        if connection is None:
            raise redis.exceptions.ConnectionError("no connection")
        self._connection = connection
        connection.connect()
        self._socket = connection._sock
        # Pushes (invalidations and fence messages alike) are returned to this loop, in order.
        connection._parser.set_invalidation_push_handler(lambda push: push)
        connection.send_command("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", self._prefix)
        connection.read_response()
        connection.send_command("SUBSCRIBE", self._channel)
        connection.read_response(push_request=True)
        logger.info("near cache listening")
        me = uuid.uuid4().hex
        next_heartbeat = 0.0
        while not self._stopped.is_set():
            now = time.monotonic()
            if now >= next_heartbeat:
                self._client.publish(self._channel, f"heartbeat {me} {now!r}")
                next_heartbeat = now + self.freshness / HEARTBEATS_PER_FRESHNESS
            if not connection.can_read(timeout=max(next_heartbeat - time.monotonic(), 0)):
                continue
            push = connection.read_response(push_request=True)
            self._apply(push, me)

    def _apply(self, push: Any, me: str) -> None:
        kind = push[0]
        if kind == b"invalidate":
            self._drop(push[1])
        elif kind == b"message":
            words = push[2].decode().split(" ")
            if words[0] == "heartbeat" and words[1] == me:
                # Every invalidation Redis sent before this heartbeat has been applied.
                self._fresh_until = float(words[2]) + self.freshness
            elif words[0] == "fence":
                acknowledgement = self._client.pipeline(transaction=False)
                acknowledgement.rpush(words[1], 1)
                acknowledgement.expire(words[1], ACK_TTL_SECONDS)
                acknowledgement.execute()
