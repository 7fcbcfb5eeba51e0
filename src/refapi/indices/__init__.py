"""indices"""

from refapi.indices import models  # noqa: F401  (registers the tables)
