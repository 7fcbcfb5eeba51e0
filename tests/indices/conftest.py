"""A local Statbel: an HTTP server on 127.0.0.1 serving files built by the tests.

Every app built here points ``STATBEL_URL`` at it, so no test can reach the internet.
"""

from __future__ import annotations

import io
import itertools
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from refapi.extensions import cache, db
from refapi.indices import services
from refapi.indices.models import Refresh

HEADER = (
    "NM_YR",
    "NM_MTH",
    "MS_CPI_IDX",
    "MS_WITHOUT_ENE_IDX",
    "MS_WITHOUT_PTRL_IDX",
    "MS_WT_CPI",
    "MS_CPI_INFL",
    "MS_HLTH_IDX",
    "MS_SMOOTH_IDX",
    "NM_BASE_YR",
)

# (year, month) -> base year -> (health index, smoothed). October 2020 and January 2021's
# health indices are Statbel's published values (FIELD-NOTES.md); the rest are made up.
HEALTH = {
    (2019, 4): {
        1988: ("179.02", "177.50"),
        1996: ("148.48", "147.20"),
        2004: ("130.51", "129.40"),
        2013: ("108.06", "107.11"),
    },
    (2020, 9): {
        1988: ("182.13", "178.43"),
        1996: ("151.06", "147.99"),
        2004: ("132.77", "130.07"),
        2013: ("109.94", "107.70"),
    },
    (2020, 10): {
        1988: ("182.41", "178.68"),
        1996: ("151.29", "148.20"),
        2004: ("132.98", "130.26"),
        2013: ("110.11", "107.86"),
    },
    (2021, 1): {
        1988: ("182.81", "179.40"),
        1996: ("151.62", "148.80"),
        2004: ("133.27", "130.78"),
        2013: ("110.35", "108.29"),
    },
}


def statbel_rows(
    health: dict[tuple[int, int], dict[int, tuple[str, str]]] | None = None,
    *,
    pending_month: bool = True,
) -> list[dict[str, str]]:
    """Rows as Statbel writes them, with CPI-only base years and a month without health index."""
    rows = []
    for (year, month), bases in sorted((health or HEALTH).items()):
        for base_year, (value, smoothed) in sorted(bases.items()):
            rows.append(_row(year, month, base_year, cpi=value, health=value, smoothed=smoothed))
        rows.append(_row(year, month, 1914, cpi="12345.67", health=".", smoothed="."))
    if pending_month:
        # Statbel publishes the CPI of a month before its health index is computed.
        rows.append(_row(2021, 2, 2013, cpi="110.40", health=".", smoothed="."))
    return rows


def _row(
    year: int, month: int, base_year: int, *, cpi: str, health: str, smoothed: str
) -> dict[str, str]:
    return {
        "NM_YR": str(year),
        "NM_MTH": str(month),
        "MS_CPI_IDX": cpi,
        "MS_WITHOUT_ENE_IDX": cpi,
        "MS_WITHOUT_PTRL_IDX": cpi,
        "MS_WT_CPI": "1000",
        "MS_CPI_INFL": "0.39%",
        "MS_HLTH_IDX": health,
        "MS_SMOOTH_IDX": smoothed,
        "NM_BASE_YR": str(base_year),
    }


def statbel_text(
    rows: list[dict[str, str]] | None = None, *, header: tuple[str, ...] = HEADER
) -> bytes:
    """The text file: pipe-delimited, UTF-8 with a byte-order mark, CRLF line ends."""
    rows = statbel_rows() if rows is None else rows
    lines = ["|".join(header)] + ["|".join(row.get(name, "") for name in header) for row in rows]
    return ("\r\n".join(lines) + "\r\n").encode("utf-8-sig")


def huge_field_text() -> bytes:
    """The text file with a field longer than the csv module reads (128 KiB) on its line 2."""
    rows = statbel_rows()
    rows[0] = {**rows[0], "MS_CPI_INFL": "9" * 200_000}
    return statbel_text(rows)


def statbel_zip(text: bytes | None = None, *, name: str = "CPI All base years.txt") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, statbel_text() if text is None else text)
    return buffer.getvalue()


# How long Upstream.drip goes on: far longer than a download may take in any test.
DRIP_SECONDS = 60


