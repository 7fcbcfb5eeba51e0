from __future__ import annotations

import io
import time
import zipfile
from decimal import Decimal

import pytest

from refapi.indices import statbel
from tests.indices.conftest import (
    DRIP_SECONDS,
    HEADER,
    huge_field_text,
    statbel_rows,
    statbel_text,
    statbel_zip,
)

MAX = 10 * 1024 * 1024


def _by_key(observations):
    return {(o.base_year, o.year, o.month): o for o in observations}


def test_parse_reads_the_known_values_from_a_zip():
    rows = _by_key(statbel.parse(statbel_zip(), max_bytes=MAX))
    october = rows[(2013, 2020, 10)]
    assert (october.health, october.smoothed, october.cpi) == (
        Decimal("110.11"),
        Decimal("107.86"),
        Decimal("110.11"),
    )
    assert rows[(1988, 2021, 1)].health == Decimal("182.81")


def test_parse_reads_the_text_file_with_or_without_a_byte_order_mark():
    text = statbel_text()
    assert text.startswith(b"\xef\xbb\xbf")
    with_bom = statbel.parse(text, max_bytes=MAX)
    without_bom = statbel.parse(text[3:], max_bytes=MAX)
    assert with_bom == without_bom
    assert len(with_bom) == len(statbel_rows())


def test_parse_reads_a_dot_as_missing():
    rows = _by_key(statbel.parse(statbel_zip(), max_bytes=MAX))
    cpi_only = rows[(1914, 2020, 10)]
    assert cpi_only.health is None
    assert cpi_only.smoothed is None
    assert cpi_only.cpi == Decimal("12345.67")


def test_parse_reads_columns_by_name_whatever_their_order_spelling_or_extras():
    # A later release: another spelling of a column we do not use, an extra one, a new order.
    renamed_header = ["MS_WTHOUT_ENE_IDX" if h == "MS_WITHOUT_ENE_IDX" else h for h in HEADER]
    header = (*reversed(renamed_header), "MS_NEW_THING")
    rows = [
        {**row, "MS_WTHOUT_ENE_IDX": row["MS_WITHOUT_ENE_IDX"], "MS_NEW_THING": "x"}
        for row in statbel_rows()
    ]
    renamed = statbel.parse(statbel_zip(statbel_text(rows, header=header)), max_bytes=MAX)
    assert renamed == statbel.parse(statbel_zip(), max_bytes=MAX)


def test_parse_tolerates_a_percent_sign_and_a_comma_in_numbers():
    rows = statbel_rows()
    rows[0] = {**rows[0], "MS_CPI_INFL": "1,5 %", "MS_HLTH_IDX": "179,02"}
    observation = statbel.parse(statbel_text(rows), max_bytes=MAX)[0]
    assert observation.health == Decimal("179.02")


def test_parse_reports_a_missing_needed_column_by_name():
    header = tuple(h for h in HEADER if h != "MS_HLTH_IDX")
    with pytest.raises(statbel.StatbelError, match="MS_HLTH_IDX"):
        statbel.parse(statbel_text(header=header), max_bytes=MAX)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "empty"),
        (b"\xef\xbb\xbf\r\n", "empty"),
        (b"<!DOCTYPE html><html><body>Maintenance</body></html>", "HTML"),
        (statbel_zip()[:200], "ZIP is damaged or truncated"),
        (b"\xff\xfe garbage", "not UTF-8"),
        (statbel_text(rows=[]), "no rows"),
        (huge_field_text(), "line 2: not Statbel's pipe-delimited text: field larger than"),
        (statbel_zip(huge_field_text()), "line 2: not Statbel's pipe-delimited text"),
    ],
    ids=[
        "empty",
        "bom-only",
        "html",
        "truncated-zip",
        "not-utf8",
        "header-only",
        "field-over-csv-limit",
        "zipped-field-over-csv-limit",
    ],
)
def test_parse_refuses_what_is_not_the_data_file(payload, reason):
    with pytest.raises(statbel.StatbelError, match=reason):
        statbel.parse(payload, max_bytes=MAX)


