from __future__ import annotations

import pytest

from refapi.api import API_KEY_SCHEME, BEARER_SCHEME
from tests.conftest import OTHER_KEY, TEST_KEY

PUBLIC_OPERATIONS = {("/ping", "get"), ("/ready", "get")}
HTTP_METHODS = {"get", "post", "put", "patch", "delete"}


@pytest.fixture
def spec(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    return response.get_json()


def operations(spec):
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                yield path, method, operation


def test_the_api_key_schemes_are_documented_and_required_by_default(spec):
    schemes = spec["components"]["securitySchemes"]
    assert schemes[API_KEY_SCHEME] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "The pre-shared key of your client.",
    }
    assert schemes[BEARER_SCHEME]["scheme"] == "bearer"
    assert spec["security"] == [{API_KEY_SCHEME: []}, {BEARER_SCHEME: []}]


def test_public_operations_are_marked_public_and_no_other(spec):
    public = {(path, method) for path, method, op in operations(spec) if op.get("security") == []}
    assert public == PUBLIC_OPERATIONS


def test_every_operation_has_a_summary_a_success_and_problem_errors(spec):
    for path, method, operation in operations(spec):
        where = f"{method.upper()} {path}"
        assert operation.get("summary"), f"{where} has no summary"
        responses = operation["responses"]
        assert any(code.startswith("2") for code in responses), f"{where} documents no success"
        assert "default" in responses, f"{where} documents no default error"
        if (path, method) not in PUBLIC_OPERATIONS:
            assert "401" in responses, f"{where} does not document 401"


def test_error_responses_are_problem_details(spec):
    for name, response in spec["components"]["responses"].items():
        content = response.get("content", {})
        if name in {"DEFAULT_ERROR", "UNAUTHORIZED", "NOT_FOUND", "UNPROCESSABLE_ENTITY"}:
            assert list(content) == ["application/problem+json"], name
            assert content["application/problem+json"]["schema"] == {
                "$ref": "#/components/schemas/Problem"
            }
    problem = spec["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "detail", "code"} <= set(problem["required"])


def test_the_document_holds_no_key(client):
    text = client.get("/openapi.json").get_data(as_text=True)
    assert TEST_KEY not in text
    assert OTHER_KEY not in text


def test_the_docs_page_uses_only_assets_the_app_serves(client):
    page = client.get("/docs").get_data(as_text=True)
    for asset in ("swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js"):
        assert f'"/docs/assets/{asset}"' in page
        with client.get(f"/docs/assets/{asset}") as response:
            assert response.status_code == 200, asset
            assert len(response.data) > 1000
    assert "https://" not in page
    assert "http://" not in page
    assert '"validatorUrl": null' in page


# Operations that never answer the database's 503: /ping and /authorize touch no database, and
# /ready answers its own 503 NOT_READY when the database does not answer.
NO_DATABASE_ERRORS = {
    ("/ping", "get"),
    ("/ready", "get"),
    ("/authorize", "get"),
    ("/authorize", "post"),
}


def resolved(spec, item):
    while "$ref" in item:
        *_, kind, name = item["$ref"].split("/")
        item = spec["components"][kind][name]
    return item


def test_every_operation_that_uses_the_database_documents_its_503_with_retry_after(spec):
    for path, method, operation in operations(spec):
        where = f"{method.upper()} {path}"
        unavailable = operation["responses"].get("503")
        if (path, method) in NO_DATABASE_ERRORS:
            assert "DATABASE_UNAVAILABLE" not in str(unavailable and resolved(spec, unavailable))
            continue
        assert unavailable, f"{where} does not document 503"
        response = resolved(spec, unavailable)
        for code in ("DATABASE_UNAVAILABLE", "TRANSACTION_CONFLICT"):
            assert f"`{code}`" in response["description"], f"{where}: no {code}"
        assert (
            resolved(spec, response["content"]["application/problem+json"]["schema"])
            == (spec["components"]["schemas"]["Problem"])
        )
        retry_after = resolved(spec, response["headers"]["Retry-After"])
        assert retry_after["schema"] == {"type": "integer", "minimum": 0}, where


def test_the_health_indexs_503_documents_the_upstream_and_the_database(spec):
    indices = [(path, op) for path, _, op in operations(spec) if path.startswith("/indices/")]
    assert len(indices) == 4
    for path, operation in indices:
        description = resolved(spec, operation["responses"]["503"])["description"]
        assert "`UPSTREAM_UNAVAILABLE`" in description, path
        assert "`DATABASE_UNAVAILABLE`" in description, path


def test_readiness_documents_its_503_not_ready_with_retry_after(spec):
    response = resolved(spec, spec["paths"]["/ready"]["get"]["responses"]["503"])
    assert "`NOT_READY`" in response["description"]
    assert "application/problem+json" in response["content"]
    retry_after = resolved(spec, response["headers"]["Retry-After"])
    assert retry_after["schema"] == {"type": "integer", "minimum": 0}


def test_liveness_documents_no_503(spec):
    assert "503" not in spec["paths"]["/ping"]["get"]["responses"]


def test_saves_document_the_headers_they_send(spec, client, auth_headers):
    # The 201 documented neither ETag nor Location, though both are sent.
    documented = spec["paths"]["/save"]["post"]["responses"]
    for value, status in ((1, 201), (2, 200)):
        response = client.post("/save", json={"key": "k", "value": value}, headers=auth_headers)
        assert response.status_code == status
        sent = {"ETag", "Location"} & set(response.headers.keys())
        assert sent, status
        assert sent <= set(resolved(spec, documented[str(status)]).get("headers", {})), status


def test_every_operation_with_a_json_body_documents_its_400(spec):
    # An empty or malformed body is 400 MALFORMED_JSON on every one of them.
    with_body = [
        (path, method, operation)
        for path, method, operation in operations(spec)
        if "application/json" in operation.get("requestBody", {}).get("content", {})
    ]
    assert {(path, method) for path, method, _ in with_body} >= {
        ("/save", "post"),
        ("/indices/health/indexation", "post"),
    }
    for path, method, operation in with_body:
        assert "400" in operation["responses"], f"{method.upper()} {path} does not document 400"


@pytest.mark.parametrize(
    ("path", "method", "status", "code"),
    [
        ("/save", "post", "400", "INVALID_PRECONDITION"),
        ("/save", "post", "400", "MALFORMED_JSON"),
        ("/save", "post", "415", "UNSUPPORTED_MEDIA_TYPE"),
        ("/indices/health/indexation", "post", "400", "MALFORMED_JSON"),
        ("/indices/health/indexation", "post", "400", "WRONG_YEAR"),
        ("/indices/health/indexation", "post", "415", "UNSUPPORTED_MEDIA_TYPE"),
        ("/save", "post", "409", "VERSION_EXHAUSTED"),
        ("/save", "post", "413", "VALUE_TOO_LARGE"),
        ("/get/{key}", "get", "404", "KEY_NOT_FOUND"),
        ("/delete/{key}", "delete", "400", "INVALID_PRECONDITION"),
    ],
)
def test_errors_say_which_code_they_answer(spec, path, method, status, code):
    # Given as a component, a response was written as a bare $ref: its description was lost.
    response = resolved(spec, spec["paths"][path][method]["responses"][status])
    assert f"`{code}`" in response["description"]
    assert "application/problem+json" in response["content"]
