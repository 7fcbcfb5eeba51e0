"""Page arguments and paged responses, shared by every listing."""

from __future__ import annotations

from typing import Any

import marshmallow as ma

from refapi.fields import AsciiInteger

MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100


class PageArgsSchema(ma.Schema):
    class Meta:
        unknown = ma.RAISE

    page = AsciiInteger(
        load_default=1,
        validate=ma.validate.Range(min=1),
        metadata={"description": "Page number, from 1, in digits 0-9."},
    )
    page_size = AsciiInteger(
        load_default=DEFAULT_PAGE_SIZE,
        validate=ma.validate.Range(min=1, max=MAX_PAGE_SIZE),
        metadata={"description": f"Items per page, 1 to {MAX_PAGE_SIZE}, in digits 0-9."},
    )


class PageSchema(ma.Schema):
    """A page of a listing: ``items`` plus where it stands in the whole."""

    page = ma.fields.Integer(required=True)
    page_size = ma.fields.Integer(required=True)
    total = ma.fields.Integer(required=True, metadata={"description": "Items in all pages."})
    pages = ma.fields.Integer(required=True, metadata={"description": "Number of pages."})


def page_schema(item: type[ma.Schema] | ma.fields.Field, name: str) -> type[ma.Schema]:
    """A named page schema whose ``items`` are of the given schema or field."""
    items = (
        ma.fields.List(ma.fields.Nested(item), required=True)
        if isinstance(item, type)
        else ma.fields.List(item, required=True)
    )
    return type(name, (PageSchema,), {"items": items})


def page_body(*, items: list[Any], total: int, page: int, page_size: int) -> dict[str, Any]:
    return {
        "items": items,
        "total": total,
        "page": page,
        "page_size": page_size,
        "pages": (total + page_size - 1) // page_size,
    }
