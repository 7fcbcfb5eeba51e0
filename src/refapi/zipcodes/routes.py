"""Risk factor of Belgian zipcodes."""

from refapi.api import Blueprint
from refapi.zipcodes import models  # noqa: F401  (registers the tables; services will import them)

blp = Blueprint("zipcodes", __name__, description="The risk factor (A, B or C) of zipcodes.")
