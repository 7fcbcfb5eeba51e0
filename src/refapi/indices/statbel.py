"""Statbel's consumer price index file: download, parse and validate, with no database.

The file is one pipe-delimited UTF-8 text (with a byte-order mark), usually inside a ZIP, with a
header line and one row per (year, month, base year). Columns are read by name because their
spellings move between releases; only the ones we store are needed. Everything that is wrong
with a download raises ``StatbelError`` with a reason an operator can act on.
"""

from __future__ import annotations

import contextlib
import csv
import io
import re
import socket
import threading
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

import requests
import requests.adapters

USER_AGENT = (
    "refapi/1.0 (health index refresh for a Belgian insurance back office; "
    f"python-requests/{requests.__version__})"
)

# Our name for each column we use, and the spellings Statbel has used for it.
COLUMNS: Mapping[str, tuple[str, ...]] = {
    "year": ("NM_YR",),
    "month": ("NM_MTH",),
    "base_year": ("NM_BASE_YR",),
    "health": ("MS_HLTH_IDX", "MS_HEALTH_IDX"),
    "smoothed": ("MS_SMOOTH_IDX", "MS_SMOOTHED_IDX", "MS_SMTH_IDX"),
    "cpi": ("MS_CPI_IDX",),
}
MISSING = {"", "."}
CENT = Decimal("0.01")
# Bounds no genuine row leaves; a value outside them means a broken or foreign file.
YEARS = range(1900, 2201)
MAX_HEALTH = Decimal(100_000)
MAX_CPI = Decimal(10_000_000)  # the 1914 base reaches five digits; the column holds eight
# ASCII only: str.isdigit() takes "²" (which int() refuses), and int() and Decimal() take other
# scripts' digits (fullwidth, Arabic-Indic) and underscores ("2_020"), which no genuine file or
# header holds. At most 18 digits: int() refuses a text of thousands (a ValueError), and no year
# or length this code reads has more.
_INTEGER = re.compile(r"[0-9]{1,18}")
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


class StatbelError(Exception):
    """The upstream or a file cannot be used; the message is the reason."""


@dataclass(frozen=True)
class Observation:
    base_year: int
    year: int
    month: int
    health: Decimal | None
    smoothed: Decimal | None
    cpi: Decimal | None


def longest_download(timeout: float) -> float:
    """Seconds a download with ``timeout`` between bytes may take in all: ten such waits."""
    return 10 * timeout


def download(*, url: str, timeout: float, max_bytes: int) -> bytes:
    """The body at ``url``, refused when it is an error, too large, or too slow.

    ``timeout`` bounds the connection and each wait between bytes; the whole download
    (connection, headers and body) is bounded by ``longest_download(timeout)``, so that a server
    that trickles bytes cannot hold us, nor a refresh outlive its lease.
    """
    limit = longest_download(timeout)
    transport = _Transport()
    outcome: list[bytes | BaseException] = []

    def fetch() -> None:
        try:
            outcome.append(_fetch(url, timeout=timeout, max_bytes=max_bytes, transport=transport))
        except BaseException as error:  # handed to the caller, raised there (SystemExit too)
            outcome.append(error)

    # requests' timeouts bound each wait for a byte, never a whole exchange: a byte now and then,
    # in the headers or the body, would hold a download for ever. So it runs in a thread of its
    # own, waited for at most the limit, and then stopped by shutting its sockets down.
    worker = threading.Thread(target=fetch, name="statbel-download", daemon=True)
    worker.start()
    worker.join(limit)
    if not outcome:
        transport.abort()
        raise StatbelError(f"{url} took longer than {limit:g} s to send")
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]


