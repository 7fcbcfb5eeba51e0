"""The health index: refresh from Statbel, freshness, reads and rent indexation.

Reads come from the database through the cache (``read_through``: one summary of what most
reads need, then a month's values and pages of a series), emptied by every refresh. A read
finds the data stale (older than ``INDEX_MAX_AGE``) or absent, and starts a refresh in a
background thread; a lease row in the database lets only one refresh run at a time across
threads and worker processes. Meanwhile every request, the one that started it included,
answers at once from stored data, marked stale; only when nothing is stored yet does the
request that started the refresh wait for it, at most ``INDEX_REFRESH_BUDGET`` seconds.
"""

from __future__ import annotations

import logging
import math
import os
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, cast

import sqlalchemy as sa
from flask import Flask, current_app
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from refapi.caching import delete_prefixed, read_through
from refapi.errors import ApiError, database_cause
from refapi.extensions import cache, db, read_outside_a_transaction
from refapi.fields import ascii_digits
from refapi.indices import statbel
from refapi.indices.models import MonthlyIndex, Refresh, RefreshLease

logger = logging.getLogger("refapi.indices")

LEASE_NAME = "statbel"
# ASCII digits only; matched whole (fullmatch), so "2020-10\n" is no month.
MONTH_PATTERN = r"^[0-9]{4}-(0[1-9]|1[0-2])$"
_MONTH = re.compile(MONTH_PATTERN)
# A base year is a number, read as one only when written in digits 0-9 (refapi.fields).
_BASE_YEAR_DIGITS = 10
CENT = Decimal("0.01")
MAX_OFFSET = 2**31 - 1


class WrongYear(ApiError):
    status = 400
    code = "WRONG_YEAR"
    title = "Unknown Base Year"


class WrongMonth(ApiError):
    status = 400
    code = "WRONG_MONTH"
    title = "Malformed Month"


class IndexNotPublished(ApiError):
    status = 404
    code = "INDEX_NOT_PUBLISHED"
    title = "Index Not Published"


class UpstreamUnavailable(ApiError):
    status = 503
    code = "UPSTREAM_UNAVAILABLE"
    title = "Service Unavailable"


class RefreshFailed(Exception):
    """A refresh stored nothing; the message is the reason.

    ``logged`` tells whether refapi.indices has logged the reason already (a download or file
    that failed, with its source), so that a command shows it only when it was not.
    """

    def __init__(self, reason: str, *, logged: bool = False) -> None:
        super().__init__(reason)
        self.logged = logged


@dataclass(frozen=True)
class RefreshOutcome:
    source: str
    rows_added: int
    rows_updated: int
    months_added: list[str]
    latest_month: str | None

    @property
    def changed(self) -> bool:
        return bool(self.rows_added or self.rows_updated)


@dataclass(frozen=True)
class Freshness:
    retrieved_at: datetime
    stale: bool


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _as_utc(moment: datetime | None) -> datetime | None:
    # SQLite hands datetimes back without their zone; we only ever store UTC.
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=timezone.utc)


def month_key(year: int, month: int) -> str:
    return f"{year:04d}-{month:02d}"


def _split_month(key: str) -> tuple[int, int]:
    year, month = key.split("-")
    return int(year), int(month)


def normalise_month(text: str) -> str:
    """``YYYY-MM`` as given, or ``WrongMonth``."""
    if not _MONTH.fullmatch(text):
        raise WrongMonth(f"The month {text[:20]!r} is not a month written YYYY-MM (e.g. 2020-10).")
    return text


# Refresh ----------------------------------------------------------------------------------------


def refresh(*, path: str | None = None) -> RefreshOutcome:
    """Store Statbel's data, downloaded or read from ``path`` (a ZIP or the text file).

    Idempotent: rows already stored with the same values are left alone. Raises
    ``RefreshFailed`` when another refresh runs, or when the data cannot be read or is invalid;
    stored data is then untouched.
    """
    try:
        holder = _take_lease()
    except SQLAlchemyError as error:
        raise RefreshFailed(
            f"the refresh lease could not be taken ({database_cause(error)})"
        ) from None
    if holder is None:
        raise RefreshFailed("another refresh is running; try again in a minute")
    try:
        return _refresh_holding_lease(path=path)
    finally:
        _release_lease(holder)


