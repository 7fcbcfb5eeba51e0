"""Fixtures of the zipcode tests: loading a risk table and reading the table back."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import sqlalchemy as sa
from flask import Flask

from refapi.extensions import db
from refapi.zipcodes import services
from refapi.zipcodes.models import Zipcode


@pytest.fixture
def load_table(app: Flask) -> Callable[[str], services.ImportResult]:
    """Import a risk table given as CSV text, as `flask zipcodes import` does."""

    def load(text: str) -> services.ImportResult:
        with app.app_context():
            return services.import_csv(content=text.encode())

    return load


@pytest.fixture
def table_rows(app: Flask) -> Callable[[], dict[int, str]]:
    """The zipcode table as stored, read straight from the database."""

    def rows() -> dict[int, str]:
        with app.app_context():
            result = db.session.execute(sa.select(Zipcode.zipcode, Zipcode.risk_factor))
            return dict(result.all())

    return rows


@pytest.fixture
def small_table(load_table: Callable[[str], services.ImportResult]) -> dict[int, str]:
    """A loaded table of 1000-1004 (C), 1315 (B), 9000 (B) and 9170-9172 (A)."""
    load_table("1000 - 1004,C\n1315,B\n9000,B\n9170 - 9172,A\n")
    return {
        **dict.fromkeys(range(1000, 1005), "C"),
        1315: "B",
        9000: "B",
        **dict.fromkeys(range(9170, 9173), "A"),
    }
