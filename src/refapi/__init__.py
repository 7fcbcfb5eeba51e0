"""refapi: reference data and a keyed store for Belgian insurance and property back offices."""

from refapi.app import create_app

__all__ = ["create_app"]
