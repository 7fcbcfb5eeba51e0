"""``/zipcodes``: the risk factor of a zipcode, and the zipcodes of a risk factor."""

from __future__ import annotations

from typing import Any

from flask import Response
from flask.views import MethodView

from refapi.api import DATABASE_ERRORS, Blueprint
from refapi.errors import PROBLEM_MIMETYPE, ProblemSchema
from refapi.zipcodes import cli, services
from refapi.zipcodes.models import MAX_ZIPCODE, MIN_ZIPCODE
from refapi.zipcodes.schemas import ZipcodeListArgs, ZipcodePageSchema, ZipcodeSchema

blp = Blueprint("zipcodes", __name__, description="The risk factor (A, B or C) of zipcodes.")
blp.cli.add_command(cli.import_command)

ZIPCODE_PARAMETER = {
    "in": "path",
    "name": "zipcode",
    "required": True,
    "description": f"A Belgian zipcode: four digits, {MIN_ZIPCODE} to {MAX_ZIPCODE}.",
    "schema": {"type": "integer", "minimum": MIN_ZIPCODE, "maximum": MAX_ZIPCODE},
    "example": 9000,
}


@blp.route("/zipcodes/<zipcode>", parameters=[ZIPCODE_PARAMETER])
class Zipcode(MethodView):
    @blp.response(200, ZipcodeSchema, description="The zipcode and its risk factor.")
    @blp.alt_response(
        400,
        schema=ProblemSchema,
        content_type=PROBLEM_MIMETYPE,
        description="`ZIPCODE_NOT_VALID`: not four digits from 1000 to 9999.",
    )
    @blp.alt_response(
        404,
        schema=ProblemSchema,
        content_type=PROBLEM_MIMETYPE,
        description="`ZIPCODE_NOT_FOUND`: a valid zipcode that the risk table does not have.",
    )
    @blp.alt_response(503, response=DATABASE_ERRORS)
    def get(self, zipcode: str) -> dict[str, Any]:
        """Get the risk factor of a zipcode."""
        return services.read(zipcode=services.parse_zipcode(zipcode))


@blp.route("/zipcodes")
class Zipcodes(MethodView):
    @blp.arguments(ZipcodeListArgs, location="query", as_kwargs=True)
    @blp.response(
        200, ZipcodePageSchema, description="A page of zipcodes (empty past the last page)."
    )
    @blp.alt_response(
        422,
        schema=ProblemSchema,
        content_type=PROBLEM_MIMETYPE,
        description=(
            "`RISK_FACTOR_NOT_VALID`: a factor other than A, B or C; `VALIDATION_ERROR`: "
            "a missing factor or a page argument out of range."
        ),
    )
    @blp.alt_response(503, response=DATABASE_ERRORS)
    def get(self, risk_factor: str, page: int, page_size: int) -> Response:
        """List the zipcodes of a risk factor, in ascending order, a page at a time.

        A factor that no zipcode has is an empty page.
        """
        body = services.list_zipcodes(risk_factor=risk_factor, page=page, page_size=page_size)
        # Already serialised with ZipcodePageSchema, as cached.
        return Response(body, mimetype="application/json")
