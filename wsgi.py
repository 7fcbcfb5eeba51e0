"""The WSGI entry point that gunicorn and ``flask --app wsgi`` load."""

import sys

from refapi import create_app
from refapi.config import ConfigError

try:
    app = create_app()
except ConfigError as error:
    # A configuration mistake is the operator's to fix: say what, without a traceback.
    sys.exit(f"refapi cannot start: {error}")
