"""refapi: reference data and a keyed store for Belgian insurance and property back offices."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from refapi.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    # The app, imported on first use rather than with the package: gunicorn's master imports
    # refapi.config and refapi.worker (gunicorn.conf.py) before a gevent worker monkey-patches
    # the standard library, and a library imported then keeps what it took from it unpatched
    # (urllib3's SSLContext: an HTTPS download from Statbel would block the whole worker).
    if name == "create_app":
        from refapi.app import create_app

        return create_app
    raise AttributeError(f"module 'refapi' has no attribute {name!r}")
