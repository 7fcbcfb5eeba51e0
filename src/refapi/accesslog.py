"""gunicorn's access log, with each atom of a line computed only when the format names it.

gunicorn's stock logger builds every atom of its format language for every request before it
formats one line: a value for each request header, response header and WSGI environ entry
(about sixty here), then a copy of them all with quotes escaped. refapi's format names nine.
Under load that work was a sixth of a worker's Python time on a bare `/ping` (issue 8,
`benchmarks/results/in-process/README.md`).

`AccessLogger` writes the same lines, through the same `gunicorn.access` logger, handlers and
`access_log_format`: its atoms are a mapping that looks each name up when the format asks for
it, with gunicorn's rules (names in braces are case-insensitive, a missing one is "-"), and
text made safe for a log line (see `log_text`). `gunicorn.conf.py` selects it with
`logger_class`; a test compares every atom with the stock logger's.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import Any

from gunicorn import glogging


def _pairs(items: Any) -> Any:
    return items.items() if hasattr(items, "items") else items


_MISSING = object()

# Backslashes and quotes (logfmt's escapes), control characters, and the bytes that were not
# UTF-8 (surrogate escapes, see log_text).
_UNSAFE = re.compile('[\\\\"\x00-\x1f\x7f-\x9f\udc80-\udcff]')
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    character = match[0]
    code = ord(character)
    if character in _ESCAPES:
        return _ESCAPES[character]
    if code >= 0xDC80:  # a byte that was not UTF-8
        return f"\\x{code - 0xDC00:02x}"
    # A control character: C0 and DEL as \x.., C1 (two bytes in UTF-8) as \u.., so that neither
    # reads as the other or as a byte that was not UTF-8.
    return f"\\x{code:02x}" if code < 0x80 else f"\\u{code:04x}"


def log_text(text: str) -> str:
    """A request's text as one log line can hold it, unambiguously.

    WSGI gives a path and headers as their bytes decoded as latin-1: they are read as the UTF-8
    they almost always are (a byte that is not UTF-8 is written ``\\xff``), so ``/é`` is logged
    as ``/é``. Quotes and backslashes are escaped, and control characters written as escapes
    (``\\n``, ``\\x07``, ``\\u009b``): a path with ``%0A`` in it cannot end its field or start
    a forged line of its own. (gunicorn's own logger escapes only quotes.)
    """
    if not text.isascii():
        # Not bytes-as-latin-1 when gunicorn decoded it itself (a Basic auth user name).
        with contextlib.suppress(UnicodeEncodeError):
            text = text.encode("latin-1").decode("utf-8", "surrogateescape")
    return _UNSAFE.sub(_escape, text) if _UNSAFE.search(text) else text


# The atoms of gunicorn's format language that are not headers or environ entries.
SIMPLE_ATOMS = tuple("hlutrsmUqHbBfaTDMLp")


class Atoms(Mapping[str, Any]):
    """One request's access-log atoms, each computed when it is looked up.

    Values are what gunicorn's `SafeAtoms` gives, "-" for a name that is not there, but with text
    made safe by `log_text`. Names in braces (`{x-request-id}o`, `{user-agent}i`,
    `{remote_addr}e`) are case-insensitive, and where a header repeats, the last one counts, as
    in gunicorn.
    """

    __slots__ = ("_found", "environ", "logger", "req", "request_time", "resp")

    logger: glogging.Logger
    resp: Any
    req: Any
    environ: Mapping[str, Any]
    request_time: timedelta

    def __init__(
        self,
        logger: glogging.Logger,
        resp: Any,
        req: Any,
        environ: Mapping[str, Any],
        request_time: timedelta,
    ) -> None:
        self.logger = logger
        self.resp = resp
        self.req = req
        self.environ = environ
        self.request_time = request_time
        # Each atom once per line, however many handlers format it (%(t)s included).
        self._found: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        found = self._found.get(name, _MISSING)
        if found is _MISSING:
            value = self._braced(name.lower()) if name.startswith("{") else self._simple(name)
            found = self._found[name] = log_text(value) if isinstance(value, str) else value
        return found

    def __contains__(self, name: object) -> bool:
        # As in gunicorn's SafeAtoms, a dict: the names it holds, braced ones in lower case.
        return isinstance(name, str) and name in self._names()

    def get(self, name: str, default: Any = None) -> Any:
        # Mapping's get would never give the default: a missing name is "-", as in SafeAtoms.
        if name not in self:
            return default
        return self[name]

    def _simple(self, name: str) -> Any:
        # gunicorn's atoms, as `gunicorn.glogging.Logger.atoms` makes them.
        environ, elapsed = self.environ, self.request_time
        sent = getattr(self.resp, "sent", None)
        match name:
            case "h":
                return environ.get("REMOTE_ADDR", "-")
            case "u":
                return self.logger._get_user(environ) or "-"
            case "t":
                return self.logger.now()
            case "r":
                method, uri = environ["REQUEST_METHOD"], environ["RAW_URI"]
                return f"{method} {uri} {environ['SERVER_PROTOCOL']}"
            case "s":
                status = self.resp.status
                return status.split(None, 1)[0] if isinstance(status, str) else status
            case "m":
                return environ.get("REQUEST_METHOD")
            case "U":
                return environ.get("PATH_INFO")
            case "q":
                return environ.get("QUERY_STRING")
            case "H":
                return environ.get("SERVER_PROTOCOL")
            case "b":
                return "-" if sent is None else str(sent)
            case "B":
                return sent
            case "f":
                return environ.get("HTTP_REFERER", "-")
            case "a":
                return environ.get("HTTP_USER_AGENT", "-")
            case "T":
                return elapsed.seconds
            case "D":
                return elapsed.seconds * 1_000_000 + elapsed.microseconds
            case "M":
                return elapsed.seconds * 1000 + elapsed.microseconds // 1000
            case "L":
                return f"{elapsed.seconds}.{elapsed.microseconds:06d}"
            case "p":
                return f"<{os.getpid()}>"
        return "-"  # "l", and any name gunicorn does not know

    def _braced(self, name: str) -> Any:
        # gunicorn names a header or environ entry "{" + its name in lower case + "}" + kind.
        found = "-"
        if name[-2:-1] == "}":
            wanted = name[1:-2]
            for key, value in self._braced_pairs(name[-1]):
                if key.lower() == wanted:
                    found = value
        return found

    def _braced_pairs(self, kind: str) -> Any:
        if kind == "i":
            return _pairs(getattr(self.req, "headers", self.req))
        if kind == "o":
            return _pairs(self.resp.headers)
        if kind == "e":
            return self.environ.items()
        return ()

    def _names(self) -> dict[str, None]:
        names = dict.fromkeys(SIMPLE_ATOMS)
        for kind in "ioe":
            names.update((f"{{{key.lower()}}}{kind}", None) for key, _ in self._braced_pairs(kind))
        return names

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())

    def __bool__(self) -> bool:
        # logging formats a record's message with its mapping argument only when that is truthy;
        # this one always holds the simple atoms, and answering needs no count.
        return True


class AccessLogger(glogging.Logger):
    """gunicorn's logger, its access-log atoms looked up on demand (see the module's docstring).

    Everything else is gunicorn's: the error log, `access()` and its checks, handlers, formats.
    Two differences. A handler's formatter gets a Mapping as the record's arguments, not a dict.
    And with `statsd_host` set, gunicorn switches only its default logger to its statsd logger,
    so this one sends no metrics: it says so at start-up.
    """

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        if cfg.statsd_host:
            self.warning(
                "refapi's access logger (logger_class) sends no statsd metrics: statsd_host is "
                "ignored. Set logger_class=gunicorn.instrument.statsd.Statsd to have them."
            )

    # The atoms escape their own values; gunicorn's SafeAtoms would copy every one of them.
    @staticmethod
    def atoms_wrapper_class(atoms: Atoms) -> Atoms:
        return atoms

    def atoms(
        self, resp: Any, req: Any, environ: Mapping[str, Any], request_time: timedelta
    ) -> Atoms:
        return Atoms(self, resp, req, environ, request_time)
