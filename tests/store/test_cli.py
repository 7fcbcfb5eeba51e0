"""flask store export FILE / flask store import FILE."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from refapi.auth import KeyRing
from refapi.extensions import db
from refapi.store import services
from refapi.store.models import MAX_VERSION, Entry
from tests.conftest import TEST_KEY


@pytest.fixture
def filled(client, auth_headers, other_auth_headers):
    client.post("/save", json={"key": "b", "value": {"n": 1}}, headers=auth_headers)
    client.post("/save", json={"key": "b", "value": {"n": 2}}, headers=auth_headers)
    client.post("/save", json={"key": "a/🦄 x", "value": [None, "é"]}, headers=auth_headers)
    client.post("/save", json={"key": "b", "value": "theirs"}, headers=other_auth_headers)
    return client


def _lines(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def import_lines(runner, tmp_path, lines, *options):
    """`flask store import` of a file of ``lines`` (text, or bytes written as they are)."""
    source = tmp_path / "in.jsonl"
    if isinstance(lines, bytes):
        source.write_bytes(lines)
    else:
        source.write_text(lines, encoding="utf-8")
    return runner.invoke(args=["store", "import", str(source), *options])


def test_export_writes_every_clients_entries_as_json_lines_in_order(filled, runner, tmp_path):
    target = tmp_path / "backup.jsonl"
    result = runner.invoke(args=["store", "export", str(target)])
    assert result.exit_code == 0, result.output
    lines = _lines(target)
    assert [(line["client"], line["key"]) for line in lines] == [
        ("other", "b"),
        ("tester", "a/🦄 x"),
        ("tester", "b"),
    ]
    assert lines[2]["value"] == {"n": 2}
    assert lines[2]["version"] == 2
    assert set(lines[2]) == {"client", "key", "value", "version", "created_at", "updated_at"}
    assert "🦄" in target.read_text(encoding="utf-8")
    assert "Exported 3 entries." in result.output


def test_export_of_one_client(filled, runner, tmp_path):
    target = tmp_path / "backup.jsonl"
    result = runner.invoke(args=["store", "export", str(target), "--client", "other"])
    assert result.exit_code == 0
    assert [(line["client"], line["value"]) for line in _lines(target)] == [("other", "theirs")]


def test_export_then_import_into_an_empty_store_restores_everything(
    filled, runner, make_app, auth_headers, tmp_path
):
    backup = tmp_path / "backup.jsonl"
    runner.invoke(args=["store", "export", str(backup)])
    before = filled.get("/get/b", headers=auth_headers).get_json()

    restored = make_app(DATABASE_URL=f"sqlite:///{tmp_path / 'restored.sqlite3'}", REDIS_URL="")
    result = restored.test_cli_runner().invoke(args=["store", "import", str(backup)])
    assert result.exit_code == 0, result.output
    assert "Imported 3 entries." in result.output
    client = restored.test_client()
    assert client.get("/get/b", headers=auth_headers).get_json() == before
    assert client.get("/get/a/%F0%9F%A6%84%20x", headers=auth_headers).get_json()["value"] == [
        None,
        "é",
    ]
    again = tmp_path / "again.jsonl"
    restored.test_cli_runner().invoke(args=["store", "export", str(again)])
    assert again.read_text(encoding="utf-8") == backup.read_text(encoding="utf-8")


def test_import_of_one_client_skips_the_others(runner, client, auth_headers, tmp_path):
    result = import_lines(
        runner,
        tmp_path,
        '{"client": "tester", "key": "mine", "value": 1}\n'
        '{"client": "other", "key": "theirs", "value": 2}\n',
        "--client",
        "tester",
    )
    assert result.exit_code == 0, result.output
    keys = client.get("/keys", headers=auth_headers).get_json()["items"]
    assert [item["key"] for item in keys] == ["mine"]


def test_import_without_version_or_times_starts_at_version_1(
    runner, client, auth_headers, tmp_path
):
    imported = import_lines(runner, tmp_path, '{"client": "tester", "key": "k", "value": null}\n\n')
    assert imported.exit_code == 0, imported.output
    entry = client.get("/get/k", headers=auth_headers).get_json()
    assert (entry["value"], entry["version"]) == (None, 1)
    assert (
        client.post("/save", json={"key": "k", "value": 1}, headers=auth_headers).status_code == 200
    )


def test_import_keeps_times_as_given_even_an_update_before_the_creation(runner, tmp_path):
    # Two app hosts whose clocks differ write such entries: their backup must restore.
    times = {"created_at": "2026-02-01T00:00:00+00:00", "updated_at": "2026-01-31T23:59:59+00:00"}
    imported = import_lines(
        runner, tmp_path, json.dumps({"client": "tester", "key": "k", "value": 1, **times}) + "\n"
    )
    assert imported.exit_code == 0, imported.output
    export = tmp_path / "out.jsonl"
    assert runner.invoke(args=["store", "export", str(export)]).exit_code == 0
    entry = json.loads(export.read_text(encoding="utf-8"))
    assert {name: entry[name] for name in times} == times


def test_import_with_only_updated_at_was_created_then_too(runner, client, tmp_path):
    updated = "2026-01-01T00:00:00+00:00"
    imported = import_lines(
        runner,
        tmp_path,
        f'{{"client": "tester", "key": "k", "value": 1, "updated_at": "{updated}"}}\n',
    )
    assert imported.exit_code == 0, imported.output
    export = tmp_path / "out.jsonl"
    assert runner.invoke(args=["store", "export", str(export)]).exit_code == 0
    (line,) = export.read_text(encoding="utf-8").splitlines()
    entry = json.loads(line)
    assert entry["created_at"] == entry["updated_at"] == updated


def test_import_reports_every_bad_line_by_number_and_imports_nothing(
    runner, client, auth_headers, tmp_path
):
    result = import_lines(
        runner,
        tmp_path,
        "\n".join(
            [
                '{"client": "tester", "key": "good", "value": 1}',
                "{not json",
                '{"client": "tester", "key": "", "value": 1}',
                '{"client": "tester", "key": "k", "value": 1, "extra": true}',
                '{"client": "tester", "key": "k"}',
                '{"client": "tester", "key": "good", "value": 2}',
                '{"client": "tester", "key": "nan", "value": NaN}',
                '{"client": "no spaces", "key": "k", "value": 1}',
                '{"client": "tester", "key": "v", "value": 1, "version": 0}',
                "[1, 2]",
            ]
        ),
    )
    assert result.exit_code != 0
    for number in range(2, 11):
        assert f"line {number}:" in result.output
    assert "line 1:" not in result.output
    assert "repeats the key of line 1" in result.output
    assert "Nothing was imported." in result.output
    assert client.get("/keys", headers=auth_headers).get_json()["total"] == 0


def test_import_refuses_a_value_over_the_size_limit(make_app, tmp_path):
    app = make_app(STORE_MAX_VALUE_BYTES=10)
    line = '{"client": "tester", "key": "k", "value": "12345678901"}\n'
    result = import_lines(app.test_cli_runner(), tmp_path, line)
    assert result.exit_code != 0
    assert "line 1:" in result.output


def test_import_refuses_existing_keys_unless_told_to_replace_them(
    filled, runner, auth_headers, tmp_path
):
    assert filled.get("/get/b", headers=auth_headers).get_json()["value"] == {"n": 2}  # cached
    lines = (
        '{"client": "tester", "key": "new", "value": 1}\n'
        '{"client": "tester", "key": "b", "value": "restored", "version": 7}\n'
    )
    refused = import_lines(runner, tmp_path, lines)
    assert refused.exit_code != 0
    assert "line 2:" in refused.output
    assert "--replace" in refused.output
    assert filled.get("/get/new", headers=auth_headers).status_code == 404

    replaced = import_lines(runner, tmp_path, lines, "--replace")
    assert replaced.exit_code == 0, replaced.output
    entry = filled.get("/get/b", headers=auth_headers).get_json()
    assert (entry["value"], entry["version"]) == ("restored", 7)
    assert filled.get("/get/new", headers=auth_headers).status_code == 200


def test_a_key_replaced_without_version_or_creation_time_is_a_new_write_of_it(
    filled, runner, auth_headers, tmp_path
):
    # They were reset: version 1 let a client's If-Match on the key's first version match the
    # replaced value, and the creation time became the import's.
    before = filled.get("/get/b", headers=auth_headers).get_json()
    assert before["version"] == 2
    replaced = import_lines(
        runner,
        tmp_path,
        '{"client": "tester", "key": "b", "value": "restored"}\n',
        "--replace",
    )
    assert replaced.exit_code == 0, replaced.output
    entry = filled.get("/get/b", headers=auth_headers).get_json()
    assert (entry["value"], entry["version"]) == ("restored", 3)
    assert entry["created_at"] == before["created_at"]
    assert entry["updated_at"] > before["updated_at"]
    stale = filled.post(
        "/save",
        json={"key": "b", "value": "lost update"},
        headers={**auth_headers, "If-Match": '"1"'},
    )
    assert stale.status_code == 412


def test_a_key_replaced_with_an_earlier_update_time_only_was_created_by_then(
    filled, runner, auth_headers, tmp_path
):
    # The key's own creation time (today) was kept while the update time came from the line.
    replaced = import_lines(
        runner,
        tmp_path,
        '{"client": "tester", "key": "b", "value": "x", "updated_at": "2020-01-01T00:00:00Z"}\n',
        "--replace",
    )
    assert replaced.exit_code == 0, replaced.output
    entry = filled.get("/get/b", headers=auth_headers).get_json()
    assert entry["created_at"] == entry["updated_at"]
    assert entry["updated_at"].startswith("2020-01-01T00:00:00")


def test_a_null_version_is_refused(runner, tmp_path):
    result = import_lines(
        runner,
        tmp_path,
        '{"client": "tester", "key": "k", "value": 1, "version": null}\n',
    )
    assert result.exit_code != 0
    assert "line 1: version: Field may not be null." in result.output


def test_a_key_replaced_with_its_times_and_version_takes_them(
    filled, runner, auth_headers, tmp_path
):
    replaced = import_lines(
        runner,
        tmp_path,
        '{"client": "tester", "key": "b", "value": "old", "version": 1, '
        '"created_at": "2020-01-01T00:00:00+00:00", "updated_at": "2020-02-01T00:00:00+00:00"}\n'
        '{"client": "tester", "key": "new", "value": "fresh"}\n',
        "--replace",
    )
    assert replaced.exit_code == 0, replaced.output
    entry = filled.get("/get/b", headers=auth_headers).get_json()
    assert (entry["value"], entry["version"]) == ("old", 1)
    assert entry["created_at"].startswith("2020-01-01T00:00:00")
    assert entry["updated_at"].startswith("2020-02-01T00:00:00")
    assert filled.get("/get/new", headers=auth_headers).get_json()["version"] == 1


def test_times_with_an_offset_are_imported_as_the_same_moment_in_utc(
    client, runner, auth_headers, tmp_path
):
    # SQLite dropped the offset: 10:00+02:00 came back as 10:00+00:00, two hours off.
    result = import_lines(
        runner,
        tmp_path,
        '{"client": "tester", "key": "k", "value": 1, '
        '"created_at": "2026-01-01T10:00:00+02:00", "updated_at": "2026-01-01T10:00:00-05:00"}\n',
    )
    assert result.exit_code == 0, result.output
    entry = client.get("/get/k", headers=auth_headers).get_json()
    assert entry["created_at"] == "2026-01-01T08:00:00+00:00"
    assert entry["updated_at"] == "2026-01-01T15:00:00+00:00"


@pytest.mark.parametrize("moment", ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"])
def test_a_time_outside_the_years_1_to_9999_in_utc_is_refused(
    client, runner, auth_headers, tmp_path, moment
):
    # PostgreSQL stored it; then every read of the key, its listing and any export were 500s.
    result = import_lines(
        runner,
        tmp_path,
        f'{{"client": "tester", "key": "k", "value": 1, "created_at": "{moment}"}}\n',
    )
    assert result.exit_code != 0
    assert "line 1: created_at: Not a time between the years 1 and 9999 in UTC." in result.output
    assert client.get("/get/k", headers=auth_headers).status_code == 404


def test_a_line_that_is_not_utf8_is_reported_by_number(client, runner, auth_headers, tmp_path):
    # It ended in a UnicodeDecodeError traceback.
    result = import_lines(
        runner,
        tmp_path,
        b'{"client": "tester", "key": "fine", "value": 1}\n'
        b'{"client": "tester", "key": "bad\xff", "value": 1}\n',
    )
    assert result.exit_code != 0
    assert "line 2: not UTF-8 text (byte 33)" in result.output
    assert "Traceback" not in result.output
    assert client.get("/get/fine", headers=auth_headers).status_code == 404


def test_a_versionless_line_for_a_key_at_the_highest_version_is_refused(
    filled, app, runner, auth_headers, tmp_path
):
    # Its next version does not exist: PostgreSQL overflowed mid-import, with a traceback.
    with app.app_context():
        db.session.execute(sa.update(Entry).where(Entry.key == "b").values(version=MAX_VERSION))
        db.session.commit()
    result = import_lines(
        runner,
        tmp_path,
        '{"client": "tester", "key": "b", "value": "x"}\n',
        "--replace",
    )
    assert result.exit_code != 0
    assert f"line 1: client 'tester' has the key 'b' at the highest version, {MAX_VERSION}" in (
        result.output
    )
    given = '{"client": "tester", "key": "b", "value": "x", "version": 1}\n'
    assert import_lines(runner, tmp_path, given, "--replace").exit_code == 0


def test_import_of_a_missing_file_fails(runner, tmp_path):
    result = runner.invoke(args=["store", "import", str(tmp_path / "nope.jsonl")])
    assert result.exit_code != 0


def test_an_export_of_no_entries_writes_an_empty_file(runner, tmp_path):
    # A backup script checks that the file exists: it was never created for zero entries.
    target = tmp_path / "tester.jsonl"
    result = runner.invoke(args=["store", "export", str(target), "--client", "tester"])
    assert result.exit_code == 0, result.output
    assert target.read_bytes() == b""
    assert "Exported 0 entries." in result.output


def test_an_export_replaces_the_previous_one(filled, runner, tmp_path):
    (tmp_path / "backups").mkdir()
    target = tmp_path / "backups" / "backup.jsonl"
    target.write_text("old\n", encoding="utf-8")
    target.chmod(0o640)
    result = runner.invoke(args=["store", "export", str(target), "--client", "other"])
    assert result.exit_code == 0, result.output
    assert [line["value"] for line in _lines(target)] == ["theirs"]
    assert target.stat().st_mode & 0o777 == 0o640
    assert [path.name for path in target.parent.iterdir()] == ["backup.jsonl"]


def test_an_export_that_fails_half_way_leaves_the_previous_file_and_no_partial_one(
    filled, runner, tmp_path, monkeypatch
):
    # click's atomic file renamed what it had written over the target even on an error, so a
    # partial backup looked complete.
    target = tmp_path / "backup.jsonl"
    target.write_text("previous\n", encoding="utf-8")
    before = set(tmp_path.iterdir())

    def entries_then_failure(client=None):
        yield from original(client=client)
        raise RuntimeError("the database went away")

    original = services.export_entries
    monkeypatch.setattr(services, "export_entries", entries_then_failure)
    result = runner.invoke(args=["store", "export", str(target)])
    assert result.exit_code != 0
    assert target.read_text(encoding="utf-8") == "previous\n"
    assert set(tmp_path.iterdir()) == before


def test_an_export_into_a_missing_folder_says_so(runner, tmp_path):
    result = runner.invoke(args=["store", "export", str(tmp_path / "nope" / "backup.jsonl")])
    assert result.exit_code == 1
    assert "Cannot write" in result.output
    assert "Nothing was exported." in result.output


def test_an_export_to_standard_output_and_one_entry_in_the_singular(
    runner, client, auth_headers, tmp_path
):
    client.post("/save", json={"key": "k", "value": 1}, headers=auth_headers)
    result = runner.invoke(args=["store", "export", "-"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.splitlines()[0])["key"] == "k"
    assert "Exported 1 entry." in result.stderr
    backup = tmp_path / "one.jsonl"
    backup.write_text(result.stdout, encoding="utf-8")
    client.delete("/delete/k", headers=auth_headers)
    imported = runner.invoke(args=["store", "import", str(backup)])
    assert imported.exit_code == 0, imported.output
    assert "Imported 1 entry." in imported.output


def test_a_time_near_the_year_9999_reads_back_whatever_the_sessions_default_zone(
    make_app, tmp_path, services_config
):
    # psycopg gives times in the session's zone: in Brussels, 9999-12-31T23:30Z is in the year
    # 10000, which Python cannot hold, and every read of the key was a 500. A server, database
    # or role set to Brussels gives sessions that zone, as this URL's own options do.
    url = sa.make_url(services_config["DATABASE_URL"])
    options = f"{url.query['options']} -c timezone=Europe/Brussels"
    brussels = url.update_query_dict({"options": options}).render_as_string(hide_password=False)
    app = make_app(**{**services_config, "DATABASE_URL": brussels})
    line = '{"client": "tester", "key": "late", "value": 1, "created_at": "9999-12-31T23:30:00Z"}\n'
    assert import_lines(app.test_cli_runner(), tmp_path, line).exit_code == 0
    read = app.test_client().get("/get/late", headers={"X-API-Key": TEST_KEY})
    assert read.status_code == 200
    assert read.get_json()["created_at"] == "9999-12-31T23:30:00+00:00"


def test_an_import_names_the_clients_no_configured_key_belongs_to(runner, tmp_path):
    # A backup restored before its client's key is configured, or a client name mistyped: the
    # entries are stored, and nothing said that no request could read them.
    lines = (
        '{"client": "tester", "key": "k", "value": 1}\n'
        '{"client": "testr", "key": "k", "value": 1}\n'
        '{"client": "gone", "key": "k", "value": 1}\n'
    )
    result = import_lines(runner, tmp_path, lines)
    assert result.exit_code == 0, result.output
    assert "Imported 3 entries." in result.output
    assert "no configured API key belongs to 'gone', 'testr':" in result.output
    known = import_lines(runner, tmp_path, '{"client": "other", "key": "k", "value": 1}\n')
    assert known.exit_code == 0, known.output
    assert "Warning" not in known.output


def test_an_import_run_without_keys_says_nothing_of_them(app, runner, monkeypatch, tmp_path):
    # A flask command needs no keys (its key ring is then empty): it cannot tell whose are
    # missing, and warning of every client would be noise.
    monkeypatch.setitem(app.extensions, "refapi.keyring", KeyRing(()))
    result = import_lines(runner, tmp_path, '{"client": "gone", "key": "k", "value": 1}\n')
    assert result.exit_code == 0, result.output
    assert "Warning" not in result.output
