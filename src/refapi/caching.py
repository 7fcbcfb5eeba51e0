"""The cache backend: Redis that degrades to "no cache" instead of failing requests.

Flask-Caching's ``memoize`` survives a dead Redis, but logs a traceback on every request, and
``delete_memoized``, ``get``, ``set`` and ``delete`` raise. With ``ResilientRedisCache`` every
operation on an unreachable Redis is a miss (reads fall through to the database), the outage is
logged once when it starts and once when it ends, and a write that committed never fails
because its invalidation could not reach Redis.

A failed invalidation may leave an old value in a Redis that was only out of reach: so after
any failed write the backend empties its own keys (its key prefix) before it answers again.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import redis
from flask import Flask
from flask_caching.backends.rediscache import RedisCache

logger = logging.getLogger("refapi.cache")

T = TypeVar("T")

_READS = ("get", "get_many", "has")
_WRITES = ("set", "add", "set_many", "delete", "delete_many", "inc", "dec", "unlink")


class ResilientRedisCache(RedisCache):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._state_lock = threading.Lock()
        self._available = True
        self._must_flush = False

    @classmethod
    def factory(
        cls, app: Flask, config: dict[str, Any], args: list[Any], kwargs: dict[str, Any]
    ) -> ResilientRedisCache:
        # Flask-Caching pops CACHE_OPTIONS from the config it is given: pass a copy.
        return super().factory(app, dict(config), args, kwargs)  # type: ignore[return-value]

    @property
    def available(self) -> bool:
        """False while the last operation could not reach Redis."""
        return self._available

    def ping(self) -> bool:
        """Whether Redis answers now; recovers (and flushes if needed) when it does."""
        return bool(self._guard(lambda: self._write_client.ping(), failed=False, write=False))

    def clear(self) -> bool:
        """Delete this deployment's keys (those under the key prefix), and nothing else."""
        return bool(self._guard(self._delete_own_keys, failed=False, write=True, flush_first=False))

    def _delete_own_keys(self) -> bool:
        # SCAN and UNLINK in batches, where cachelib's clear() runs KEYS (which blocks Redis)
        # and, with an empty prefix, FLUSHDB (which would empty a shared Redis).
        prefix = self._get_prefix()
        if not prefix:
            raise ValueError("ResilientRedisCache needs a key prefix")
        client = self._write_client
        batch: list[bytes] = []
        for key in client.scan_iter(match=prefix + "*", count=1000):
            batch.append(key)
            if len(batch) == 1000:
                client.unlink(*batch)
                batch = []
        if batch:
            client.unlink(*batch)
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


def _guarded(name: str, *, write: bool) -> Callable[..., Any]:
    original = getattr(RedisCache, name)

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
