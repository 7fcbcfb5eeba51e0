"""What every part of a run shares: paths, durations, the API key, the stub upstream."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import data, servers, wrk
from harness.upstream import Upstream

BENCHMARKS = Path(__file__).resolve().parents[1]


@dataclass
class Settings:
    duration: float
    warmup: float
    connections: int
    wrk_threads: int
    timeout: float
    threads: int
    workers_b: int
    hot_keys: int
    quick: bool
    # Names of the refapi endpoints to load (None: all of them).
    endpoints: frozenset[str] | None = None
    # gunicorn's worker class for refapi and the bare apps (None: gunicorn.conf.py's, refapi's).
    worker_class: str | None = None
    # REFAPI_WORKER_CLASS in configuration B (A is always refapi's gthread).
    b_worker_class: str = "gevent"

    @property
    def worker_args(self) -> tuple[str, ...]:
        return ("--worker-class", self.worker_class) if self.worker_class else ()


@dataclass
class Context:
    project_root: Path
    workdir: Path
    settings: Settings
    upstream: Upstream
    database_url: str
    redis_url: str
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    bin_dir: Path = field(default_factory=lambda: Path(sys.executable).parent)
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def auth_header(self) -> dict[str, str]:
        return {"X-API-Key": self.secret}

    def env(self, **settings: str) -> dict[str, str]:
        """The servers' and CLI's environment: REFAPI_* of this run only, then ``settings``."""
        return {
            **servers.base_env(),
            # The code of --project-root, whatever the venv's editable install points at.
            "PYTHONPATH": str(self.project_root / "src"),
            "REFAPI_API_KEYS": f"{data.CLIENT}:{self.secret}",
            "REFAPI_INSTANCE_PATH": str(self.workdir / "instance"),
            "REFAPI_STATBEL_URL": self.upstream.url,
            **settings,
        }

    def log_path(self, name: str) -> Path:
        return self.workdir / f"{name}.log"

    def prepare_files(self) -> None:
        self.files["store"] = self.workdir / "store.jsonl"
        data.write_store_import(self.files["store"])
        self.files["peer_db"] = self.workdir / "peer.sqlite3"
        data.write_peer_database(self.files["peer_db"])


def describe_machine(project_root: Path) -> dict[str, Any]:
    def git(*args: str) -> str:
        completed = subprocess.run(
            ["git", *args], cwd=project_root, capture_output=True, text=True, check=False
        )
        return completed.stdout.strip()

    return {
        "commit": git("rev-parse", "HEAD"),
        "branch": git("rev-parse", "--abbrev-ref", "HEAD"),
        "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "wrk": wrk.wrk_version(),
    }


def load_average() -> float:
    return round(os.getloadavg()[0], 2)
