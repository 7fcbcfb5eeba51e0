"""The cache backend: Redis that degrades to "no cache" instead of failing requests.

Flask-Caching's ``memoize`` survives a dead Redis, but logs a traceback on every request, and
``delete_memoized``, ``get``, ``set`` and ``delete`` raise. With ``ResilientRedisCache`` every
operation on an unreachable Redis is a miss (reads fall through to the database), the outage is
logged once when it starts and once when it ends, and a write that committed never fails
because its invalidation could not reach Redis.

A failed invalidation may leave an old value in a Redis that was only out of reach: so after
any failed write the backend empties its own keys (its key prefix) before it answers again.

``read_through`` reads a value through the cache in one round trip on a hit, and fills it on a
miss under a lease (as memcached's leases do), so that a read that loses a race with a write can
never leave the replaced value cached. Both backends here, ``LocalCache`` (in-process) and
``ResilientRedisCache``, implement the two atomic steps it needs. With Redis, each worker also
keeps what it read in a ``NearCache`` (``refapi.nearcache``), so that a repeated read makes no
round trip at all; every invalidation waits until each worker's copy has dropped the key.
"""

from __future__ import annotations

import functools
import logging
import secrets
import threading
from collections.abc import Callable
from typing import Any, Protocol, TypeVar, cast

import redis
from flask import Flask
from flask_caching import Cache
from flask_caching.backends.rediscache import RedisCache
from flask_caching.backends.simplecache import SimpleCache

from refapi.context import current_flask_app
from refapi.nearcache import NearCache

logger = logging.getLogger("refapi.cache")

T = TypeVar("T")

_READS = ("get", "get_many", "has")
_WRITES = ("set", "add", "set_many", "delete", "delete_many", "inc", "dec", "unlink")


# A lease is a string value that no cached value can equal: callers cache dicts, lists, tuples
# and bytes, never a str.
_LEASE_PREFIX = "\x00refapi-lease:"
# How long a lease keeps others from filling a key: a reader that died holding it only delays
# caching that key this long. A slower reader's fill simply fails.
LEASE_SECONDS = 10
# Every key refapi caches starts, after the key prefix, with one of these: each feature's reads,
# and Flask-Caching's memoize version keys of earlier releases ("refapi.<module>.<function>").
# Emptying the cache deletes these families only, never "<prefix>*": another deployment's prefix
# may begin with ours ("refapi:" and "refapi:staging:"). tests/test_cache_commands.py checks
# that the features write nothing else.
KEY_FAMILIES = ("store.", "zipcodes.", "indices.", "refapi.")


class LeasingCache(Protocol):
    def get_or_lease(self, key: str, timeout: int) -> tuple[Any, str | None]: ...

    def replace_lease(self, key: str, lease: str, value: Any, timeout: int | None) -> bool: ...

    def delete_prefixed(self, prefix: str) -> bool: ...


def read_through(
    cache: Cache, key: str, load: Callable[[], T | None], *, timeout: int | None = None
) -> T | None:
    """``load()``, through the cache: one cache operation on a hit, two around ``load`` on a miss.

    ``cache``'s backend must be ``LocalCache`` or ``ResilientRedisCache`` (see ``create_app``).

    ``None`` (nothing to cache) is never cached. Writers invalidate by deleting ``key`` after
    their commit (or, for many keys at once, ``delete_prefixed``): that also deletes the lease of
    any read in flight, whose fill then fails, so a value loaded before the write can never be
    cached after it.
    """
    backend = _backend(cache)
    cached, lease = backend.get_or_lease(key, LEASE_SECONDS)
    if cached is not None and not _is_lease(cached):
        return cast(T, cached)
    value = load()
    if lease is not None and value is not None:
        backend.replace_lease(key, lease, value, timeout)
    return value


def _backend(cache: Cache) -> LeasingCache:
    # Flask-Caching's cache.cache, looked up where it looks, without its truth test of the
    # current_app proxy (about 1 us of a cached read's 70 in process, issue 8).
    return cast(LeasingCache, current_flask_app().extensions["cache"][cache])


def _new_lease() -> str:
    # Made only on the way to a lease: a hit in process (SimpleCache, the near cache) needs none.
    return _LEASE_PREFIX + secrets.token_hex(16)


