"""Servers under test: gunicorn (refapi, the bare Flask app) and uvicorn (the FastAPI peer).

Every server listens on a free 127.0.0.1 port, logs to a file of the run's work folder, and is
stopped with SIGTERM (then SIGKILL) however the run ends.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
RSS_SAMPLE_SECONDS = 0.25
APPS = Path(__file__).resolve().parents[1] / "apps"
# The one command that serves refapi (Makefile, Dockerfile, e2e tests); see gunicorn.conf.py.
GUNICORN_CONFIG = ["--config", "gunicorn.conf.py"]


class ServerFailed(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Server:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    peak_rss: dict[int, int] = field(default_factory=dict)

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def workers(self) -> list[psutil.Process]:
        """The processes that serve requests: the master's children, or the process itself."""
        try:
            parent = psutil.Process(self.process.pid)
            children = parent.children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        # uvicorn --workers N also starts a resource tracker; it serves nothing and stays small.
        serving = [child for child in children if "resource_tracker" not in _cmdline(child)]
        return serving or [parent]

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _cmdline(process: psutil.Process) -> str:
    try:
        return " ".join(process.cmdline())
    except psutil.Error:
        return ""


def start(
    name: str,
    command: Sequence[str],
    *,
    port: int,
    env: Mapping[str, str],
    cwd: Path,
    log_path: Path,
    ready_path: str = "/ping",
) -> Server:
    with log_path.open("ab") as log_file:
        process = subprocess.Popen(
            list(command),
            cwd=cwd,
            env=dict(env),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(name, f"http://127.0.0.1:{port}", process, log_path)
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if process.poll() is not None:
            raise ServerFailed(f"{name} exited with {process.returncode}:\n{server.log_tail()}")
        if _answers(server.url + ready_path):
            return server
        if time.monotonic() > deadline:
            server.stop()
            raise ServerFailed(f"{name} did not answer in {START_TIMEOUT}s:\n{server.log_tail()}")
        time.sleep(0.1)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - our loopback URL
            return bool(response.status < 500)
    except urllib.error.HTTPError as error:
        return error.code < 500
    except OSError:
        return False


def gunicorn(
    name: str,
    *,
    bin_dir: Path,
    project_root: Path,
    app: str,
    env: Mapping[str, str],
    log_path: Path,
    extra_args: Sequence[str] = (),
) -> Server:
    """gunicorn started as refapi is served, with ``app`` (``wsgi:app`` or one of apps/)."""
    port = free_port()
    full_env = {**env, "REFAPI_BIND": f"127.0.0.1:{port}"}
    command = [
        str(bin_dir / "gunicorn"),
        *GUNICORN_CONFIG,
        *(["--pythonpath", str(APPS)] if app != "wsgi:app" else []),
        *extra_args,
        app,
    ]
    return start(name, command, port=port, env=full_env, cwd=project_root, log_path=log_path)


def uvicorn(
    name: str,
    *,
    bin_dir: Path,
    app: str,
    workers: int,
    env: Mapping[str, str],
    log_path: Path,
    ready_path: str,
) -> Server:
    port = free_port()
    command = [
        str(bin_dir / "uvicorn"),
        "--app-dir",
        str(APPS),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        app,
    ]
    return start(
        name, command, port=port, env=env, cwd=APPS, log_path=log_path, ready_path=ready_path
    )


@contextlib.contextmanager
def running(server: Server) -> Iterator[Server]:
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def sampling_rss(server: Server) -> Iterator[dict[int, int]]:
    """Record the peak resident memory of each worker of ``server`` while the block runs."""
    peaks: dict[int, int] = {}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            for worker in server.workers():
                try:
                    rss = worker.memory_info().rss
                except psutil.Error:
                    continue
                peaks[worker.pid] = max(peaks.get(worker.pid, 0), rss)
            stop.wait(RSS_SAMPLE_SECONDS)

    sampler = threading.Thread(target=sample, name="rss-sampler", daemon=True)
    sampler.start()
    try:
        yield peaks
    finally:
        stop.set()
        sampler.join()
        for pid, rss in peaks.items():
            server.peak_rss[pid] = max(server.peak_rss.get(pid, 0), rss)


def base_env() -> dict[str, str]:
    """The harness's environment without any REFAPI_* setting of the shell that started it."""
    return {key: value for key, value in os.environ.items() if not key.startswith("REFAPI_")}


# The processes a load keeps busy besides the server under test, by the name the OS gives them.
BACKING_SERVICES = {"postgres": ("postgres",), "redis": ("redis-server",)}


def _cpu_seconds(processes: Iterable[psutil.Process]) -> dict[int, float]:
    """CPU seconds of each process, its reaped children included (a worker that was replaced,
    a PostgreSQL backend whose connection closed)."""
    seconds = {}
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        seconds[process.pid] = (
            times.user + times.system + times.children_user + times.children_system
        )
    return seconds


def _backing(names: tuple[str, ...]) -> list[psutil.Process]:
    return [process for process in psutil.process_iter(["name"]) if process.info["name"] in names]


def _serving(server: Server) -> list[psutil.Process]:
    try:
        master = [psutil.Process(server.process.pid)]
    except psutil.Error:
        master = []
    return [*master, *server.workers()]


def _snapshot(server: Server) -> dict[str, dict[int, float]]:
    found = {"server": _cpu_seconds(_serving(server))}
    for name, names in BACKING_SERVICES.items():
        found[name] = _cpu_seconds(_backing(names))
    return found


@contextlib.contextmanager
def measuring_cpu(server: Server) -> Iterator[dict[str, Any]]:
    """CPU seconds (user + system) each component spent while the block ran.

    ``server``: its master and workers; ``postgres``, ``redis``: every process of that name
    (idle ones add nothing); ``load generator``: the children this process waited for meanwhile
    (wrk); ``machine``: every CPU's busy time, so what is left is everything else;
    ``busiest worker``: the busiest worker's share of the workers' time, not seconds. A process
    that starts meanwhile counts from zero; one that exits counts through its parent, if that
    is measured too (a gunicorn worker through the master, a backend through the postmaster).
    """
    found: dict[str, Any] = {}
    before = _snapshot(server)
    children = os.times()
    machine = psutil.cpu_times()
    try:
        yield found
    finally:
        after_children = os.times()
        after_machine = psutil.cpu_times()
        after = _snapshot(server)
        for name, seconds in after.items():
            found[name] = sum(value - before[name].get(pid, 0.0) for pid, value in seconds.items())
        found["busiest worker"] = _busiest_share(server, before["server"], after["server"])
        found["load generator"] = (
            after_children.children_user
            - children.children_user
            + after_children.children_system
            - children.children_system
        )
        found["machine"] = _busy(after_machine) - _busy(machine)


def _busiest_share(
    server: Server, before: dict[int, float], after: dict[int, float]
) -> float | None:
    """The share of the workers' CPU time that the busiest worker spent (None with one worker,
    or when the workers spent none: nothing to compare).

    A multi-process server whose workers share one listening socket (uvicorn --workers) may
    hand every connection of a load to one worker, which then serves alone: about half the
    throughput on two workers, a measure of luck rather than of the server.
    """
    pids = [worker.pid for worker in server.workers() if worker.pid != server.process.pid]
    spent = [after.get(pid, 0.0) - before.get(pid, 0.0) for pid in pids]
    total = sum(spent)
    if len(spent) < 2:
        return None
    return max(spent) / total if total > 0 else None


def _busy(times: Any) -> float:
    # As psutil counts it: guest time is already inside user time (and guest_nice in nice).
    idle = times.idle + getattr(times, "iowait", 0.0)
    guests = getattr(times, "guest", 0.0) + getattr(times, "guest_nice", 0.0)
    return float(sum(times) - idle - guests)