def _refresh_holding_lease(*, path: str | None) -> RefreshOutcome:
    config = current_app.config
    max_bytes = config["STATBEL_MAX_BYTES"]
    load: Callable[[], bytes]
    if path is None:
        url = config["STATBEL_URL"]
        if not url:
            raise RefreshFailed("REFAPI_STATBEL_URL is empty: import a file with --file")
        source = url

        def load() -> bytes:
            return statbel.download(url=url, timeout=config["STATBEL_TIMEOUT"], max_bytes=max_bytes)
    else:
        source = "file:" + os.path.abspath(path)

        def load() -> bytes:
            return _read_file(path, max_bytes=max_bytes)

    record = Refresh(
        source=source[:2048], started_at=utcnow(), succeeded=False, months_added=0, rows_changed=0
    )
    db.session.add(record)
    db.session.commit()
    _forget_refresh_times()
    try:
        observations = statbel.parse(load(), max_bytes=max_bytes)
        outcome = _store(observations, source=source)
        record.succeeded = True
        record.months_added = len(outcome.months_added)
        record.rows_changed = outcome.rows_added + outcome.rows_updated
        record.finished_at = utcnow()
        db.session.commit()
    except (statbel.StatbelError, SQLAlchemyError) as error:
        reason = str(error) if isinstance(error, statbel.StatbelError) else database_cause(error)
        # Not logged below the level configured (REFAPI_LOG_LEVEL=ERROR): the caller says it.
        logged = logger.isEnabledFor(logging.WARNING)
        logger.warning("health index refresh from %s failed: %s", source, reason)
        _end_failed(record, reason)
        raise RefreshFailed(reason, logged=logged) from None
    except Exception as error:
        # A bug: it propagates, with its traceback. Its record still ends, saying so, rather
        # than staying "started" for ever in the history of refreshes.
        _end_failed(
            record,
            f"an unexpected {type(error).__name__} (a bug): its traceback is in the server's "
            "log, or in the output of the command that ran the refresh",
        )
        raise
    _invalidate()
    logger.info(
        "health index refreshed from %s: %d rows added, %d updated, latest month %s",
        source,
        outcome.rows_added,
        outcome.rows_updated,
        outcome.latest_month,
    )
    return outcome


def _end_failed(record: Refresh, reason: str) -> None:
    """End a failed refresh's record with its reason, after rolling back what it stored.

    A database that cannot take even that (it is down) leaves the record unfinished: the
    failure the caller is about to report matters more than the record of it.
    """
    db.session.rollback()
    record.error = reason
    record.finished_at = utcnow()
    try:
        db.session.commit()
    except SQLAlchemyError:
        db.session.rollback()
    _forget_refresh_times()


def _read_file(path: str, *, max_bytes: int) -> bytes:
    try:
        with open(path, "rb") as file:
            payload = file.read(max_bytes + 1)
    except OSError as error:
        raise statbel.StatbelError(f"{path} cannot be read: {error.strerror}") from None
    if len(payload) > max_bytes:
        raise statbel.StatbelError(f"{path} is larger than {max_bytes} bytes")
    return payload


