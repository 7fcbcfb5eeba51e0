"""The store's fixtures: threads started together, and a Redis that can be cut off."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from tests.tcp_proxy import TcpProxy


def run_together(count: int, action: Callable[[int], Any]) -> list[Any]:
    """Run ``action(0)`` ... ``action(count - 1)`` in threads released at the same moment."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count
    failures: list[BaseException] = []

    def work(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[index] = action(index)
        except BaseException as error:  # reported by the test, not lost in the thread
            failures.append(error)

    threads = [threading.Thread(target=work, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a thread did not finish"
    if failures:
        raise failures[0]
    return results


@pytest.fixture
def redis_proxy(services: dict[str, str]) -> Iterator[TcpProxy]:
    """A way to the test Redis that the test can cut; its URL is ``redis_proxy_url``."""
    pool = redis.ConnectionPool.from_url(services["redis"])
    kwargs = pool.connection_kwargs
    proxy = TcpProxy((kwargs.get("host", "127.0.0.1"), kwargs.get("port", 6379)))
    proxy.restore()
    yield proxy
    proxy.close()
    pool.disconnect()


@pytest.fixture
def redis_proxy_url(services: dict[str, str], redis_proxy: TcpProxy) -> str:
    database = redis.ConnectionPool.from_url(services["redis"]).connection_kwargs.get("db", 0)
    return f"redis://127.0.0.1:{redis_proxy.port}/{database}"
