"""The keyed JSON store: /save, /get/<key>, /delete/<key>, /keys."""

from __future__ import annotations

import re
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, unquote_to_bytes

from flask import Response, current_app, g, request, url_for
from flask.views import MethodView
from webargs.flaskparser import abort
from werkzeug.datastructures import ETags
from werkzeug.http import parse_etags, quote_etag
from werkzeug.routing import PathConverter

from refapi.api import (
    DATABASE_ERRORS,
    MALFORMED_JSON_DESCRIPTION,
    NOT_JSON_DESCRIPTION,
    Blueprint,
)
from refapi.context import current_request
from refapi.errors import ProblemSchema
from refapi.store import cli, services
from refapi.store.errors import InvalidPrecondition
from refapi.store.models import MAX_VERSION
from refapi.store.schemas import (
    KEY_PATTERN,
    KEY_RULES,
    EntryIn,
    EntrySchema,
    KeyListArgs,
    KeyPage,
    VersionConflictSchema,
    key_problem,
)

blp = Blueprint("store", __name__, description="Small JSON documents under string keys.")
blp.cli.add_command(cli.export_command)
blp.cli.add_command(cli.import_command)


_DOT_SEGMENTS = frozenset({".", ".."})


class KeyConverter(PathConverter):
    """Like ``path``, but a key may also start with ``/`` (``/get//a`` is the key ``/a``)."""

    # DOTALL: a key with a newline reaches the view and its 422, not a 404 "no such route".
    regex = "(?s:.+)"
    part_isolating = False

    def to_url(self, value: str) -> str:
        """The key in a URL (``Location``) that URL normalisation cannot turn into another key.

        Clients, proxies and RFC 3986 resolution remove dot segments: ``/get/x/../y`` becomes
        ``/get/y``, and so does ``/get/x/%2E%2E/y`` for those that decode unreserved characters
        first (requests, WHATWG URL parsers). A key with such a segment is sent with its ``/``
        as ``%2F``, which no normalisation decodes: one segment, never a dot segment. Only the
        keys ``.`` and ``..`` remain, as ``%2E`` and ``%2E%2E``; a client that resolves those
        reaches ``/get/`` or ``/``, which name no key.
        """
        url = super().to_url(value)
        if _DOT_SEGMENTS.isdisjoint(value.split("/")):
            return url
        url = url.replace("/", "%2F")
        return url.replace(".", "%2E") if url in _DOT_SEGMENTS else url


# Registered before the routes that use it: deferred blueprint functions run in order.
blp.record_once(lambda state: state.app.url_map.converters.setdefault("store_key", KeyConverter))

# Keys may contain "//", which Werkzeug would otherwise merge (and redirect) away.
_KEY_ROUTE = {"merge_slashes": False}

# The tags of our versions: decimal, without leading zeros, so that comparing tags as versions
# is RFC 9110's strong comparison of strings ("01" is not "1").
_VERSION_TAG = re.compile(r"[1-9][0-9]{0,9}")
# RFC 9110, section 13.1.1: If-Match = "*" / #entity-tag; an entity-tag is quoted, W/ is weak.
_ENTITY_TAG = r'(?:W/)?"[\x21\x23-\x7e\x80-\xff]*"'
# At least one entity-tag (1#entity-tag): an empty header or a lone comma names none.
_ENTITY_TAGS = re.compile(rf"(?:,[ \t]*)*{_ENTITY_TAG}(?:[ \t]*,(?:[ \t]*{_ENTITY_TAG})?)*")
_NO_STORE_IN_SHARED_CACHES = "private, no-cache"

_ETAG_HEADER = {
    "ETag": {
        "description": 'The entry\'s version, quoted: `"3"`.',
        "schema": {"type": "string"},
    }
}
_KEY_PARAMETER = {
    "in": "path",
    "name": "key",
    "required": True,
    "schema": {"type": "string", "minLength": 1, "maxLength": 256, "pattern": KEY_PATTERN},
    "description": "The key, percent-encoded: "
    + KEY_RULES
    + " In a key with a `.` or `..` segment, send `/` as `%2F` (as `Location` does): clients"
    " and proxies remove dot segments from paths.",
}
_IF_MATCH = {
    "in": "header",
    "name": "If-Match",
    "required": False,
    "schema": {"type": "string"},
    "description": 'Act only if the stored version is this one: `"3"` (or `*`: any version). '
    'A list `"3", "4"` names any of them. Tags compare exactly (RFC 9110 strong comparison): '
    '`"03"` and `W/"3"` match no version. A value that is not `*` or quoted tags is 400.',
}
_CONFLICT = {
    "schema": VersionConflictSchema,
    "content_type": "application/problem+json",
}
# A problem response with a description of its own: a response given as a component
# (`_documented`) is written as a bare $ref, which has no room for one.
_PROBLEM = {"schema": ProblemSchema, "content_type": "application/problem+json"}


