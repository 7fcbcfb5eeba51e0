"""Schemathesis against our own /openapi.json, in-process: every operation, with and without a key.

No 5xx, every response as documented (status, content type, headers, body schema), and no
operation but the public ones answers without a key.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from refapi.indices import services as index_services
from refapi.zipcodes import services as zipcode_services
from tests.conftest import TEST_KEY
from tests.indices.conftest import statbel_text

PUBLIC = {("GET", "/ping"), ("GET", "/ready")}


# A schema-valid request may still meet stored state: a failed precondition (412, the store's
# conditional writes) or a base year that the stored data does not have (400 WRONG_YEAR) is as
# legitimate an answer as 404 or 409.
CONFIG = schemathesis.Config.from_dict(
    {
        "checks": {
            "positive_data_acceptance": {
                "expected-statuses": ["2xx", "3xx", "400", "401", "403", "404", "409", "412", "429"]
            }
        }
    }
)


@pytest.fixture
def app(make_app, tmp_path):
    """An app with reference data: the sample zipcode table and a health index."""
    app = make_app()
    statbel_file = tmp_path / "statbel.txt"
    statbel_file.write_bytes(statbel_text())
    with app.app_context():
        zipcode_services.import_sample(if_empty=True)
        index_services.refresh(path=str(statbel_file))
    return app


@pytest.fixture
def api_schema(app):
    return schemathesis.openapi.from_wsgi("/openapi.json", app, config=CONFIG)


schema = schemathesis.pytest.from_fixture("api_schema")

FUZZ_SETTINGS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


# Operations with a rule across fields that OpenAPI cannot state (`from` after `to`; a target
# month before the start month): a schema-valid request may rightly be a 422.
CROSS_FIELD_RULES = {("GET", "/indices/health/history"), ("POST", "/indices/health/indexation")}


def _has_unstorable_string(data: object) -> bool:
    """A string with U+0000 or an unpaired surrogate anywhere in ``data``, keys included.

    The store's values may hold neither (PostgreSQL's jsonb cannot): a documented rule that a
    JSON Schema for "any JSON value" cannot state, so a schema-valid body may rightly be a 422.
    """
    if isinstance(data, str):
        return "\x00" in data or any("\ud800" <= char <= "\udfff" for char in data)
    if isinstance(data, dict):
        return any(_has_unstorable_string(k) or _has_unstorable_string(v) for k, v in data.items())
    if isinstance(data, list):
        return any(_has_unstorable_string(item) for item in data)
    return False


@schema.parametrize()
@FUZZ_SETTINGS
def test_every_operation_conforms_with_a_valid_key(case):
    excluded = []
    cross_field = (case.operation.method.upper(), case.operation.path) in CROSS_FIELD_RULES
    if cross_field or _has_unstorable_string(case.body):
        excluded.append(schemathesis.checks.positive_data_acceptance)
    case.call_and_validate(headers={"X-API-Key": TEST_KEY}, excluded_checks=excluded)


@schema.parametrize()
@FUZZ_SETTINGS
def test_every_operation_needs_a_key_but_the_public_ones(case):
    response = case.call(headers={"X-API-Key": "not-a-key-of-anyone-at-all"})
    if (case.operation.method.upper(), case.operation.path) in PUBLIC:
        assert response.status_code < 500
    else:
        assert response.status_code == 401, response.text
        assert response.headers["content-type"] == ["application/problem+json"]
