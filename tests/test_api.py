"""refapi.api's helpers for flask-smorest."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import marshmallow as ma
import pytest
from flask.views import MethodView
from werkzeug.exceptions import UnprocessableEntity

from refapi.api import Blueprint, JsonOnlyParser, serialised, serialised_once
from refapi.extensions import api

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


PAGE = ma.Schema.from_dict(
    {"page": ma.fields.Integer(load_default=1, validate=ma.validate.Range(min=1))}
)()
TAGS = ma.Schema.from_dict({"tags": ma.fields.List(ma.fields.String())})()


def parse_query(app, schema, query):
    with app.test_request_context(f"/?{query}"):
        return JsonOnlyParser().parse(schema, location="query")


def test_a_query_parsed_before_gives_the_same_arguments_each_caller_its_own(app):
    first = parse_query(app, PAGE, "page=2")
    first["page"] = "changed by a view"
    assert parse_query(app, PAGE, "page=2") == {"page": 2}
    assert parse_query(app, PAGE, "page=3") == {"page": 3}
    assert parse_query(app, PAGE, "") == {"page": 1}


def test_a_refused_query_is_refused_every_time(app):
    for _ in range(2):
        with pytest.raises(UnprocessableEntity) as refused:
            parse_query(app, PAGE, "page=0")
        assert refused.value.data["messages"] == {
            "query": {"page": ["Must be greater than or equal to 1."]}
        }


def test_arguments_holding_a_list_are_parsed_anew_for_each_caller(app):
    first = parse_query(app, TAGS, "tags=a&tags=b")
    first["tags"].append("changed by a view")
    assert parse_query(app, TAGS, "tags=a&tags=b") == {"tags": ["a", "b"]}


def test_parsing_a_query_again_runs_no_schema(app, monkeypatch):
    schema = ma.Schema.from_dict({"page": ma.fields.Integer()})()
    assert parse_query(app, schema, "page=7") == {"page": 7}
    loads = []
    monkeypatch.setattr(schema, "load", lambda *args, **kwargs: loads.append(args))
    assert parse_query(app, schema, "page=7") == {"page": 7}
    assert loads == []


def test_serialised_is_byte_for_byte_the_body_flask_smorest_answers(make_app, auth_headers):
    # What views that answer serialised(...) bytes rely on to answer what they answered before.
    schema = ma.Schema.from_dict(
        {
            "when": ma.fields.DateTime(),
            "value": ma.fields.Float(),
            "text": ma.fields.String(),
            "items": ma.fields.List(ma.fields.Dict()),
        }
    )
    data = {
        "when": datetime(2026, 12, 1, 9, 30, tzinfo=timezone(timedelta(hours=1))),
        "value": 110.35,
        "text": 'gezondheidsindex: éè \u2028 "quoted"',
        "items": [{"b": 2, "a": [1.0, None, True]}],
    }
    app = make_app()
    blp = Blueprint("serialised_for_tests", __name__)

    @blp.route("/serialised-for-tests")
    class Answer(MethodView):
        @blp.response(200, schema)
        def get(self):
            return data

    api.register_blueprint(blp)
    answered = app.test_client().get("/serialised-for-tests", headers=auth_headers)
    assert answered.status_code == 200
    with app.app_context():
        assert serialised(schema(), data) == answered.data
        assert serialised_once(schema(), data) == answered.data


def test_alt_response_documents_without_wrapping_the_view(make_app):
    app = make_app()
    blp = Blueprint("alt_for_tests", __name__)

    def answer():
        return {"status": "ok"}

    documented = blp.alt_response(404, description="Not here.")(
        blp.alt_response(409, description="In conflict.")(answer)
    )
    # No wrapper: nothing runs around the view on a request.
    assert documented is answer
    blp.route("/alt-for-tests")(documented)
    api.register_blueprint(blp)
    with app.app_context():
        responses = api.spec.to_dict()["paths"]["/alt-for-tests"]["get"]["responses"]
    assert responses["404"]["description"] == "Not here."
    assert responses["409"]["description"] == "In conflict."
