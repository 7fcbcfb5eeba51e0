"""gunicorn's configuration, read from the same REFAPI_* settings as the app.

One command serves refapi everywhere (`make run`, the Dockerfile, the e2e tests):
    gunicorn --config gunicorn.conf.py wsgi:app
"""

import logging
import os
import socket
import sys

from refapi import config as refapi_config
from refapi.auth import load_keyring

# Check the configuration once, in the master, so that a mistake stops the server with a clear
# message instead of workers failing to boot over and over.
try:
    _settings = {**refapi_config.defaults(), **refapi_config.from_environment()}
    refapi_config.check(_settings)
    load_keyring(_settings)
except refapi_config.ConfigError as error:
    sys.exit(f"refapi cannot start: {error}")

bind = _settings["BIND"]
worker_class = "gthread"
workers = _settings["WORKERS"] or (os.cpu_count() or 1)
threads = _settings["THREADS"]
timeout = _settings["WORKER_TIMEOUT"]
graceful_timeout = _settings["GRACEFUL_TIMEOUT"]
keepalive = 5
# Each worker listens on a socket of its own (SO_REUSEPORT) and the kernel spreads new
# connections across them. With one shared socket, whichever worker wakes first accepts a burst
# of keep-alive connections (a proxy's pool, a load generator) and serves them all on one core
# while the others idle: issue 8's benchmark measured a third of the throughput when that happened.
# Not on a Unix socket: SO_REUSEPORT does nothing there, and each worker would remove the socket
# file of the one before, so only the last could be reached. Not on port 0 (any free port) either:
# each worker would get a random port of its own. There the master's one socket it is, and
# gunicorn's "Listening at" line names the port it got.
reuse_port = not bind.startswith("unix:") and refapi_config.bind_address(bind)[1] != 0
# No control socket: nothing here uses gunicornc, and two servers would contend for its path.
control_socket_disable = True
# Heartbeat files in memory, not on a container's overlay filesystem.
SHARED_MEMORY = "/dev/shm"  # noqa: S108 - a tmpfs, which is the point
if os.path.isdir(SHARED_MEMORY):
    worker_tmp_dir = SHARED_MEMORY

accesslog = "-"
errorlog = "-"
# gunicorn's logger, writing the same lines, but computing only the atoms the format names:
# the stock one builds all sixty-odd of every request first (see refapi/accesslog.py).
logger_class = "refapi.accesslog.AccessLogger"
# logfmt, one line per request, with the request id the app echoes in X-Request-ID.
# The path only (%(U)s), never the query string. remote= is the client's address (the app's
# ProxyFix sets it from X-Forwarded-For when REFAPI_PROXY_X_FOR trusts the proxy);
# forwarded_for= is the header as received.
access_log_format = (
    'remote=%(h)s method=%(m)s path="%(U)s" status=%(s)s bytes=%(B)s '
    'duration_ms=%(M)s request_id=%({x-request-id}o)s forwarded_for="%({x-forwarded-for}i)s" '
    'user_agent="%(a)s"'
)


def listening_at(server):
    """The configured addresses as gunicorn writes its sockets: http://host:port, unix:path."""
    scheme = "https" if server.cfg.is_ssl else "http"
    shown = []
    for address in server.cfg.address:
        if isinstance(address, tuple):
            host, port = address
            shown.append(
                f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"
            )
        else:
            shown.append(f"unix:{address}")
    return ",".join(shown)


class _ListeningAt(logging.Filter):
    """Completes gunicorn's "Listening at:" line, which names the master's sockets.

    With reuse_port the master holds none (gunicorn 27's arbiter leaves each worker to bind its
    own) and the line reads "Listening at:  (pid)"; no setting but reuse_port changes that.
    """

    def __init__(self, server):
        super().__init__()
        self.server = server

    def filter(self, record):
        if record.msg == "Listening at: %s (%s)" and record.args and record.args[0] == "":
            record.args = (listening_at(self.server), *record.args[1:])
        return True


def _answers(host, port):
    """Whether a server already accepts connections on host:port (a wildcard: on loopback)."""
    wildcards = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}  # noqa: S104 - read, not bound
    host = wildcards.get(host, host)
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def on_starting(server):
    # With reuse_port, binding a port another server of the same user listens on succeeds, and
    # the kernel then splits connections between the two (two `make run`, each with its own
    # database and keys): refuse instead, as a plain bind would.
    # Not for the new master of a USR2 upgrade (master_pid: the old one, which listens on
    # purpose), nor under systemd's socket activation (LISTEN_FDS: systemd holds the socket).
    if reuse_port and not server.master_pid and not os.environ.get("LISTEN_FDS"):
        for host, port in (a for a in server.cfg.address if isinstance(a, tuple)):
            if port and _answers(host, port):
                sys.exit(
                    f"refapi cannot start: a server already listens on {listening_at(server)}; "
                    "stop it, or set REFAPI_BIND to another port."
                )
    # Before the arbiter writes the line; gunicorn's error log is this logger whatever its class.
    logging.getLogger("gunicorn.error").addFilter(_ListeningAt(server))


def when_ready(server):
    if workers > 1 and not _settings["REDIS_URL"]:
        logging.getLogger("gunicorn.error").warning(
            "refapi: %d workers share no cache: SimpleCache is per process, so a write in one "
            "worker leaves old values in the others. Set REFAPI_REDIS_URL, or REFAPI_WORKERS=1.",
            workers,
        )
