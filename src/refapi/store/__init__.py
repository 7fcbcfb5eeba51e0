"""store"""

from refapi.store import models  # noqa: F401  (registers the tables)
