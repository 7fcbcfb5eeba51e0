from __future__ import annotations

from refapi import create_app


def test_ping_answers_ok_without_a_key(client):
    response = client.get("/ping")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_ping_does_not_touch_the_database(app_config, tmp_path):
    # A database that cannot be opened: /ping must not care.
    app = create_app(
        {**app_config, "DATABASE_URL": f"sqlite:///{tmp_path}/no-such-dir/refapi.sqlite3"}
    )
    assert app.test_client().get("/ping").status_code == 200


def test_ready_reports_every_dependency(client):
    response = client.get("/ready")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "checks": {"database": "ok", "cache": "ok"}}


def test_ready_is_503_naming_the_database_when_it_does_not_answer(app_config, tmp_path):
    # SQLite cannot open a file in a folder that does not exist.
    app = create_app(
        {**app_config, "DATABASE_URL": f"sqlite:///{tmp_path}/no-such-dir/refapi.sqlite3"}
    )
    response = app.test_client().get("/ready")
    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    assert response.headers["Retry-After"] == "5"
    body = response.get_json()
    assert body["code"] == "NOT_READY"
    assert body["checks"]["database"] == "unavailable"
    assert "database" in body["detail"].lower()


def test_ready_reports_the_in_process_cache_as_ok(make_app):
    app = make_app(REDIS_URL="")
    assert app.test_client().get("/ready").get_json()["checks"]["cache"] == "ok"


def test_ready_reports_a_dead_redis_as_degraded_but_stays_ready(make_app):
    # Port 1 on loopback: nothing listens, the connection is refused at once.
    app = make_app(REDIS_URL="redis://127.0.0.1:1/0", REDIS_TIMEOUT=0.2)
    response = app.test_client().get("/ready")
    assert response.status_code == 200
    assert response.get_json() == {
        "status": "degraded",
        "checks": {"database": "ok", "cache": "degraded"},
    }


def test_head_ping_is_public(client):
    assert client.head("/ping").status_code == 200


def test_ready_is_503_when_postgresql_refuses_and_connections_have_a_timeout(app_config):
    # Nothing listens on port 1: the connection is refused at once.
    app = create_app({**app_config, "DATABASE_URL": "postgresql://refapi@127.0.0.1:1/refapi"})
    response = app.test_client().get("/ready")
    assert response.status_code == 503
    assert response.get_json()["checks"]["database"] == "unavailable"
    connect_args = app.config["SQLALCHEMY_ENGINE_OPTIONS"]["connect_args"]
    assert connect_args == {"connect_timeout": 5, "options": "-c timezone=UTC"}


def test_postgresql_sessions_are_in_utc_with_the_urls_own_options_kept(app_config):
    url = "postgresql://refapi@127.0.0.1:1/refapi?options=-csearch_path%3Dtenant"
    app = create_app({**app_config, "DATABASE_URL": url})
    options = app.config["SQLALCHEMY_ENGINE_OPTIONS"]["connect_args"]["options"]
    assert options == "-csearch_path=tenant -c timezone=UTC"
