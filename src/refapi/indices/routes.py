"""The Belgian health index, from Statbel."""

from __future__ import annotations

from typing import Any

from flask import Response
from flask.views import MethodView
from werkzeug.routing import BaseConverter

from refapi.api import (
    DATABASE_ERRORS_DESCRIPTION,
    MALFORMED_JSON_DESCRIPTION,
    NOT_JSON_DESCRIPTION,
    RETRY_AFTER,
    Blueprint,
    serialised_once,
)
from refapi.errors import ProblemSchema
from refapi.indices import services
from refapi.indices.cli import refresh_command
from refapi.indices.schemas import (
    BaseYearArgs,
    HealthIndexSchema,
    HistoryArgs,
    HistorySchema,
    IndexationIn,
    IndexationSchema,
)

blp = Blueprint(
    "indices",
    __name__,
    url_prefix="/indices",
    description="The Belgian health index (gezondheidsindex), from Statbel's open data.",
)
blp.cli.add_command(refresh_command)
# One instance per route: serialised_once bounds the bodies it keeps per schema instance, and a
# month's answers are many where the current index's are a few.
_CURRENT_INDEX = HealthIndexSchema()
_MONTH_INDEX = HealthIndexSchema()

WRONG_YEAR = (
    "`WRONG_YEAR`: a base year without a health index, or not written in digits 0-9; "
    "`valid_base_years` lists those with one (empty while nothing is stored)."
)
NOT_PUBLISHED = "`INDEX_NOT_PUBLISHED`: no health index for that month (and base year)."
UNAVAILABLE = (
    "`UPSTREAM_UNAVAILABLE`: nothing is stored yet (so a well-formed base year cannot be "
    "checked). Either Statbel could not be reached or its file was refused so far: retry after "
    "`Retry-After` seconds; or no upstream is configured (`REFAPI_STATBEL_URL` is empty), and "
    "only an operator's import helps: no `Retry-After`. " + DATABASE_ERRORS_DESCRIPTION
)
PROBLEM = {"schema": ProblemSchema, "content_type": "application/problem+json"}
# One 503 per operation: the upstream's and the database's (refapi.api.DATABASE_ERRORS) in one.
UNAVAILABLE_503 = {
    "description": UNAVAILABLE,
    "headers": {"Retry-After": RETRY_AFTER},
    **PROBLEM,
}
MONTH_PARAMETER = {
    "in": "path",
    "name": "month",
    "description": "The month, `YYYY-MM`.",
    "schema": {"type": "string", "pattern": services.MONTH_PATTERN, "example": "2020-10"},
}


class MonthConverter(BaseConverter):
    """Any path segment but the operations beside it, so that a GET of ``indexation`` is a 405.

    A malformed month still reaches the view, which answers 400 ``WRONG_MONTH``.
    """

    regex = r"(?!(?:history|indexation)$)[^/]+"


blp.record_once(
    lambda state: state.app.url_map.converters.setdefault("index_month", MonthConverter)
)


# A function view documented with alt_response, as GET /get: no MethodView dispatch and no
# response wrapper on the hottest index route; the body is already JSON (issue 8).
@blp.route("/health", methods=["GET"], endpoint="HealthIndex")
@blp.arguments(BaseYearArgs, location="query", as_kwargs=True)
@blp.alt_response(200, schema=HealthIndexSchema, success=True)
@blp.alt_response(400, description=WRONG_YEAR, **PROBLEM)
@blp.alt_response(503, **UNAVAILABLE_503)
def health_index(base_year: str | None = None) -> Response:
    """The current health index: the latest published month, for every base year or one.

    `stale` is true when Statbel could not be reached for a while: the latest month may be
    missing.
    """
    # The same few bodies, over and over: serialised once (what flask-smorest would make).
    body = serialised_once(_CURRENT_INDEX, services.current(base_year=base_year))
    return Response(body, mimetype="application/json")


@blp.route("/health/<index_month:month>", parameters=[MONTH_PARAMETER])
class HealthIndexMonth(MethodView):
    @blp.arguments(BaseYearArgs, location="query", as_kwargs=True)
    @blp.response(200, HealthIndexSchema)
    @blp.alt_response(
        400, description="`WRONG_MONTH`: not a month written `YYYY-MM`; or " + WRONG_YEAR, **PROBLEM
    )
    @blp.alt_response(404, description=NOT_PUBLISHED, **PROBLEM)
    @blp.alt_response(503, **UNAVAILABLE_503)
    def get(self, month: str, base_year: str | None = None) -> Response:
        """A month's health index (`YYYY-MM`), for every base year or one."""
        body = serialised_once(
            _MONTH_INDEX, services.month_values(month=month, base_year=base_year)
        )
        return Response(body, mimetype="application/json")


@blp.route("/health/history")
class HealthIndexHistory(MethodView):
    @blp.arguments(HistoryArgs, location="query", as_kwargs=True)
    @blp.response(200, HistorySchema)
    @blp.alt_response(400, description=WRONG_YEAR, **PROBLEM)
    @blp.alt_response(503, **UNAVAILABLE_503)
    def get(
        self,
        base_year: str,
        page: int,
        page_size: int,
        start: str | None = None,
        end: str | None = None,
    ) -> dict[str, Any]:
        """A base year's monthly health index series, oldest first, paged."""
        return services.history(
            base_year=base_year, start=start, end=end, page=page, page_size=page_size
        )


@blp.route("/health/indexation")
class Indexation(MethodView):
    @blp.arguments(IndexationIn, as_kwargs=True)
    @blp.response(200, IndexationSchema)
    @blp.alt_response(400, description=f"{MALFORMED_JSON_DESCRIPTION}; or {WRONG_YEAR}", **PROBLEM)
    @blp.alt_response(404, description=NOT_PUBLISHED, **PROBLEM)
    @blp.alt_response(415, description=NOT_JSON_DESCRIPTION, **PROBLEM)
    @blp.alt_response(503, **UNAVAILABLE_503)
    def post(self, **indexation: Any) -> dict[str, Any]:
        """Index an amount (a rent) on the health index, the Belgian way.

        `indexed_amount = amount x index(target_month) / index(start_month)`, both in the
        same base year, rounded to the cent.
        """
        return services.indexation(**indexation)
