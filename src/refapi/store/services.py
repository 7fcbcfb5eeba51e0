"""The store's logic: reads through the cache, atomic writes, backup and restore.

Every write is one conditional SQL statement (an upsert, an ``INSERT ... ON CONFLICT DO
NOTHING``, an ``UPDATE``/``DELETE ... WHERE version IN (...)``), so the database decides
races: no lost update and no double create, on SQLite and PostgreSQL alike.

Reads go through the cache with ``refapi.caching.read_through``: a hit is one cache operation,
and a miss fills the cache under a lease. The cache holds an entry as the API answers it (its
version and its JSON body), so that a hit serialises nothing. A write commits, then deletes the
key's cache entry, and with it the lease of any read in flight: a read that began before the
commit cannot fill the cache with the value the write replaced, so no read that starts after a
write has returned can see that value.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal, NamedTuple, TypedDict

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.dialects import postgresql, sqlite

from refapi.api import serialised
from refapi.caching import read_through
from refapi.extensions import cache, db, read_rows
from refapi.pagination import page_body
from refapi.store.errors import (
    AlreadyExists,
    KeyNotFound,
    ValueTooLarge,
    VersionExhausted,
    VersionMismatch,
)
from refapi.store.models import MAX_VERSION, Entry
from refapi.store.schemas import EntrySchema

ANY_VERSION: Literal["*"] = "*"
IfMatch = Collection[int] | Literal["*"] | None

_entries = Entry.__table__
_ENTRY_COLUMNS = (
    _entries.c.key,
    _entries.c.value,
    _entries.c.version,
    _entries.c.created_at,
    _entries.c.updated_at,
)
# Built once: building a statement and its SQL cache key on every read cost more than the
# query (issue 8).
_SELECT_ENTRY = sa.select(*_ENTRY_COLUMNS).where(
    _entries.c.client == sa.bindparam("client"), _entries.c.key == sa.bindparam("key")
)
_ENTRY_SCHEMA = EntrySchema()


# SQLAlchemy compiles its dialects' INSERT ... ON CONFLICT again on every execution: in 2.0 they
# have no cache key (their Insert sets inherit_cache = False), and compiling the upsert cost a
# write more CPU than the database spent on it (issue 8). The statements are the same on SQLite
# and PostgreSQL, so they are written once, as text statements, which SQLAlchemy caches.
# "key" is quoted: it is a keyword in SQLite.
_INSERT = (
    'INSERT INTO store_entries (client, "key", value, version, created_at, updated_at) '
    'VALUES (:client, :key, :value, 1, :now, :now) ON CONFLICT (client, "key")'
)


def _written_once(sql: str) -> sa.TextualSelect:
    """A write of one entry, with its columns' types, that answers the entry (RETURNING)."""
    return (
        sa.text(f'{sql} RETURNING "key", value, version, created_at, updated_at')
        .bindparams(
            sa.bindparam("client", type_=_entries.c.client.type),
            sa.bindparam("key", type_=_entries.c.key.type),
            sa.bindparam("value", type_=_entries.c.value.type),
            sa.bindparam("now", type_=_entries.c.updated_at.type),
        )
        .columns(*_ENTRY_COLUMNS)
    )


_CREATE = _written_once(f"{_INSERT} DO NOTHING")
_UPSERT = _written_once(
    f"{_INSERT} DO UPDATE SET value = excluded.value, version = store_entries.version + 1, "
    f"updated_at = excluded.updated_at WHERE store_entries.version < {MAX_VERSION}"
)


class EntryData(TypedDict):
    key: str
    value: Any
    version: int
    created_at: datetime
    updated_at: datetime


class EntryJSON(NamedTuple):
    """An entry as ``GET /get/<key>`` answers it: its version (the ETag) and its JSON body."""

    version: int
    body: bytes


@dataclass(frozen=True)
class Saved:
    entry: EntryData
    created: bool


def value_size(value: Any) -> int:
    """Bytes of the value's compact UTF-8 JSON serialisation: what the size limit counts."""
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


def read(*, client: str, key: str) -> EntryJSON:
    """The entry, serialised as the API answers it (``EntrySchema``, the app's JSON)."""
    found = read_through(cache, _cache_key(client, key), lambda: _load_json(client, key))
    if found is None:
        raise KeyNotFound(f"There is no key {key!r}.")
    return EntryJSON(*found)


