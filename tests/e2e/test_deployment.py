"""The compose deployment without Docker: the migrate service's command, then the api service's.

The api runs with the Dockerfile's exact command and compose.yaml's environment (its defaults
resolved), on PostgreSQL and Redis; only addresses, the secret file and Statbel's URL point at
this machine. (The image's non-root user cannot be reproduced here: the interpreter lives in a
folder only root may enter; tests/deploy checks the Dockerfile's USER instead.)
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.conftest import API_KEYS, TEST_KEY, run_flask
from tests.e2e.conftest import PROJECT_ROOT

pytestmark = pytest.mark.e2e

KEY = {"X-API-Key": TEST_KEY}


def compose_environment(service: str) -> dict[str, str]:
    compose = yaml.safe_load((PROJECT_ROOT / "compose.yaml").read_text(encoding="utf-8"))
    environment = compose["services"][service]["environment"]

    def resolve(value: object) -> str:
        # ${NAME:-default} and ${NAME-default} become their default; ${NAME:?message} must be
        # set by the test.
        return re.sub(r"\$\{[A-Z_]+:?-([^}]*)\}", r"\1", str(value))

    return {name: resolve(value) for name, value in environment.items()}


@pytest.fixture
def deployment(serve, services_config, tmp_path: Path, upstream):
    secret = tmp_path / "api_keys"
    secret.write_text("\n".join(API_KEYS.split(",")) + "\n")
    local = {
        "REFAPI_DATABASE_URL": services_config["DATABASE_URL"],
        "REFAPI_REDIS_URL": services_config["REDIS_URL"],
        "REFAPI_CACHE_KEY_PREFIX": services_config["CACHE_KEY_PREFIX"],
        "REFAPI_API_KEYS_FILE": str(secret),
        "REFAPI_API_KEYS": "",
        "REFAPI_STATBEL_URL": upstream.url,
    }
    migrate_env = {**compose_environment("migrate"), **local, "RUN_SEEDER": "true"}
    server = serve({**compose_environment("api"), **local}, migrate=False)
    # The migrate service, run after the api is up here only to prove the api answers
    # /ready before and serves the seeded data after: compose runs it first.
    migrate = run_flask("deploy", env={**server.env, **migrate_env})
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr
    return server


def test_the_deployed_api_serves_every_feature(deployment):
    server = deployment
    assert server.get("/ping").json() == {"status": "ok"}
    assert server.get("/ready").json() == {
        "status": "ok",
        "checks": {"database": "ok", "cache": "ok"},
    }
    assert server.get("/authorize", headers=KEY).json() == {"authorized": True, "client": "tester"}
    assert server.get("/authorize").status_code == 401

    saved = server.request("POST", "/save", json={"key": "policy/42", "value": [1, 2]}, headers=KEY)
    assert saved.status_code == 201
    assert server.get("/get/policy%2F42", headers=KEY).json()["value"] == [1, 2]
    assert server.get("/keys?prefix=policy/", headers=KEY).json()["total"] == 1
    assert server.request("DELETE", "/delete/policy%2F42", headers=KEY).status_code == 204
    assert server.get("/get/policy%2F42", headers=KEY).status_code == 404

    zipcode = server.get("/zipcodes/9000", headers=KEY).json()
    assert zipcode["zipcode"] == 9000
    assert zipcode["risk_factor"] in {"A", "B", "C"}
    listing = server.get("/zipcodes?risk_factor=A&page_size=5", headers=KEY).json()
    assert listing["total"] > 0
    assert len(listing["items"]) == 5

    index = server.get("/indices/health?base_year=2013", headers=KEY).json()
    assert index["month"] == "2021-01"
    assert index["value"] == 110.35
    assert index["stale"] is False


def test_the_access_log_names_the_client_the_proxy_forwarded(deployment):
    response = deployment.get(
        "/ping", headers={"X-Forwarded-For": "203.0.113.9", "X-Request-ID": "behind-proxy"}
    )
    assert response.status_code == 200
    deployment.stop()
    [line] = [line for line in deployment.log.splitlines() if "request_id=behind-proxy" in line]
    # compose trusts one proxy (REFAPI_PROXY_X_FOR=1): the client is the forwarded address.
    assert 'forwarded_for="203.0.113.9"' in line
    assert "remote=203.0.113.9" in line
