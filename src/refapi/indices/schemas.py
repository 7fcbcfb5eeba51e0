from __future__ import annotations

import re
from typing import Any

import marshmallow as ma

from refapi.fields import AsciiDecimal
from refapi.indices.services import MONTH_PATTERN
from refapi.pagination import PageArgsSchema, PageSchema

MONTH = {"pattern": MONTH_PATTERN, "example": "2020-10"}
MONTH_MESSAGE = "Write the month as YYYY-MM, e.g. 2020-10."
MAX_AMOUNT = 1_000_000_000


def _month_field(description: str, **kwargs: Any) -> ma.fields.String:
    return ma.fields.String(
        validate=ma.validate.Regexp(
            re.compile(MONTH_PATTERN.rstrip("$") + r"\Z"), error=MONTH_MESSAGE
        ),
        metadata={"description": description, **MONTH},
        **kwargs,
    )


class BaseYearArgs(ma.Schema):
    class Meta:
        unknown = ma.RAISE

    # Text, not an integer: any value the data does not know, `abc` included, is a WRONG_YEAR
    # answer that lists the valid base years.
    base_year = ma.fields.String(
        metadata={
            "description": "A base year with a health index (1988, 1996, 2004, 2013, ...). "
            "Omitted: every base year.",
            "example": "2013",
        },
    )


class HistoryArgs(PageArgsSchema):
    base_year = ma.fields.String(
        required=True,
        metadata={"description": "A base year with a health index.", "example": "2013"},
    )
    start = _month_field("First month, included. Omitted: the first published.", data_key="from")
    end = _month_field("Last month, included. Omitted: the latest published.", data_key="to")

    @ma.validates_schema
    def _in_order(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if data.get("start") and data.get("end") and data["end"] < data["start"]:
            raise ma.ValidationError("`to` must not be before `from`.", "to")


class _Stamped(ma.Schema):
    retrieved_at = ma.fields.DateTime(
        required=True, metadata={"description": "When this data was fetched from Statbel."}
    )
    stale = ma.fields.Boolean(
        required=True,
        metadata={
            "description": "True when the data is older than the refresh period because "
            "Statbel could not be reached: the latest month may be missing."
        },
    )


def _value_fields() -> dict[str, ma.fields.Field]:
    return {
        "value": ma.fields.Float(required=True, metadata={"example": 110.11}),
        "smoothed": ma.fields.Float(
            required=True,
            allow_none=True,
            metadata={"description": "The smoothed health index.", "example": 107.86},
        ),
    }


BaseYearValue = ma.Schema.from_dict(
    {"base_year": ma.fields.Integer(required=True, metadata={"example": 2013}), **_value_fields()},
    name="BaseYearValue",
)
MonthValue = ma.Schema.from_dict(
    {"month": ma.fields.String(required=True, metadata=MONTH), **_value_fields()},
    name="MonthValue",
)


class HealthIndexSchema(_Stamped):
    """A month's health index: `indices` for every base year, or one base year's value."""

    month = ma.fields.String(required=True, metadata=MONTH)
    indices = ma.fields.List(
        ma.fields.Nested(BaseYearValue),
        metadata={"description": "Every base year with a value; only without `base_year`."},
    )
    base_year = ma.fields.Integer(
        metadata={"description": "Only with `base_year`.", "example": 2013}
    )
    value = ma.fields.Float(
        metadata={"description": "The health index; only with `base_year`.", "example": 110.11}
    )
    smoothed = ma.fields.Float(
        allow_none=True,
        metadata={"description": "The smoothed health index; only with `base_year`."},
    )


class HistorySchema(PageSchema, _Stamped):
    base_year = ma.fields.Integer(required=True)
    items = ma.fields.List(ma.fields.Nested(MonthValue), required=True)


class IndexationIn(ma.Schema):
    class Meta:
        unknown = ma.RAISE

    amount = AsciiDecimal(
        required=True,
        places=None,
        validate=ma.validate.Range(min=0, max=MAX_AMOUNT, min_inclusive=False),
        metadata={
            "description": "The base amount (e.g. the rent at signing), more than 0: a JSON "
            'number, or text in digits 0-9 with an optional fraction (`"850.00"`).',
            "example": 850,
            # apispec would write the Decimal bounds as strings.
            "minimum": 0,
            "exclusiveMinimum": True,
            "maximum": MAX_AMOUNT,
        },
    )
    base_year = ma.fields.Integer(
        required=True, strict=True, metadata={"description": "Base year.", "example": 2013}
    )
    start_month = _month_field(
        "The month before the contract was signed (its index is the start index).",
        required=True,
    )
    target_month = _month_field(
        "The month before the anniversary (its index is the target index).", required=True
    )

    @ma.validates_schema
    def _in_order(self, data: dict[str, Any], **_kwargs: Any) -> None:
        start, target = data.get("start_month"), data.get("target_month")
        if start and target and target < start:
            raise ma.ValidationError(
                "The target month must not be before the start month.", "target_month"
            )


class IndexationSchema(ma.Schema):
    indexed_amount = ma.fields.Float(
        required=True,
        metadata={"description": "amount x target_index / start_index, to the cent."},
    )
    start_index = ma.fields.Float(required=True)
    target_index = ma.fields.Float(required=True)
    base_year = ma.fields.Integer(required=True)
