"""Reading operators' CSV risk tables, without a database."""

from __future__ import annotations

import pytest

from refapi.zipcodes import risk_table


def problems(content: bytes) -> list[str]:
    return [str(problem) for problem in risk_table.parse(content).problems]


def test_single_zipcodes_and_inclusive_ranges_are_read():
    table = risk_table.parse(b"1000 - 1002,C\n1315,B\n9170 - 9170,A\n")
    assert table.problems == []
    assert table.factors == {1000: "C", 1001: "C", 1002: "C", 1315: "B", 9170: "A"}
    assert table.header is None


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"1000 - 1001,C\n1315,B\n", id="plain"),
        pytest.param(b"\xef\xbb\xbf1000 - 1001,C\n1315,B\n", id="byte-order mark"),
        pytest.param(b"1000 - 1001,C\r\n1315,B\r\n", id="CRLF"),
        pytest.param(b"\n\n1000 - 1001,C\n   \n\t\n1315,B", id="blank lines, no final newline"),
        pytest.param(b"  1000  -  1001 ,  C  \n\t1315\t,\tB\t\n", id="surrounding spaces"),
        pytest.param(b"1000-1001,C\n1315,B\n", id="range without spaces"),
        pytest.param(b'"1000 - 1001","C"\n"1315",B\n', id="quoted values"),
        pytest.param(b"1000 - 1001;C\n1315;B\n", id="semicolons"),
        pytest.param(b"1000 - 1001,C,,\n1315;B;\n", id="trailing empty columns"),
        pytest.param(b"1000 - 1001,c\n1315,b\n", id="lower-case factors"),
        pytest.param(b"# made-up data\n1000 - 1001,C\n# more\n1315,B\n", id="comment lines"),
        pytest.param(b"1000 - 1001,C\n1001,C\n1315,B\n", id="same factor twice"),
    ],
)
def test_tolerated_variations_read_the_same_table(content):
    table = risk_table.parse(content)
    assert table.problems == []
    assert table.factors == {1000: "C", 1001: "C", 1315: "B"}


@pytest.mark.parametrize(
    "header",
    ["zipcode,risk_factor", "\ufeffPostcode;Risicofactor", "code postal , facteur", "zip,factor,"],
)
def test_a_first_line_without_a_number_is_a_header(header):
    table = risk_table.parse(f"{header}\n1315,B\n".encode())
    assert table.problems == []
    assert table.factors == {1315: "B"}
    assert table.header == header.lstrip("\ufeff").strip()


def test_a_header_after_the_first_line_is_a_malformed_line():
    assert problems(b"1315,B\nzipcode,risk_factor\n") == [
        "line 2: malformed line 'zipcode,risk_factor': the first column must be a zipcode or "
        "a range 'start - end'"
    ]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("999,A", "zipcode 999 is outside 1000-9999 (a zipcode is four digits)"),
        ("10000,A", "zipcode 10000 is outside 1000-9999 (a zipcode is four digits)"),
        ("0999 - 1005,A", "zipcode 0999 is outside 1000-9999 (a zipcode is four digits)"),
        ("9990 - 10005,A", "zipcode 10005 is outside 1000-9999 (a zipcode is four digits)"),
        ("1005 - 1001,A", "range 1005 - 1001 ends below its start"),
        ("1000,D", "unknown risk factor 'D'; expected A, B or C"),
        ("1000,", "unknown risk factor ''; expected A, B or C"),
        ("1000,AB", "unknown risk factor 'AB'; expected A, B or C"),
        ("1000", "malformed line '1000'"),
        ("1000,A,B", "malformed line '1000,A,B'"),
        ('"1000,A', "malformed line '\"1000,A'"),
        (
            "1000 to 1005,A",
            "malformed line '1000 to 1005,A': the first column must be a zipcode or a range "
            "'start - end'",
        ),
        (
            "9000.5,A",
            "malformed line '9000.5,A': the first column must be a zipcode or a range "
            "'start - end'",
        ),
        (
            "\u0669\u0660\u0660\u0660,A",
            "malformed line '\u0669\u0660\u0660\u0660,A': the first column must be a zipcode or a "
            "range 'start - end'",
        ),
    ],
)
def test_each_error_is_reported_with_its_line_number(line, message):
    assert problems(f"zipcode,factor\n1315,B\n{line}\n9000,B\n".encode()) == [f"line 3: {message}"]


def test_every_error_of_the_file_is_reported_not_only_the_first():
    content = b"1000,A\n999,A\n\n1005 - 1001,B\n1010,X\nnonsense\n1000,B\n"
    assert problems(content) == [
        "line 2: zipcode 999 is outside 1000-9999 (a zipcode is four digits)",
        "line 4: range 1005 - 1001 ends below its start",
        "line 5: unknown risk factor 'X'; expected A, B or C",
        "line 6: malformed line 'nonsense'",
        "line 7: zipcode 1000 has factor B here but A on line 1",
    ]


def test_a_range_that_gives_known_zipcodes_another_factor_names_the_first_and_its_line():
    content = b"1000 - 1010,A\n1011,B\n1005 - 1020,B\n"
    assert problems(content) == [
        "line 3: 6 zipcodes of this range have factor B here but another on an earlier line, "
        "from 1005 (A on line 1)"
    ]


def test_a_line_with_both_a_bad_zipcode_and_a_bad_factor_reports_both():
    assert problems(b"99,Z\n") == [
        "line 1: zipcode 99 is outside 1000-9999 (a zipcode is four digits)",
        "line 1: unknown risk factor 'Z'; expected A, B or C",
    ]


def test_text_that_is_not_utf8_is_reported_at_its_line():
    assert problems("1000,A\n1001,A\nZo\u00eb,B\n".encode("latin-1")) == [
        "line 3: not UTF-8 text (byte 0xeb); save as UTF-8"
    ]


@pytest.mark.parametrize(
    "content", [b"", b"\xef\xbb\xbf", b"\n \n", b"zipcode,risk_factor\n", b"# nothing\n"]
)
def test_a_file_without_zipcodes_is_refused_because_it_would_empty_the_table(content):
    assert problems(content) == [
        "line 1: no zipcodes in the file: importing it would empty the table"
    ]


def test_control_characters_in_a_reported_line_are_escaped_and_long_lines_cut():
    reported = problems(b"\x1b[31m" + b"x" * 200 + b",A\n")
    assert reported == [
        "line 1: malformed line '\\x1b[31m"
        + "x" * 55
        + "...': the first column must be a zipcode or a range 'start - end'"
    ]


def test_line_numbers_count_only_newlines_as_an_editor_does():
    # str.splitlines() would also break at \x0c and \u2028, and shift every later line number.
    content = "# made up\x0cby hand\u2028today\n1002,Q\n".encode()
    assert problems(content) == ["line 2: unknown risk factor 'Q'; expected A, B or C"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1000", 1000), ("9999", 9999), ("9000", 9000), ("999", None), ("10000", None)]
    + [(text, None) for text in ("0999", " 9000", "9000 ", "+900", "9000.5", "9e03", "")]
    + [("\u0669\u0660\u0660\u0660", None), ("\uff19\uff10\uff10\uff10", None), ("9000\n", None)],
)
def test_zipcode_from_text_accepts_exactly_four_ascii_digits_from_1000(text, expected):
    assert risk_table.zipcode_from_text(text) == expected
