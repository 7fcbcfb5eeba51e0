from __future__ import annotations

import stat

import pytest

from refapi.auth.devkey import ensure_key_file, main
from refapi.auth.keys import load_keyring


def test_the_first_run_creates_a_private_key_file_that_refapi_accepts(tmp_path, capsys):
    path = tmp_path / "instance" / "dev-api-keys"
    assert main([str(path)]) == 0
    secret = ensure_key_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    printed = capsys.readouterr().out
    assert secret in printed
    assert load_keyring({"API_KEYS_FILE": str(path)}).authenticate(secret.encode()) == "dev"


def test_later_runs_keep_the_same_key(tmp_path):
    path = tmp_path / "dev-api-keys"
    assert ensure_key_file(path) == ensure_key_file(path)


def test_the_curl_it_prints_reaches_the_given_target(tmp_path, capsys):
    path = tmp_path / "dev-api-keys"
    target = "--unix-socket /run/refapi.sock http://localhost/authorize"
    assert main([str(path), "--curl-target", target]) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert last == f'Try: curl -H "X-API-Key: {ensure_key_file(path)}" {target}'


def test_usage_without_a_file_argument(capsys):
    with pytest.raises(SystemExit) as stopped:
        main([])
    assert stopped.value.code == 2
    assert "usage" in capsys.readouterr().err
