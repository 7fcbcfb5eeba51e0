"""`GET /zipcodes/<zipcode>` and `GET /zipcodes?risk_factor=`."""

from __future__ import annotations

import pytest


def test_get_zipcode_answers_its_risk_factor(client, auth_headers, small_table):
    response = client.get("/zipcodes/9000", headers=auth_headers)
    assert response.status_code == 200
    assert response.get_json() == {"zipcode": 9000, "risk_factor": "B"}


@pytest.mark.parametrize(
    "zipcode",
    [
        *("999", "10000", "abc", "9000.5", "%209000", "9000%20", "0999", "09000", "+900"),
        *("-1000", "9e03", "0x3e8", "1_000", "9000%0A", "%00"),
        # Fullwidth and Arabic-Indic digits, which int() would accept.
        *("%EF%BC%99000", "%D9%A9%D9%A0%D9%A0%D9%A0"),
    ],
)
def test_get_anything_but_four_digits_from_1000_to_9999_is_400(client, auth_headers, zipcode):
    response = client.get(f"/zipcodes/{zipcode}", headers=auth_headers)
    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["code"] == "ZIPCODE_NOT_VALID"
    assert "four digits" in body["detail"]


def test_get_a_valid_zipcode_not_in_the_table_is_404(client, auth_headers, small_table):
    response = client.get("/zipcodes/1005", headers=auth_headers)
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["code"] == "ZIPCODE_NOT_FOUND"


@pytest.mark.parametrize("zipcode", ["1000", "9999"])
def test_get_the_bounds_of_the_range_are_valid(client, auth_headers, load_table, zipcode):
    load_table("1000,A\n9999,C\n")
    assert client.get(f"/zipcodes/{zipcode}", headers=auth_headers).status_code == 200


def test_get_with_an_empty_table_is_404(client, auth_headers):
    assert client.get("/zipcodes/9000", headers=auth_headers).status_code == 404


def test_zipcodes_need_a_key(client, small_table):
    for path in ("/zipcodes/9000", "/zipcodes?risk_factor=A"):
        response = client.get(path)
        assert response.status_code == 401
        assert "WWW-Authenticate" in response.headers


def test_list_gives_the_zipcodes_of_a_factor_in_ascending_order(client, auth_headers, load_table):
    load_table("9172,A\n1000 - 1002,C\n9170,A\n1315,B\n9171,A\n")
    response = client.get("/zipcodes?risk_factor=A", headers=auth_headers)
    assert response.status_code == 200
    assert response.get_json() == {
        "items": [
            {"zipcode": 9170, "risk_factor": "A"},
            {"zipcode": 9171, "risk_factor": "A"},
            {"zipcode": 9172, "risk_factor": "A"},
        ],
        "page": 1,
        "page_size": 100,
        "pages": 1,
        "total": 3,
    }


def test_list_pages_through_every_zipcode_once(client, auth_headers, load_table):
    load_table("1000 - 1024,B\n2000,A\n")
    seen = []
    for page in (1, 2, 3):
        body = client.get(
            f"/zipcodes?risk_factor=B&page={page}&page_size=10", headers=auth_headers
        ).get_json()
        assert (body["page"], body["page_size"], body["total"], body["pages"]) == (page, 10, 25, 3)
        seen += [item["zipcode"] for item in body["items"]]
    assert seen == list(range(1000, 1025))


def test_list_past_the_last_page_is_an_empty_page_with_the_total(client, auth_headers, small_table):
    response = client.get("/zipcodes?risk_factor=C&page=9&page_size=2", headers=auth_headers)
    assert response.status_code == 200
    assert response.get_json() == {"items": [], "page": 9, "page_size": 2, "pages": 3, "total": 5}


