"""The one error format: RFC 9457 problem details, made here and nowhere else.

Every error the service answers, from a failed validation to an unknown route, is a
``application/problem+json`` body with ``type``, ``title``, ``status``, ``detail``, a stable
upper-case ``code`` and, for validation failures, ``errors`` per field. Services raise
``ApiError`` subclasses that carry their status and code; HTTP errors from Flask, Werkzeug and
webargs are mapped by ``handle_http_exception``; a database that cannot be reached, or that rolled
a transaction back for colliding with another, is a 503 by ``handle_database_error``; anything
else is a 500 that reveals nothing.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any, ClassVar

import marshmallow as ma
import sqlalchemy as sa
from flask import Response, current_app, has_request_context, request
from werkzeug.exceptions import HTTPException, InternalServerError

from refapi import requestid

logger = logging.getLogger("refapi.errors")

PROBLEM_MIMETYPE = "application/problem+json"

# The code of each HTTP error that has no more specific one.
HTTP_CODES: dict[int, str] = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    406: "NOT_ACCEPTABLE",
    409: "CONFLICT",
    412: "PRECONDITION_FAILED",
    413: "PAYLOAD_TOO_LARGE",
    414: "URI_TOO_LONG",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "VALIDATION_ERROR",
    428: "PRECONDITION_REQUIRED",
    429: "TOO_MANY_REQUESTS",
    431: "HEADERS_TOO_LARGE",
    500: "INTERNAL_ERROR",
    503: "SERVICE_UNAVAILABLE",
}


def problem_type(code: str) -> str:
    """The problem's ``type``: a stable, non-dereferenceable tag URI (RFC 4151) per code."""
    return "tag:refapi,2026:problem:" + code.lower().replace("_", "-")


