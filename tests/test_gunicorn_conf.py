"""gunicorn.conf.py: what the server is told, and what its master says at start-up."""

from __future__ import annotations

import gc
import logging
import os
import socket
import subprocess
import sys
from types import SimpleNamespace
from typing import Any

import pytest
from gunicorn.config import Config

from refapi.accesslog import AccessLogger
from tests.conftest import API_KEYS, GUNICORN_CONF, run_gunicorn_conf
from tests.e2e.conftest import free_port


def gunicorn_settings(monkeypatch: pytest.MonkeyPatch, **env: str) -> dict[str, Any]:
    monkeypatch.setenv("REFAPI_API_KEYS", API_KEYS)
    for name, value in env.items():
        monkeypatch.setenv(f"REFAPI_{name}", value)
    return run_gunicorn_conf(monkeypatch)


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def error_log():
    """gunicorn's error logger, with what it writes recorded and its filters restored."""
    logger = logging.getLogger("gunicorn.error")
    filters, level = list(logger.filters), logger.level
    lines = Lines()
    logger.addHandler(lines)
    logger.setLevel(logging.INFO)
    yield logger, lines.lines
    logger.removeHandler(lines)
    logger.filters[:] = filters
    logger.setLevel(level)


def configured(settings: dict[str, Any], **command_line: Any) -> Config:
    """gunicorn's configuration as it loads it: the file's settings, then the command line's."""
    config = Config()
    for name in ("bind", "reuse_port", "workers", "worker_class"):
        config.set(name, settings[name])
    for name, value in command_line.items():
        config.set(name, value)
    return config


def ready(config: Config) -> SimpleNamespace:
    """The arbiter when_ready is given: its configuration, and the worker class it loaded."""
    return SimpleNamespace(cfg=config, worker_class=config.worker_class)


def started(settings: dict[str, Any], logger: logging.Logger) -> None:
    """What the arbiter's start writes about its sockets: none, as with reuse_port."""
    server = SimpleNamespace(
        cfg=configured(settings), LISTENERS=[], pid=4242, log=logger, master_pid=0
    )
    settings["on_starting"](server)
    # gunicorn 27's Arbiter.start, word for word: the master's sockets, of which it has none.
    logger.info("Listening at: %s (%s)", ",".join(str(s) for s in server.LISTENERS), server.pid)


@pytest.mark.parametrize(
    ("bind", "shown"),
    [
        ("127.0.0.1:{port}", "http://127.0.0.1:{port}"),
        ("0.0.0.0:{port}", "http://0.0.0.0:{port}"),
        ("[::1]:{port}", "http://[::1]:{port}"),
    ],
)
def test_the_listening_at_line_names_the_address_though_the_master_holds_no_socket(
    monkeypatch, error_log, bind, shown
):
    # Each worker binds its own socket (reuse_port), so gunicorn's line named none:
    # "Listening at:  (13613)". An operator must see where the server listens. A free port:
    # on one in use, the master refuses to start (tests/e2e/test_server.py).
    port = free_port()
    bind, shown = bind.format(port=port), shown.format(port=port)
    settings = gunicorn_settings(monkeypatch, BIND=bind)
    logger, lines = error_log
    started(settings, logger)
    assert lines == [f"Listening at: {shown} (4242)"]


def test_other_lines_of_the_error_log_are_left_as_they_are(monkeypatch, error_log):
    settings = gunicorn_settings(monkeypatch, BIND=f"127.0.0.1:{free_port()}")
    logger, lines = error_log
    started(settings, logger)
    logger.info("Listening at: %s (%s)", "http://127.0.0.1:5000", 1)
    logger.info("Booting worker with pid: %s", 7)
    assert lines[1:] == ["Listening at: http://127.0.0.1:5000 (1)", "Booting worker with pid: 7"]


@pytest.fixture
def port_in_use():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


def starting(settings: dict[str, Any], *, master_pid: int = 0, **command_line: Any) -> Config:
    """The configuration the arbiter goes on with once on_starting has run."""
    config = configured(settings, **command_line)
    settings["on_starting"](SimpleNamespace(cfg=config, master_pid=master_pid))
    return config


def test_a_tcp_port_is_served_on_a_socket_per_worker(monkeypatch):
    settings = gunicorn_settings(monkeypatch, BIND=f"127.0.0.1:{free_port()}")
    assert starting(settings).reuse_port is True


@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0", "[::]"])  # noqa: S104 - not bound
def test_a_port_another_server_listens_on_stops_the_master(monkeypatch, port_in_use, host):
    # The other one listens on 127.0.0.1: a wildcard conflicts with it, as a plain bind would.
    settings = gunicorn_settings(monkeypatch, BIND=f"{host}:{port_in_use}")
    with pytest.raises(SystemExit, match=f":{port_in_use}: a server already listens there"):
        starting(settings)