def _fetch(url: str, *, timeout: float, max_bytes: int, transport: _Transport) -> bytes:
    try:
        with requests.Session() as session:
            session.mount("http://", transport)
            session.mount("https://", transport)
            with session.get(
                url,
                timeout=(timeout, timeout),
                stream=True,
                headers={"User-Agent": USER_AGENT, "Accept": "application/zip, */*;q=0.5"},
            ) as response:
                if response.status_code != 200:
                    raise StatbelError(f"{url} answered HTTP {response.status_code}")
                # A malformed length announces nothing; the body is bounded as it is read anyway.
                declared = response.headers.get("Content-Length", "")
                if _INTEGER.fullmatch(declared) and int(declared) > max_bytes:
                    raise StatbelError(f"{url} announces {declared} bytes, more than {max_bytes}")
                body = bytearray()
                for chunk in response.iter_content(chunk_size=64 * 1024):
                    body += chunk
                    if len(body) > max_bytes:
                        raise StatbelError(f"{url} sent more than {max_bytes} bytes")
    except requests.RequestException as error:
        raise StatbelError(f"{url} could not be read: {type(error).__name__}: {error}") from None
    return bytes(body)


class _Transport(requests.adapters.HTTPAdapter):
    """requests' transport for one download, whose sockets ``abort`` shuts down."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._aborted = False

    def get_connection_with_tls_context(
        self,
        request: requests.PreparedRequest,
        verify: bool | str | None,
        proxies: Mapping[str, str] | None = None,
        cert: tuple[str, str] | str | None = None,
    ) -> Any:
        # The hook requests documents for adapters: the pool about to connect. Only a connection
        # knows its socket, so the pool's connections are made to report theirs.
        pool: Any = super().get_connection_with_tls_context(request, verify, proxies, cert)
        if getattr(pool.ConnectionCls, "transport", None) is not self:
            pool.ConnectionCls = _reporting(pool.ConnectionCls, self)
        return pool

    def connected(self, sock: socket.socket) -> None:
        with self._lock:
            if not self._aborted:
                self._sockets.append(sock)
                return
        _shut_down(sock)  # connected after the download was given up

    def abort(self) -> None:
        """End every read and write of this download, wherever it waits."""
        with self._lock:
            self._aborted = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shut_down(sock)


def _reporting(base: Any, transport: _Transport) -> Any:
    """urllib3's connection class ``base``, whose connections tell ``transport`` their socket."""

    class Reporting(base):
        def connect(self) -> None:
            super().connect()
            # The socket itself (TLS-wrapped when it is): a connection that will close forgets
            # it before its body is read.
            transport.connected(self.sock)

    Reporting.transport = transport
    return Reporting


def _shut_down(sock: socket.socket) -> None:
    # A shut-down socket wakes a read blocked on it in another thread; close() would not.
    with contextlib.suppress(OSError):  # closed already
        sock.shutdown(socket.SHUT_RDWR)


def parse(payload: bytes, *, max_bytes: int) -> list[Observation]:
    """The validated rows of a ZIP or text file in Statbel's format."""
    text = _text_file(payload, max_bytes=max_bytes)
    observations = list(_rows(text))
    validate(observations)
    return observations


def _text_file(payload: bytes, *, max_bytes: int) -> str:
    if not payload.strip():
        raise StatbelError("the file is empty")
    if payload.startswith(b"PK"):
        payload = _zip_member(payload, max_bytes=max_bytes)
    try:
        text = payload.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise StatbelError(f"the text is not UTF-8: {error}") from None
    if not text.strip():
        raise StatbelError("the file is empty")
    if text.lstrip().startswith("<"):
        raise StatbelError("the file is an HTML or XML page, not the data file")
    return text


def _zip_member(payload: bytes, *, max_bytes: int) -> bytes:
    try:
        with zipfile.ZipFile(io.BytesIO(payload)) as archive:
            members = [info for info in archive.infolist() if not info.is_dir()]
            texts = [m for m in members if m.filename.lower().endswith((".txt", ".csv"))]
            candidates = texts or members
            if len(candidates) != 1:
                names = ", ".join(m.filename for m in members) or "nothing"
                raise StatbelError(f"the ZIP should hold one text file; it holds {names}")
            with archive.open(candidates[0]) as member:
                # Read one byte more than allowed: a ZIP can claim any size for its content.
                content = member.read(max_bytes + 1)
    except (zipfile.BadZipFile, EOFError, OSError) as error:
        raise StatbelError(f"the ZIP is damaged or truncated: {error}") from None
    if len(content) > max_bytes:
        raise StatbelError(f"the file inside the ZIP is larger than {max_bytes} bytes")
    return content


