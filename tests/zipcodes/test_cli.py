"""`flask zipcodes import`: validation of the whole file first, then one replacing transaction."""

from __future__ import annotations

import pytest

from refapi.zipcodes import services

ERROR_FILES = {
    "outside the range": ("1000,A\n999,B\n", "line 2: zipcode 999 is outside 1000-9999"),
    "above the range": ("10000,A\n", "line 1: zipcode 10000 is outside 1000-9999"),
    "end below start": ("1000,A\n\n1010 - 1005,B\n", "line 3: range 1010 - 1005 ends below"),
    "unknown factor": ("zipcode,factor\n1000,E\n", "line 2: unknown risk factor 'E'"),
    "malformed line": ("1000,A\n1001 B\n", "line 2: malformed line '1001 B'"),
    "two factors": ("1000 - 1010,A\n1005,C\n", "line 2: zipcode 1005 has factor C here but A"),
    "not utf-8": ("1000,A\n1001,\u00c4\n", "line 2: not UTF-8 text"),
    "no zipcodes": ("zipcode,factor\n\n", "no zipcodes in the file"),
}


@pytest.fixture
def write(tmp_path):
    def write_file(text, name="table.csv", encoding="utf-8"):
        path = tmp_path / name
        path.write_bytes(text.encode(encoding))
        return str(path)

    return write_file


def import_file(runner, *args):
    return runner.invoke(args=["zipcodes", "import", *args])


def test_import_prints_what_it_added_changed_and_removed(runner, write, table_rows):
    first = import_file(runner, write("1000 - 1004,C\n1315,B\n"))
    assert first.exit_code == 0, first.output
    assert "Imported 6 zipcodes" in first.output
    assert "6 added, 0 changed, 0 removed." in first.output

    second = import_file(runner, write("1000 - 1002,C\n1003,A\n1315,A\n9000,B\n"))
    assert second.exit_code == 0, second.output
    assert "Imported 6 zipcodes" in second.output
    assert "1 added, 2 changed, 1 removed." in second.output
    assert table_rows() == {1000: "C", 1001: "C", 1002: "C", 1003: "A", 1315: "A", 9000: "B"}


def test_a_table_of_one_zipcode_is_reported_in_the_singular(runner, write):
    imported = import_file(runner, write("1000,A\n"))
    assert "Imported 1 zipcode from" in imported.output
    again = import_file(runner, "--if-empty", write("1000,A\n"))
    assert "The risk table already has 1 zipcode; nothing imported." in again.output


def test_importing_the_same_file_twice_gives_the_same_table_and_changes_nothing(
    runner, write, table_rows
):
    path = write("\ufeffzipcode,risk_factor\r\n1000 - 1310,C\r\n1315,b\r\n9170 - 9240,A\r\n")
    assert import_file(runner, path).exit_code == 0
    table = table_rows()
    again = import_file(runner, path)
    assert again.exit_code == 0
    assert "0 added, 0 changed, 0 removed." in again.output
    assert table_rows() == table
    assert len(table) == 311 + 1 + 71
    assert table[1315] == "B"


def test_import_names_the_header_line_it_skipped(runner, write):
    result = import_file(runner, write("Postcode;Risicofactor\n1000;A\n"))
    assert result.exit_code == 0
    assert "Skipped the header line: 'Postcode;Risicofactor'" in result.output


@pytest.mark.parametrize(("text", "expected"), ERROR_FILES.values(), ids=ERROR_FILES.keys())
def test_an_invalid_file_is_reported_by_line_and_imports_nothing(
    runner, write, small_table, table_rows, text, expected
):
    result = import_file(runner, write(text, encoding="latin-1"))
    assert result.exit_code == 1
    assert expected in result.stderr
    assert "nothing was imported" in result.stderr
    assert "Imported" not in result.output
    assert table_rows() == small_table