def _store(observations: list[statbel.Observation], *, source: str) -> RefreshOutcome:
    """Insert new rows and update changed ones, in the caller's transaction.

    Rows absent from the file are kept: a later release that drops old months must not erase
    what contracts were indexed on.
    """
    columns = (MonthlyIndex.health, MonthlyIndex.smoothed, MonthlyIndex.cpi)
    stored = {
        (row.base_year, row.year, row.month): (row.health, row.smoothed, row.cpi)
        for row in db.session.execute(
            sa.select(MonthlyIndex.base_year, MonthlyIndex.year, MonthlyIndex.month, *columns)
        )
    }
    published = {(year, month) for (_, year, month), values in stored.items() if values[0]}
    added: list[dict[str, Any]] = []
    updated: list[dict[str, Any]] = []
    for row in observations:
        values = {
            "base_year": row.base_year,
            "year": row.year,
            "month": row.month,
            "health": row.health,
            "smoothed": row.smoothed,
            "cpi": row.cpi,
        }
        before = stored.get((row.base_year, row.year, row.month))
        if before is None:
            added.append(values)
        elif before != (row.health, row.smoothed, row.cpi):
            updated.append(values)
    if added:
        db.session.execute(sa.insert(MonthlyIndex), added)
    if updated:
        db.session.execute(sa.update(MonthlyIndex), updated)
    with_health = {(row.year, row.month) for row in observations if row.health is not None}
    new_months = sorted(with_health - published)
    latest = max(with_health | published, default=None)
    return RefreshOutcome(
        source=source,
        rows_added=len(added),
        rows_updated=len(updated),
        months_added=[month_key(*month) for month in new_months],
        latest_month=month_key(*latest) if latest else None,
    )


# The lease: one refresh at a time across threads and processes ---------------------------------


def _lease_seconds() -> float:
    # Longer than any download (statbel.download gives up at its limit), plus time to store.
    return statbel.longest_download(current_app.config["STATBEL_TIMEOUT"]) + 60


def _acquire_lease() -> str | None:
    """``_take_lease()``, or None, logged, when the database does not answer (a read goes on)."""
    try:
        return _take_lease()
    except SQLAlchemyError as error:
        logger.warning("health index refresh lease unavailable: %s", database_cause(error))
        return None


def _take_lease() -> str | None:
    """A holder id when this caller now holds the lease, None when another one holds it.

    Raises SQLAlchemyError when the database does not answer. Commits the session: the lease
    must be visible to others at once. Callers hold no pending changes (a read, or the start of
    a refresh). Through the session rather than a connection of its own, so that a request never
    holds two pooled connections: twenty threads each waiting for a second one would exhaust the
    pool.
    """
    table = RefreshLease.__table__
    holder = uuid.uuid4().hex
    now = utcnow()
    values = {"holder": holder, "expires_at": now + timedelta(seconds=_lease_seconds())}
    try:
        taken = db.session.execute(
            sa.update(table)
            .where(table.c.name == LEASE_NAME, table.c.expires_at < now)
            .values(**values)
        )
        if taken.rowcount != 1:  # type: ignore[attr-defined]
            exists = db.session.execute(
                sa.select(table.c.name).where(table.c.name == LEASE_NAME)
            ).first()
            if exists:
                db.session.rollback()
                return None
            db.session.execute(sa.insert(table).values(name=LEASE_NAME, **values))
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        return None  # another caller created the row first: it holds the lease
    except SQLAlchemyError:
        db.session.rollback()
        raise
    return holder


def _release_lease(holder: str) -> None:
    table = RefreshLease.__table__
    try:
        db.session.rollback()  # whatever a failed refresh left behind
        db.session.execute(
            sa.update(table)
            .where(table.c.name == LEASE_NAME, table.c.holder == holder)
            .values(expires_at=utcnow())
        )
        db.session.commit()
    except SQLAlchemyError as error:
        db.session.rollback()
        # The lease expires by itself.
        logger.warning("health index refresh lease not released: %r", error)


# Freshness -------------------------------------------------------------------------------------

_background: set[threading.Thread] = set()
_background_lock = threading.Lock()


def wait_for_background_refreshes(timeout: float | None = None) -> None:
    """Join the refresh threads this process started (tests and graceful shutdown)."""
    with _background_lock:
        threads = list(_background)
    for thread in threads:
        thread.join(timeout)


