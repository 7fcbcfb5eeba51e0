"""refapi.api's helpers for flask-smorest."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import marshmallow as ma

from refapi.api import serialised, serialised_once

RAW = ma.Schema.from_dict({"value": ma.fields.Raw()})()
WHEN = ma.Schema.from_dict({"value": ma.fields.DateTime()})()


def test_a_body_serialised_once_is_the_body_serialised_each_time(app):
    with app.app_context():
        for value in (1, {"nested": [1, 2]}, None, "text"):
            assert serialised_once(RAW, {"value": value}) == serialised(RAW, {"value": value})


def test_equal_values_written_differently_get_bodies_of_their_own(app):
    # 1 == 1.0 == True, and equal instants in two time zones: each is written its own way.
    utc = datetime(2026, 12, 1, 12, tzinfo=timezone.utc)
    brussels = utc.astimezone(timezone(timedelta(hours=1)))
    with app.app_context():
        for schema, values in ((RAW, (1, 1.0, True)), (WHEN, (utc, brussels))):
            bodies = [serialised_once(schema, {"value": value}) for value in values]
            assert bodies == [serialised(schema, {"value": value}) for value in values]
            assert len(set(bodies)) == len(values)