def test_every_error_is_listed_with_its_line_in_one_run(runner, write, table_rows):
    text = "".join(text for text, _ in ERROR_FILES.values() if text.isascii())
    result = import_file(runner, write(text))
    assert result.exit_code == 1
    reported = [line.strip() for line in result.stderr.splitlines()[1:]]
    assert reported == [
        "line 2: zipcode 999 is outside 1000-9999 (a zipcode is four digits)",
        "line 3: zipcode 10000 is outside 1000-9999 (a zipcode is four digits)",
        "line 6: range 1010 - 1005 ends below its start",
        "line 7: malformed line 'zipcode,factor': the first column must be a zipcode or a "
        "range 'start - end'",
        "line 8: unknown risk factor 'E'; expected A, B or C",
        "line 10: malformed line '1001 B'",
        "line 12: zipcode 1005 has factor C here but A on line 11",
        "line 13: malformed line 'zipcode,factor': the first column must be a zipcode or a "
        "range 'start - end'",
    ]
    assert "has 8 errors; nothing was imported" in result.stderr.splitlines()[0]
    assert table_rows() == {}


def test_a_file_that_does_not_exist_is_an_error_and_imports_nothing(
    runner, tmp_path, small_table, table_rows
):
    result = import_file(runner, str(tmp_path / "missing.csv"))
    assert result.exit_code == 2
    assert "missing.csv" in result.stderr
    assert table_rows() == small_table


def test_a_dash_reads_the_table_from_standard_input(runner, table_rows):
    result = runner.invoke(args=["zipcodes", "import", "-"], input="1000,A\n1001,b\n")
    assert result.exit_code == 0, result.output
    assert table_rows() == {1000: "A", 1001: "B"}


def test_without_a_file_the_sample_table_is_imported(runner, table_rows):
    result = import_file(runner)
    assert result.exit_code == 0, result.output
    assert "from the sample table" in result.output
    assert "8993 added, 0 changed, 0 removed." in result.output
    assert sorted(table_rows()) == list(range(1000, 9993))


def test_the_sample_table_covers_every_belgian_postal_code_and_says_it_is_sample_data():
    content = services.sample_table().decode()
    assert "SAMPLE DATA" in content.splitlines()[0]
    assert "replace it" in content.splitlines()[0]


def test_if_empty_imports_into_an_empty_table(runner, write, table_rows):
    result = import_file(runner, "--if-empty", write("1000,A\n"))
    assert result.exit_code == 0, result.output
    assert table_rows() == {1000: "A"}


def test_if_empty_leaves_a_loaded_table_alone(runner, write, small_table, table_rows):
    result = import_file(runner, "--if-empty")
    assert result.exit_code == 0
    assert f"already has {len(small_table)} zipcodes; nothing imported" in result.output
    assert table_rows() == small_table


def test_if_empty_does_not_read_the_file_when_the_table_is_loaded(runner, write, small_table):
    # A start-up script may run it with a file that is no longer valid: it must not fail.
    result = import_file(runner, "--if-empty", write("not a table\n"))
    assert result.exit_code == 0


def test_if_empty_without_a_file_imports_the_sample(runner, table_rows):
    assert import_file(runner, "--if-empty").exit_code == 0
    assert len(table_rows()) == 8993


def test_an_import_invalidates_cached_lookups_and_pages(
    runner, write, client, auth_headers, small_table
):
    assert client.get("/zipcodes/9000", headers=auth_headers).get_json()["risk_factor"] == "B"
    listing = client.get("/zipcodes?risk_factor=A", headers=auth_headers).get_json()
    assert listing["total"] == 3
    assert client.get("/zipcodes/1200", headers=auth_headers).status_code == 404

    assert import_file(runner, write("9000,C\n1200,A\n")).exit_code == 0

    assert client.get("/zipcodes/9000", headers=auth_headers).get_json()["risk_factor"] == "C"
    assert client.get("/zipcodes/1200", headers=auth_headers).get_json()["risk_factor"] == "A"
    assert client.get("/zipcodes/1000", headers=auth_headers).status_code == 404
    listing = client.get("/zipcodes?risk_factor=A", headers=auth_headers).get_json()
    assert listing["items"] == [{"zipcode": 1200, "risk_factor": "A"}]