def _documented(status: int) -> str:
    # The problem+json response component of a status: named after HTTPStatus, whose names
    # change between Python versions (413 and 422 in 3.13).
    return HTTPStatus(status).name


def _if_match() -> services.IfMatch:
    """The versions If-Match accepts; None without the header. Weak or odd tags match nothing.

    A value that is neither ``*`` nor a list of entity-tags (``2``, ``"1", *``) is 400: read as
    matching nothing, it would answer 412 with the very version the client meant to send.
    """
    value = request.headers.get("If-Match")
    if value is None:
        return None
    value = value.strip(" \t")
    if value != "*" and not _ENTITY_TAGS.fullmatch(value):
        raise InvalidPrecondition(
            'If-Match is * or entity-tags in double quotes: "3", or a list "3", "4".'
        )
    tags: ETags = parse_etags(value)
    if tags.star_tag:
        return services.ANY_VERSION
    # parse_etags reads the empty tag "" as None.
    versions = (int(tag) for tag in tags.as_set() if tag and _VERSION_TAG.fullmatch(tag))
    return frozenset(version for version in versions if version <= MAX_VERSION)


# A percent-encoded byte of 0x80 or more: only those can make a path that is not UTF-8.
_NON_ASCII_ESCAPE = re.compile("%[89a-fA-F]")


def _path_is_utf8(environ: Mapping[str, Any]) -> bool:
    """Whether the request's path, as the client sent it, is percent-encoded UTF-8.

    Werkzeug decodes the path with errors="replace": %FF, %C0%AF and %EF%BF%BD would all name
    keys made of U+FFFD, so a DELETE could remove a key the client never named. PATH_INFO holds
    the path's bytes, one character each (PEP 3333), as gunicorn sets it; Werkzeug's own server
    and test client have already replaced the bytes there, so the raw request URI that they and
    gunicorn add (RAW_URI, REQUEST_URI) is checked as well.
    """
    raw_uri = environ.get("RAW_URI") or environ.get("REQUEST_URI") or ""
    path = environ.get("PATH_INFO", "")
    if path.isascii() and raw_uri.isascii() and _NON_ASCII_ESCAPE.search(raw_uri) is None:
        # Every byte is ASCII, sent as it is or percent-encoded: UTF-8 (the usual key).
        return True
    try:
        path.encode("latin-1").decode()
        unquote_to_bytes(raw_uri.partition("?")[0].encode("latin-1")).decode()
    except UnicodeError:
        return False
    return True


def _prefix_is_utf8() -> bool:
    """Whether ``prefix`` in the query string, as the client sent it, is percent-encoded UTF-8.

    Werkzeug keeps bytes that are not UTF-8 percent-encoded ("%FF" stays the text "%FF"), so
    ``?prefix=%FF`` would list the keys that start with "%FF", which the client did not ask for.
    Read as Latin-1, each percent-decoded byte is one character, to be decoded once more.
    """
    query = request.environ.get("QUERY_STRING", "")
    try:
        for name, value in parse_qsl(query, keep_blank_values=True, encoding="latin-1"):
            if name == "prefix":
                value.encode("latin-1").decode()
    except UnicodeError:
        return False
    return True


def _checked_key(key: str, environ: Mapping[str, Any]) -> str:
    problem = key_problem(key)
    if not _path_is_utf8(environ):
        problem = "The key in the path is not UTF-8 once percent-decoded."
    if problem:
        abort(422, messages={"path": {"key": [problem]}})
    return key


def _etag(version: int) -> str:
    return quote_etag(str(version))


@blp.route("/save")
class SavedValue(MethodView):
    @blp.arguments(EntryIn)
    @blp.response(200, EntrySchema, description="The value replaced one.", headers=_ETAG_HEADER)
    @blp.alt_response(
        201,
        schema=EntrySchema,
        description="The key was created.",
        headers={
            **_ETAG_HEADER,
            "Location": {
                "description": "The new entry's URL, `/get/<key>` with the key percent-encoded.",
                "schema": {"type": "string"},
            },
        },
    )
    @blp.alt_response(
        400,
        description=f"{MALFORMED_JSON_DESCRIPTION}; `INVALID_PRECONDITION`: If-None-Match other "
        "than `*`, or If-Match malformed.",
        **_PROBLEM,
    )
    @blp.alt_response(
        412,
        description="`VERSION_MISMATCH` (If-Match) or `ALREADY_EXISTS` (If-None-Match: *); "
        "`current_version` is the stored version.",
        **_CONFLICT,
    )
    @blp.alt_response(
        409,
        description="`VERSION_EXHAUSTED`: the key is at the highest version; delete it first. "
        "`current_version` is that version.",
        **_CONFLICT,
    )
    @blp.alt_response(413, description="`VALUE_TOO_LARGE`.", **_PROBLEM)
    @blp.alt_response(415, description=NOT_JSON_DESCRIPTION, **_PROBLEM)
    @blp.alt_response(422, response=_documented(422))
    @blp.alt_response(503, response=DATABASE_ERRORS)
    @blp.doc(
        parameters=[
            _IF_MATCH,
            {
                "in": "header",
                "name": "If-None-Match",
                "required": False,
                "schema": {"type": "string", "enum": ["*"]},
                "description": "`*`: create the key only if it does not exist yet.",
            },
        ]
    )
    def post(self, entry: dict[str, Any]) -> tuple[services.EntryData, int, dict[str, str]]:
        """Store a JSON value under a key: 201 when the key is new, 200 when it replaced one.

        Each write adds one to the entry's version, returned in the body and as the ETag.
        Make it conditional with `If-Match: "<version>"` or `If-None-Match: *`.
        """
        if_match = _if_match()
        create_only = False
        if "If-None-Match" in request.headers:
            if not request.if_none_match.star_tag:
                raise InvalidPrecondition("On /save, If-None-Match accepts only *.")
            create_only = True
        saved = services.save(
            client=g.client,
            key=entry["key"],
            value=entry["value"],
            if_match=if_match,
            create_only=create_only,
        )
        headers = {"ETag": _etag(saved.entry["version"])}
        if saved.created:
            headers["Location"] = url_for("store.StoredValue", key=saved.entry["key"])
        return saved.entry, 201 if saved.created else 200, headers


