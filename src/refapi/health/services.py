"""Dependency checks for readiness."""

from __future__ import annotations

import logging

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from refapi.extensions import cache, db

logger = logging.getLogger("refapi.health")

OK = "ok"
UNAVAILABLE = "unavailable"
DEGRADED = "degraded"


def database_state() -> str:
    try:
        db.session.execute(sa.text("SELECT 1"))
    except SQLAlchemyError as error:
        logger.warning("readiness: database unavailable: %s", type(error).__name__)
        db.session.rollback()
        return UNAVAILABLE
    return OK


def cache_state() -> str:
    """``ok``, or ``degraded`` when the shared cache does not answer (reads use the database)."""
    ping = getattr(cache.cache, "ping", None)
    if ping is None:  # the in-process SimpleCache is always there
        return OK
    return OK if ping() else DEGRADED


def readiness() -> dict[str, str]:
    return {"database": database_state(), "cache": cache_state()}
