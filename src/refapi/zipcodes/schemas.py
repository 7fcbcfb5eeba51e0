"""What the zipcode endpoints accept and answer."""

from __future__ import annotations

import marshmallow as ma

from refapi.pagination import PageArgsSchema, page_schema
from refapi.zipcodes.models import MAX_ZIPCODE, MIN_ZIPCODE, RISK_FACTORS

RISK_FACTOR_DESCRIPTION = "The risk factor: A, B or C."


class ZipcodeSchema(ma.Schema):
    """A Belgian zipcode and its risk factor."""

    class Meta:
        unknown = ma.RAISE

    zipcode = ma.fields.Integer(
        required=True,
        validate=ma.validate.Range(min=MIN_ZIPCODE, max=MAX_ZIPCODE),
        metadata={"example": 9000},
    )
    risk_factor = ma.fields.String(
        required=True,
        validate=ma.validate.OneOf(RISK_FACTORS),
        metadata={"description": RISK_FACTOR_DESCRIPTION, "example": "B"},
    )


ZipcodePageSchema = page_schema(ZipcodeSchema, "ZipcodePage")


class ZipcodeListArgs(PageArgsSchema):
    # The factor is checked by the service, which answers 422 RISK_FACTOR_NOT_VALID with a
    # message about factors instead of a generic validation error; the enum documents it.
    risk_factor = ma.fields.String(
        required=True,
        metadata={
            "description": (
                "The risk factor whose zipcodes to list: A, B or C. Lower case is accepted "
                "(`a` is `A`); anything else is 422 `RISK_FACTOR_NOT_VALID`."
            ),
            "enum": list(RISK_FACTORS),
        },
    )