def test_an_address_this_host_does_not_have_stops_the_master_with_why(monkeypatch):
    # Each worker would fail to bind it, and the master would start them again and again.
    settings = gunicorn_settings(monkeypatch, BIND=f"127.0.0.1:{free_port()}")
    settings["bind"] = "192.0.2.1:5000"  # TEST-NET-1, as `gunicorn -b` would give it
    with pytest.raises(SystemExit, match=r"cannot listen on 192\.0\.2\.1:5000: Cannot assign"):
        starting(settings)


def test_another_port_of_a_busy_address_starts(monkeypatch, port_in_use):
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        free = other.getsockname()[1]
    starting(gunicorn_settings(monkeypatch, BIND=f"127.0.0.1:{free}"))


def test_an_upgrade_in_place_says_it_cannot_be_done_with_reuse_port(monkeypatch):
    # USR2: gunicorn execs a new master with GUNICORN_PID, the old master's; with reuse_port
    # the old one has no socket to hand over.
    settings = gunicorn_settings(monkeypatch, BIND=f"127.0.0.1:{free_port()}")
    with pytest.raises(SystemExit, match=r"cannot upgrade in place \(USR2\)"):
        starting(settings, master_pid=4242)


def test_socket_activation_says_it_cannot_be_done_with_reuse_port(monkeypatch):
    settings = gunicorn_settings(monkeypatch, BIND=f"127.0.0.1:{free_port()}")
    monkeypatch.setenv("LISTEN_FDS", "1")
    with pytest.raises(SystemExit, match="cannot start on systemd's sockets"):
        starting(settings)


def test_any_free_port_is_the_masters_one_socket(monkeypatch):
    # With reuse_port, each worker would bind port 0 itself and get a random port of its own.
    settings = gunicorn_settings(monkeypatch, BIND="127.0.0.1:0")
    assert starting(settings).reuse_port is False


def test_a_unix_socket_is_the_masters_one_socket(monkeypatch):
    # SO_REUSEPORT does nothing for Unix sockets, and each worker binding the path would remove
    # the socket file of the one before it: only the last worker could be reached.
    settings = gunicorn_settings(monkeypatch, BIND="unix:/run/refapi/refapi.sock")
    assert settings["bind"] == "unix:/run/refapi/refapi.sock"
    assert starting(settings).reuse_port is False


@pytest.mark.parametrize("bind", ["unix:/run/refapi/refapi.sock", "127.0.0.1:0", "fd://3"])
def test_an_address_given_on_the_command_line_decides_too(monkeypatch, bind):
    # `gunicorn -b unix:...` overrides REFAPI_BIND; reuse_port was decided from REFAPI_BIND.
    settings = gunicorn_settings(monkeypatch, BIND=f"127.0.0.1:{free_port()}")
    assert settings["reuse_port"] is True
    assert starting(settings, bind=[bind]).reuse_port is False


@pytest.mark.parametrize("bind", ["unix:/run/refapi/refapi.sock", "127.0.0.1:0"])
def test_a_reload_keeps_the_masters_one_socket(monkeypatch, bind):
    # HUP reads this file into a new configuration, whose reuse_port is REFAPI_BIND's: the new
    # workers bound a socket of their own on the master's Unix socket path or port 0.
    settings = gunicorn_settings(monkeypatch, BIND=f"127.0.0.1:{free_port()}")
    reloaded = configured(settings, bind=[bind])
    settings["on_reload"](SimpleNamespace(cfg=reloaded))
    assert reloaded.reuse_port is False


@pytest.mark.parametrize("bind", ["unix:/run/refapi/refapi.sock", "127.0.0.1:0"])
def test_refapi_bind_alone_decides_it_for_the_file(monkeypatch, bind):
    # What a reload starts from, before on_reload.
    assert gunicorn_settings(monkeypatch, BIND=bind)["reuse_port"] is False


@pytest.mark.parametrize(("command_line", "warned"), [({}, True), ({"workers": 1}, False)])
def test_workers_without_redis_are_warned_of_as_gunicorn_runs_them(
    monkeypatch, error_log, command_line, warned
):
    # Each worker's SimpleCache is its own: a write in one leaves old values in the others.
    monkeypatch.delenv("REFAPI_REDIS_URL", raising=False)
    settings = gunicorn_settings(monkeypatch, BIND=f"127.0.0.1:{free_port()}", WORKERS="2")
    _, lines = error_log
    settings["when_ready"](ready(configured(settings, **command_line)))
    assert any("2 workers share no cache" in line for line in lines) is warned


@pytest.mark.parametrize(
    ("worker_class", "database", "warned"),
    [
        ("gevent", "sqlite:///refapi.sqlite3", True),
        ("gthread", "sqlite:///refapi.sqlite3", False),
        ("gevent", "postgresql://refapi@db/refapi", False),
    ],
)
def test_gevent_workers_on_sqlite_are_warned_of(
    monkeypatch, error_log, tmp_path, worker_class, database, warned
):
    # A greenlet waiting for SQLite's lock waits in C: its worker's other connections wait too.
    settings = gunicorn_settings(
        monkeypatch,
        WORKER_CLASS=worker_class,
        DATABASE_URL=database,
        INSTANCE_PATH=str(tmp_path),
        WORKERS="1",
    )
    _, lines = error_log
    settings["when_ready"](ready(configured(settings)))
    assert any("gevent workers with SQLite" in line for line in lines) is warned
    # `-k` on the command line wins over REFAPI_WORKER_CLASS, and so does the warning.
    lines.clear()
    other = "gthread" if worker_class == "gevent" else "gevent"
    settings["when_ready"](ready(configured(settings, worker_class=other)))
    warned_other = other == "gevent" and database.startswith("sqlite")
    assert any("gevent workers with SQLite" in line for line in lines) is warned_other


