"""`flask deploy`, the compose migrate service: migrations, then seeding when asked."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from refapi import create_app
from refapi.extensions import cache, db
from refapi.indices import services as indices
from tests.conftest import command_env, run_flask
from tests.e2e.conftest import free_port
from tests.indices.conftest import FAILURES
from tests.test_migrations import MIGRATIONS


def test_deploy_applies_every_migration_and_is_idempotent(app_config):
    app = create_app(app_config)
    runner = app.test_cli_runner()
    for _ in range(2):
        result = runner.invoke(args=["deploy", "--directory", MIGRATIONS])
        assert result.exit_code == 0, result.output
        assert "up to date" in result.output
    with app.app_context():
        tables = set(sa.inspect(db.engine).get_table_names())
        db.engine.dispose()
    assert {table.name for table in db.metadata.sorted_tables} <= tables


def _deploy(app_config, monkeypatch, statbel_url, *args, **settings):
    monkeypatch.setenv("RUN_SEEDER", "true")
    app = create_app({**app_config, "STATBEL_URL": statbel_url, **settings})
    result = app.test_cli_runner().invoke(args=["deploy", "--directory", MIGRATIONS, *args])
    return app, result


def _counts(app):
    with app.app_context():
        counts = {
            name: db.session.execute(sa.text(f"SELECT count(*) FROM {name}")).scalar_one()  # noqa: S608
            for name in ("zipcodes", "health_indices")
        }
        db.session.remove()
        db.engine.dispose()
    return counts


def test_run_seeder_imports_the_sample_zipcodes_and_downloads_the_index(
    app_config, monkeypatch, upstream
):
    app, result = _deploy(app_config, monkeypatch, upstream.url)
    assert result.exit_code == 0, result.output
    counts = _counts(app)
    assert counts["zipcodes"] > 8000
    assert counts["health_indices"] > 0
    assert upstream.hits == 1


def test_seeding_never_overwrites_an_operators_zipcode_table(app_config, monkeypatch, upstream):
    app, _ = _deploy(app_config, monkeypatch, upstream.url)
    with app.app_context():
        db.session.execute(sa.text("DELETE FROM zipcodes WHERE zipcode > 1000"))
        db.session.commit()
        db.engine.dispose()
    app, result = _deploy(app_config, monkeypatch, upstream.url)
    assert result.exit_code == 0, result.output
    assert _counts(app)["zipcodes"] == 1


@pytest.mark.parametrize("statbel", ["served", "unreachable", "not configured"])
def test_a_deployment_redis_does_not_hear_of_goes_on_with_a_warning(
    app_config, monkeypatch, upstream, statbel
):
    # Like Statbel being down, Redis being down does not block a deployment; it is said, also
    # when only the zipcodes were seeded.
    url = {"served": upstream.url, "unreachable": f"http://127.0.0.1:{free_port()}/x.zip"}
    dead_redis = {"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0", "CACHE_KEY_PREFIX": "dead:"}
    app, result = _deploy(app_config, monkeypatch, url.get(statbel, ""), **dead_redis)
    with app.app_context():
        cache.cache.near.close()
        db.engine.dispose()
    assert result.exit_code == 0, result.output
    assert "Warning: The seeded data is stored, but Redis did not answer" in result.output
    assert "flask --app wsgi cache clear" in result.output


def _times_shown(reason, result, caplog):
    """How often ``reason`` is shown: in the command's output and in the log together."""
    logged = sum(record.getMessage().count(reason) for record in caplog.records)
    return result.output.count(reason) + logged


def _last_refresh_error(app):
    with app.app_context():
        error = db.session.execute(
            sa.text("SELECT error FROM index_refreshes ORDER BY id DESC")
        ).scalar()
        db.session.remove()
        db.engine.dispose()
    return error