# A function view, not a MethodView: the cached read is the hottest route after /ping, and
# MethodView's dispatch costs an instance and a lookup per request (issue 8). Documented with
# alt_response, not serialised by flask-smorest's response wrapper: the body is already JSON.
@blp.route("/get/<store_key:key>", methods=["GET"], endpoint="StoredValue", **_KEY_ROUTE)
@blp.alt_response(200, schema=EntrySchema, success=True, headers=_ETAG_HEADER)
@blp.alt_response(304, description="If-None-Match names the current version.")
@blp.alt_response(404, description="`KEY_NOT_FOUND`.", **_PROBLEM)
@blp.alt_response(422, description="Not a valid key.", **_PROBLEM)
@blp.alt_response(503, response=DATABASE_ERRORS)
@blp.doc(
    parameters=[
        _KEY_PARAMETER,
        {
            "in": "header",
            "name": "If-None-Match",
            "required": False,
            "schema": {"type": "string"},
            "description": 'The ETag you hold, `"3"`: 304 without a body if it is current.',
        },
    ]
)
def stored_value(key: str) -> Response:
    """Read the value stored under a key, with its version (also the ETag)."""
    req = current_request()  # not the proxy: this reads its environ twice
    entry = services.read(client=g.client, key=_checked_key(key, req.environ))
    headers = [("ETag", _etag(entry.version)), ("Cache-Control", _NO_STORE_IN_SHARED_CACHES)]
    # Parsed only when sent: most reads send none.
    if "HTTP_IF_NONE_MATCH" in req.environ and req.if_none_match.contains_weak(str(entry.version)):
        response = Response(status=304)
    else:
        # Already serialised with EntrySchema, as cached: a read serialises nothing.
        response = Response(entry.body, content_type="application/json")
    response.headers.extend(headers)
    return response


@blp.route("/delete/<store_key:key>", **_KEY_ROUTE)
class DeletedValue(MethodView):
    @blp.response(204, description="The key and its value are gone.")
    @blp.alt_response(
        400,
        description="`INVALID_PRECONDITION`: If-None-Match was sent, or If-Match is malformed.",
        **_PROBLEM,
    )
    @blp.alt_response(404, description="`KEY_NOT_FOUND`.", **_PROBLEM)
    @blp.alt_response(
        412, description="`VERSION_MISMATCH`: If-Match names another version.", **_CONFLICT
    )
    @blp.alt_response(422, description="Not a valid key.", **_PROBLEM)
    @blp.alt_response(503, response=DATABASE_ERRORS)
    @blp.doc(parameters=[_KEY_PARAMETER, _IF_MATCH])
    def delete(self, key: str) -> Response:
        """Delete a key and its value; with `If-Match: "<version>"`, only at that version."""
        if "If-None-Match" in request.headers:
            raise InvalidPrecondition("DELETE does not take If-None-Match; use If-Match.")
        services.delete(
            client=g.client, key=_checked_key(key, request.environ), if_match=_if_match()
        )
        # No content, so no Content-Type (flask-smorest would send application/json).
        gone = current_app.response_class(status=204)
        del gone.headers["Content-Type"]
        return gone


@blp.route("/keys")
class Keys(MethodView):
    @blp.arguments(KeyListArgs, location="query")
    @blp.response(200, KeyPage)
    @blp.alt_response(422, response=_documented(422))
    @blp.alt_response(503, response=DATABASE_ERRORS)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List your keys in order (code point by code point), a page at a time.

        Each item has the key, its version and when it was last written; `total` counts
        every matching key.
        """
        if not _prefix_is_utf8():
            problem = "The prefix is not UTF-8 once percent-decoded."
            abort(422, messages={"query": {"prefix": [problem]}})
        return services.list_keys(client=g.client, **args)
