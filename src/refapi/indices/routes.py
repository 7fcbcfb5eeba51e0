"""The Belgian health index, from Statbel."""

from refapi.api import Blueprint
from refapi.indices import models  # noqa: F401  (registers the tables; services will import them)

blp = Blueprint("indices", __name__, description="The Belgian health index (gezondheidsindex).")
