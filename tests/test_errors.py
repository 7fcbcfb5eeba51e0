"""The one error format, for every kind of error, on a JSON endpoint made for these tests."""

from __future__ import annotations

import logging
import re

import marshmallow as ma
import pytest
from flask.views import MethodView

from refapi.api import Blueprint
from refapi.errors import problem_type
from refapi.extensions import api

PROBLEM_MEMBERS = {"type", "title", "status", "detail", "code", "request_id"}


class EchoIn(ma.Schema):
    class Meta:
        unknown = ma.RAISE

    name = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=10))
    count = ma.fields.Integer(load_default=1)


@pytest.fixture
def app(make_app):
    app = make_app(MAX_CONTENT_LENGTH=1024)
    blp = Blueprint("echo_for_tests", __name__)

    @blp.route("/echo-for-tests")
    class Echo(MethodView):
        @blp.arguments(EchoIn)
        @blp.response(200, EchoIn)
        def post(self, body):
            return body

    @blp.route("/boom-for-tests")
    class Boom(MethodView):
        def get(self):
            raise RuntimeError("secret internals: password=hunter2")

    api.register_blueprint(blp)
    return app


def assert_problem(response, status, code):
    assert response.status_code == status
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert set(body) >= PROBLEM_MEMBERS
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"] == problem_type(code)
    assert body["request_id"] == response.headers["X-Request-ID"]
    assert body["detail"]
    return body


def test_a_valid_body_passes(client, auth_headers):
    response = client.post("/echo-for-tests", json={"name": "x"}, headers=auth_headers)
    assert response.status_code == 200
    assert response.get_json() == {"name": "x", "count": 1}


def _post_json_text(client, data, auth_headers):
    """POST ``data`` as it is, labelled as JSON, to the echo route."""
    return client.post(
        "/echo-for-tests", data=data, headers={**auth_headers, "Content-Type": "application/json"}
    )


def test_malformed_json_is_400(client, auth_headers):
    response = _post_json_text(client, b'{"name": "x",', auth_headers)
    body = assert_problem(response, 400, "MALFORMED_JSON")
    assert body["detail"] == "The request body is not valid JSON."


@pytest.mark.parametrize("path", ["/echo-for-tests", "/save", "/indices/health/indexation"])
@pytest.mark.parametrize("length", [{}, {"Content-Length": "0"}], ids=["no-body", "length-0"])
def test_an_empty_body_labelled_json_is_400_malformed_saying_it_is_empty(
    client, auth_headers, path, length
):
    # webargs took no body for no fields: 422, each required field "Missing data".
    headers = {**auth_headers, "Content-Type": "application/json", **length}
    response = client.post(path, headers=headers)
    body = assert_problem(response, 400, "MALFORMED_JSON")
    assert body["detail"] == "The request body is empty; send a JSON document."
    assert "errors" not in body


def test_a_body_of_blanks_labelled_json_is_400_malformed(client, auth_headers):
    body = assert_problem(_post_json_text(client, b" \r\n", auth_headers), 400, "MALFORMED_JSON")
    assert body["detail"] == "The request body is not valid JSON."


def test_undecodable_bytes_are_400(client, auth_headers):
    response = _post_json_text(client, b'{"name": "\xff\xfe"}', auth_headers)
    assert_problem(response, 400, "MALFORMED_JSON")


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/keys", "prefix=caf\xe9"),  # latin-1 é: one raw byte that is not UTF-8
        ("/zipcodes", "risk_factor=A&page=\xff"),
        ("/indices/health", "base_year=2013&\xff"),
    ],
)
def test_a_query_string_that_is_not_utf8_is_400_under_any_wsgi_server(
    client, auth_headers, path, query
):
    # gunicorn refuses a raw non-ASCII request line itself; Werkzeug's own server and others
    # pass the bytes on, and reading the query arguments raised UnicodeDecodeError (a 500).
    response = client.get(path, headers=auth_headers, environ_overrides={"QUERY_STRING": query})
    body = assert_problem(response, 400, "BAD_REQUEST")
    assert body["detail"].startswith("The query string is not UTF-8 text")


@pytest.fixture
def roomy_client(app, client):
    # The bodies below are valid JSON, and larger than the kilobyte the other tests allow.
    app.config["MAX_CONTENT_LENGTH"] = 1 << 20
    return client


def test_an_integer_too_long_to_read_is_400_saying_so(roomy_client, auth_headers):
    response = _post_json_text(
        roomy_client, '{"name": "x", "count": 1' + "0" * 5000 + "}", auth_headers
    )
    body = assert_problem(response, 400, "MALFORMED_JSON")
    assert body["detail"] == "The request body holds an integer longer than 4300 digits."