def _records(text: str) -> Iterator[list[str]]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="|")
    try:
        yield from reader
    except csv.Error as error:
        # A field over csv's limit (128 KiB), which no genuine file has: a refused file too.
        reason = f"line {reader.line_num}: not Statbel's pipe-delimited text: {error}"
        raise StatbelError(reason) from None


def _rows(text: str) -> Iterable[Observation]:
    records = _records(text)
    header = next(records, None)
    if header is None:
        raise StatbelError("the file is empty")
    positions = _column_positions(header)
    for line, fields in enumerate(records, start=2):
        if not any(field.strip() for field in fields):
            continue
        if len(fields) < len(header):
            raise StatbelError(f"line {line}: {len(fields)} fields, the header has {len(header)}")
        values = {name: fields[index].strip() for name, index in positions.items()}
        yield Observation(
            base_year=_integer(values["base_year"], line=line, column="base year"),
            year=_integer(values["year"], line=line, column="year"),
            month=_integer(values["month"], line=line, column="month"),
            health=_number(values["health"], line=line, column="health index"),
            smoothed=_number(values["smoothed"], line=line, column="smoothed health index"),
            cpi=_number(values["cpi"], line=line, column="consumer price index"),
        )


def _column_positions(header: list[str]) -> dict[str, int]:
    found = {name.strip().upper(): index for index, name in enumerate(header)}
    positions: dict[str, int] = {}
    missing = []
    for column, spellings in COLUMNS.items():
        index = next((found[s] for s in spellings if s in found), None)
        if index is None:
            missing.append(" or ".join(spellings))
        else:
            positions[column] = index
    if missing:
        raise StatbelError(
            f"the file lacks the column(s) {', '.join(missing)}; "
            f"its header is {'|'.join(header)[:300]!r}"
        )
    return positions


def _integer(text: str, *, line: int, column: str) -> int:
    if not _INTEGER.fullmatch(text):
        raise StatbelError(f"line {line}: the {column} {text[:40]!r} is not an integer")
    return int(text)


def _number(text: str, *, line: int, column: str) -> Decimal | None:
    cleaned = text.rstrip("%").strip().replace(",", ".")
    if cleaned in MISSING:
        return None
    if not _DECIMAL.fullmatch(cleaned):
        raise StatbelError(f"line {line}: the {column} {text[:40]!r} is not a number")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise StatbelError(f"line {line}: the {column} {text[:40]!r} is not a number") from None
    if not value.is_finite():
        raise StatbelError(f"line {line}: the {column} {text[:40]!r} is not a number")
    try:
        # Statbel publishes two decimals; the table stores two.
        return value.quantize(CENT, rounding=ROUND_HALF_UP)
    except InvalidOperation:  # too many digits for the context, e.g. 1e30
        raise StatbelError(f"line {line}: the {column} {text[:40]!r} is out of range") from None


def validate(observations: list[Observation]) -> None:
    """Refuse data that must not replace what is stored."""
    if not observations:
        raise StatbelError("the file has a header but no rows")
    seen: set[tuple[int, int, int]] = set()
    for row in observations:
        key = (row.year, row.month, row.base_year)
        where = f"{row.year}-{row.month:02d} base {row.base_year}"
        if row.year not in YEARS or row.base_year not in YEARS:
            raise StatbelError(f"{where}: the year or base year is implausible")
        if not 1 <= row.month <= 12:
            raise StatbelError(f"{where}: the month must be 1 to 12")
        if key in seen:
            raise StatbelError(f"{where}: appears twice")
        seen.add(key)
        for value, ceiling, label in (
            (row.health, MAX_HEALTH, "health index"),
            (row.smoothed, MAX_HEALTH, "smoothed health index"),
            (row.cpi, MAX_CPI, "consumer price index"),
        ):
            if value is not None and not 0 < value < ceiling:
                raise StatbelError(f"{where}: the {label} {value} is implausible")
    if not any(row.health is not None for row in observations):
        raise StatbelError("no base year has a health index")
