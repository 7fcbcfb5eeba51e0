"""One bounded load with wrk, and its numbers."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LUA_SCRIPT = Path(__file__).resolve().parents[1] / "lua" / "load.lua"
_WRK_JSON = re.compile(r"^WRK_JSON (\{.*\})$", re.MULTILINE)


class WrkFailed(RuntimeError):
    pass


@dataclass(frozen=True)
class Load:
    """What wrk sends: a method, the requests (one per line of a file) and the headers."""

    method: str
    requests_file: Path
    headers: tuple[str, ...] = ()


def wrk_version() -> str:
    found = shutil.which("wrk")
    if not found:
        return "missing"
    # wrk prints its version in the usage text, on stderr, and exits 1.
    completed = subprocess.run([found, "--version"], capture_output=True, text=True, check=False)
    first_line = (completed.stdout + completed.stderr).splitlines()[0]
    return first_line.split(" Copyright")[0].strip()


def run(
    load: Load,
    *,
    url: str,
    duration: float,
    connections: int,
    threads: int,
    timeout: float,
) -> dict[str, Any]:
    """Run wrk against ``url`` for ``duration`` seconds; the raw numbers, plus rates."""
    threads = max(1, min(threads, connections))
    command = [
        "wrk",
        f"--threads={threads}",
        f"--connections={connections}",
        f"--duration={max(1, round(duration))}s",
        f"--timeout={max(1, round(timeout))}s",
        f"--script={LUA_SCRIPT}",
        url,
        "--",
        load.method,
        str(load.requests_file),
        *load.headers,
    ]
    completed = subprocess.run(
        command, capture_output=True, text=True, check=False, timeout=duration + timeout + 30
    )
    found = _WRK_JSON.search(completed.stdout)
    if completed.returncode != 0 or not found:
        raise WrkFailed(
            f"wrk exited {completed.returncode}: {completed.stderr.strip() or completed.stdout}"
        )
    raw = json.loads(found.group(1))
    return summarise(raw)


def summarise(raw: dict[str, Any]) -> dict[str, Any]:
    seconds = raw["duration_us"] / 1e6
    statuses = {int(status): count for status, count in raw["statuses"].items()}
    errors = raw["errors"]
    latency = raw["latency_us"]
    return {
        "requests": raw["requests"],
        "seconds": round(seconds, 3),
        "requests_per_second": round(raw["requests"] / seconds, 1) if seconds else 0.0,
        "latency_ms": {name: round(value / 1000, 3) for name, value in latency.items()},
        "statuses": dict(sorted(statuses.items())),
        # Socket-level failures: no answer at all (connect, read, write errors and timeouts).
        "socket_errors": errors["connect"] + errors["read"] + errors["write"] + errors["timeout"],
        "socket_error_detail": {
            name: errors[name] for name in ("connect", "read", "write", "timeout")
        },
        "non_2xx": sum(count for status, count in statuses.items() if not 200 <= status < 300),
    }
