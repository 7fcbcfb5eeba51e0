"""Schemathesis against our own /openapi.json, in-process: every operation, with and without a key.

No 5xx, every response as documented (status, content type, headers, body schema), and no
operation but the public ones answers without a key.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from tests.conftest import TEST_KEY

PUBLIC = {("GET", "/ping"), ("GET", "/ready")}


@pytest.fixture
def api_schema(app):
    return schemathesis.openapi.from_wsgi("/openapi.json", app)


schema = schemathesis.pytest.from_fixture("api_schema")

FUZZ_SETTINGS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@schema.parametrize()
@FUZZ_SETTINGS
def test_every_operation_conforms_with_a_valid_key(case):
    case.call_and_validate(headers={"X-API-Key": TEST_KEY})


@schema.parametrize()
@FUZZ_SETTINGS
def test_every_operation_needs_a_key_but_the_public_ones(case):
    response = case.call(headers={"X-API-Key": "not-a-key-of-anyone-at-all"})
    if (case.operation.method.upper(), case.operation.path) in PUBLIC:
        assert response.status_code < 500
    else:
        assert response.status_code == 401, response.text
        assert response.headers["content-type"] == ["application/problem+json"]
