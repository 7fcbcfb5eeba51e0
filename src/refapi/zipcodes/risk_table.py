"""Reading operators' risk tables: CSV text to a zipcode -> risk factor mapping, or every error.

The format is the one operators already keep: two columns, a zipcode or an inclusive range
``start - end``, then the risk factor (``1000 - 1310,C``, ``1315,B``). Tolerated: a header as the
first line, a byte-order mark, blank lines, ``#`` comment lines, spaces around values, quoted
values, ``;`` instead of ``,`` (what a Belgian spreadsheet exports), and a factor in lower case.
Nothing here touches the database.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field

from refapi.zipcodes.models import MAX_ZIPCODE, MIN_ZIPCODE, RISK_FACTORS

# ASCII digits only: str.isdigit() and int() accept other scripts' digits too.
ZIPCODE_PATTERN = re.compile(r"[1-9][0-9]{3}")
_ZIPCODES_FIELD = re.compile(r"(?P<start>[0-9]+)(?:[ \t]*-[ \t]*(?P<end>[0-9]+))?")
_FACTORS = {**{factor: factor for factor in RISK_FACTORS}, **{f.lower(): f for f in RISK_FACTORS}}
_SHOWN_CHARACTERS = 60


def zipcode_from_text(text: str) -> int | None:
    """The zipcode written as exactly four ASCII digits from 1000 to 9999, else ``None``."""
    return int(text) if ZIPCODE_PATTERN.fullmatch(text) else None


def risk_factor_from_text(text: str) -> str | None:
    """``A``, ``B`` or ``C`` (either case accepted), upper case; else ``None``."""
    return _FACTORS.get(text)


@dataclass(frozen=True)
class Problem:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass
class RiskTable:
    factors: dict[int, str] = field(default_factory=dict)
    # The line read as a header, if any, so that the operator can see what was skipped.
    header: str | None = None
    problems: list[Problem] = field(default_factory=list)
    # Which line gave each zipcode its factor, to name it when another line contradicts it.
    _origins: dict[int, int] = field(default_factory=dict)


def parse(content: bytes) -> RiskTable:
    """Every zipcode of the file with its factor, or every problem found (``problems``)."""
    table = RiskTable()
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        number = content.count(b"\n", 0, error.start) + 1
        table.problems.append(
            Problem(number, f"not UTF-8 text (byte 0x{content[error.start]:02x}); save as UTF-8")
        )
        return table
    first_line = True
    # Split on newlines only: str.splitlines() also splits on characters such as \x0c and
    # \u2028, and the line numbers would no longer be those an editor shows.
    for number, raw_line in enumerate(text.split("\n"), start=1):
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue
        fields = _fields(line)
        is_first_line, first_line = first_line, False
        if fields is None:
            table.problems.append(Problem(number, f"malformed line {shown(line)}"))
        elif is_first_line and not any(character.isdigit() for character in fields[0]):
            # Headers vary ("zipcode,factor", "Postcode;Risico"): any first line without a
            # number where the zipcodes go is one.
            table.header = line
        else:
            _read_line(table, number, line, fields)
    if not table.problems and not table.factors:
        table.problems.append(
            Problem(1, "no zipcodes in the file: importing it would empty the table")
        )
    return table


def _fields(line: str) -> list[str] | None:
    delimiter = ";" if ";" in line and "," not in line else ","
    try:
        row = next(csv.reader([line], delimiter=delimiter, skipinitialspace=True))
    except csv.Error:
        return None
    fields = [value.strip() for value in row]
    # Spreadsheets write empty trailing columns as trailing separators.
    while len(fields) > 2 and not fields[-1]:
        fields.pop()
    return fields if len(fields) == 2 else None


def _read_line(table: RiskTable, number: int, line: str, fields: list[str]) -> None:
    zipcodes_text, factor_text = fields
    match = _ZIPCODES_FIELD.fullmatch(zipcodes_text)
    if match is None:
        table.problems.append(
            Problem(
                number,
                f"malformed line {shown(line)}: the first column must be a zipcode or a "
                "range 'start - end'",
            )
        )
        return
    problems_before = len(table.problems)
    start = _zipcode(table, number, match["start"])
    end = _zipcode(table, number, match["end"]) if match["end"] is not None else start
    if start is not None and end is not None and end < start:
        table.problems.append(Problem(number, f"range {start} - {end} ends below its start"))
    factor = risk_factor_from_text(factor_text)
    if factor is None:
        table.problems.append(
            Problem(number, f"unknown risk factor {shown(factor_text)}; expected A, B or C")
        )
    if len(table.problems) > problems_before or start is None or end is None or factor is None:
        return
    _assign(table, number, range(start, end + 1), factor)


def _zipcode(table: RiskTable, number: int, digits: str) -> int | None:
    zipcode = zipcode_from_text(digits)
    if zipcode is None:
        table.problems.append(
            Problem(
                number,
                f"zipcode {digits} is outside {MIN_ZIPCODE}-{MAX_ZIPCODE} "
                "(a zipcode is four digits)",
            )
        )
    return zipcode


def _assign(table: RiskTable, number: int, zipcodes: range, factor: str) -> None:
    conflicts = [z for z in zipcodes if table.factors.get(z, factor) != factor]
    if conflicts:
        first = conflicts[0]
        earlier = f"{table.factors[first]} on line {table._origins[first]}"
        if len(conflicts) == 1:
            message = f"zipcode {first} has factor {factor} here but {earlier}"
        else:
            message = (
                f"{len(conflicts)} zipcodes of this range have factor {factor} here but another "
                f"on an earlier line, from {first} ({earlier})"
            )
        table.problems.append(Problem(number, message))
        return
    for zipcode in zipcodes:
        if zipcode not in table.factors:
            table.factors[zipcode] = factor
            table._origins[zipcode] = number


def shown(text: str) -> str:
    """The text as a quoted literal (control characters escaped), cut to a readable length."""
    if len(text) > _SHOWN_CHARACTERS:
        text = text[:_SHOWN_CHARACTERS] + "..."
    return repr(text)