def test_a_body_nested_too_deep_to_read_is_400_saying_so(roomy_client, auth_headers):
    response = _post_json_text(
        roomy_client, '{"name": "x", "count": ' + "[" * 100_000 + "]" * 100_000 + "}", auth_headers
    )
    body = assert_problem(response, 400, "MALFORMED_JSON")
    # Valid JSON: "not valid JSON" would send the client looking for a syntax error.
    assert body["detail"] == "The request body nests arrays and objects too deeply."


def test_invalid_and_unknown_fields_are_422_per_field(client, auth_headers):
    response = client.post(
        "/echo-for-tests",
        json={"name": "much too long a name", "count": "many", "extra": 1},
        headers=auth_headers,
    )
    body = assert_problem(response, 422, "VALIDATION_ERROR")
    assert set(body["errors"]["json"]) == {"name", "count", "extra"}


def test_a_missing_field_is_422(client, auth_headers):
    body = assert_problem(
        client.post("/echo-for-tests", json={}, headers=auth_headers), 422, "VALIDATION_ERROR"
    )
    assert "name" in body["errors"]["json"]


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
def test_a_body_that_is_not_json_is_415(client, auth_headers, content_type):
    response = client.post(
        "/echo-for-tests",
        data='{"name": "x"}',
        headers={**auth_headers, "Content-Type": content_type},
    )
    assert_problem(response, 415, "UNSUPPORTED_MEDIA_TYPE")


def test_a_body_over_the_limit_is_413(client, auth_headers):
    response = client.post("/echo-for-tests", json={"name": "x" * 2000}, headers=auth_headers)
    assert_problem(response, 413, "PAYLOAD_TOO_LARGE")


def test_a_wrong_method_is_405_with_allow(client, auth_headers):
    response = client.delete("/echo-for-tests", headers=auth_headers)
    assert_problem(response, 405, "METHOD_NOT_ALLOWED")
    assert set(response.headers["Allow"].split(", ")) == {"POST"}


def test_an_unknown_route_is_404(client, auth_headers):
    assert_problem(client.get("/nothing/here", headers=auth_headers), 404, "NOT_FOUND")


def test_a_missing_key_is_401_with_its_challenge(client):
    assert_problem(client.get("/authorize"), 401, "UNAUTHORIZED")


def test_an_unhandled_exception_is_a_500_that_reveals_nothing_and_is_logged_with_its_id(
    app, client, auth_headers, caplog
):
    app.config["PROPAGATE_EXCEPTIONS"] = False  # as in production, not as in testing
    caplog.set_level(logging.ERROR)
    response = client.get("/boom-for-tests", headers={**auth_headers, "X-Request-ID": "req-42"})
    body = assert_problem(response, 500, "INTERNAL_ERROR")
    assert "hunter2" not in response.get_data(as_text=True)
    assert "RuntimeError" not in response.get_data(as_text=True)
    assert body["request_id"] == "req-42"
    logged = [record for record in caplog.records if record.exc_info]
    assert logged, "the exception must be logged"
    assert logged[0].request_id == "req-42"


def test_every_response_carries_a_request_id(client):
    first = client.get("/ping").headers.getlist("X-Request-ID")
    second = client.get("/ping").headers.getlist("X-Request-ID")
    assert len(first) == len(second) == 1
    [first], [second] = first, second
    assert first != second
    # 32 random hex digits, the shape of nginx's $request_id.
    assert re.fullmatch("[0-9a-f]{32}", first)


def test_a_proxys_request_id_is_kept(client):
    response = client.get("/ping", headers={"X-Request-ID": "edge-7f3a:1"})
    assert response.headers["X-Request-ID"] == "edge-7f3a:1"


@pytest.mark.parametrize("incoming", ["", "a" * 129, "has space", "tab\there", "<script>"])
def test_an_unusable_request_id_is_replaced(client, incoming):
    response = client.get("/ping", headers={"X-Request-ID": incoming})
    assert response.headers["X-Request-ID"] != incoming
    assert len(response.headers["X-Request-ID"]) == 32


def test_a_log_line_outside_a_request_has_no_request_id(app):
    # A CLI command or the index refresh thread logs with "-" in the id's place.
    from refapi.app import _RequestIdFilter

    record = logging.LogRecord("refapi", logging.INFO, __file__, 1, "refreshed", None, None)
    with app.app_context():
        assert _RequestIdFilter().filter(record)
    assert record.request_id == "-"
