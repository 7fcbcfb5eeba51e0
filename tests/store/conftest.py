"""The store's fixtures: threads started together, and a Redis that can be cut off."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis


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


class TcpProxy:
    """Forwards a local port to Redis; ``cut()`` makes Redis unreachable, ``restore()`` undoes it.

    Lets a test take Redis away mid-test without touching the Redis server others share.
    """

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen()
        self._listener = listener
        self._spawn(self._accept, listener)

    def cut(self) -> None:
        """Refuse new connections and drop the open ones."""
        if self._listener is not None:
            self._close(self._listener)
            self._listener = None
        with self._lock:
            open_sockets = list(self._sockets)
        for sock in open_sockets:
            self._close(sock)

    def close(self) -> None:
        self.cut()
        for thread in self._threads:
            thread.join(timeout=5)

    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                downstream, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                self._close(downstream)
                continue
            with self._lock:
                self._sockets.update((downstream, upstream))
            self._spawn(self._pump, downstream, upstream)
            self._spawn(self._pump, upstream, downstream)

    def _pump(self, source: socket.socket, destination: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                destination.sendall(data)
        self._close(source)
        self._close(destination)

    def _close(self, sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            sock.close()
        with self._lock:
            self._sockets.discard(sock)


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