@pytest.mark.parametrize("page", ["10", "9001", str(2**63 - 1), str(10**30)])
def test_list_far_past_any_table_is_an_empty_page_with_the_total(
    client, auth_headers, small_table, page
):
    response = client.get(
        f"/zipcodes?risk_factor=C&page={page}&page_size=1000", headers=auth_headers
    )
    assert response.status_code == 200
    body = response.get_json()
    assert (body["items"], body["page"], body["total"], body["pages"]) == ([], int(page), 5, 1)


def test_list_of_a_factor_no_zipcode_has_is_an_empty_page(client, auth_headers, load_table):
    load_table("1000,A\n")
    response = client.get("/zipcodes?risk_factor=C", headers=auth_headers)
    assert response.status_code == 200
    assert response.get_json() == {"items": [], "page": 1, "page_size": 100, "pages": 0, "total": 0}


def test_list_a_full_page_of_1000(client, auth_headers, load_table):
    load_table("1000 - 2999,A\n")
    body = client.get("/zipcodes?risk_factor=A&page=2&page_size=1000", headers=auth_headers)
    items = body.get_json()["items"]
    assert [item["zipcode"] for item in items] == list(range(2000, 3000))


@pytest.mark.parametrize("factor", ["a", "b", "c"])
def test_list_accepts_a_lower_case_factor_as_the_upper_case_one(
    client, auth_headers, small_table, factor
):
    lower = client.get(f"/zipcodes?risk_factor={factor}", headers=auth_headers)
    upper = client.get(f"/zipcodes?risk_factor={factor.upper()}", headers=auth_headers)
    assert lower.status_code == 200
    assert lower.get_json() == upper.get_json()
    assert lower.get_json()["total"] > 0


@pytest.mark.parametrize(
    "factor", ["D", "AB", "", "%20A", "A%20", "1", "%EF%BC%A1", "%C3%A0", "a%00"]
)
def test_list_with_another_factor_is_422_risk_factor_not_valid(
    client, auth_headers, small_table, factor
):
    response = client.get(f"/zipcodes?risk_factor={factor}", headers=auth_headers)
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["code"] == "RISK_FACTOR_NOT_VALID"
    assert "A, B or C" in body["detail"]


def test_list_without_a_factor_is_422(client, auth_headers):
    response = client.get("/zipcodes", headers=auth_headers)
    assert response.status_code == 422
    assert response.get_json()["errors"] == {
        "query": {"risk_factor": ["Missing data for required field."]}
    }


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("page=0", "page"),
        ("page=x", "page"),
        ("page_size=0", "page_size"),
        ("page_size=1001", "page_size"),
        ("page_size=-1", "page_size"),
    ],
)
def test_list_with_page_arguments_out_of_range_is_422(client, auth_headers, query, field):
    response = client.get(f"/zipcodes?risk_factor=A&{query}", headers=auth_headers)
    assert response.status_code == 422
    assert response.get_json()["code"] == "VALIDATION_ERROR"
    assert list(response.get_json()["errors"]["query"]) == [field]


def test_the_openapi_document_describes_both_operations_and_their_errors(client):
    paths = client.get("/openapi.json").get_json()["paths"]
    lookup = paths["/zipcodes/{zipcode}"]
    assert lookup["parameters"][0]["schema"] == {
        "type": "integer",
        "minimum": 1000,
        "maximum": 9999,
    }
    assert {"200", "400", "401", "404"} <= set(lookup["get"]["responses"])
    assert "ZIPCODE_NOT_VALID" in lookup["get"]["responses"]["400"]["description"]
    assert "application/problem+json" in lookup["get"]["responses"]["404"]["content"]
    listing = paths["/zipcodes"]["get"]
    assert {"200", "401", "422"} <= set(listing["responses"])
    assert "RISK_FACTOR_NOT_VALID" in listing["responses"]["422"]["description"]
    factor = next(p for p in listing["parameters"] if p["name"] == "risk_factor")
    assert factor["required"] is True
    assert factor["schema"]["enum"] == ["A", "B", "C"]
    assert "Lower case is accepted" in factor["description"]