def _with(field: str, value: str) -> bytes:
    rows = statbel_rows()
    rows[0] = {**rows[0], field: value}
    return statbel_text(rows)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (_with("NM_MTH", "13"), "month must be 1 to 12"),
        (_with("NM_MTH", "0"), "month must be 1 to 12"),
        (_with("NM_YR", "20x0"), "not an integer"),
        # Other scripts' digits and underscores, which int() and Decimal() would read.
        (_with("NM_YR", "\uff12\uff10\uff12\uff10"), "not an integer"),
        (_with("NM_MTH", "\u0661\u0660"), "not an integer"),
        (_with("NM_BASE_YR", "2_013"), "not an integer"),
        (_with("NM_YR", "\u00b2"), "not an integer"),
        (_with("NM_YR", "9" * 5000), "not an integer"),
        (_with("MS_HLTH_IDX", "\u0661\u0660\u0668.\u0660\u0666"), "not a number"),
        (_with("MS_CPI_IDX", "1_08.06"), "not a number"),
        (_with("MS_HLTH_IDX", "-1"), "implausible"),
        (_with("MS_HLTH_IDX", "0"), "implausible"),
        (_with("MS_SMOOTH_IDX", "abc"), "not a number"),
        (_with("MS_HLTH_IDX", "NaN"), "not a number"),
        (_with("MS_HLTH_IDX", "1e30"), "out of range"),
        (_with("MS_CPI_IDX", "99999999"), "implausible"),
        (_with("NM_BASE_YR", "1066"), "implausible"),
        (statbel_text(statbel_rows() + statbel_rows()[:1]), "appears twice"),
        (
            statbel_text([{**row, "MS_HLTH_IDX": "."} for row in statbel_rows()]),
            "no base year has a health index",
        ),
    ],
)
def test_parse_refuses_invalid_rows(payload, reason):
    with pytest.raises(statbel.StatbelError, match=reason):
        statbel.parse(payload, max_bytes=MAX)


def test_parse_refuses_a_zip_without_exactly_one_text_file():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a.txt", statbel_text())
        archive.writestr("b.txt", statbel_text())
    with pytest.raises(statbel.StatbelError, match="one text file"):
        statbel.parse(buffer.getvalue(), max_bytes=MAX)


def test_parse_refuses_a_zip_whose_content_is_larger_than_the_limit():
    with pytest.raises(statbel.StatbelError, match="larger than 1000 bytes"):
        statbel.parse(statbel_zip(), max_bytes=1000)


def test_download_sends_a_descriptive_user_agent(upstream):
    statbel.download(url=upstream.url, timeout=1, max_bytes=MAX)
    assert upstream.requests[0]["User-Agent"].startswith("refapi/")


def test_download_refuses_a_body_larger_than_the_limit(upstream):
    with pytest.raises(statbel.StatbelError, match="bytes"):
        statbel.download(url=upstream.url, timeout=1, max_bytes=100)


@pytest.mark.parametrize("status", [404, 500, 503])
def test_download_refuses_an_error_status(upstream, status):
    upstream.serve(b"oops", status=status, content_type="text/plain")
    with pytest.raises(statbel.StatbelError, match=f"HTTP {status}"):
        statbel.download(url=upstream.url, timeout=1, max_bytes=MAX)


def test_download_gives_up_after_the_timeout(upstream):
    upstream.hang = True
    with pytest.raises(statbel.StatbelError, match="Timeout"):
        statbel.download(url=upstream.url, timeout=0.2, max_bytes=MAX)


@pytest.mark.parametrize("part", ["headers", "body"])
def test_download_gives_up_at_its_limit_when_every_byte_comes_within_the_timeout(upstream, part):
    upstream.drip = part
    began = time.monotonic()
    with pytest.raises(statbel.StatbelError, match="took longer than 5 s to send"):
        statbel.download(url=upstream.url, timeout=0.5, max_bytes=MAX)
    # Stopped at its limit, 5 s, long before the drip would end (generous: the machine is slow).
    assert time.monotonic() - began < DRIP_SECONDS / 2


# Latin-1 header bytes that str.isdigit() accepts but int() refuses, and a number int() would read
# in another script: a Content-Length is ASCII digits or no length at all. The body's size is
# still bounded while it is read.
@pytest.mark.parametrize("declared", ["\u00b2", "1\u00b9", "12x"])
def test_download_ignores_a_content_length_that_is_not_ascii_digits(upstream, declared):
    upstream.content_length = declared
    assert statbel.download(url=upstream.url, timeout=1, max_bytes=MAX) == upstream.body
    with pytest.raises(statbel.StatbelError, match="sent more than 100 bytes"):
        statbel.download(url=upstream.url, timeout=1, max_bytes=100)
