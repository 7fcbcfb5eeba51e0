"""What the store accepts and answers, with every limit on keys and values."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import timezone
from typing import Any

import marshmallow as ma

from refapi.errors import ProblemSchema
from refapi.pagination import PageArgsSchema, page_schema
from refapi.store.models import MAX_CLIENT_LENGTH, MAX_KEY_LENGTH, MAX_VERSION

# Control characters (Unicode category Cc) are refused in keys; lone surrogates cannot be
# stored as UTF-8 at all, so they are refused in keys and in every string of a value.
_KEY_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
# PostgreSQL's JSONB cannot hold \u0000; refusing it everywhere keeps both databases alike.
_TEXT_FORBIDDEN = re.compile("[\x00\ud800-\udfff]")
KEY_PATTERN = "^[^\\u0000-\\u001f\\u007f-\\u009f]+$"
_CLIENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")

# Deeper values would come close to Python's recursion limit when they are serialised again.
MAX_VALUE_DEPTH = 100

KEY_RULES = (
    f"1 to {MAX_KEY_LENGTH} characters, case-sensitive, without control characters; "
    "`/`, spaces, `%` and any other printable character are allowed."
)


KEY_LENGTH_PROBLEM = f"A key is 1 to {MAX_KEY_LENGTH} characters long."


def key_problem(key: str) -> str | None:
    """Why ``key`` is not a valid key, or None when it is."""
    if not 1 <= len(key) <= MAX_KEY_LENGTH:
        return KEY_LENGTH_PROBLEM
    return _character_problem(key)


def _character_problem(key: str, what: str = "A key") -> str | None:
    if found := _KEY_FORBIDDEN.search(key):
        if "\ud800" <= found.group() <= "\udfff":
            return f"{what} cannot contain unpaired surrogates: it is UTF-8 text."
        return f"{what} cannot contain control characters."
    return None


def value_problem(value: Any) -> str | None:
    """Why ``value`` cannot be stored, or None when it can. Walks the value without recursion."""
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        # The arrays and objects count, not the text or number inside the innermost one.
        if depth > MAX_VALUE_DEPTH and isinstance(item, (dict, list)):
            return f"Values nest at most {MAX_VALUE_DEPTH} arrays or objects deep."
        if isinstance(item, str):
            if _TEXT_FORBIDDEN.search(item):
                return "Strings cannot contain \\u0000 or unpaired surrogates."
        elif isinstance(item, bool) or item is None or isinstance(item, int):
            continue
        elif isinstance(item, float):
            if not math.isfinite(item):
                return "Numbers must be finite: NaN and Infinity are not JSON."
        elif isinstance(item, dict):
            for name, member in item.items():
                if not isinstance(name, str) or _TEXT_FORBIDDEN.search(name):
                    return "Object member names cannot contain \\u0000 or unpaired surrogates."
                pending.append((member, depth + 1))
        elif isinstance(item, list):
            pending.extend((member, depth + 1) for member in item)
        else:
            return "Not a JSON value."
    return None


def _validate_value(value: Any) -> None:
    problem = value_problem(value)
    if problem:
        raise ma.ValidationError(problem)


def _characters_of(what: str) -> Callable[[str], None]:
    """A validator of the characters of ``what`` ("A key"); the length is Length's to check
    (and to document in the OpenAPI schema), said once."""

    def validate(text: str) -> None:
        problem = _character_problem(text, what)
        if problem:
            raise ma.ValidationError(problem)

    return validate


def _key_field(**kwargs: Any) -> ma.fields.String:
    return ma.fields.String(
        validate=[
            ma.validate.Length(min=1, max=MAX_KEY_LENGTH, error=KEY_LENGTH_PROBLEM),
            _characters_of("A key"),
        ],
        metadata={"description": "The key: " + KEY_RULES, "pattern": KEY_PATTERN},
        **kwargs,
    )


def _value_field(**kwargs: Any) -> ma.fields.Raw:
    return ma.fields.Raw(
        allow_none=True,
        validate=_validate_value,
        metadata={
            "description": (
                "Any JSON value: object, array, string, number, boolean or null. Its compact "
                "UTF-8 JSON serialisation is at most `REFAPI_STORE_MAX_VALUE_BYTES` bytes "
                "(512 KiB by default), else 413. Strings cannot contain `\\u0000`; "
                f"numbers are finite; arrays and objects nest at most {MAX_VALUE_DEPTH} deep."
            )
        },
        **kwargs,
    )


class EntryIn(ma.Schema):
    """A value to store under a key."""

    class Meta:
        unknown = ma.RAISE

    key = _key_field(required=True)
    value = _value_field(required=True)


class EntrySchema(ma.Schema):
    """A stored entry."""

    key = ma.fields.String(required=True)
    value = ma.fields.Raw(required=True, allow_none=True)
    version = ma.fields.Integer(
        required=True,
        metadata={"description": "1 when the key was created, one more at each write."},
    )
    created_at = ma.fields.AwareDateTime(required=True, metadata={"description": "UTC."})
    updated_at = ma.fields.AwareDateTime(required=True, metadata={"description": "UTC."})


class KeyListArgs(PageArgsSchema):
    prefix = ma.fields.String(
        load_default="",
        validate=[
            ma.validate.Length(
                max=MAX_KEY_LENGTH, error=f"A prefix is at most {MAX_KEY_LENGTH} characters long."
            ),
            _characters_of("A prefix"),
        ],
        metadata={
            "description": "List only the keys that start with this text (case-sensitive).",
            "pattern": KEY_PATTERN.replace("]+$", "]*$"),
        },
    )


class KeyItem(ma.Schema):
    key = ma.fields.String(required=True)
    version = ma.fields.Integer(required=True)
    updated_at = ma.fields.AwareDateTime(required=True)


KeyPage = page_schema(KeyItem, "KeyPage")


class VersionConflictSchema(ProblemSchema):
    """A failed precondition: the problem, plus the version the key has now."""

    current_version = ma.fields.Integer(
        allow_none=True,
        metadata={"description": "The stored version now; null when the key does not exist."},
    )


class _UtcTime(ma.fields.AwareDateTime):
    """A time with its offset, as UTC, which the databases store (SQLite drops the offset).

    Refused when UTC puts it outside the years 1 to 9999, which no reader could give back:
    ``9999-12-31T23:59:59-14:00`` is in the year 10000 in UTC.
    """

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        moment = super()._deserialize(value, attr, data, **kwargs)
        try:
            return moment.astimezone(timezone.utc)
        except OverflowError as error:
            raise ma.ValidationError("Not a time between the years 1 and 9999 in UTC.") from error


class ExportedEntry(ma.Schema):
    """One line of an export file; ``version`` and the times are optional on import."""

    class Meta:
        unknown = ma.RAISE

    client = ma.fields.String(
        required=True,
        validate=[
            ma.validate.Length(min=1, max=MAX_CLIENT_LENGTH),
            ma.validate.Regexp(_CLIENT, error="Not a client name."),
        ],
    )
    key = _key_field(required=True)
    value = _value_field(required=True)
    # Not given: 1 for a new key, the next one for a key --replace overwrites (import_entries).
    version = ma.fields.Integer(
        load_default=None,
        allow_none=False,
        validate=ma.validate.Range(min=1, max=MAX_VERSION),
        strict=True,
    )
    created_at = _UtcTime(load_default=None)
    updated_at = _UtcTime(load_default=None)
