"""gunicorn's configuration, read from the same REFAPI_* settings as the app.

One command serves refapi everywhere (`make run`, the Dockerfile, the e2e tests):
    gunicorn --config gunicorn.conf.py wsgi:app
"""

import errno
import gc
import logging
import os
import socket
import sys

from gunicorn import util as gunicorn_util
from gunicorn.workers import SUPPORTED_WORKERS

from refapi import config as refapi_config
from refapi.auth import load_keyring


def _reuse_port_serves(addresses):
    """Whether each worker binding a socket of its own (reuse_port) serves these addresses.

    Not a Unix socket: SO_REUSEPORT does nothing there, and each worker would remove the socket
    file of the one before, so only the last could be reached. Not port 0 (any free port):
    each worker would get a random port of its own. Not a file descriptor (`-b fd://3`): the
    socket is given, not bound. There the master's one socket it is, and gunicorn's "Listening
    at" line names it.
    """
    return all(isinstance(address, tuple) and address[1] != 0 for address in addresses)


# Check the configuration once, in the master, so that a mistake stops the server with a clear
# message instead of workers failing to boot over and over.
try:
    _settings = {**refapi_config.defaults(), **refapi_config.from_environment()}
    refapi_config.check(_settings)
    load_keyring(_settings)
except refapi_config.ConfigError as error:
    sys.exit(f"refapi cannot start: {error}")

bind = _settings["BIND"]
# gthread or gevent (REFAPI_WORKER_CLASS), with gunicorn's own error pages (a malformed
# request) in the API's error format: refapi/worker.py.
worker_class = refapi_config.WORKER_CLASSES[_settings["WORKER_CLASS"]]
workers = _settings["WORKERS"] or (os.cpu_count() or 1)
threads = _settings["THREADS"]
timeout = _settings["WORKER_TIMEOUT"]
graceful_timeout = _settings["GRACEFUL_TIMEOUT"]
keepalive = 5
# Each worker listens on a socket of its own (SO_REUSEPORT) and the kernel spreads new
# connections across them. With one shared socket, whichever worker wakes first accepts a burst
# of keep-alive connections (a proxy's pool, a load generator) and serves them all on one core
# while the others idle: issue 8's benchmark measured a third of the throughput when that happened.
# Off where it cannot work (see _reuse_port_serves): for REFAPI_BIND here, and again in
# on_starting and on_reload for the addresses gunicorn was really given (`-b` on the command
# line wins over the file).
reuse_port = _reuse_port_serves([refapi_config.bind_address(bind)])
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
# No format of ours (the access log's, gunicorn's error log, the app's) names the caller's file,
# line or function: each record, one per request in the access log, need not look them up (the
# logging HOWTO's "Optimization"). A --log-config format that names them gets "(unknown file)",
# 0 and "(unknown function)"; stack_info and stacklevel are ignored.
logging._srcfile = None


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


def _bind_problem(host, port):
    """Why a plain bind of host:port fails (something listens there, say), or None.

    A plain bind, of the address family gunicorn would use, so the kernel's own rules decide: a
    wildcard conflicts with a server on any one address, "::" with one on 127.0.0.1.
    """
    family = socket.AF_INET6 if gunicorn_util.is_ipv6(host) else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds
            probe.bind((host or "0.0.0.0", port))  # noqa: S104 - a probe, closed at once
    except OSError as error:  # socket.gaierror included: a name that does not resolve
        if error.errno == errno.EADDRINUSE:
            return "a server already listens there; stop it, or bind another port"
        if error.errno == errno.EACCES:
            return "permission denied (a port below 1024 needs root or CAP_NET_BIND_SERVICE)"
        return error.strerror or str(error)
    return None


def _serve_where_reuse_port_cannot(server):
    if server.cfg.reuse_port and not _reuse_port_serves(server.cfg.address):
        server.cfg.set("reuse_port", False)