@pytest.mark.parametrize("failure", [*FAILURES, "timeout", "drip"])
def test_an_unreachable_or_refused_statbel_does_not_fail_the_deployment_and_is_said_once(
    app_config, monkeypatch, upstream, caplog, failure
):
    if failure == "timeout":
        upstream.hang = True
    elif failure == "drip":
        upstream.drip = "body"  # a byte now and then, each well within STATBEL_TIMEOUT
    else:
        upstream.serve(**FAILURES[failure])
    app, result = _deploy(app_config, monkeypatch, upstream.url, STATBEL_TIMEOUT=0.5)
    assert result.exit_code == 0, result.output
    assert "could not be downloaded now; the API will retry on demand." in result.output
    counts = _counts(app)
    assert counts["zipcodes"] > 8000
    assert counts["health_indices"] == 0
    reason = _last_refresh_error(app)
    assert reason
    if failure == "drip":
        assert "took longer than 5 s to send" in reason  # at its limit, not when the drip ends
    # In refapi.indices' warning, with Statbel's URL; not again in the command's line.
    assert reason not in result.output
    assert _times_shown(reason, result, caplog) == 1


def test_a_reason_the_log_level_hides_is_in_deploys_output(
    app_config, monkeypatch, upstream, caplog
):
    upstream.serve(**FAILURES["http-500"])
    app, result = _deploy(app_config, monkeypatch, upstream.url, LOG_LEVEL="ERROR")
    assert result.exit_code == 0, result.output
    reason = _last_refresh_error(app)
    assert "HTTP 500" in reason
    assert f"could not be downloaded now ({reason}); the API will retry" in result.output
    assert _times_shown(reason, result, caplog) == 1


def test_a_refresh_running_elsewhere_does_not_fail_the_deployment_and_is_said_once(
    app_config, monkeypatch, upstream, caplog
):
    app, result = _deploy(app_config, monkeypatch, upstream.url, "--no-seed")
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert indices._acquire_lease() is not None  # another process is refreshing
        db.session.remove()
        db.engine.dispose()
    app, result = _deploy(app_config, monkeypatch, upstream.url)
    assert result.exit_code == 0, result.output
    assert _counts(app)["health_indices"] == 0
    assert (
        "could not be downloaded now (another refresh is running; try again in a minute); "
        "the API will retry on demand." in result.output
    )
    assert _times_shown("another refresh is running", result, caplog) == 1
    assert upstream.hits == 0


def test_without_an_upstream_address_deploy_says_the_api_will_not_download_either(
    app_config, monkeypatch, upstream, caplog
):
    # "The API will retry on demand" would be false: with no address it never downloads.
    app, result = _deploy(app_config, monkeypatch, "")
    assert result.exit_code == 0, result.output
    assert "REFAPI_STATBEL_URL is empty" in result.output
    assert "flask indices refresh --file" in result.output
    assert "retry" not in result.output
    assert _counts(app)["health_indices"] == 0
    assert _times_shown("REFAPI_STATBEL_URL is empty", result, caplog) == 1


def test_deploy_prints_each_warning_once_and_statbels_url_once(tmp_path, upstream):
    # Alembic's env.py gave the root logger a handler during the upgrade, so every later line
    # of refapi's came twice ("... WARNING ... refapi.indices: ..." then "WARNI [refapi.indices]").
    upstream.serve(b"Internal error", status=500, content_type="text/plain")
    env = command_env(tmp_path, REFAPI_STATBEL_URL=upstream.url, RUN_SEEDER="true")
    result = run_flask("deploy", env=env)
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    warnings = [line for line in output.splitlines() if "WARN" in line]
    assert len(warnings) == 1, output
    assert "refapi.indices" in warnings[0]
    assert "[refapi." not in output
    assert len([line for line in output.splitlines() if "risk table replaced" in line]) == 1
    # The command's own line leaves the URL and the reason to that warning.
    assert "could not be downloaded now; the API will retry on demand." in result.stdout
    assert upstream.url not in result.stdout
