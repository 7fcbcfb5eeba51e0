"""refapi's gunicorn access logger writes what gunicorn's own logger writes, atom for atom,
with a request's text made safe for one log line."""

from __future__ import annotations

import datetime
import logging
from typing import Any

import pytest
from gunicorn import glogging
from gunicorn.config import Config
from gunicorn.http import wsgi
from gunicorn.http.errors import ParseException
from gunicorn.http.parser import RequestParser
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from refapi.accesslog import AccessLogger, log_text
from tests.conftest import TEST_KEY, run_gunicorn_conf

CLIENT = ("198.51.100.7", 40312)
SERVER = ("127.0.0.1", 5000)
REQUEST_TIME = datetime.timedelta(seconds=1, microseconds=234_567)
REQUEST = (
    b"GET /get/some%20key?page=2 HTTP/1.1\r\n"
    b"Host: refapi.example\r\n"
    b'User-Agent: wrk "quoted" 4.1\r\n'
    b"Authorization: Basic dXNlcjpwYXNzd29yZA==\r\n"
    b"X-Forwarded-For: 203.0.113.1\r\n"
    b"X-Forwarded-For: 203.0.113.2\r\n"
    b"X-Request-ID: abc\r\n"
    b"\r\n"
)
RESPONSE_HEADERS = [
    ("Content-Type", "application/json"),
    ("X-Request-ID", "abc"),
    ("ETag", '"v1"'),
]


@pytest.fixture(autouse=True)
def _one_clock(monkeypatch):
    # %(t)s is the time of formatting: both loggers must see the same second.
    monkeypatch.setattr(glogging.Logger, "now", lambda self: "[01/Dec/2026:08:00:00 +0000]")


@pytest.fixture(autouse=True)
def _gunicorns_loggers_left_as_found():
    # gunicorn's Logger puts handlers on the process-wide gunicorn.* loggers.
    loggers = [logging.getLogger(name) for name in ("gunicorn.error", "gunicorn.access")]
    before = [list(logger.handlers) for logger in loggers]
    yield
    for logger, handlers in zip(loggers, before, strict=True):
        for handler in set(logger.handlers) - set(handlers):
            handler.close()
        logger.handlers[:] = handlers


def refapi_gunicorn_settings() -> dict[str, Any]:
    """What gunicorn reads from refapi's gunicorn.conf.py."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("REFAPI_API_KEYS", f"tester:{TEST_KEY}")
        return run_gunicorn_conf(patch)


def gunicorn_config(**values: Any) -> Config:
    config = Config()
    for name, value in values.items():
        config.set(name, value)
    return config


def served(raw: bytes, status: str = "200 OK", headers=RESPONSE_HEADERS, sent: int | None = 42):
    """gunicorn's own request, response and environ for ``raw``, as a worker builds them."""
    config = gunicorn_config()
    request = next(RequestParser(config, [raw], CLIENT))
    response, environ = wsgi.create(request, None, CLIENT, SERVER, config)
    response.start_response(status, list(headers))
    if sent is None:
        del response.sent
    else:
        response.sent = sent
    return response, request, environ


class SafeText(glogging.SafeAtoms):
    """gunicorn's SafeAtoms (its lookups: braces, "-"), with text as ours makes it (log_text)."""

    def __init__(self, atoms: dict[str, Any]) -> None:
        dict.__init__(self)
        for key, value in atoms.items():
            self[key] = log_text(value) if isinstance(value, str) else value


def stock_and_ours(raw: bytes = REQUEST, **served_args: Any) -> tuple[dict[str, Any], Any]:
    config = gunicorn_config(accesslog=None)
    exchange = (*served(raw, **served_args), REQUEST_TIME)
    stock = glogging.Logger(config)
    expected = SafeText(stock.atoms(*exchange))
    ours = AccessLogger(config)
    return expected, ours.atoms_wrapper_class(ours.atoms(*exchange))


def names_to_ask(expected: dict[str, Any]) -> list[str]:
    names = list(expected)
    # Names in braces are case-insensitive; anything else unknown is "-".
    names += [name.upper() for name in expected if name.startswith("{")]
    names += ["{nothing-like-it}i", "{nothing}o", "{nothing}e", "Z", "{x-request-id}", "{"]
    return names


def test_every_atom_is_what_gunicorns_logger_gives():
    expected, ours = stock_and_ours()
    assert len(expected) > 40  # every header and environ entry: the work ours skips
    for name in names_to_ask(expected):
        assert ours[name] == expected[name], name
        assert (name in ours) == (name in expected), name
        assert ours.get(name, "default") == expected.get(name, "default"), name
    assert sorted(ours) == sorted(expected)
    assert len(ours) == len(expected)
    # The cases that make the lookups non-trivial, spelled out:
    assert ours["u"] == "user"
    assert ours["a"] == 'wrk \\"quoted\\" 4.1'
    assert ours["{x-forwarded-for}i"] == "203.0.113.2"  # a repeated header: the last one
    assert ours["{X-Request-Id}o"] == "abc"
    assert ours["{etag}o"] == '\\"v1\\"'
    assert ours["{remote_addr}e"] == CLIENT[0]


