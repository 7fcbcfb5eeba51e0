"""Classic injection strings, sent to every parameter of the zipcode endpoints and the import.

Each is rejected with a 4xx (a failed import) or stored nowhere, and the table is unchanged.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest
import sqlalchemy as sa

from refapi.extensions import db

PAYLOADS = [
    "' OR 1=1 --",
    "A'; DROP TABLE zipcodes; --",
    "9000' OR '1'='1",
    "9000; DELETE FROM zipcodes",
    "A' UNION SELECT zipcode, risk_factor FROM zipcodes --",
    '" OR ""="',
    "%' OR zipcode LIKE '%",
    "1000) OR (1=1",
    "\u2019 OR \u20181\u2019=\u20181",  # typographic quotes
    "\uff07 OR 1=1 --",  # fullwidth apostrophe
    "\u02bc; DROP TABLE zipcodes; --",  # modifier letter apostrophe
    "A\x00",
    "9000\x00' OR 1=1 --",
    "\x00",
    "A\\'; DROP TABLE zipcodes; --",
]

TABLE = "1000 - 1004,C\n1315,B\n9000,B\n9170 - 9172,A\n"


@pytest.fixture
def loaded(load_table, table_rows):
    load_table(TABLE)
    before = table_rows()
    yield
    assert table_rows() == before


def test_injection_in_the_zipcode_path_is_400(client, auth_headers, loaded):
    for payload in PAYLOADS:
        response = client.get(f"/zipcodes/{quote(payload, safe='')}", headers=auth_headers)
        assert response.status_code == 400, payload
        assert response.get_json()["code"] == "ZIPCODE_NOT_VALID"


def test_injection_in_the_risk_factor_is_422(client, auth_headers, loaded):
    for payload in PAYLOADS:
        response = client.get(
            "/zipcodes", query_string={"risk_factor": payload}, headers=auth_headers
        )
        assert response.status_code == 422, payload
        assert response.get_json()["code"] == "RISK_FACTOR_NOT_VALID"


@pytest.mark.parametrize("name", ["page", "page_size"])
def test_injection_in_the_page_arguments_is_422(client, auth_headers, loaded, name):
    for payload in PAYLOADS:
        response = client.get(
            "/zipcodes", query_string={"risk_factor": "A", name: payload}, headers=auth_headers
        )
        assert response.status_code == 422, payload
        assert list(response.get_json()["errors"]["query"]) == [name]


def test_injection_in_the_api_key_is_401(client, loaded):
    for payload in PAYLOADS:
        for headers in ({"X-API-Key": payload}, {"Authorization": f"Bearer {payload}"}):
            response = client.get("/zipcodes/9000", headers=headers)
            assert response.status_code == 401, payload


@pytest.mark.parametrize(
    "line",
    ["{payload},A", "9000,{payload}", "{payload}", "9000 - {payload},A", "{payload} - 9000,A"],
)
def test_injection_in_a_line_of_the_imported_file_fails_the_import(runner, tmp_path, loaded, line):
    path = tmp_path / "table.csv"
    for payload in PAYLOADS:
        path.write_text(TABLE + line.format(payload=payload) + "\n", encoding="utf-8")
        result = runner.invoke(args=["zipcodes", "import", str(path)])
        assert result.exit_code == 1, payload
        assert "nothing was imported" in result.stderr


def test_injection_as_the_first_line_of_the_imported_file_is_refused_or_skipped(
    runner, tmp_path, loaded
):
    # A first line without a digit in its first column is a header: skipped, stored nowhere.
    path = tmp_path / "table.csv"
    for payload in PAYLOADS:
        path.write_text(f"{payload},{payload}\n{TABLE}", encoding="utf-8")
        result = runner.invoke(args=["zipcodes", "import", str(path)])
        if result.exit_code == 0:
            assert "Skipped the header line" in result.output
            assert "0 added, 0 changed, 0 removed" in result.output
        else:
            assert result.exit_code == 1, payload
            assert "line 1: malformed line" in result.stderr


def test_injection_as_the_file_name_of_the_import_imports_nothing(runner, tmp_path, loaded):
    # An operating system cannot pass a NUL byte in an argument: those payloads are left out.
    for payload in (p for p in PAYLOADS if "\x00" not in p):
        result = runner.invoke(args=["zipcodes", "import", str(tmp_path / payload)])
        assert result.exit_code == 2, payload
        assert "Invalid value for '[FILE]'" in result.stderr


def test_the_table_and_its_neighbours_survive_every_injection(app, client, auth_headers, loaded):
    for payload in PAYLOADS:
        client.get(f"/zipcodes/{quote(payload, safe='')}", headers=auth_headers)
        client.get("/zipcodes", query_string={"risk_factor": payload}, headers=auth_headers)
    with app.app_context():
        assert set(sa.inspect(db.engine).get_table_names()) == set(db.metadata.tables)
    assert client.get("/zipcodes/9000", headers=auth_headers).get_json()["risk_factor"] == "B"
