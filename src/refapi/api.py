"""flask-smorest, fitted to this API's contract.

- ``Api`` answers every HTTP error in the one problem format (keeping ``Allow``,
  ``WWW-Authenticate`` and ``Retry-After``, which flask-smorest's own handler drops) and documents
  error responses as ``application/problem+json``, the database's 503 as ``DATABASE_ERRORS``.
- ``Blueprint`` answers a JSON body sent with another content type with 415, and an empty
  body with 400 MALFORMED_JSON, instead of a confusing 422, documents the API-key requirement
  (401) on every non-public operation, and builds each arguments schema once (webargs builds a
  schema class anew for every request); its ``alt_response`` documents without wrapping the view.
- ``JsonOnlyParser`` gives a query string it has parsed before the same arguments again.
- ``public`` marks a view method that needs no API key; the auth hook and the document both read it.
- ``serialised`` makes a response body once, for a cache to hold, as a view's answer would be.
"""

from __future__ import annotations

import datetime
import http
import json
import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar, cast

import flask
import flask_smorest
import sqlalchemy as sa
from flask_smorest.utils import prepare_response
from webargs.flaskparser import FlaskParser, abort, is_json_request

from refapi import errors

F = TypeVar("F", bound=Callable[..., Any])

API_KEY_SCHEME = "ApiKey"
BEARER_SCHEME = "Bearer"

# The response component of the 503 any operation that reads or writes the database may answer
# (refapi.errors.handle_database_error): ``@blp.alt_response(503, response=DATABASE_ERRORS)``.
DATABASE_ERRORS = "DATABASE_UNAVAILABLE"
DATABASE_ERRORS_DESCRIPTION = (
    "`DATABASE_UNAVAILABLE`: the database cannot be reached or is busy; "
    "`TRANSACTION_CONFLICT`: the request collided with a concurrent one in the database and was "
    "rolled back, nothing was changed. Both: send the request again after `Retry-After` seconds."
)
# What a JSON-body operation answers for a body it cannot read (JsonOnlyParser), for its 400
# and 415 descriptions.
MALFORMED_JSON_DESCRIPTION = "`MALFORMED_JSON`: the body is empty or not a JSON document"
NOT_JSON_DESCRIPTION = "`UNSUPPORTED_MEDIA_TYPE`: the body is not sent as `application/json`."
# The header component of Retry-After, for the responses that send it.
RETRY_AFTER = "RETRY_AFTER"


def public(view: F) -> F:
    """Mark a view (function or MethodView method) as reachable without an API key."""
    view.is_public = True  # type: ignore[attr-defined]
    view._apidoc = getattr(view, "_apidoc", {})  # type: ignore[attr-defined]
    view._apidoc["public"] = True  # type: ignore[attr-defined]
    return view


def serialised(schema: Any, data: Any) -> bytes:
    """The JSON body flask-smorest answers for a view that returns ``data`` under ``schema``.

    The same steps (the schema's dump, then ``jsonify``), so that a body made once and cached
    is byte for byte the one the view would have made.
    """
    return flask.jsonify(schema.dump(data)).get_data()


# Bodies made by ``serialised_once``: for each schema, by JSON provider and the data's content.
# Each schema has its own bound, so that many distinct bodies of one (every month of the index,
# say) never push out the few of another (the current index).
_BODIES: dict[Any, dict[tuple[Any, ...], bytes]] = {}
_MOST_BODIES = 512


def serialised_once(schema: Any, data: Any) -> bytes:
    """``serialised(schema, data)``, made once for data of the same content.

    For answers that repeat a few distinct bodies many times (issue 8: the current health index
    spent more on marshmallow's dump and ``jsonify`` than on everything else it does). ``data``
    holds dicts, lists and hashable values. Give each kind of answer a schema instance of its
    own: the bound on how many bodies are kept is per schema instance.
    """
    bodies = _BODIES.get(schema)
    if bodies is None:
        bodies = _BODIES[schema] = {}
    key = (flask.current_app.json, _frozen(data))
    body = bodies.get(key)
    if body is None:
        if len(bodies) >= _MOST_BODIES:
            bodies.clear()
        body = bodies[key] = serialised(schema, data)
    return body


