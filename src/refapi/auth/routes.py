"""``/authorize``: tells a caller whether its key is good, and whose it is."""

from flask import g
from flask.views import MethodView

from refapi.api import Blueprint
from refapi.auth.schemas import AuthorizationSchema

blp = Blueprint("auth", __name__, description="Check an API key.")


@blp.route("/authorize")
class Authorization(MethodView):
    @blp.response(200, AuthorizationSchema)
    def get(self) -> dict[str, object]:
        """Check the API key and name its client.

        Answers 200 with the client's name when the key is good, 401 otherwise.
        """
        return {"authorized": True, "client": g.client}

    @blp.response(200, AuthorizationSchema)
    def post(self) -> dict[str, object]:
        """Check the API key and name its client (POST, for clients that cannot send GET).

        Answers 200 with the client's name when the key is good, 401 otherwise.
        """
        return {"authorized": True, "client": g.client}
