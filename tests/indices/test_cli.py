from __future__ import annotations

import traceback

import pytest
import sqlalchemy as sa

from refapi import create_app
from refapi.extensions import db
from refapi.indices import services
from refapi.indices.models import Refresh
from tests.conftest import command_env, run_flask
from tests.e2e.conftest import free_port
from tests.indices.conftest import (
    FAILURES,
    HEALTH,
    huge_field_text,
    statbel_rows,
    statbel_text,
    statbel_zip,
    stored_rows,
)


def _refreshes(app):
    with app.app_context():
        return db.session.scalars(sa.select(Refresh).order_by(Refresh.id)).all()


def test_refresh_downloads_stores_and_says_what_changed(app, runner, upstream):
    result = runner.invoke(args=["indices", "refresh"])
    assert result.exit_code == 0, result.output
    assert upstream.url in result.output
    assert f"{len(statbel_rows())} rows added, 0 rows updated." in result.output
    assert "4 new months with a health index: 2019-04, 2020-09, 2020-10, 2021-01." in (
        result.output
    )
    assert "Latest month: 2021-01." in result.output
    (record,) = _refreshes(app)
    assert record.succeeded
    assert record.source == upstream.url
    assert record.months_added == 4
    assert record.rows_changed == len(statbel_rows())
    assert record.finished_at is not None


def test_refresh_twice_changes_nothing_the_second_time(app, runner):
    runner.invoke(args=["indices", "refresh"])
    before = stored_rows(app)
    result = runner.invoke(args=["indices", "refresh"])
    assert result.exit_code == 0
    assert "Already up to date; latest month 2021-01." in result.output
    assert stored_rows(app) == before


def test_refresh_updates_a_revised_value_and_adds_a_new_month(app, runner, upstream):
    runner.invoke(args=["indices", "refresh"])
    revised = {**HEALTH, (2020, 10): {**HEALTH[(2020, 10)], 2013: ("110.12", "107.86")}}
    # February 2021 gets its health index (and 1914 its CPI row).
    revised[(2021, 2)] = {2013: ("110.50", "108.40")}
    upstream.serve(statbel_zip(statbel_text(statbel_rows(revised, pending_month=False))))
    result = runner.invoke(args=["indices", "refresh"])
    assert result.exit_code == 0, result.output
    assert "1 new month with a health index: 2021-02." in result.output
    assert "Latest month: 2021-02." in result.output
    assert "1 row added, 2 rows updated." in result.output


@pytest.mark.parametrize("kind", ["zip", "text"])
def test_refresh_from_a_file_imports_without_the_network(app, runner, upstream, tmp_path, kind):
    path = tmp_path / f"cpi.{kind}"
    path.write_bytes(statbel_zip() if kind == "zip" else statbel_text())
    result = runner.invoke(args=["indices", "refresh", "--file", str(path)])
    assert result.exit_code == 0, result.output
    assert "Latest month: 2021-01." in result.output
    assert upstream.hits == 0
    assert _refreshes(app)[0].source == f"file:{path}"
    assert runner.invoke(args=["indices", "refresh", "--file", str(path)]).exit_code == 0


def test_refresh_from_a_file_with_a_field_over_the_csv_limit_is_refused_and_recorded(
    app, runner, tmp_path
):
    path = tmp_path / "big.txt"
    path.write_bytes(huge_field_text())
    result = runner.invoke(args=["indices", "refresh", "--file", str(path)])
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)  # a refusal, not a traceback
    assert "refresh failed, stored data unchanged" in result.output
    failed = _refreshes(app)[-1]
    assert not failed.succeeded
    assert failed.finished_at is not None
    assert "field larger than field limit" in failed.error


def test_refresh_from_a_missing_file_fails(runner, tmp_path):
    result = runner.invoke(args=["indices", "refresh", "--file", str(tmp_path / "nope.zip")])
    assert result.exit_code != 0
    assert "does not exist" in result.output


REASONS = {
    "http-500": "HTTP 500",
    "html": "HTML",
    "truncated-zip": "truncated",
    "empty": "empty",
    "missing-column": "MS_HLTH_IDX",
    "huge-field": "line 2: not Statbel's pipe-delimited text: field larger than field limit",
    "timeout": "Timeout",
    "drip": "took longer than 5 s to send",  # ten times STATBEL_TIMEOUT
}


def times_shown(reason, result, caplog):
    """How often ``reason`` is shown: in the command's output and in the log together."""
    logged = sum(record.getMessage().count(reason) for record in caplog.records)
    return result.output.count(reason) + logged


@pytest.mark.parametrize("failure", [*FAILURES, "timeout", "drip"])
def test_a_failed_refresh_exits_non_zero_with_the_reason_once_and_keeps_stored_data(
    app, runner, upstream, failure, caplog
):
    runner.invoke(args=["indices", "refresh"])
    before = stored_rows(app)
    if failure == "timeout":
        upstream.hang = True
    elif failure == "drip":
        upstream.drip = "body"  # a byte now and then, each well within STATBEL_TIMEOUT
    else:
        upstream.serve(**FAILURES[failure])
    result = runner.invoke(args=["indices", "refresh"])
    assert result.exit_code == 1
    assert "refresh failed, stored data unchanged" in result.output
    assert stored_rows(app) == before
    failed = _refreshes(app)[-1]
    assert not failed.succeeded
    assert REASONS[failure] in failed.error
    # Logged by refapi.indices with Statbel's URL; the command's own line does not repeat it.
    assert any(
        REASONS[failure] in record.getMessage() and upstream.url in record.getMessage()
        for record in caplog.records
        if record.name == "refapi.indices"
    )
    assert times_shown(failed.error, result, caplog) == 1


