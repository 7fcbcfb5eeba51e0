"""Zipcode lookups and listings (cached), and the import that replaces the whole table."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, TypeVar, cast

import sqlalchemy as sa

from refapi.api import serialised
from refapi.caching import delete_prefixed, read_through
from refapi.extensions import cache, db, read_rows
from refapi.pagination import page_body
from refapi.zipcodes import risk_table
from refapi.zipcodes.errors import (
    RiskFactorNotValid,
    RiskTableNotValid,
    ZipcodeNotFound,
    ZipcodeNotValid,
)
from refapi.zipcodes.models import MAX_ZIPCODE, MIN_ZIPCODE, RISK_FACTORS, Zipcode
from refapi.zipcodes.schemas import ZipcodePageSchema

logger = logging.getLogger("refapi.zipcodes")

T = TypeVar("T")

SAMPLE_TABLE = "sample-risk-table.csv"

# The most rows the table can hold: one per zipcode from 1000 to 9999.
_MOST_ZIPCODES = MAX_ZIPCODE - MIN_ZIPCODE + 1

# Rows per DELETE or UPDATE statement: far below every database's bound-parameter limit.
_CHUNK = 500


def parse_zipcode(text: str) -> int:
    """The zipcode as an int; ``ZipcodeNotValid`` unless it is four digits from 1000 to 9999."""
    zipcode = risk_table.zipcode_from_text(text)
    if zipcode is None:
        raise ZipcodeNotValid(
            f"{risk_table.shown(text)} is not a zipcode: a zipcode is four digits, "
            f"{MIN_ZIPCODE} to {MAX_ZIPCODE}."
        )
    return zipcode


def parse_risk_factor(text: str) -> str:
    """``A``, ``B`` or ``C`` (lower case accepted); ``RiskFactorNotValid`` for anything else."""
    factor = risk_table.risk_factor_from_text(text)
    if factor is None:
        raise RiskFactorNotValid(
            f"{risk_table.shown(text)} is not a risk factor: use {', '.join(RISK_FACTORS[:-1])} "
            f"or {RISK_FACTORS[-1]}."
        )
    return factor


def read(*, zipcode: int) -> dict[str, Any]:
    """The zipcode with its risk factor; ``ZipcodeNotFound`` when the table does not have it."""
    found = lookup(zipcode)
    if found["risk_factor"] is None:
        raise ZipcodeNotFound(f"Zipcode {zipcode} is not in the risk table.")
    return found


# Every cached read of this module is under this prefix: an import deletes them all at once.
# It is the lookups' prefix, which every release since issue 8 deletes on import: an import run
# from an earlier release's image during a rolling deploy also deletes this release's pages.
_PREFIX = "zipcodes.lookup."
_PAGE_PREFIX = f"{_PREFIX}page."
_TOTAL_PREFIX = f"{_PREFIX}total."
_PAGE_SCHEMA = ZipcodePageSchema()
# Flask-Caching's version keys of the functions that earlier releases memoized pages and totals
# with: an import rotates them so that, during a rolling deploy, those replicas do not go on
# serving the old table. Drop them once no replica runs a release before this one.
_LEGACY_VERSION_KEYS = tuple(
    f"refapi.zipcodes.services.{name}_memver" for name in ("_page", "_page_json", "_total")
)


def lookup(zipcode: int) -> dict[str, Any]:
    """The zipcode and its factor (None when absent), through the cache: one round trip a hit.

    Not found is cached too (as risk_factor None in a dict), so a client probing absent
    zipcodes does not reach the database on every request.
    """
    found = read_through(cache, f"{_PREFIX}{zipcode}", lambda: _load_lookup(zipcode))
    return cast(dict[str, Any], found)  # _load_lookup never answers None


# Built once, like the store's read (see refapi.extensions.read_rows).
_SELECT_FACTOR = sa.select(Zipcode.risk_factor).where(Zipcode.zipcode == sa.bindparam("zipcode"))


def _load_lookup(zipcode: int) -> dict[str, Any]:
    rows = read_rows(_SELECT_FACTOR, {"zipcode": zipcode})
    return {"zipcode": zipcode, "risk_factor": rows[0].risk_factor if rows else None}


def list_zipcodes(*, risk_factor: str, page: int, page_size: int) -> bytes:
    """One page of the zipcodes that have the factor, in ascending order, with the total.

    Serialised as the API answers it (``ZipcodePageSchema``), and cached that way: a page of
    1000 zipcodes took longer to serialise than everything else in its request (issue 8).
    ``RiskFactorNotValid`` unless the factor is A, B or C (in either case).
    """
    factor = parse_risk_factor(risk_factor)
    if (page - 1) * page_size >= _MOST_ZIPCODES:
        # No table can fill this page. Answering it here keeps any page number, however large,
        # away from the database's integer range and out of the cache.
        return serialised(
            _PAGE_SCHEMA, page_body(items=[], total=_total(factor), page=page, page_size=page_size)
        )
    page_json = read_through(
        cache,
        f"{_PAGE_PREFIX}{factor}.{page}.{page_size}",
        lambda: _load_page_json(factor, page, page_size),
    )
    return cast(bytes, page_json)  # _load_page_json never answers None


def _load_page_json(risk_factor: str, page: int, page_size: int) -> bytes:
    # The total comes from the same statement as the items, so both describe one table even
    # while an import commits; only a page past the end needs a query of its own.
    rows = db.session.execute(
        sa.select(Zipcode.zipcode, sa.func.count().over().label("total"))
        .where(Zipcode.risk_factor == risk_factor)
        .order_by(Zipcode.zipcode)
        .limit(page_size)
        .offset((page - 1) * page_size)
    ).all()
    total = rows[0].total if rows else _count_of(risk_factor)
    items = [{"zipcode": row.zipcode, "risk_factor": risk_factor} for row in rows]
    return serialised(
        _PAGE_SCHEMA, page_body(items=items, total=total, page=page, page_size=page_size)
    )


def _total(risk_factor: str) -> int:
    total = read_through(cache, f"{_TOTAL_PREFIX}{risk_factor}", lambda: _count_of(risk_factor))
    return cast(int, total)  # a count is never None


def _count_of(risk_factor: str) -> int:
    query = (
        sa.select(sa.func.count()).select_from(Zipcode).where(Zipcode.risk_factor == risk_factor)
    )
    return db.session.scalar(query) or 0


def invalidate() -> None:
    """Forget every cached lookup, page and total.

    They are all read through leases, which deleting their keys also deletes
    (``refapi.caching.read_through``): a read that fetched the old table just before the import
    committed cannot cache it after.
    """
    delete_prefixed(cache, _PREFIX)
    cache.delete_many(*_LEGACY_VERSION_KEYS)


def count() -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(Zipcode)) or 0


@dataclass(frozen=True)
class ImportResult:
    zipcodes: int  # in the table after the import
    added: int = 0
    changed: int = 0
    removed: int = 0
    header: str | None = None
    # True when ``if_empty`` was asked and the table was not empty: nothing was written.
    skipped: bool = False


def sample_table() -> bytes:
    """The sample risk table shipped with refapi: made-up factors, to replace with real ones."""
    return (resources.files("refapi.zipcodes") / "data" / SAMPLE_TABLE).read_bytes()


def import_sample(*, if_empty: bool = False) -> ImportResult:
    """``import_csv`` of the sample table (what a fresh installation starts with)."""
    return import_csv(content=sample_table(), if_empty=if_empty)


def import_csv(*, content: bytes, if_empty: bool = False) -> ImportResult:
    """Validate a whole risk table file, then make it the table (``RiskTableNotValid`` if not).

    Nothing is written unless every line is valid. With ``if_empty``, nothing is written either
    when the table already has zipcodes (``skipped``), checked under the import lock.
    """
    table = risk_table.parse(content)
    if table.problems:
        found = len(table.problems)
        raise RiskTableNotValid(
            f"The risk table has {found} error{'s' if found > 1 else ''}; nothing was imported.",
            problems=[{"line": p.line, "message": p.message} for p in table.problems],
        )
    result = replace_table(factors=table.factors, if_empty=if_empty)
    return dataclasses.replace(result, header=table.header)


def replace_table(*, factors: Mapping[int, str], if_empty: bool = False) -> ImportResult:
    """Make ``factors`` the whole table in one transaction, then invalidate the cache.

    Only the difference is written (rows removed, changed, added), in a single transaction, so
    readers see the old table or the new one and never a partial one.
    """
    try:
        _lock_against_other_imports()
        rows = db.session.execute(sa.select(Zipcode.zipcode, Zipcode.risk_factor))
        current: dict[int, str] = dict(rows.tuples().all())
        if if_empty and current:
            db.session.rollback()
            return ImportResult(zipcodes=len(current), skipped=True)
        removed = sorted(current.keys() - factors.keys())
        changed = {z: f for z, f in factors.items() if z in current and current[z] != f}
        added = sorted(factors.keys() - current.keys())
        for chunk in _chunks(removed):
            db.session.execute(
                sa.delete(Zipcode).where(Zipcode.zipcode.in_(chunk)),
                execution_options={"synchronize_session": False},
            )
        for factor in RISK_FACTORS:
            for chunk in _chunks(sorted(z for z, f in changed.items() if f == factor)):
                db.session.execute(
                    sa.update(Zipcode).where(Zipcode.zipcode.in_(chunk)).values(risk_factor=factor),
                    execution_options={"synchronize_session": False},
                )
        if added:
            db.session.execute(
                sa.insert(Zipcode), [{"zipcode": z, "risk_factor": factors[z]} for z in added]
            )
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    invalidate()
    logger.info(
        "risk table replaced: %d zipcodes, %d added, %d changed, %d removed",
        len(factors),
        len(added),
        len(changed),
        len(removed),
    )
    return ImportResult(
        zipcodes=len(factors), added=len(added), changed=len(changed), removed=len(removed)
    )


def _lock_against_other_imports() -> None:
    """Make a concurrent import wait for this one to commit, while readers go on reading.

    Two imports at once would each diff against the same old table, then collide or undo each
    other. PostgreSQL: EXCLUSIVE mode conflicts with writers, not with plain SELECTs. SQLite: a
    write statement, even one that matches no row, takes the database's single write lock.
    """
    if db.engine.dialect.name == "postgresql":
        db.session.execute(sa.text("LOCK TABLE zipcodes IN EXCLUSIVE MODE"))
    else:
        db.session.execute(
            sa.delete(Zipcode).where(sa.false()),
            execution_options={"synchronize_session": False},
        )


def _chunks(items: Sequence[T]) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]
