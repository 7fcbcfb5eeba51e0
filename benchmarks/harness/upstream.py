"""A local Statbel: serves a ZIP in Statbel's format on 127.0.0.1, optionally slowly.

Twelve months of index data (November 2019 to October 2020) for the four base years that have
a health index, plus a CPI-only base year, as Statbel writes it: pipe-delimited, UTF-8 with a
byte-order mark, `.` for a missing value, inflation with `%`. October 2020 carries Statbel's
published values (FIELD-NOTES.md); the earlier months step back 0.15% a month.
"""

from __future__ import annotations

import io
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

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
# October 2020, base year -> (health index, smoothed health index).
OCTOBER_2020 = {
    1988: (182.41, 178.68),
    1996: (151.29, 148.20),
    2004: (132.98, 130.26),
    2013: (110.11, 107.86),
}
PATH = "/CPI%20All%20base%20years.zip"


def months() -> list[tuple[int, int]]:
    """November 2019 to October 2020."""
    return [(2019, 11), (2019, 12)] + [(2020, month) for month in range(1, 11)]


def statbel_text() -> bytes:
    lines = ["|".join(HEADER)]
    year_months = months()
    for position, (year, month) in enumerate(year_months):
        factor = (1 - 0.0015) ** (len(year_months) - 1 - position)
        for base_year, (health, smoothed) in OCTOBER_2020.items():
            value = f"{health * factor:.2f}"
            row = (
                year,
                month,
                value,
                value,
                value,
                "1000",
                "0.39%",
                value,
                f"{smoothed * factor:.2f}",
                base_year,
            )
            lines.append("|".join(str(cell) for cell in row))
        lines.append(
            "|".join(
                str(c) for c in (year, month, "12345.67", ".", ".", "1000", "0.39%", ".", ".", 1914)
            )
        )
    return ("\r\n".join(lines) + "\r\n").encode("utf-8-sig")


def statbel_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("CPI All base years.txt", statbel_text())
    return buffer.getvalue()


class Upstream:
    """The stub server; ``delay`` (seconds before answering) may change while it runs."""

    def __init__(self) -> None:
        self.delay = 0.0
        self.requests = 0
        self._count_lock = threading.Lock()
        self.body = statbel_zip()
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with upstream._count_lock:
                    upstream.requests += 1
                if upstream.delay:
                    time.sleep(upstream.delay)
                if self.path != PATH:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/zip")
                self.send_header("Content-Length", str(len(upstream.body)))
                self.end_headers()
                self.wfile.write(upstream.body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}{PATH}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Upstream:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
