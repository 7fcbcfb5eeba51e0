"""flask store export FILE / flask store import FILE."""

from __future__ import annotations

import json

import pytest


@pytest.fixture
def filled(client, auth_headers, other_auth_headers):
    client.post("/save", json={"key": "b", "value": {"n": 1}}, headers=auth_headers)
    client.post("/save", json={"key": "b", "value": {"n": 2}}, headers=auth_headers)
    client.post("/save", json={"key": "a/🦄 x", "value": [None, "é"]}, headers=auth_headers)
    client.post("/save", json={"key": "b", "value": "theirs"}, headers=other_auth_headers)
    return client


def _lines(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


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
    assert "exported 3 entries" in result.output


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
    assert "imported 3 entries" in result.output
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
    source = tmp_path / "in.jsonl"
    source.write_text(
        '{"client": "tester", "key": "mine", "value": 1}\n'
        '{"client": "other", "key": "theirs", "value": 2}\n',
        encoding="utf-8",
    )
    result = runner.invoke(args=["store", "import", str(source), "--client", "tester"])
    assert result.exit_code == 0, result.output
    keys = client.get("/keys", headers=auth_headers).get_json()["items"]
    assert [item["key"] for item in keys] == ["mine"]


def test_import_without_version_or_times_starts_at_version_1(
    runner, client, auth_headers, tmp_path
):
    source = tmp_path / "in.jsonl"
    source.write_text('{"client": "tester", "key": "k", "value": null}\n\n', encoding="utf-8")
    assert runner.invoke(args=["store", "import", str(source)]).exit_code == 0
    entry = client.get("/get/k", headers=auth_headers).get_json()
    assert (entry["value"], entry["version"]) == (None, 1)
    assert (
        client.post("/save", json={"key": "k", "value": 1}, headers=auth_headers).status_code == 200
    )


def test_import_reports_every_bad_line_by_number_and_imports_nothing(
    runner, client, auth_headers, tmp_path
):
    source = tmp_path / "in.jsonl"
    source.write_text(
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
        encoding="utf-8",
    )
    result = runner.invoke(args=["store", "import", str(source)])
    assert result.exit_code != 0
    for number in range(2, 11):
        assert f"line {number}:" in result.output
    assert "line 1:" not in result.output
    assert "repeats the key of line 1" in result.output
    assert "nothing was imported" in result.output
    assert client.get("/keys", headers=auth_headers).get_json()["total"] == 0


def test_import_refuses_a_value_over_the_size_limit(make_app, tmp_path):
    app = make_app(STORE_MAX_VALUE_BYTES=10)
    source = tmp_path / "in.jsonl"
    source.write_text(
        '{"client": "tester", "key": "k", "value": "12345678901"}\n', encoding="utf-8"
    )
    result = app.test_cli_runner().invoke(args=["store", "import", str(source)])
    assert result.exit_code != 0
    assert "line 1:" in result.output


def test_import_refuses_existing_keys_unless_told_to_replace_them(
    filled, runner, auth_headers, tmp_path
):
    assert filled.get("/get/b", headers=auth_headers).get_json()["value"] == {"n": 2}  # cached
    source = tmp_path / "in.jsonl"
    source.write_text(
        '{"client": "tester", "key": "new", "value": 1}\n'
        '{"client": "tester", "key": "b", "value": "restored", "version": 7}\n',
        encoding="utf-8",
    )
    refused = runner.invoke(args=["store", "import", str(source)])
    assert refused.exit_code != 0
    assert "line 2:" in refused.output
    assert "--replace" in refused.output
    assert filled.get("/get/new", headers=auth_headers).status_code == 404

    replaced = runner.invoke(args=["store", "import", str(source), "--replace"])
    assert replaced.exit_code == 0, replaced.output
    entry = filled.get("/get/b", headers=auth_headers).get_json()
    assert (entry["value"], entry["version"]) == ("restored", 7)
    assert filled.get("/get/new", headers=auth_headers).status_code == 200


def test_import_of_a_missing_file_fails(runner, tmp_path):
    result = runner.invoke(args=["store", "import", str(tmp_path / "nope.jsonl")])
    assert result.exit_code != 0