def _refresh_times_uncached() -> dict[str, Any]:
    """The refresh times, and how many refreshes succeeded (``generation``)."""
    retrieved, succeeded = db.session.execute(
        sa.select(sa.func.max(Refresh.finished_at), sa.func.count()).where(
            Refresh.succeeded.is_(True)
        )
    ).one()
    attempted = db.session.scalar(sa.select(sa.func.max(Refresh.started_at)))
    return {
        "retrieved_at": _as_utc(retrieved),
        "attempted_at": _as_utc(attempted),
        "generation": succeeded,
    }


# Every cached read of this module is under this prefix: a refresh that stored data deletes
# them all at once (as an import does the zipcodes'), after its commit.
_PREFIX = "indices."
SUMMARY_KEY = f"{_PREFIX}summary"
# A month's values and a page of a series are cached under the summary's generation (the count
# of successful refreshes): an earlier release's refresh, during a rolling deploy, deletes only
# the summary, and the next summary names new keys.
_MONTH_PREFIX = f"{_PREFIX}month."
_HISTORY_PREFIX = f"{_PREFIX}history."
# Flask-Caching's version keys of the functions that earlier releases memoized these reads with:
# rotated by every refresh so that, during a rolling deploy, those replicas do not go on serving
# the old data. Drop them once no replica runs a release before this one.
_LEGACY_VERSION_KEYS = tuple(
    f"refapi.indices.services.{name}_memver" for name in ("_month_values", "_history")
)


def _summary() -> dict[str, Any]:
    """What most reads need, in one cache read, emptied by every refresh.

    The refresh times, the generation that keys the other cached reads, each base year's
    latest month (``latest``) and those months' values (``months``).

    Not cached while nothing is stored: with the in-process cache, an import run from the
    command line (another process) cannot empty this process's cache, and a cached "nothing
    stored yet" would keep answering 503 after the first data arrived. Statbel is not asked more
    often for it: when to try again is decided from the refresh times in the database, and the
    lease lets one refresh run at a time. Each such read costs the summary's few queries.
    """
    loaded: dict[str, Any] = {}

    def load() -> dict[str, Any] | None:
        loaded.update(_load_summary())
        return loaded if loaded["retrieved_at"] is not None else None

    cached = read_through(cache, SUMMARY_KEY, load)
    if cached is not None and "generation" not in cached:
        # An earlier release's, during a rolling deploy: with it, this release's other reads
        # would not be cached (they are keyed by the generation). Replaced by this release's.
        cache.delete(SUMMARY_KEY)
        cached = read_through(cache, SUMMARY_KEY, load)
    return cached if cached is not None else loaded


def _load_summary() -> dict[str, Any]:
    with read_outside_a_transaction():
        # The refresh times first: the queries share no snapshot, and a refresh that commits
        # between them must make the summary older than its data (nothing retrieved yet, a 503),
        # never newer (retrieved, but no base year: a 400 WRONG_YEAR).
        times = _refresh_times_uncached()
        latest = _load_latest_months()
        months = {month: _load_month_values(month) for month in set(latest.values())}
        return {**times, "latest": latest, "months": months}


def _read_state(*, base_year: int | None = None) -> tuple[Freshness, dict[str, Any]]:
    """The stored data's freshness, refreshing it when due, and the summary it was read from.

    Raises ``UpstreamUnavailable`` when nothing is stored and no refresh has stored anything;
    ``base_year``, the one asked for, is named in its message: with no data, whether it has a
    health index is unknown.
    """
    config = current_app.config
    max_age = timedelta(seconds=config["INDEX_MAX_AGE"])
    summary = _summary()
    retrieved = summary["retrieved_at"]
    if retrieved is not None and utcnow() - retrieved < max_age:
        return Freshness(retrieved_at=retrieved, stale=False), summary
    if config["STATBEL_URL"] and _attempt_due(summary["attempted_at"]):
        worker = _start_background_refresh()
        if worker is not None and retrieved is None:
            # Nothing to answer with: worth a short wait. With stored data nobody waits, not
            # even this request (a sync worker waiting would hold every request queued on it).
            worker.join(config["INDEX_REFRESH_BUDGET"])
            summary = _summary()
            retrieved = summary["retrieved_at"]
    if retrieved is None:
        raise _nothing_stored(summary, base_year=base_year)
    return Freshness(retrieved_at=retrieved, stale=utcnow() - retrieved >= max_age), summary


