"""zipcodes"""

from refapi.zipcodes import models  # noqa: F401  (registers the tables)