def test_a_reason_the_log_level_hides_is_in_the_commands_output(make_indices_app, upstream, caplog):
    app = make_indices_app(LOG_LEVEL="ERROR")
    upstream.serve(**FAILURES["http-500"])
    result = app.test_cli_runner().invoke(args=["indices", "refresh"])
    assert result.exit_code == 1
    (failed,) = _refreshes(app)
    assert "HTTP 500" in failed.error
    assert failed.error in result.output
    assert times_shown(failed.error, result, caplog) == 1


def test_refresh_while_another_runs_says_so_once(app, runner, upstream, caplog):
    with app.app_context():
        assert services._acquire_lease() is not None  # another process is refreshing
    result = runner.invoke(args=["indices", "refresh"])
    assert result.exit_code == 1
    assert times_shown("another refresh is running", result, caplog) == 1
    assert "another refresh is running" in result.output
    assert upstream.hits == 0


def test_refresh_with_the_database_unreachable_says_so_not_that_another_one_runs(
    app_config, upstream, caplog
):
    password = "db-password-hunter2"
    # Nothing listens on that port: every connection is refused at once.
    url = f"postgresql+psycopg://refapi:{password}@127.0.0.1:{free_port()}/refapi"
    app = create_app({**app_config, "DATABASE_URL": url, "STATBEL_URL": upstream.url})
    result = app.test_cli_runner().invoke(args=["indices", "refresh"])
    with app.app_context():
        db.engine.dispose()
    assert result.exit_code == 1
    assert "the refresh lease could not be taken (OperationalError: " in result.output
    assert "another refresh is running" not in result.output
    assert password not in result.output + caplog.text
    assert upstream.hits == 0


def test_a_database_error_while_storing_is_its_first_line_only(app, runner, monkeypatch, caplog):
    # A deadlock's later lines quote the other sessions' statements, and a statement's text its
    # values: neither belongs in the log, the refresh record or the command's output.
    cause = RuntimeError("deadlock detected\nDETAIL: Process 7 waits; statement: UPDATE 'secret'")

    def deadlocked(*_args, **_kwargs):
        raise sa.exc.OperationalError("UPDATE health_indices SET ...", {"v": "secret"}, cause)

    monkeypatch.setattr(services, "_store", deadlocked)
    result = runner.invoke(args=["indices", "refresh"])
    assert result.exit_code == 1
    (failed,) = _refreshes(app)
    assert failed.error == "RuntimeError: deadlock detected"
    assert "deadlock detected" in caplog.text
    assert "secret" not in result.output + caplog.text
    assert "DETAIL" not in caplog.text


def test_a_database_that_goes_away_while_storing_still_gets_its_reason_said(
    app, runner, monkeypatch, caplog
):
    # The database fails the import, then the commit that would end its record: the command
    # still says why the refresh failed, instead of a traceback of the second failure.
    cause = RuntimeError("server closed the connection unexpectedly")

    def gone(*_args, **_kwargs):
        def refused():
            raise sa.exc.OperationalError("COMMIT", {}, cause)

        monkeypatch.setattr(db.session, "commit", refused)
        raise sa.exc.OperationalError("SELECT ...", {}, cause)

    monkeypatch.setattr(services, "_store", gone)
    result = runner.invoke(args=["indices", "refresh"])
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)  # a refusal, not a traceback
    assert "refresh failed, stored data unchanged" in result.output
    assert "failed: RuntimeError: server closed the connection unexpectedly" in caplog.text
    monkeypatch.undo()
    (unfinished,) = _refreshes(app)
    assert unfinished.finished_at is None


def test_refresh_without_an_upstream_address_asks_for_a_file(make_indices_app, caplog):
    runner = make_indices_app(STATBEL_URL="").test_cli_runner()
    result = runner.invoke(args=["indices", "refresh"])
    assert result.exit_code == 1
    assert "--file" in result.output
    assert times_shown("REFAPI_STATBEL_URL is empty", result, caplog) == 1


def test_a_failed_refresh_shows_its_reason_once_in_a_terminal(tmp_path, upstream):
    # As an operator sees it: the log's warning and the command's error on one stderr.
    upstream.serve(**FAILURES["http-500"])
    env = command_env(tmp_path, REFAPI_STATBEL_URL=upstream.url)
    assert run_flask("db", "upgrade", env=env).returncode == 0
    result = run_flask("indices", "refresh", env=env)
    assert result.returncode == 1, result.stderr
    output = result.stdout + result.stderr
    assert output.count("HTTP 500") == 1, output
    assert "refresh failed, stored data unchanged" in result.stderr


def test_refresh_keeps_months_the_new_file_no_longer_has(app, runner, upstream):
    runner.invoke(args=["indices", "refresh"])
    before = stored_rows(app)
    upstream.serve(statbel_zip(statbel_text(statbel_rows({(2021, 1): HEALTH[(2021, 1)]}))))
    result = runner.invoke(args=["indices", "refresh"])
    assert result.exit_code == 0, result.output
    assert stored_rows(app) == before


def test_an_unexpected_error_ends_its_refresh_record_and_propagates_with_its_traceback(
    app, runner, monkeypatch
):
    # The record stayed unfinished, as if the refresh were still running.
    def broken(*_args, **_kwargs):
        raise KeyError("a bug")

    monkeypatch.setattr(services, "_store", broken)
    result = runner.invoke(args=["indices", "refresh"])
    assert isinstance(result.exception, KeyError)
    assert "in broken" in "".join(traceback.format_exception(*result.exc_info))
    (failed,) = _refreshes(app)
    assert not failed.succeeded
    assert failed.finished_at is not None
    assert failed.error.startswith("an unexpected KeyError (a bug): its traceback is in")
    assert stored_rows(app) == []