def _nothing_stored(summary: dict[str, Any], *, base_year: int | None) -> UpstreamUnavailable:
    unknown = (
        ""
        if base_year is None
        else f" Whether base year {base_year} has a health index is unknown until then."
    )
    if not current_app.config["STATBEL_URL"]:
        # Nothing will ever be downloaded: retrying cannot help, so no Retry-After.
        return UpstreamUnavailable(
            "No health index is stored yet, and no upstream is configured to download one "
            "(REFAPI_STATBEL_URL is empty): an operator must load it with "
            "`flask indices refresh --file ...`." + unknown
        )
    retry_after = _retry_after(summary["attempted_at"])
    return UpstreamUnavailable(
        "No health index is stored yet: none could be fetched from Statbel so far (it could "
        "not be reached, its file was refused, or the first download is still running); try "
        f"again in {retry_after} seconds." + unknown,
        headers={"Retry-After": str(retry_after)},
    )


def _attempt_due(attempted_at: datetime | None) -> bool:
    interval = timedelta(seconds=current_app.config["INDEX_RETRY_INTERVAL"])
    return attempted_at is None or utcnow() - attempted_at >= interval


def _retry_after(attempted_at: datetime | None) -> int:
    interval = current_app.config["INDEX_RETRY_INTERVAL"]
    if attempted_at is None:
        return interval
    waited = (utcnow() - attempted_at).total_seconds()
    return max(1, math.ceil(interval - waited))


def _start_background_refresh() -> threading.Thread | None:
    holder = _acquire_lease()
    if holder is None:
        return None
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    thread = threading.Thread(
        target=_background_refresh, args=(app, holder), name="health-index-refresh", daemon=True
    )
    with _background_lock:
        _background.add(thread)
    thread.start()
    return thread


def _background_refresh(app: Flask, holder: str) -> None:
    with app.app_context():
        try:
            # Another process may have refreshed, or tried, between our read and our lease.
            times = _refresh_times_uncached()
            retrieved = times["retrieved_at"]
            max_age = timedelta(seconds=app.config["INDEX_MAX_AGE"])
            if (retrieved is None or utcnow() - retrieved >= max_age) and _attempt_due(
                times["attempted_at"]
            ):
                _refresh_holding_lease(path=None)
            else:
                _invalidate()  # this process's cache may predate it (the in-process cache)
        except RefreshFailed as error:
            # Stored data is served as stale meanwhile; nobody else is there to say why.
            if not error.logged:
                logger.warning("health index refresh failed: %s", error)
        except Exception:
            logger.exception("health index refresh failed")
        finally:
            _release_lease(holder)
            db.session.remove()
            with _background_lock:
                _background.discard(threading.current_thread())


# Reads -----------------------------------------------------------------------------------------


def _load_latest_months() -> dict[int, str]:
    """Each base year that has a health index, with its latest month."""
    period = MonthlyIndex.year * 100 + MonthlyIndex.month
    rows = db.session.execute(
        sa.select(MonthlyIndex.base_year, sa.func.max(period))
        .where(MonthlyIndex.health.is_not(None))
        .group_by(MonthlyIndex.base_year)
        .order_by(MonthlyIndex.base_year)
    )
    return {base_year: month_key(*divmod(latest, 100)) for base_year, latest in rows}


def _month_values(summary: dict[str, Any], month: str) -> list[dict[str, Any]]:
    generation = summary.get("generation")
    if generation is None:
        # A summary an earlier release cached, during a rolling deploy: read, do not cache.
        return _load_month_values(month)
    values = read_through(
        cache, f"{_MONTH_PREFIX}{generation}.{month}", lambda: _load_month_values(month)
    )
    return cast(list[dict[str, Any]], values)  # _load_month_values never answers None


