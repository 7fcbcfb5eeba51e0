from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from refapi.api import serialised
from refapi.extensions import db
from refapi.indices import services
from refapi.indices.models import Refresh
from refapi.indices.schemas import HealthIndexSchema
from tests.indices.conftest import HEALTH, statbel_rows, statbel_text, statbel_zip

OCTOBER_2020 = [
    {"base_year": 1988, "value": 182.41, "smoothed": 178.68},
    {"base_year": 1996, "value": 151.29, "smoothed": 148.20},
    {"base_year": 2004, "value": 132.98, "smoothed": 130.26},
    {"base_year": 2013, "value": 110.11, "smoothed": 107.86},
]


def test_current_index_is_the_latest_month_with_a_health_index_in_every_base_year(
    stored, client, auth_headers
):
    response = client.get("/indices/health", headers=auth_headers)
    assert response.status_code == 200
    body = response.get_json()
    # February 2021 has a CPI but no health index yet: January is the current month.
    assert body["month"] == "2021-01"
    assert [(i["base_year"], i["value"]) for i in body["indices"]] == [
        (1988, 182.81),
        (1996, 151.62),
        (2004, 133.27),
        (2013, 110.35),
    ]
    assert body["stale"] is False
    assert body["retrieved_at"]


def test_current_index_of_one_base_year(stored, client, auth_headers):
    response = client.get("/indices/health?base_year=2004", headers=auth_headers)
    assert response.status_code == 200
    body = response.get_json()
    assert {k: v for k, v in body.items() if k != "retrieved_at"} == {
        "base_year": 2004,
        "month": "2021-01",
        "value": 133.27,
        "smoothed": 130.78,
        "stale": False,
    }


@pytest.mark.parametrize("query", ["", "?base_year=2013"])
def test_current_index_body_is_byte_for_byte_what_flask_smorest_makes(
    stored, app, client, auth_headers, query
):
    # The view answers a body it made once for the same data, and a new one for new data.
    bodies = []
    for _ in range(2):
        response = client.get(f"/indices/health{query}", headers=auth_headers)
        with app.test_request_context():
            expected = services.current(base_year=query.partition("=")[2] or None)
            assert response.data == serialised(HealthIndexSchema(), expected)
        bodies.append(response.data)
        with app.app_context():
            # A later successful refresh: a new retrieved_at, the same values.
            for refresh in db.session.scalars(sa.select(Refresh)):
                if refresh.finished_at is not None:
                    refresh.finished_at += timedelta(seconds=1)
            db.session.commit()
            services._invalidate()
    assert bodies[0] != bodies[1]


@pytest.mark.parametrize("query", ["", "?base_year=2013"])
def test_a_months_body_is_byte_for_byte_what_flask_smorest_makes(
    stored, app, client, auth_headers, query
):
    for month in ("2020-10", "2021-01", "2020-10"):
        response = client.get(f"/indices/health/{month}{query}", headers=auth_headers)
        assert response.status_code == 200
        assert response.mimetype == "application/json"
        with app.test_request_context():
            expected = services.month_values(month=month, base_year=query.partition("=")[2] or None)
            assert response.data == serialised(HealthIndexSchema(), expected)


def test_current_index_needs_a_key(stored, client):
    assert client.get("/indices/health").status_code == 401


@pytest.mark.parametrize("base_year", ["1914", "2020", "abc", "", "-1988"])
def test_base_year_without_a_health_index_is_wrong_year_listing_the_valid_ones(
    stored, client, auth_headers, base_year
):
    response = client.get(f"/indices/health?base_year={base_year}", headers=auth_headers)
    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["code"] == "WRONG_YEAR"
    assert body["valid_base_years"] == [1988, 1996, 2004, 2013]


def test_valid_base_years_come_from_the_data(make_indices_app, upstream, auth_headers):
    health = {month: {**bases, 2025: ("100.50", "100.20")} for month, bases in HEALTH.items()}
    upstream.serve(statbel_zip(statbel_text(statbel_rows(health))))
    client = make_indices_app().test_client()
    body = client.get("/indices/health?base_year=2025", headers=auth_headers).get_json()
    assert (body["base_year"], body["value"]) == (2025, 100.5)


def test_a_month_for_every_base_year_has_the_known_values(stored, client, auth_headers):
    response = client.get("/indices/health/2020-10", headers=auth_headers)
    assert response.status_code == 200
    body = response.get_json()
    assert body["month"] == "2020-10"
    assert body["indices"] == OCTOBER_2020