def _is_lease(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(_LEASE_PREFIX)


def invalidation_lost(cache: Cache) -> bool:
    """Whether this process changed data that Redis was not told of (``ResilientRedisCache``).

    Always False with the in-process cache: a command's own cache is not the server's, and a
    command cannot tell the server anything (README: restart it).
    """
    backend = _backend(cache)
    return isinstance(backend, ResilientRedisCache) and backend.invalidation_lost


def delete_prefixed(cache: Cache, prefix: str) -> bool:
    """Delete every key of ``cache`` that starts with ``prefix``, leases included."""
    return _backend(cache).delete_prefixed(prefix)


class LocalCache(SimpleCache):
    """Flask-Caching's in-process cache, with the two atomic steps of ``read_through``.

    Deletions take the same lock as the lease steps, so that an invalidation can never fall
    between a fill's check of its lease and its write. (Recent cachelib SimpleCaches have a lock
    of their own, which this reuses; 0.14, the last for Python 3.10, has none.)
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not hasattr(self, "_lock"):
            self._lock = threading.RLock()

    def delete(self, key: str) -> bool:
        with self._lock:
            return bool(super().delete(key))

    def delete_many(self, *keys: str) -> list[str]:
        # Every key, one by one: Flask-Caching's own delete_many stops at the first key that is
        # not cached (unless told to ignore "errors"), leaving the keys after it in place.
        with self._lock:
            return [key for key in keys if self.delete(key)]

    def clear(self) -> bool:
        with self._lock:
            return bool(super().clear())

    def get_or_lease(self, key: str, timeout: int) -> tuple[Any, str | None]:
        with self._lock:
            value = self.get(key)
            if value is not None:
                return value, None
            lease = _new_lease()
            self.set(key, lease, timeout)
            return None, lease

    def replace_lease(self, key: str, lease: str, value: Any, timeout: int | None) -> bool:
        with self._lock:
            if self.get(key) != lease:
                return False
            return bool(self.set(key, value, timeout))

    def delete_prefixed(self, prefix: str) -> bool:
        """Delete every key that starts with ``prefix`` (leases included)."""
        with self._lock:
            for key in [key for key in self._cache if key.startswith(prefix)]:
                del self._cache[key]
        return True


# KEYS[1]: the key; ARGV: the serialised lease, its seconds. The value, or nil after leasing.
_GET_OR_LEASE = """
local value = redis.call('GET', KEYS[1])
if value then return value end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return false
"""
# KEYS[1]: the key; ARGV: the serialised lease, the serialised value, its seconds (0: none).
_REPLACE_LEASE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if tonumber(ARGV[3]) > 0 then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
else
  redis.call('SET', KEYS[1], ARGV[2])
end
return 1
"""


class ResilientRedisCache(RedisCache):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._state_lock = threading.Lock()
        self._available = True
        self._must_flush = False
        self._get_or_lease_script = self._write_client.register_script(_GET_OR_LEASE)
        self._replace_lease_script = self._write_client.register_script(_REPLACE_LEASE)
        self.near: NearCache | None = None

    @classmethod
    def factory(
        cls, app: Flask, config: dict[str, Any], args: list[Any], kwargs: dict[str, Any]
    ) -> ResilientRedisCache:
        # Flask-Caching pops CACHE_OPTIONS from the config it is given: pass a copy.
        backend = cast(ResilientRedisCache, super().factory(app, dict(config), args, kwargs))
        size = config.get("CACHE_NEAR_BYTES", 0)
        if size:
            backend.near = NearCache(
                url=config["CACHE_REDIS_URL"],
                client=backend._write_client,
                prefix=backend._get_prefix(),
                max_bytes=size,
                entry_seconds=backend.default_timeout,
                timeout=config.get("CACHE_OPTIONS", {}).get("socket_timeout") or 0.5,
                keep=lambda raw: not _is_lease(backend.serializer.loads(raw)),
            )
        return backend

    def _invalidate(self, command: str, *names: str) -> Any:
        """``command`` (DEL, UNLINK) on ``names``, then wait until every worker's near cache has
        dropped them: one round trip for both, and the acknowledgements."""
        if self.near is None:
            return self._write_client.execute_command(command, *names)
        return self.near.fence((command, *names))[0]

    @property
    def available(self) -> bool:
        """False while the last operation could not reach Redis."""
        return self._available

    @property
    def invalidation_lost(self) -> bool:
        """Whether a deletion could not reach Redis, and the cache has not been emptied since.

        A server makes it good itself: its next operation that reaches Redis empties the cache
        first. A command exits before that, and must say so (``refapi.cli.require_invalidated``).
        """
        return self._must_flush

    def ping(self) -> bool:
        """Whether Redis answers now; recovers (and flushes if needed) when it does."""
        return bool(self._guard(lambda: self._write_client.ping(), failed=False, write=False))

    def get_or_lease(self, key: str, timeout: int) -> tuple[Any, str | None]:
        """The cached value and None, or None and the lease it set; (None, None) when down.

        From this worker's near cache when it holds the key: no round trip.
        """
        near = self.near
        if near is not None:
            held = near.get(key)
            if held is not None:
                # Kept serialised, so that no caller can change what the next one reads.
                return self.serializer.loads(held), None

        def run() -> tuple[Any, str | None]:
            name = self._get_prefix() + key
            lease = _new_lease()
            raw = self._get_or_lease_script(
                keys=[name], args=[self.serializer.dumps(lease), timeout]
            )
            if raw is None:  # nothing was cached: the script set the lease
                return None, lease
            value = self.serializer.loads(raw)
            if near is not None and not _is_lease(value):
                near.fill(key, len(raw))
            return value, None

        nothing: tuple[Any, str | None] = (None, None)
        return self._guard(run, failed=nothing, write=False)

    def replace_lease(self, key: str, lease: str, value: Any, timeout: int | None) -> bool:
        """Cache ``value`` under ``key`` if ``key`` still holds ``lease``."""

        def run() -> bool:
            return bool(
                self._replace_lease_script(
                    keys=[self._get_prefix() + key],
                    args=[
                        self.serializer.dumps(lease),
                        self.serializer.dumps(value),
                        self._normalize_timeout(timeout),
                    ],
                )
            )

        # Not filling is always safe: a failure here loses no invalidation.
        return bool(self._guard(run, failed=False, write=False))

    def clear(self) -> bool:
        """Delete this deployment's cached keys (``KEY_FAMILIES`` after the key prefix) alone."""
        return bool(self._guard(self._delete_own_keys, failed=False, write=True, flush_first=False))

    def delete_prefixed(self, prefix: str) -> bool:
        """Delete every key that starts with ``prefix`` (leases included).

        SCAN returns every key that exists from its start to its end, so a lease taken before
        the call is deleted even if its reader fills it meanwhile; a lease taken after the scan
        passed its key belongs to a read that began after the caller's commit.
        """
        return bool(self._guard(lambda: self._delete_own_keys(prefix), failed=False, write=True))

    def _delete_own_keys(self, prefix: str = "") -> bool:
        # SCAN and UNLINK in batches, where cachelib's clear() runs KEYS (which blocks Redis)
        # and, with an empty prefix, FLUSHDB (which would empty a shared Redis). Without a
        # prefix, the KEY_FAMILIES. Then one fence for the near caches.
        own = self._get_prefix()
        if not own:
            raise ValueError("ResilientRedisCache needs a key prefix")
        client = self._write_client
        for family in (prefix,) if prefix else KEY_FAMILIES:
            batch: list[bytes] = []
            for key in client.scan_iter(match=_glob_escape(own + family) + "*", count=1000):
                batch.append(key)
                if len(batch) == 1000:
                    client.unlink(*batch)
                    batch = []
            if batch:
                client.unlink(*batch)
        if self.near is not None:
            self.near.fence()
        return True

    def _guard(
        self,
        operation: Callable[[], T],
        *,
        failed: T,
        write: bool,
        flush_first: bool = True,
    ) -> T:
        try:
            if flush_first and self._must_flush:
                self._flush()
            result = operation()
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as error:
            self._mark_down(error, write=write)
            return failed
        self._mark_up()
        return result

    def _flush(self) -> None:
        self._delete_own_keys()
        with self._state_lock:
            self._must_flush = False
        logger.warning("cache emptied: an invalidation was lost while Redis was unreachable")

    def _mark_down(self, error: Exception, *, write: bool) -> None:
        with self._state_lock:
            was_available = self._available
            self._available = False
            if write:
                self._must_flush = True
        if was_available:
            logger.error("cache unavailable, serving from the database: %s", type(error).__name__)

    def _mark_up(self) -> None:
        if self._available:
            return
        with self._state_lock:
            was_available = self._available
            self._available = True
        if not was_available:
            logger.warning("cache available again")


def _glob_escape(text: str) -> str:
    """``text`` matched literally in a Redis MATCH pattern."""
    return "".join("\\" + char if char in "*?[]\\" else char for char in text)


def _delete_many(self: ResilientRedisCache, *keys: str) -> list[str]:
    # One DEL for all the keys. cachelib's delete_many then asks Redis about each key, a round
    # trip apiece, and raises RuntimeError when one exists again, as it legitimately does once a
    # concurrent read has taken a lease on it.
    if keys:
        self._invalidate("DEL", *(self._get_prefix() + key for key in keys))
    return list(keys)


def _delete(self: ResilientRedisCache, key: str) -> bool:
    return bool(self._invalidate("DEL", self._get_prefix() + key))


def _unlink(self: ResilientRedisCache, *keys: str) -> Any:
    if not keys:
        return None
    return self._invalidate("UNLINK", *(self._get_prefix() + key for key in keys))


# Operations done here rather than by cachelib's RedisCache: each invalidation waits until every
# worker's near cache has applied it.
_OWN: dict[str, Callable[..., Any]] = {
    "delete_many": _delete_many,
    "delete": _delete,
    "unlink": _unlink,
}


def _guarded(name: str, *, write: bool) -> Callable[..., Any]:
    original = _OWN.get(name) or getattr(RedisCache, name)

    @functools.wraps(original)
    def method(self: ResilientRedisCache, *args: Any, **kwargs: Any) -> Any:
        # What each operation answers when Redis is unreachable: a miss, or "not done".
        fallback: Any = (
            [None] * len(args) if name == "get_many" else None if name == "get" else False
        )
        return self._guard(lambda: original(self, *args, **kwargs), failed=fallback, write=write)

    return method


for _name in _READS:
    setattr(ResilientRedisCache, _name, _guarded(_name, write=False))
for _name in _WRITES:
    setattr(ResilientRedisCache, _name, _guarded(_name, write=True))