def on_starting(server):
    _serve_where_reuse_port_cannot(server)
    if server.cfg.reuse_port:
        _refuse_what_reuse_port_cannot_do(server)
    # Before the arbiter writes the line; gunicorn's error log is this logger whatever its class.
    logging.getLogger("gunicorn.error").addFilter(_ListeningAt(server))


def _refuse_what_reuse_port_cannot_do(server):
    """Stop the master, with why, where each worker binding its own socket would go wrong."""
    if server.master_pid:
        # USR2: with reuse_port the old master holds no socket to hand over (gunicorn 27 fails
        # on an empty GUNICORN_FD).
        sys.exit("refapi cannot upgrade in place (USR2): restart the server, or HUP to reload.")
    if os.environ.get("LISTEN_FDS"):
        # Workers would bind sockets of their own instead of systemd's.
        sys.exit("refapi cannot start on systemd's sockets: let it bind (REFAPI_BIND).")
    # Binding a port another server of the same user listens on succeeds with reuse_port, and
    # the kernel then splits connections between the two (two `make run`, each with its own
    # database and keys): refuse, as a plain bind would.
    # A bind that fails for another reason (an address not on this host, a privileged port) would
    # fail in every worker, which the master would start again and again: say it once here.
    for host, port in (a for a in server.cfg.address if isinstance(a, tuple)):
        if port and (problem := _bind_problem(host, port)):
            shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            sys.exit(f"refapi cannot start: cannot listen on {shown}: {problem}.")


def on_reload(server):
    # HUP reads this file again, into a new configuration, before the new workers start: its
    # reuse_port is REFAPI_BIND's again, whatever `-b` says.
    _serve_where_reuse_port_cannot(server)


def post_worker_init(worker):
    # The app is loaded, and what it built (Flask, SQLAlchemy, marshmallow, the OpenAPI
    # document) lives as long as the worker: kept out of the garbage collector's full passes,
    # each of which otherwise walked all of it while every request of the worker waited (issue
    # 8: the full-stack /ping's p99 in B from 43 ms to 15).
    gc.collect()  # what loading left unreachable, before the rest is frozen for good
    gc.freeze()


# REFAPI_WORKER_CLASS's name for each worker class, by the class's path: refapi's own
# (refapi.config.WORKER_CLASSES), and gunicorn's class of the same name (`-k gevent`, as the
# benchmarks' --worker-class runs it), whose connections wait on the database alike.
_WORKER_CLASS_NAMES = {
    **{SUPPORTED_WORKERS[name]: name for name in refapi_config.WORKER_CLASSES},
    **{path: name for name, path in refapi_config.WORKER_CLASSES.items()},
}


def _worker_class_name(server):
    """The name of the worker class gunicorn runs (REFAPI_WORKER_CLASS's, or `-k` on the command
    line), or None for a class of neither name (`-k sync`). A subclass of one has its name
    (`-k gevent_pywsgi` is gunicorn's gevent worker serving through gevent's own WSGI server)."""
    running = server.worker_class  # the class the arbiter loaded from its configuration
    for cls in running.__mro__:
        name = _WORKER_CLASS_NAMES.get(f"{cls.__module__}.{cls.__qualname__}")
        if name is not None:
            return name
    return None


def when_ready(server):
    workers = server.cfg.workers  # REFAPI_WORKERS, or `-w` on the command line
    if workers > 1 and not _settings["REDIS_URL"]:
        logging.getLogger("gunicorn.error").warning(
            "refapi: %d workers share no cache: SimpleCache is per process, so a write in one "
            "worker leaves old values in the others. Set REFAPI_REDIS_URL, or REFAPI_WORKERS=1.",
            workers,
        )
    if _worker_class_name(server) == "gevent" and _settings["DATABASE_URL"].startswith("sqlite"):
        logging.getLogger("gunicorn.error").warning(
            "refapi: gevent workers with SQLite: a wait for SQLite's lock (a write beside a "
            "`flask store import`) holds every connection of its worker. Use PostgreSQL, or "
            "REFAPI_WORKER_CLASS=gthread."
        )