@pytest.mark.parametrize(
    ("base_year", "expected"), [(1988, 182.41), (1996, 151.29), (2004, 132.98), (2013, 110.11)]
)
def test_a_month_for_one_base_year(stored, client, auth_headers, base_year, expected):
    response = client.get(f"/indices/health/2020-10?base_year={base_year}", headers=auth_headers)
    body = response.get_json()
    assert (body["base_year"], body["month"], body["value"]) == (base_year, "2020-10", expected)


@pytest.mark.parametrize("month", ["2021-02", "1850-01", "2099-12"])
def test_a_month_without_a_health_index_is_not_published(stored, client, auth_headers, month):
    response = client.get(f"/indices/health/{month}", headers=auth_headers)
    assert response.status_code == 404
    assert response.get_json()["code"] == "INDEX_NOT_PUBLISHED"


@pytest.mark.parametrize(
    "month",
    [
        "2020-13",
        "2020-1",
        "oct-2020",
        "2020-10-01",
        "202010",
        "2020-10%0A",
        "\uff12\uff10\uff12\uff10-10",
    ],
)
def test_a_malformed_month_is_400(stored, client, auth_headers, month):
    response = client.get(f"/indices/health/{month}", headers=auth_headers)
    assert response.status_code == 400
    assert response.get_json()["code"] == "WRONG_MONTH"


def test_a_month_with_a_wrong_base_year_is_wrong_year(stored, client, auth_headers):
    response = client.get("/indices/health/2020-10?base_year=1914", headers=auth_headers)
    assert response.get_json()["code"] == "WRONG_YEAR"


def test_history_is_the_series_in_order(stored, client, auth_headers):
    response = client.get("/indices/health/history?base_year=2013", headers=auth_headers)
    assert response.status_code == 200
    body = response.get_json()
    assert body["base_year"] == 2013
    assert body["items"] == [
        {"month": "2019-04", "value": 108.06, "smoothed": 107.11},
        {"month": "2020-09", "value": 109.94, "smoothed": 107.70},
        {"month": "2020-10", "value": 110.11, "smoothed": 107.86},
        {"month": "2021-01", "value": 110.35, "smoothed": 108.29},
    ]
    assert (body["total"], body["page"], body["pages"], body["stale"]) == (4, 1, 1, False)


def test_history_between_two_months_included(stored, client, auth_headers):
    response = client.get(
        "/indices/health/history?base_year=1988&from=2020-09&to=2020-10", headers=auth_headers
    )
    assert [item["month"] for item in response.get_json()["items"]] == ["2020-09", "2020-10"]


def test_history_is_paged(stored, client, auth_headers):
    response = client.get(
        "/indices/health/history?base_year=1988&page=2&page_size=3", headers=auth_headers
    )
    body = response.get_json()
    assert [item["month"] for item in body["items"]] == ["2021-01"]
    assert (body["total"], body["pages"]) == (4, 2)


@pytest.mark.parametrize(
    "query",
    [
        "base_year=2013&from=2020-10&to=2020-09",
        "base_year=2013&from=2020-13",
        "base_year=2013&from=2020-10%0A",
        "base_year=2013&page_size=1001",
        "from=2020-01",
    ],
)
def test_history_with_invalid_arguments_is_422(stored, client, auth_headers, query):
    response = client.get(f"/indices/health/history?{query}", headers=auth_headers)
    assert response.status_code == 422


def test_history_far_past_the_end_is_an_empty_page(stored, client, auth_headers):
    response = client.get(
        "/indices/health/history?base_year=2013&page=99999999999999999999", headers=auth_headers
    )
    assert response.status_code == 200
    assert response.get_json()["items"] == []
    assert response.get_json()["total"] > 0


def test_history_of_a_base_year_without_health_index_is_wrong_year(stored, client, auth_headers):
    response = client.get("/indices/health/history?base_year=1914", headers=auth_headers)
    assert response.get_json()["code"] == "WRONG_YEAR"


def _indexation(client, auth_headers, **changes):
    body = {
        "amount": 850.00,
        "base_year": 2013,
        "start_month": "2019-04",
        "target_month": "2020-09",
    }
    return client.post("/indices/health/indexation", json={**body, **changes}, headers=auth_headers)


def test_indexation_is_amount_times_target_over_start_to_the_cent(stored, client, auth_headers):
    response = _indexation(client, auth_headers)
    assert response.status_code == 200
    # 850 x 109.94 / 108.06 = 864.7871552...
    assert response.get_json() == {
        "indexed_amount": 864.79,
        "start_index": 108.06,
        "target_index": 109.94,
        "base_year": 2013,
    }