class ApiError(Exception):
    """An error with its place in the API contract: status, code and a human detail.

    Subclasses set ``status``, ``code`` and ``title``; ``extra`` members are added to the body
    (for example the current version on a conflict), ``headers`` to the response.
    """

    status: ClassVar[int] = 500
    code: ClassVar[str] = "INTERNAL_ERROR"
    title: ClassVar[str] = "Internal Server Error"

    def __init__(
        self,
        detail: str,
        *,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = dict(headers or {})
        self.extra = extra


class Unauthorized(ApiError):
    status = 401
    code = "UNAUTHORIZED"
    title = "Unauthorized"


class BadRequest(ApiError):
    status = 400
    code = "BAD_REQUEST"
    title = "Bad Request"


class UnsupportedMediaType(ApiError):
    status = 415
    code = "UNSUPPORTED_MEDIA_TYPE"
    title = "Unsupported Media Type"


def problem_document(
    *, status: int, code: str, detail: str, title: str | None = None
) -> dict[str, Any]:
    """A problem's members, which every error body has (`problem_response`, `refapi.worker`)."""
    return {
        "type": problem_type(code),
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "code": code,
    }


def problem_response(
    *,
    status: int,
    code: str,
    detail: str,
    title: str | None = None,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Response:
    """A ``application/problem+json`` response: every error the app answers is one."""
    body = problem_document(status=status, code=code, detail=detail, title=title)
    request_id = requestid.current()
    if request_id:
        body["request_id"] = request_id
    if extra:
        body.update(extra)
    response = Response(
        json.dumps(body, separators=(",", ":")), status=status, mimetype=PROBLEM_MIMETYPE
    )
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def handle_api_error(error: ApiError) -> Response:
    return problem_response(
        status=error.status,
        code=error.code,
        title=error.title,
        detail=error.detail,
        headers=error.headers,
        extra=error.extra,
    )


# Werkzeug's descriptions are written for HTML pages; these say the same for an API client.
_DETAILS: dict[int, str] = {
    400: "The request could not be understood.",
    404: "There is no such resource. Check the path against /openapi.json.",
    405: "This resource does not support that method; the Allow header lists those it does.",
    413: "The request body is larger than this service accepts.",
    500: "The server failed to handle the request. Quote the request id when reporting it.",
}

# The headers an HTTP error carries that belong to its status.
_KEPT_HEADERS = ("Allow", "WWW-Authenticate", "Retry-After")


def handle_http_exception(error: HTTPException) -> Response:
    """Map a Werkzeug/webargs HTTP error to a problem, keeping the headers of its status."""
    status = error.code or 500
    if isinstance(error, InternalServerError):
        # Flask has already logged the exception and its traceback (with the request id).
        return problem_response(status=500, code="INTERNAL_ERROR", detail=_DETAILS[500])
    code = HTTP_CODES.get(status, HTTPStatus(status).name)
    detail = _DETAILS.get(status) or (error.description or HTTPStatus(status).description)
    extra: dict[str, Any] = {}
    data = getattr(error, "data", None) or {}
    messages = data.get("messages")
    if status == 413 and has_request_context() and request.max_content_length is not None:
        # As the store's VALUE_TOO_LARGE, the limit, for a client to split or shrink the body.
        extra["max_bytes"] = request.max_content_length
        detail = f"The request body is larger than the {extra['max_bytes']} bytes accepted."
    if status == 400 and isinstance(getattr(error, "exc", None), (ValueError, RecursionError)):
        # webargs (or refapi.api.JsonOnlyParser, saying why in ``message``) could not load the
        # body as JSON.
        code = "MALFORMED_JSON"
        detail = "The request body is not valid JSON."
    elif messages:
        extra["errors"] = messages
        if status == 422:
            detail = "The request has invalid or missing fields; see errors."
    if data.get("message"):
        detail = data["message"]
    original = error.get_response()
    headers = {name: original.headers[name] for name in _KEPT_HEADERS if name in original.headers}
    headers.update(data.get("headers") or {})
    return problem_response(status=status, code=code, detail=detail, headers=headers, extra=extra)


# Seconds a client should wait before trying again when the database cannot be reached: on any
# route, and on /ready.
DATABASE_RETRY_AFTER_SECONDS = 5

# PostgreSQL's SQLSTATEs of a database that cannot serve now but may soon: class 08 (connection
# exceptions) and 53 (insufficient resources: too many connections, out of memory, disk full);
# shutting down, crashed or starting up; a statement or lock timeout.
_UNAVAILABLE_SQLSTATE_CLASSES = ("08", "53")
_UNAVAILABLE_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "57014", "55P03"})
# SQLite's primary result codes of a database it cannot use now: SQLITE_BUSY and SQLITE_LOCKED
# (another connection held the lock for longer than the busy timeout), SQLITE_IOERR, SQLITE_FULL
# (the disk) and SQLITE_CANTOPEN (the file or its folder is missing or not readable). sqlite3
# gives the code from Python 3.11 on; before, its message says which.
_SQLITE_UNAVAILABLE_CODES = frozenset({5, 6, 10, 13, 14})
_SQLITE_UNAVAILABLE_MESSAGES = (
    "database is locked",
    "database table is locked",
    "disk I/O error",
    "database or disk is full",
    "unable to open database file",
)


def database_unavailable(error: BaseException) -> bool:
    """Whether a database error means the database cannot be reached (for now), not a bug.

    True for the pool's timeout, a connection SQLAlchemy found broken, a connection psycopg could
    not make or lost (its errors without a SQLSTATE are its own, about the connection), the
    SQLSTATEs above, and SQLite's busy, full or missing database. A ProgrammingError, an
    IntegrityError and the like, or sqlite3's OperationalError for a missing table, are bugs:
    500.
    """
    if isinstance(error, sa.exc.TimeoutError):
        return True
    if not isinstance(error, sa.exc.DBAPIError):
        return False
    if error.connection_invalidated:
        return True
    if not isinstance(error, (sa.exc.OperationalError, sa.exc.InterfaceError)):
        return False
    cause = error.orig
    if isinstance(cause, sqlite3.Error):
        code = getattr(cause, "sqlite_errorcode", None)
        if code is None:  # Python 3.10
            return str(cause).startswith(_SQLITE_UNAVAILABLE_MESSAGES)
        return code & 0xFF in _SQLITE_UNAVAILABLE_CODES
    if not hasattr(cause, "sqlstate"):  # not psycopg
        return False
    state: str | None = cause.sqlstate  # type: ignore[union-attr]
    return (
        state is None
        or state.startswith(_UNAVAILABLE_SQLSTATE_CLASSES)
        or state in _UNAVAILABLE_SQLSTATES
    )


