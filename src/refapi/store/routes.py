"""The keyed JSON store: /save, /get/<key>, /delete/<key>, /keys."""

from refapi.api import Blueprint
from refapi.store import models  # noqa: F401  (registers the tables; services will import them)

blp = Blueprint("store", __name__, description="Small JSON documents under string keys.")
