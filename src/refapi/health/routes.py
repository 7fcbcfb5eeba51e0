"""``/ping`` (liveness) and ``/ready`` (readiness), both public."""

from __future__ import annotations

from flask.views import MethodView

from refapi.api import RETRY_AFTER, Blueprint, public
from refapi.errors import DATABASE_RETRY_AFTER_SECONDS, PROBLEM_MIMETYPE, ApiError, ProblemSchema
from refapi.health import services
from refapi.health.schemas import PingSchema, ReadinessSchema

blp = Blueprint("health", __name__, description="Liveness and readiness, without a key.")


class NotReady(ApiError):
    status = 503
    code = "NOT_READY"
    title = "Service Unavailable"


# A function view, not a MethodView like the others: the liveness probe is the hottest route, and
# MethodView's dispatch (an instance, the method looked up by name, two more checks for a
# coroutine) was about a quarter of the stack's cost beyond a bare Flask /ping (issue 8).
@blp.route("/ping", methods=["GET"], endpoint="Ping")
@public
# Documented, not serialised: a constant body needs no schema dump (issue 8's profile: about a
# third of the framework's overhead).
@blp.alt_response(200, schema=PingSchema, success=True, description="Alive.")
def ping() -> dict[str, str]:
    """Liveness: the process answers. Touches neither the database nor the cache."""
    return {"status": "ok"}


@blp.route("/ready")
class Ready(MethodView):
    @public
    @blp.response(200, ReadinessSchema)
    @blp.alt_response(
        503,
        description="`NOT_READY`: the database does not answer; `checks` says what each "
        "dependency answered. Ask again after `Retry-After` seconds.",
        schema=ProblemSchema,
        content_type=PROBLEM_MIMETYPE,
        headers={"Retry-After": RETRY_AFTER},
    )
    def get(self) -> dict[str, object]:
        """Readiness: the database answers. A cache that does not answer is reported `degraded`.

        503 names the dependency that failed, in `checks`.
        """
        checks = services.readiness()
        if checks["database"] != services.OK:
            raise NotReady(
                "The database does not answer.",
                headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
                checks=checks,
            )
        status = services.OK if checks["cache"] == services.OK else services.DEGRADED
        return {"status": status, "checks": checks}