@pytest.mark.parametrize(
    ("status", "sent"), [("404 NOT FOUND", 0), ("500 INTERNAL SERVER ERROR", None)]
)
def test_status_and_bytes_are_what_gunicorns_logger_gives(status, sent):
    expected, ours = stock_and_ours(status=status, sent=sent)
    for name in ("s", "b", "B", "r", "q", "T", "D", "M", "L", "p"):
        assert ours[name] == expected[name], name


header_names = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
    min_size=1,
    max_size=12,
)
header_values = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    request_headers=st.lists(st.tuples(header_names, header_values), max_size=6),
    response_headers=st.lists(st.tuples(header_names, header_values), max_size=6),
)
def test_any_headers_give_gunicorns_atoms(request_headers, response_headers):
    raw = b"GET /ping HTTP/1.1\r\nHost: h\r\n"
    raw += b"".join(f"{name}: {value.strip()}\r\n".encode() for name, value in request_headers)
    try:
        expected, ours = stock_and_ours(raw + b"\r\n", headers=response_headers)
    except ParseException:  # a request or response gunicorn refuses has no access-log line
        return
    for name in names_to_ask(expected):
        assert ours[name] == expected[name], name


def test_refapis_server_logs_with_it():
    logger_class = refapi_gunicorn_settings()["logger_class"]
    assert gunicorn_config(logger_class=logger_class).logger_class is AccessLogger


def test_refapis_line_is_byte_for_byte_what_gunicorn_writes(tmp_path):
    access_log_format = refapi_gunicorn_settings()["access_log_format"]
    lines = []
    for logger_class in (glogging.Logger, AccessLogger):
        path = tmp_path / f"{logger_class.__module__}.log"
        config = gunicorn_config(accesslog=str(path), access_log_format=access_log_format)
        logger = logger_class(config)
        logger.access(*served(REQUEST), REQUEST_TIME)
        for handler in logger.access_log.handlers:
            handler.close()
        lines.append(path.read_text(encoding="utf-8"))
    stock, ours = lines
    assert ours == stock
    assert ours == (
        'remote=198.51.100.7 method=GET path="/get/some key" status=200 bytes=42 '
        'duration_ms=1234 request_id=abc forwarded_for="203.0.113.2" '
        'user_agent="wrk \\"quoted\\" 4.1"\n'
    )


def test_each_atom_is_computed_once_per_line_whatever_the_handlers(tmp_path, monkeypatch):
    instants = iter(["[01/Dec/2026:08:00:00 +0000]", "[01/Dec/2026:08:00:01 +0000]"])
    monkeypatch.setattr(glogging.Logger, "now", lambda self: next(instants))
    paths = [tmp_path / "first.log", tmp_path / "second.log"]
    logger = AccessLogger(gunicorn_config(accesslog=str(paths[0]), access_log_format="%(t)s"))
    second = logging.FileHandler(paths[1])
    second.setFormatter(logging.Formatter("%(message)s"))
    logger.access_log.addHandler(second)
    logger.access(*served(REQUEST), REQUEST_TIME)
    for handler in logger.access_log.handlers:
        handler.close()
    lines = [path.read_text(encoding="utf-8") for path in paths]
    assert lines == ["[01/Dec/2026:08:00:00 +0000]\n"] * 2


def test_with_statsd_configured_it_says_it_sends_no_metrics(tmp_path):
    errors = tmp_path / "error.log"
    AccessLogger(gunicorn_config(errorlog=str(errors), statsd_host="127.0.0.1:8125"))
    assert "sends no statsd metrics" in errors.read_text(encoding="utf-8")


def test_text_is_escaped_as_logfmt_reads_it():
    assert log_text('say "hi"') == 'say \\"hi\\"'  # as gunicorn's own logger does
    assert log_text("a\\") == "a\\\\"  # a trailing backslash cannot escape the closing quote
    assert log_text("tab\there") == "tab\\there"
    assert log_text("bell\x07 del\x7f") == "bell\\x07 del\\x7f"


def test_a_path_is_logged_as_the_utf8_it_was_sent_in():
    # WSGI hands over the path's bytes decoded as latin-1.
    assert log_text("/get/café".encode().decode("latin-1")) == "/get/café"
    # A byte that is not UTF-8 is written as an escape; a C1 control as one too.
    assert log_text(b"/get/\xff".decode("latin-1")) == "/get/\\xff"
    assert log_text("/get/\u009b".encode().decode("latin-1")) == "/get/\\u009b"
    assert log_text(b"/get/\x9b".decode("latin-1")) == "/get/\\x9b"  # the byte, not U+009B


def test_a_path_with_an_encoded_newline_cannot_forge_a_line(tmp_path):
    access_log_format = refapi_gunicorn_settings()["access_log_format"]
    path = tmp_path / "access.log"
    logger = AccessLogger(gunicorn_config(accesslog=str(path), access_log_format=access_log_format))
    forged = b"/ping%0Aremote=203.0.113.9%20method=DELETE%20path=%22/delete/x%22%5C"
    logger.access(*served(b"GET " + forged + b" HTTP/1.1\r\nHost: h\r\n\r\n"), REQUEST_TIME)
    for handler in logger.access_log.handlers:
        handler.close()
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1
    assert 'path="/ping\\nremote=203.0.113.9 method=DELETE path=\\"/delete/x\\"\\\\" ' in lines[0]