@dataclass
class Upstream:
    """What the local Statbel answers, and what it was asked."""

    url: str = ""
    status: int = 200
    body: bytes = b""
    content_type: str = "application/zip"
    # The Content-Length header as sent; None: the body's length.
    content_length: str | None = None
    hang: bool = False
    held: bool = False
    # "headers" or "body": that part of the answer arrives a byte at a time, far faster than any
    # test's STATBEL_TIMEOUT, for far longer than a whole download may take (released at teardown).
    drip: str | None = None
    requests: list[dict[str, str]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def hits(self) -> int:
        with self.lock:
            return len(self.requests)

    def serve(
        self, body: bytes, *, status: int = 200, content_type: str = "application/zip"
    ) -> None:
        self.body, self.status, self.content_type, self.hang = body, status, content_type, False


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    state = Upstream()
    state.serve(statbel_zip())

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with state.lock:
                state.requests.append(dict(self.headers))
            if state.drip:
                self.drip(state.drip)
                return
            if state.hang:
                # Longer than any test's STATBEL_TIMEOUT; released at teardown.
                state.release.wait(10)
                return
            if state.held:
                # Answers only once the test lets go (or at teardown).
                state.release.wait(10)
            try:
                self.send_response(state.status)
                self.send_header("Content-Type", state.content_type)
                length = state.content_length
                self.send_header(
                    "Content-Length", str(len(state.body)) if length is None else length
                )
                self.end_headers()
                self.wfile.write(state.body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout test)

        def drip(self, part: str) -> None:
            give_up = time.monotonic() + DRIP_SECONDS
            start = b"HTTP/1.0 200 OK\r\nX-Padding: "  # then a header line without end
            try:
                if part == "body":
                    self.wfile.write(b"HTTP/1.0 200 OK\r\nContent-Length: 1000000\r\n\r\n")
                    start = b""
                for byte in itertools.chain(start, itertools.repeat(ord("x"))):
                    if state.release.wait(0.05) or time.monotonic() > give_up:
                        return
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/CPI%20All%20base%20years.zip"
    yield state
    state.release.set()
    server.shutdown()
    server.server_close()


# What a broken Statbel answers, for Upstream.serve.
FAILURES = {
    "http-500": {"body": b"Internal error", "status": 500, "content_type": "text/plain"},
    "html": {"body": b"<html><body>Maintenance</body></html>", "content_type": "text/html"},
    "truncated-zip": {"body": statbel_zip()[:-100]},
    "empty": {"body": b""},
    "missing-column": {
        "body": statbel_zip(statbel_text(header=("NM_YR", "NM_MTH", "MS_CPI_IDX", "NM_BASE_YR")))
    },
    "huge-field": {"body": statbel_zip(huge_field_text())},
}

INDEX_SETTINGS = {
    "STATBEL_TIMEOUT": 0.5,
    # Generous: the request that starts a refresh of a fast local server sees its result.
    "INDEX_REFRESH_BUDGET": 10.0,
}


@pytest.fixture
def make_indices_app(
    make_app: Callable[..., Flask], upstream: Upstream
) -> Iterator[Callable[..., Flask]]:
    def build(**overrides: Any) -> Flask:
        return make_app(**{"STATBEL_URL": upstream.url, **INDEX_SETTINGS, **overrides})

    yield build
    # Refresh threads must end before the fixtures dispose of their databases.
    upstream.release.set()
    services.wait_for_background_refreshes(timeout=15)


@pytest.fixture
def app(make_indices_app: Callable[..., Flask]) -> Flask:
    return make_indices_app()


@pytest.fixture
def stored(app: Flask) -> Flask:
    """The app with the sample data stored from the upstream."""
    with app.app_context():
        services.refresh()
    return app


def age_data(app: Flask, *, hours: float = 24) -> None:
    """Make every stored refresh older, as if the data had not been refreshed for a while."""
    with app.app_context():
        for record in db.session.scalars(sa.select(Refresh)):
            record.started_at = record.started_at - timedelta(hours=hours)
            if record.finished_at is not None:
                record.finished_at = record.finished_at - timedelta(hours=hours)
        db.session.commit()
        cache.clear()


def stored_rows(app: Flask) -> list[tuple[Any, ...]]:
    with app.app_context():
        return [
            tuple(row)
            for row in db.session.execute(sa.text("SELECT * FROM health_indices ORDER BY 1, 2, 3"))
        ]