def save(
    *,
    client: str,
    key: str,
    value: Any,
    if_match: IfMatch = None,
    create_only: bool = False,
) -> Saved:
    """Store ``value`` under ``key``.

    ``if_match``: write only if the stored version is one of these (``"*"``: any, the key must
    exist). ``create_only``: write only if the key does not exist.
    """
    limit = current_app.config["STORE_MAX_VALUE_BYTES"]
    size = value_size(value)
    if size > limit:
        raise ValueTooLarge(
            f"The value is {size} bytes as JSON; the limit is {limit}.", max_bytes=limit
        )
    now = datetime.now(timezone.utc)
    if create_only and if_match is not None:
        # Both conditions, evaluated in RFC 9110's order; they can never both hold.
        current = _current_version(client, key)
        db.session.rollback()
        if current is None or not _version_in(if_match, current):
            raise _mismatch(key, current)
        raise _already_exists(key, current)
    parameters = {"client": client, "key": key, "value": value, "now": now}
    if create_only:
        row = db.session.execute(_CREATE, parameters).first()
    elif if_match is not None:
        statement = (
            sa.update(_entries)
            .where(_is(client, key), _version_matches(if_match), _entries.c.version < MAX_VERSION)
            .values(value=value, version=_entries.c.version + 1, updated_at=now)
            .returning(*_ENTRY_COLUMNS)
        )
        row = db.session.execute(statement).first()
    else:
        row = db.session.execute(_UPSERT, parameters).first()
    if row is None:
        current = _current_version(client, key)
        db.session.rollback()
        if create_only:
            raise _already_exists(key, current)
        if current == MAX_VERSION and (if_match is None or _version_in(if_match, current)):
            raise VersionExhausted(
                f"The key {key!r} is at the highest version, {MAX_VERSION}: delete it, then "
                "save it again.",
                current_version=current,
            )
        raise _mismatch(key, current)
    db.session.commit()
    _invalidate(client, key)
    entry = _entry_data(row)
    return Saved(entry=entry, created=entry["version"] == 1)


def delete(*, client: str, key: str, if_match: IfMatch = None) -> None:
    statement = sa.delete(_entries).where(_is(client, key)).returning(_entries.c.version)
    if if_match is not None:
        statement = statement.where(_version_matches(if_match))
    deleted = db.session.execute(statement).first()
    if deleted is None:
        current = _current_version(client, key)
        db.session.rollback()
        if current is None:
            raise KeyNotFound(f"There is no key {key!r}.")
        raise _mismatch(key, current)
    db.session.commit()
    _invalidate(client, key)


def list_keys(*, client: str, prefix: str = "", page: int, page_size: int) -> dict[str, Any]:
    """The client's keys in code-point order, with their versions, one page at a time."""
    condition = _entries.c.client == client
    if prefix:
        # A range on (client, key) uses the unique index; LIKE would not, and is
        # case-insensitive on SQLite.
        condition = sa.and_(condition, _entries.c.key >= prefix)
        upper = prefix_upper_bound(prefix)
        if upper is not None:
            condition = sa.and_(condition, _entries.c.key < upper)
    total = db.session.execute(sa.select(sa.func.count()).where(condition)).scalar_one()
    offset = (page - 1) * page_size
    # Past the end there is nothing to read, and a huge page number would overflow OFFSET.
    rows = (
        db.session.execute(
            sa.select(_entries.c.key, _entries.c.version, _entries.c.updated_at)
            .where(condition)
            .order_by(_entries.c.key)
            .limit(page_size)
            .offset(offset)
        ).all()
        if offset < total
        else []
    )
    items = [
        {"key": row.key, "version": row.version, "updated_at": _utc(row.updated_at)} for row in rows
    ]
    return page_body(items=items, total=total, page=page, page_size=page_size)


def prefix_upper_bound(prefix: str) -> str | None:
    """The least string above every string that starts with ``prefix`` (None: no bound)."""
    characters = list(prefix)
    while characters:
        following = ord(characters.pop()) + 1
        if 0xD800 <= following <= 0xDFFF:
            following = 0xE000
        if following <= 0x10FFFF:
            return "".join(characters) + chr(following)
    return None


def export_entries(*, client: str | None = None) -> Iterator[dict[str, Any]]:
    """Every entry (of one client, or all), ordered by client and key, read as one snapshot."""
    statement = sa.select(_entries.c.client, *_ENTRY_COLUMNS).order_by(
        _entries.c.client, _entries.c.key
    )
    if client is not None:
        statement = statement.where(_entries.c.client == client)
    for row in db.session.execute(statement.execution_options(yield_per=500)):
        yield {"client": row.client, **_entry_data(row)}


def existing_keys(
    pairs: Iterable[tuple[str, str]], *, at_version: int | None = None
) -> set[tuple[str, str]]:
    """Which of these (client, key) pairs are stored (at that version, if one is given)."""
    wanted = set(pairs)
    versions = [] if at_version is None else [_entries.c.version == at_version]
    found: set[tuple[str, str]] = set()
    clients = {client for client, _ in wanted}
    for client in clients:
        keys = [key for owner, key in wanted if owner == client]
        for start in range(0, len(keys), 500):
            rows = db.session.execute(
                sa.select(_entries.c.key).where(
                    _entries.c.client == client,
                    _entries.c.key.in_(keys[start : start + 500]),
                    *versions,
                )
            )
            found.update((client, key) for (key,) in rows)
    return found