def _load_month_values(month: str) -> list[dict[str, Any]]:
    year, number = _split_month(month)
    rows = db.session.execute(
        sa.select(MonthlyIndex.base_year, MonthlyIndex.health, MonthlyIndex.smoothed)
        .where(
            MonthlyIndex.year == year,
            MonthlyIndex.month == number,
            MonthlyIndex.health.is_not(None),
        )
        .order_by(MonthlyIndex.base_year)
    )
    return [
        {"base_year": base_year, "value": health, "smoothed": smoothed}
        for base_year, health, smoothed in rows
    ]


def _history(
    summary: dict[str, Any], base_year: int, start: str, end: str, page: int, page_size: int
) -> dict[str, Any]:
    generation = summary.get("generation")
    if generation is None:
        # A summary an earlier release cached, during a rolling deploy: read, do not cache.
        return _load_history(base_year, start, end, page, page_size)
    cached = read_through(
        cache,
        f"{_HISTORY_PREFIX}{generation}.{base_year}.{start}.{end}.{page}.{page_size}",
        lambda: _load_history(base_year, start, end, page, page_size),
    )
    return cast(dict[str, Any], cached)  # _load_history never answers None


def _load_history(
    base_year: int, start: str, end: str, page: int, page_size: int
) -> dict[str, Any]:
    period = MonthlyIndex.year * 100 + MonthlyIndex.month
    start_year, start_month = _split_month(start)
    end_year, end_month = _split_month(end)
    selection = sa.select(MonthlyIndex).where(
        MonthlyIndex.base_year == base_year,
        MonthlyIndex.health.is_not(None),
        period.between(start_year * 100 + start_month, end_year * 100 + end_month),
    )
    total = db.session.scalar(sa.select(sa.func.count()).select_from(selection.subquery()))
    rows = db.session.scalars(
        selection.order_by(MonthlyIndex.year, MonthlyIndex.month)
        .limit(page_size)
        .offset((page - 1) * page_size)
    )
    items = [
        {"month": month_key(row.year, row.month), "value": row.health, "smoothed": row.smoothed}
        for row in rows
    ]
    return {"items": items, "total": total or 0}


def _forget_refresh_times() -> None:
    """After a refresh started or failed: the data is unchanged, only the summary's times."""
    # ResilientRedisCache turns an unreachable Redis into a logged no-op; LocalCache cannot fail.
    cache.delete(SUMMARY_KEY)


def _invalidate() -> None:
    """Forget every cached read, after a refresh that may have changed the data committed.

    They are all read through leases, which deleting their keys also deletes
    (``refapi.caching.read_through``): a read that fetched the old data just before the
    refresh committed cannot cache it after.
    """
    delete_prefixed(cache, _PREFIX)
    cache.delete_many(*_LEGACY_VERSION_KEYS)


def _written_year(text: str | int) -> int:
    """The base year asked for, as an int, when written in ASCII digits; else ``WrongYear``.

    Checked before the data is read: no data can make a malformed base year valid, so it is a
    400 even while nothing is stored (like a malformed month), with an empty list then.
    """
    candidate = str(text)
    year = ascii_digits(candidate, max_digits=_BASE_YEAR_DIGITS)
    if year is not None:
        return year
    if len(candidate) > _BASE_YEAR_DIGITS:
        reason = f"A base year of {len(candidate)} characters is no year"
    else:
        reason = f"{candidate!r} is not a year written in digits 0-9"
    raise _wrong_year(reason, _summary()["latest"])


def _base_year(year: int, latest: dict[int, str]) -> int:
    """``year`` when the stored data has a health index for it, else ``WrongYear``."""
    if year in latest:
        return year
    raise _wrong_year(f"{year} is not a base year with a health index", latest)