def test_indexation_rounds_half_up_on_exact_decimals(stored, client, auth_headers):
    # Sent as a string so that the half cent is exact: 1000.005 x 1 rounds up.
    response = _indexation(
        client, auth_headers, amount="1000.005", start_month="2020-10", target_month="2020-10"
    )
    assert response.get_json()["indexed_amount"] == 1000.01


def test_indexation_in_the_same_month_keeps_the_amount(stored, client, auth_headers):
    response = _indexation(client, auth_headers, amount=850, target_month="2019-04")
    assert response.get_json()["indexed_amount"] == 850.0


@pytest.mark.parametrize("changes", [{"target_month": "2021-02"}, {"start_month": "2019-05"}])
def test_indexation_on_an_unpublished_month_is_404(stored, client, auth_headers, changes):
    response = _indexation(client, auth_headers, **changes)
    assert response.status_code == 404
    assert response.get_json()["code"] == "INDEX_NOT_PUBLISHED"


@pytest.mark.parametrize(
    "changes",
    [
        {"target_month": "2019-03"},
        {"amount": 0},
        {"amount": -850},
        {"amount": "abc"},
        # Text that Decimal() reads as 850: an amount is written in digits 0-9.
        {"amount": "8_50"},
        {"amount": "\uff18\uff15\uff10"},
        {"amount": " 850 "},
        {"amount": "850e0"},
        {"start_month": "2019-4"},
        {"base_year": "2013"},
        {"extra": 1},
    ],
)
def test_indexation_with_invalid_input_is_422(stored, client, auth_headers, changes):
    response = _indexation(client, auth_headers, **changes)
    assert response.status_code == 422
    assert response.get_json()["code"] == "VALIDATION_ERROR"


def test_indexation_reads_an_amount_sent_as_decimal_text(stored, client, auth_headers):
    number = _indexation(client, auth_headers, amount=850.00).get_json()
    text = _indexation(client, auth_headers, amount="850.00").get_json()
    assert text == number


def test_indexation_in_a_base_year_without_health_index_is_wrong_year(stored, client, auth_headers):
    response = _indexation(client, auth_headers, base_year=1914)
    assert response.status_code == 400
    assert response.get_json()["code"] == "WRONG_YEAR"


def test_indexation_needs_a_json_body(stored, client, auth_headers):
    response = client.post("/indices/health/indexation", data="amount=1", headers=auth_headers)
    assert response.status_code == 415


def test_every_error_response_is_documented_as_a_problem(app):
    spec = app.test_client().get("/openapi.json").get_json()
    operations = {
        path: spec["paths"][path] for path in spec["paths"] if path.startswith("/indices/health")
    }
    assert set(operations) == {
        "/indices/health",
        "/indices/health/{month}",
        "/indices/health/history",
        "/indices/health/indexation",
    }
    for path, methods in operations.items():
        for operation in methods.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            assert {"400", "401", "503"} <= set(operation["responses"]), path


# Digits that str.isdigit() accepts but int() refuses (superscript, circled), and digits of
# other scripts that int() reads (Arabic-Indic, fullwidth): a base year is written in ASCII
# digits alone, as a zipcode is, and anything else is the documented WRONG_YEAR, never a 500.
NOT_ASCII_YEARS = [
    "\u00b2",
    "\u2460",
    "2013\u00b2",
    "\u0662\u0660\u0661\u0663",
    "\uff12\uff10\uff11\uff13",
    # Nor surrounding spaces, as for a zipcode and a page number.
    " 2013",
    "2013 ",
    # Nor more digits than any year has.
    "9" * 24,
]


@pytest.mark.parametrize(
    "path", ["/indices/health", "/indices/health/2020-10", "/indices/health/history"]
)
@pytest.mark.parametrize("base_year", NOT_ASCII_YEARS)
def test_a_base_year_not_in_ascii_digits_is_wrong_year_on_every_route(
    stored, client, auth_headers, path, base_year
):
    response = client.get(path, query_string={"base_year": base_year}, headers=auth_headers)
    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["code"] == "WRONG_YEAR"
    assert body["valid_base_years"] == [1988, 1996, 2004, 2013]
    assert ("of 24 characters is no year" if len(base_year) == 24 else "digits 0-9") in (
        body["detail"]
    )
