"""The real server: gunicorn started with the command `make run` and the Dockerfile use.

``serve(env)`` migrates the database with the migrations `make run` applies (those of `flask db
upgrade`, run in this process: a `flask` process of its own cost two seconds per server; the
command itself is tested in tests/test_config.py and tests/test_deploy_command.py), starts gunicorn
on a free loopback port with the suite's configuration (A or B) plus ``env``, waits until
``/ping`` answers, and stops it with SIGTERM at the end of the test (checking that it exits 0).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import flask_migrate
import pytest
import requests

from refapi import config as refapi_config
from refapi import create_app
from refapi.extensions import db
from tests.conftest import API_KEYS

PROJECT_ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# The one command that serves refapi: Makefile (`make run`), Dockerfile and these tests.
GUNICORN_ARGS = ["--config", "gunicorn.conf.py", "wsgi:app"]
START_TIMEOUT = 30.0
STOP_TIMEOUT = 40.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str] = field(repr=False)
    exit_code: int | None = None

    @property
    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """One request on a connection of its own, which the server closes after answering.

        urllib3 2 closes a pool's connections only when the pool is collected, and a response
        keeps its pool: a test that kept one left its connection open, and the server's SIGTERM
        stop kept it 2 s more (refapi.gevent_worker; before it, a gevent worker's stop waited
        out its 5 s keep-alive).
        """
        headers = {"Connection": "close", **(kwargs.pop("headers", None) or {})}
        return requests.request(method, self.url + path, timeout=10, headers=headers, **kwargs)

    def stop(self) -> int:
        if self.exit_code is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.exit_code = self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise
        return self.exit_code


def connect(server: Server) -> socket.socket:
    """A connection of its own to the server, for raw HTTP."""
    address = urlsplit(server.url)
    return socket.create_connection((address.hostname, address.port), timeout=10)


def _parsed_head(head: bytes) -> tuple[int, dict[str, str]]:
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in header_lines)
    return int(status_line.split(" ")[1]), {k.lower(): v for k, v in headers.items()}


def exchange(server, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``raw`` (a whole request, with Connection: close); the status, headers and body."""
    with connect(server) as connection:
        connection.sendall(raw)
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    return (*_parsed_head(head), body)


def read_answer(connection: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One response from ``connection`` (which has a Content-Length), leaving it open."""
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = connection.recv(65536)
        if not chunk:
            raise ConnectionError(f"the server closed the connection, after {received!r}")
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status, headers = _parsed_head(head)
    while len(body) < int(headers["content-length"]):
        chunk = connection.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection within a response body")
        body += chunk
    return status, headers, body


def start_gunicorn(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """The server as it is deployed, its output (error and access logs) in ``log_path``."""
    with log_path.open("wb") as log_file:
        return subprocess.Popen(
            [str(BIN / "gunicorn"), *GUNICORN_ARGS],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )


def upgrade_database(env: dict[str, str]) -> None:
    """The migrations of `flask db upgrade`, on the database of the server of ``env``.

    Run in this process, by an app of ``env``'s settings alone (every setting given, so that
    none comes from this process's own environment), without Redis: nothing is cached.
    """
    settings = {
        **refapi_config.defaults(),
        **refapi_config.from_environment(env),
        "REDIS_URL": "",
        "STATBEL_URL": "",
    }
    app = create_app(settings)
    with app.app_context():
        try:
            flask_migrate.upgrade(directory=str(PROJECT_ROOT / "migrations"))
        except SystemExit:  # flask_migrate logs the reason and exits
            pytest.fail("the migrations failed: see the captured log")
        finally:
            db.session.remove()
            for engine in db.engines.values():
                engine.dispose()


def settings_env(config: dict[str, Any]) -> dict[str, str]:
    """REFAPI_* variables for the settings of an app_config-like mapping."""
    names = (
        "DATABASE_URL",
        "REDIS_URL",
        "CACHE_KEY_PREFIX",
        "API_KEYS",
        "INSTANCE_PATH",
        "WORKER_CLASS",
    )
    return {f"REFAPI_{name}": str(config[name]) for name in names if config.get(name) is not None}


@pytest.fixture
def serve(backend_config: dict[str, Any], tmp_path: Path) -> Iterator[Callable[..., Server]]:
    servers: list[Server] = []

    def start(env: dict[str, str] | None = None, *, migrate: bool = True) -> Server:
        port = free_port()
        full_env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("REFAPI_") and key != "COVERAGE_PROCESS_START"
        }
        full_env.update(
            settings_env(
                {**backend_config, "API_KEYS": API_KEYS, "INSTANCE_PATH": tmp_path / "instance"}
            )
        )
        full_env.update({"REFAPI_BIND": f"127.0.0.1:{port}", "REFAPI_WORKERS": "1"})
        full_env.update(env or {})
        if migrate:
            upgrade_database(full_env)
        log_path = tmp_path / f"gunicorn-{port}.log"
        process = start_gunicorn(full_env, log_path)
        server = Server(f"http://127.0.0.1:{port}", process, log_path, full_env)
        servers.append(server)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(f"gunicorn exited with {process.returncode}:\n{server.log}")
            try:
                if server.get("/ping").status_code == 200:
                    return server
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                server.stop()
                pytest.fail(f"gunicorn did not answer /ping in {START_TIMEOUT}s:\n{server.log}")
            time.sleep(0.1)

    yield start
    for server in servers:
        server.stop()