def _wrong_year(problem: str, latest: dict[int, str]) -> WrongYear:
    valid = sorted(latest)
    if not valid:
        return WrongYear(f"{problem}; no health index is stored yet.", valid_base_years=valid)
    return WrongYear(f"{problem}; use one of {', '.join(map(str, valid))}.", valid_base_years=valid)


def _stamp(body: dict[str, Any], state: Freshness) -> dict[str, Any]:
    return {**body, "retrieved_at": state.retrieved_at, "stale": state.stale}


def current(*, base_year: str | None) -> dict[str, Any]:
    """The latest month with a health index: every base year's value, or one base year's."""
    wanted = None if base_year is None else _written_year(base_year)
    state, summary = _read_state(base_year=wanted)
    latest = summary["latest"]
    if wanted is None:
        if not latest:
            raise IndexNotPublished("No health index is stored.")
        month = max(latest.values())
        return _stamp({"month": month, "indices": summary["months"][month]}, state)
    year = _base_year(wanted, latest)
    month = latest[year]
    for value in summary["months"][month]:
        if value["base_year"] == year:
            return _stamp({"month": month, **value}, state)
    # Only when a refresh committed between the summary's queries (they share no snapshot).
    raise IndexNotPublished(f"No health index is stored for {month}, base year {year}.")


def month_values(*, month: str, base_year: str | None) -> dict[str, Any]:
    """One month's health index: every base year's value, or one base year's."""
    month = normalise_month(month)
    wanted = None if base_year is None else _written_year(base_year)
    state, summary = _read_state(base_year=wanted)
    year = None if wanted is None else _base_year(wanted, summary["latest"])
    values = _values_of(summary, month)
    if year is not None:
        values = [row for row in values if row["base_year"] == year]
    if not values:
        base = "" if year is None else f" in base year {year}"
        raise IndexNotPublished(f"No health index is published for {month}{base}.")
    if year is not None:
        return _stamp({"month": month, **values[0]}, state)
    return _stamp({"month": month, "indices": values}, state)


def history(
    *, base_year: str, start: str | None, end: str | None, page: int, page_size: int
) -> dict[str, Any]:
    """A base year's monthly series, oldest first, one page at a time."""
    wanted = _written_year(base_year)
    state, summary = _read_state(base_year=wanted)
    year = _base_year(wanted, summary["latest"])
    first = start or "0001-01"
    last = end or "9999-12"
    if (page - 1) * page_size > MAX_OFFSET:
        # Past any series: an empty page, without an OFFSET the database cannot hold.
        total = _history(summary, year, first, last, 1, page_size)["total"]
        result = {"items": [], "total": total}
    else:
        result = _history(summary, year, first, last, page, page_size)
    body = {
        "base_year": year,
        "items": result["items"],
        "total": result["total"],
        "page": page,
        "page_size": page_size,
        "pages": (result["total"] + page_size - 1) // page_size,
    }
    return _stamp(body, state)


def _values_of(summary: dict[str, Any], month: str) -> list[dict[str, Any]]:
    """A month's values: from the summary when it is a latest month, else read through."""
    return summary["months"].get(month) or _month_values(summary, month)


def _index(summary: dict[str, Any], year: int, month: str) -> Decimal:
    for row in _values_of(summary, month):
        if row["base_year"] == year:
            return Decimal(row["value"])
    raise IndexNotPublished(f"No health index is published for {month} in base year {year}.")


def indexation(
    *, amount: Decimal, base_year: int, start_month: str, target_month: str
) -> dict[str, Any]:
    """Belgian rent indexation: ``amount x index(target) / index(start)``, to the cent."""
    wanted = _written_year(base_year)
    _, summary = _read_state(base_year=wanted)
    year = _base_year(wanted, summary["latest"])
    start_index = _index(summary, year, start_month)
    target_index = _index(summary, year, target_month)
    indexed = (amount * target_index / start_index).quantize(CENT, rounding=ROUND_HALF_UP)
    return {
        "indexed_amount": indexed,
        "start_index": start_index,
        "target_index": target_index,
        "base_year": year,
    }
