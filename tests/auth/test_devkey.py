from __future__ import annotations

import stat

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


def test_usage_without_a_file_argument(capsys):
    assert main([]) == 2
    assert "usage" in capsys.readouterr().err