@pytest.mark.parametrize(
    ("command_line", "warned"),
    [
        ("refapi.gevent_worker.GeventWorker", True),  # as REFAPI_WORKER_CLASS=gevent gives it
        ("gunicorn.workers.ggevent.GeventWorker", True),  # gunicorn's own, `-k gevent`
        ("gevent_pywsgi", True),  # a subclass of gunicorn's gevent worker
        ("refapi.worker.ThreadWorker", False),
        ("gunicorn.workers.gthread.ThreadWorker", False),
        ("sync", False),  # neither of refapi's worker classes
    ],
)
def test_the_sqlite_warning_follows_the_class_the_command_line_names(
    monkeypatch, error_log, tmp_path, command_line, warned
):
    # Set in the file the other way, so that only `-k` can decide.
    settings = gunicorn_settings(
        monkeypatch,
        WORKER_CLASS="gthread" if warned else "gevent",
        DATABASE_URL="sqlite:///refapi.sqlite3",
        INSTANCE_PATH=str(tmp_path),
        WORKERS="1",
    )
    _, lines = error_log
    settings["when_ready"](ready(configured(settings, worker_class=command_line)))
    assert any("gevent workers with SQLite" in line for line in lines) is warned


def test_the_worker_class_is_refapis_own_gthread_or_gevent(monkeypatch):
    assert gunicorn_settings(monkeypatch)["worker_class"] == "refapi.worker.ThreadWorker"
    assert (
        gunicorn_settings(monkeypatch, WORKER_CLASS="gevent")["worker_class"]
        == "refapi.gevent_worker.GeventWorker"
    )


# What gunicorn's master must not import: a gevent worker monkey-patches the standard library
# after the master has loaded gunicorn.conf.py and the worker class, and a library imported
# before keeps what it took from the standard library unpatched (urllib3's SSLContext: an HTTPS
# download from Statbel would block the whole worker; psycopg picks its wait function at import).
IMPORTED_AFTER_PATCHING = ("refapi.app", "requests", "urllib3", "psycopg")


def test_the_master_imports_nothing_a_gevent_worker_must_import_after_patching(tmp_path):
    script = (
        "import runpy, sys\n"
        f"runpy.run_path({str(GUNICORN_CONF)!r})\n"
        "import refapi.gevent_worker, refapi.worker\n"
        f"print(sorted({{name.split('.')[0] if name.split('.')[0] != 'refapi' else name "
        f"for name in sys.modules}} & {set(IMPORTED_AFTER_PATCHING)!r}))\n"
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("REFAPI_")},
        "REFAPI_API_KEYS": API_KEYS,
        "REFAPI_WORKER_CLASS": "gevent",
        "REFAPI_REDIS_URL": "redis://127.0.0.1:6379/0",
        "REFAPI_CACHE_KEY_PREFIX": "refapi-test:",
        "REFAPI_DATABASE_URL": "postgresql://refapi@127.0.0.1:5432/refapi",
        "REFAPI_INSTANCE_PATH": str(tmp_path),
    }
    ran = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "[]", ran.stdout


def test_a_worker_keeps_what_it_loaded_out_of_the_garbage_collectors_passes(monkeypatch):
    settings = gunicorn_settings(monkeypatch)
    before = gc.get_freeze_count()  # not 0 in every test process (Python 3.12 under CI)
    try:
        settings["post_worker_init"](SimpleNamespace())
        assert gc.get_freeze_count() > before
    finally:
        if not before:
            gc.unfreeze()


# What logging looks up only for a format that names it, and the server turns off.
_CALLERS_ATTRIBUTES = ("pathname", "filename", "module", "lineno", "funcName")


def test_the_server_skips_lookups_that_no_log_format_of_its_own_names(
    monkeypatch: pytest.MonkeyPatch, app: Any
) -> None:
    """A log line of the server reads the same without the caller's file, line and function."""
    settings = gunicorn_settings(monkeypatch)
    assert logging._srcfile is None
    logger_class = configured(settings, logger_class=settings["logger_class"]).logger_class
    assert logger_class is AccessLogger
    formats = [
        logger_class.error_fmt,
        logger_class.access_fmt,
        logger_class.syslog_fmt,
        *(
            handler.formatter._fmt
            for handler in logging.getLogger("refapi").handlers
            if getattr(handler, "is_refapi", False) and handler.formatter is not None
        ),
    ]
    assert len(formats) == 4
    for log_format in formats:
        assert log_format is not None
        for name in _CALLERS_ATTRIBUTES:
            assert f"%({name})" not in log_format, (name, log_format)