def import_entries(entries: list[dict[str, Any]], *, replace: bool = False) -> None:
    """Store all these entries in one transaction, or none of them.

    Versions and times are kept as given. With ``replace``, an existing key is overwritten;
    without it, an existing key makes the whole import fail (IntegrityError). An existing key
    replaced by an entry without a version or a creation time is a new write of that key: it
    gets the next version, so that no client's If-Match on an earlier one matches again, and
    keeps its own creation time (or the entry's update time, if that is earlier).
    """
    now = datetime.now(timezone.utc)
    batches: dict[tuple[bool, bool], list[dict[str, Any]]] = {}
    for entry in entries:
        given = (entry.get("version") is not None, entry.get("created_at") is not None)
        batches.setdefault(given if replace else (True, True), []).append(
            {
                "client": entry["client"],
                "key": entry["key"],
                "value": entry["value"],
                "version": entry.get("version") or 1,
                # A time not given is the other one, or now: never an update before the creation.
                "created_at": entry.get("created_at") or entry.get("updated_at") or now,
                "updated_at": entry.get("updated_at") or entry.get("created_at") or now,
            }
        )
    try:
        for (version_given, created_given), rows in batches.items():
            for start in range(0, len(rows), 500):
                insert = _dialect_module().insert(_entries)
                if replace:
                    insert = insert.on_conflict_do_update(
                        index_elements=["client", "key"],
                        set_={
                            "value": insert.excluded.value,
                            "updated_at": insert.excluded.updated_at,
                            "version": (
                                insert.excluded.version if version_given else _entries.c.version + 1
                            ),
                            "created_at": (
                                insert.excluded.created_at
                                if created_given
                                else _kept_creation(insert.excluded.updated_at)
                            ),
                        },
                    )
                db.session.execute(insert, rows[start : start + 500])
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    # One command per batch, not a round trip per entry; with Redis down, a no-op the backend
    # remembers (see _invalidate).
    keys = [
        name
        for rows in batches.values()
        for row in rows
        for name in _cache_keys(row["client"], row["key"])
    ]
    for start in range(0, len(keys), 500):
        cache.delete_many(*keys[start : start + 500])


def _kept_creation(updated_at: Any) -> Any:
    """The existing key's creation time, or the entry's update time where that is earlier.

    An entry restored with its update time only was written then, so its key existed then:
    never an update before the creation.
    """
    return sa.case((updated_at < _entries.c.created_at, updated_at), else_=_entries.c.created_at)


def _load_json(client: str, key: str) -> tuple[int, bytes] | None:
    # A plain tuple in the cache: unpickling needs no class of ours.
    rows = read_rows(_SELECT_ENTRY, {"client": client, "key": key})
    if not rows:
        return None
    row = rows[0]
    return row.version, serialised(_ENTRY_SCHEMA, _entry_data(row))


def _cache_key(client: str, key: str) -> str:
    return _cache_keys(client, key)[0]


def _cache_keys(client: str, key: str) -> tuple[str, str]:
    """The entry's cache key, then the one releases before issue 8's JSON entries used.

    Those cached a dict under "store.entry.". During a rolling deploy both releases share one
    Redis: a write deletes both keys, so that a replica still on the old release cannot serve a
    value the write replaced. Drop the second once no replica runs the old release.
    """
    # Hashed: keys may hold spaces and be 256 characters long, cache keys should not.
    digest = hashlib.sha256(f"{client}\n{key}".encode()).hexdigest()
    return f"store.json.{digest}", f"store.entry.{digest}"


def _invalidate(client: str, key: str) -> None:
    # With Redis down this is a no-op that the cache backend remembers: it empties itself
    # before serving again, so the lost invalidation cannot surface later.
    cache.delete_many(*_cache_keys(client, key))


def _dialect_module() -> Any:
    name = db.session.get_bind().dialect.name
    if name == "postgresql":
        return postgresql
    if name == "sqlite":
        return sqlite
    raise NotImplementedError(f"the store supports SQLite and PostgreSQL, not {name}")


def _is(client: str, key: str) -> sa.ColumnElement[bool]:
    return sa.and_(_entries.c.client == client, _entries.c.key == key)


def _version_matches(if_match: Collection[int] | Literal["*"]) -> sa.ColumnElement[bool]:
    if if_match == ANY_VERSION:
        return sa.true()
    return _entries.c.version.in_(sorted(if_match))


def _current_version(client: str, key: str) -> int | None:
    return db.session.execute(sa.select(_entries.c.version).where(_is(client, key))).scalar()


def _version_in(if_match: Collection[int] | Literal["*"], version: int) -> bool:
    return if_match == ANY_VERSION or version in if_match


def _already_exists(key: str, current: int | None) -> AlreadyExists:
    return AlreadyExists(
        f"The key {key!r} already exists (If-None-Match: *).", current_version=current
    )


def _mismatch(key: str, current: int | None) -> VersionMismatch:
    detail = (
        f"The key {key!r} does not exist (If-Match)."
        if current is None
        else f"The key {key!r} is at version {current}, not the one If-Match names."
    )
    return VersionMismatch(detail, current_version=current)


def _utc(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything the store writes is UTC.
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def _entry_data(row: Any) -> EntryData:
    return {
        "key": row.key,
        "value": row.value,
        "version": row.version,
        "created_at": _utc(row.created_at),
        "updated_at": _utc(row.updated_at),
    }