# PostgreSQL's SQLSTATEs of a transaction it rolled back because it collided with a concurrent
# one: serialization_failure (a repeatable-read or serializable transaction, or a query on a hot
# standby cancelled by replay) and deadlock_detected. The whole transaction is undone, so the
# request changed nothing and can be sent again as it was; the collision is usually over at once.
_CONFLICT_SQLSTATES = frozenset({"40001", "40P01"})
CONFLICT_RETRY_AFTER_SECONDS = 1


def transaction_conflict(error: BaseException) -> bool:
    """Whether a database error is PostgreSQL undoing a transaction that collided with another."""
    if not isinstance(error, sa.exc.DBAPIError):
        return False
    return getattr(error.orig, "sqlstate", None) in _CONFLICT_SQLSTATES


def handle_database_error(error: sa.exc.SQLAlchemyError) -> Response:
    """503 for a database error that is not a bug; other errors go on (500).

    DATABASE_UNAVAILABLE for a database that cannot be reached, TRANSACTION_CONFLICT for a
    transaction it rolled back as colliding with another. Logged as one line, not a traceback:
    the failure is the database's, and the operator needs its cause.
    """
    if transaction_conflict(error):
        _log_cause("database transaction conflict", error)
        return problem_response(
            status=503,
            code="TRANSACTION_CONFLICT",
            title="Transaction Conflict",
            detail="The request collided with a concurrent one in the database (a deadlock or "
            "serialization failure) and was rolled back: nothing was changed. Send it again.",
            headers={"Retry-After": str(CONFLICT_RETRY_AFTER_SECONDS)},
        )
    if not database_unavailable(error):
        raise error  # Flask logs it with its traceback and answers 500
    _log_cause("database unavailable", error)
    return problem_response(
        status=503,
        code="DATABASE_UNAVAILABLE",
        detail="The database cannot be reached or is too busy at the moment. "
        "Retry in a few seconds.",
        headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
    )


def _log_cause(what: str, error: sa.exc.SQLAlchemyError) -> None:
    logger.warning("%s: %s", what, database_cause(error))


def database_cause(error: sa.exc.SQLAlchemyError) -> str:
    """What a database error says happened, fit for a log or an operator: ``Type: first line``.

    Never ``str(error)``, which holds the statement's parameters (a stored value), nor the
    driver's lines after its first (a deadlock's DETAIL quotes the other sessions' statements).
    The first line is the reason: for a lost connection, the host and port, never the password.
    """
    cause = getattr(error, "orig", None) or error
    message = next(iter(str(cause).strip().splitlines()), "")
    password = sa.make_url(current_app.config["SQLALCHEMY_DATABASE_URI"]).password
    if password:
        message = message.replace(str(password), "***")
    return f"{type(cause).__name__}: {message}"


class ProblemSchema(ma.Schema):
    """RFC 9457 problem details, as every error of this API is answered.

    Problems may carry extension members (``errors``, ``current_version``, ``checks``...).
    """

    class Meta:
        unknown = ma.INCLUDE

    type = ma.fields.String(
        required=True, metadata={"description": "A URI that identifies the kind of problem."}
    )
    title = ma.fields.String(required=True, metadata={"description": "Short, human summary."})
    status = ma.fields.Integer(required=True, metadata={"description": "The HTTP status."})
    detail = ma.fields.String(
        required=True, metadata={"description": "What went wrong with this request."}
    )
    code = ma.fields.String(
        required=True,
        metadata={"description": "Stable machine-readable code, e.g. `NOT_FOUND`."},
    )
    request_id = ma.fields.String(
        metadata={"description": "The request's id, as in the X-Request-ID header."}
    )
    errors = ma.fields.Dict(
        metadata={"description": "Per location and field, the validation messages."}
    )
