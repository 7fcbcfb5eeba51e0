"""The page arguments every listing shares (refapi.pagination)."""

from __future__ import annotations

import pytest

# Every listing, with the arguments it needs besides the page ones.
LISTINGS = [
    ("/zipcodes", {"risk_factor": "A"}),
    ("/keys", {}),
    ("/indices/health/history", {"base_year": "2013"}),
]
# Numbers int() reads that are not written in digits 0-9 alone.
NOT_ASCII_NUMBERS = [
    "\u0663",  # Arabic-Indic 3
    "\uff11\uff10",  # fullwidth 10
    "\u0968",  # Devanagari 2
    "1_0",
    "+3",
    " 3",
    "3 ",
]


@pytest.mark.parametrize("listing", LISTINGS, ids=lambda listing: listing[0])
@pytest.mark.parametrize("argument", ["page", "page_size"])
@pytest.mark.parametrize("number", NOT_ASCII_NUMBERS)
def test_a_page_argument_not_in_ascii_digits_is_a_validation_error(
    client, auth_headers, listing, argument, number
):
    path, arguments = listing
    response = client.get(path, query_string={**arguments, argument: number}, headers=auth_headers)
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["code"] == "VALIDATION_ERROR"
    assert body["errors"] == {"query": {argument: ["Not a number written in digits 0-9."]}}


@pytest.mark.parametrize("listing", LISTINGS[:2], ids=lambda listing: listing[0])
def test_page_arguments_in_ascii_digits_are_read_as_numbers(client, auth_headers, listing):
    path, arguments = listing
    query = {**arguments, "page": "02", "page_size": "0010"}
    response = client.get(path, query_string=query, headers=auth_headers)
    assert response.status_code == 200
    body = response.get_json()
    assert (body["page"], body["page_size"]) == (2, 10)
