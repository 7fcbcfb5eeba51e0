"""Each request's database session ends with the request.

refapi's SQLAlchemy extension skips the teardown's removal when the request opened no session
(issue 8): what it must still remove, it removes.
"""

from __future__ import annotations

from refapi.extensions import db


def _sessions_held() -> dict:
    # Flask-SQLAlchemy's scoped sessions, one per application context that opened one.
    return dict(db.session.registry.registry)


def test_a_request_that_wrote_leaves_no_session_behind(app, client, auth_headers):
    response = client.post("/save", json={"key": "k", "value": 1}, headers=auth_headers)
    assert response.status_code == 201
    assert _sessions_held() == {}
    with app.app_context():
        assert db.engine.pool.checkedout() == 0
    assert client.get("/get/k", headers=auth_headers).json["value"] == 1


def test_a_request_that_failed_in_its_transaction_leaves_no_session_behind(
    app, client, auth_headers
):
    assert client.post("/save", json={"key": "k", "value": 1}, headers=auth_headers).status_code
    stale = client.post(
        "/save", json={"key": "k", "value": 2}, headers={**auth_headers, "If-Match": '"7"'}
    )
    assert stale.status_code == 412
    assert _sessions_held() == {}
    with app.app_context():
        assert db.engine.pool.checkedout() == 0
    assert client.get("/get/k", headers=auth_headers).json["value"] == 1