def _frozen(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple((name, _frozen(item)) for name, item in value.items())
    if isinstance(value, list):
        return tuple(_frozen(item) for item in value)
    if isinstance(value, datetime.datetime):
        # Equal instants in other time zones are written differently.
        return (datetime.datetime, value, value.utcoffset())
    # With its type: 1, 1.0 and True are equal, and serialised differently.
    return (type(value), value)


# Query strings parsed by ``JsonOnlyParser``, by schema and the raw query string.
_QUERIES: dict[tuple[Any, ...], dict[str, Any]] = {}
_MOST_QUERIES = 1024
_LONGEST_QUERY = 256
_IMMUTABLE = (str, int, float, bool, type(None), datetime.date)


class JsonOnlyParser(FlaskParser):
    """webargs' parser, but a body in another format is 415, and an empty one 400 MALFORMED_JSON,
    not a missing-field 422.

    And a query string it has parsed with a schema before gives that result again, without
    another run of webargs and marshmallow (issue 8: parsing `?base_year=2013` was a sixth of a
    health index read). Query schemas here are pure functions of the query string, and a result
    is kept only when its values are immutable, so that each caller's copy is its own. Errors
    are not kept: a refused query string is parsed, and refused, every time.
    """

    def parse(
        self, argmap: Any, req: Any = None, *, location: str | None = None, **kwargs: Any
    ) -> Any:
        query = (req if req is not None else self.get_default_request()).query_string
        if location != "query" or len(query) > _LONGEST_QUERY or kwargs.get("validate"):
            return super().parse(argmap, req, location=location, **kwargs)
        key = (argmap, kwargs.get("unknown"), query)
        parsed = _QUERIES.get(key)
        if parsed is None:
            parsed = super().parse(argmap, req, location=location, **kwargs)
            if not isinstance(parsed, dict) or not all(
                isinstance(value, _IMMUTABLE) for value in parsed.values()
            ):
                return parsed
            if len(_QUERIES) >= _MOST_QUERIES:
                _QUERIES.clear()
            _QUERIES[key] = parsed
        return dict(parsed)

    def _raw_load_json(self, req: flask.Request) -> Any:
        if not is_json_request(req):
            raise errors.UnsupportedMediaType(
                f"Send the body as application/json, not {req.mimetype or 'no content type'}."
            )
        try:
            return super()._raw_load_json(req)
        except json.JSONDecodeError as error:
            if error.doc == "":
                # webargs reads no body as no fields (a 422 for each required one); but a body
                # labelled JSON must be a JSON document, and nothing is not one.
                self._unreadable_json(error, "The request body is empty; send a JSON document.")
            raise  # not JSON: webargs answers it
        except RecursionError as error:
            # json.loads recurses once per nesting level: valid JSON, perhaps, but not parsable.
            self._unreadable_json(error, "The request body nests arrays and objects too deeply.")
        except ValueError as error:
            # Python refuses to convert an integer of more digits than this (CVE-2020-10735).
            too_long = "integer string conversion" in str(error)
            self._unreadable_json(
                error,
                "The request body holds an integer longer than "
                f"{sys.get_int_max_str_digits()} digits."
                if too_long
                else "The request body could not be read as JSON.",
            )

    @staticmethod
    def _unreadable_json(error: Exception, detail: str) -> NoReturn:
        # MALFORMED_JSON (refapi.errors), with this detail.
        abort(400, exc=error, message=detail)


class Blueprint(flask_smorest.Blueprint):
    ARGUMENTS_PARSER = JsonOnlyParser()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._prepare_doc_cbks.append(self._prepare_auth_doc)

    def alt_response(self, status_code: Any, *args: Any, **kwargs: Any) -> Callable[[F], F]:
        """flask-smorest's, documenting the response without wrapping the view.

        Its wrapper only calls the view (through ``ensure_sync``): one more call, a lookup of
        ``current_app`` and of the coroutine check, per documented response, on every request.
        The view keeps the documentation the wrapper would have carried.
        """
        document = super().alt_response(status_code, *args, **kwargs)

        def decorator(view: F) -> F:
            view._apidoc = document(view)._apidoc  # type: ignore[attr-defined]
            return view

        return decorator

    @staticmethod
    def doc(**kwargs: Any) -> Callable[[F], F]:
        """flask-smorest's, documenting the view without wrapping it, as ``alt_response``."""
        document = flask_smorest.Blueprint.doc(**kwargs)

        def decorator(view: F) -> F:
            view._apidoc = document(view)._apidoc  # type: ignore[attr-defined]
            return view

        return decorator

    def arguments(self, schema: Any, **kwargs: Any) -> Callable[[F], F]:
        # Given a class, webargs instantiates it on every request it parses (issue 8: a quarter
        # of a health index read's time in process). Schemas hold no per-call state, and
        # flask-smorest already shares one instance of each response schema the same way.
        if isinstance(schema, type):
            schema = schema()
        return cast(Callable[[F], F], super().arguments(schema, **kwargs))

    @staticmethod
    def _prepare_auth_doc(
        doc: dict[str, Any], doc_info: dict[str, Any], **_kwargs: Any
    ) -> dict[str, Any]:
        if doc_info.get("public"):
            doc["security"] = []
        else:
            doc.setdefault("responses", {}).setdefault("401", http.HTTPStatus(401).name)
        return doc


class Api(flask_smorest.Api):
    ERROR_SCHEMA = errors.ProblemSchema

    def init_app(self, app: flask.Flask, *args: Any, **kwargs: Any) -> None:
        super().init_app(app, *args, **kwargs)
        self._register_security()
        app.register_error_handler(errors.ApiError, errors.handle_api_error)
        for database_error in (sa.exc.DBAPIError, sa.exc.TimeoutError):
            app.register_error_handler(database_error, errors.handle_database_error)

    def handle_http_exception(self, error: Any) -> flask.Response:
        return errors.handle_http_exception(error)

    def _register_responses(self) -> None:
        # As APISpecMixin._register_responses, but errors are problem+json.
        for status in http.HTTPStatus:
            response: dict[str, Any] = {"description": status.phrase}
            content_type = self.DEFAULT_RESPONSE_CONTENT_TYPE
            if status >= 400:
                response["schema"] = self.ERROR_SCHEMA
                content_type = errors.PROBLEM_MIMETYPE
            prepare_response(response, self.spec, content_type)
            self.spec.components.response(status.name, response, lazy=True)
        default = {"description": "Error, in problem details format", "schema": self.ERROR_SCHEMA}
        prepare_response(default, self.spec, errors.PROBLEM_MIMETYPE)
        self.spec.components.response(self.DEFAULT_ERROR_RESPONSE_NAME, default, lazy=True)
        self.spec.components.header(
            RETRY_AFTER,
            {
                "description": "Seconds to wait before sending the request again.",
                "schema": {"type": "integer", "minimum": 0},
            },
            lazy=True,
        )
        database: dict[str, Any] = {
            "description": DATABASE_ERRORS_DESCRIPTION,
            "schema": self.ERROR_SCHEMA,
            "headers": {"Retry-After": RETRY_AFTER},
        }
        prepare_response(database, self.spec, errors.PROBLEM_MIMETYPE)
        self.spec.components.response(DATABASE_ERRORS, database, lazy=True)

    def _register_security(self) -> None:
        self.spec.components.security_scheme(
            API_KEY_SCHEME,
            {
                "type": "apiKey",
                "in": "header",
                "name": "X-API-Key",
                "description": "The pre-shared key of your client.",
            },
        )
        self.spec.components.security_scheme(
            BEARER_SCHEME,
            {
                "type": "http",
                "scheme": "bearer",
                "description": "The same pre-shared key, as `Authorization: Bearer <key>`.",
            },
        )
