from __future__ import annotations

import pytest

from refapi.auth.keys import MAX_PRESENTED_KEY_BYTES, KeyRing, load_keyring, parse_keys
from refapi.config import ConfigError

SECRET_A = "a" * 20
SECRET_B = "b-secret-with:colon!"


def test_several_keys_each_name_their_client():
    ring = load_keyring({"API_KEYS": f"backoffice:{SECRET_A}, broker:{SECRET_B}"})
    assert ring.authenticate(SECRET_A.encode()) == "backoffice"
    assert ring.authenticate(SECRET_B.encode()) == "broker"
    assert ring.clients == {"backoffice", "broker"}


def test_one_client_may_hold_two_keys_during_rotation():
    ring = load_keyring({"API_KEYS": f"backoffice:{SECRET_A},backoffice:{SECRET_B}"})
    assert ring.authenticate(SECRET_A.encode()) == "backoffice"
    assert ring.authenticate(SECRET_B.encode()) == "backoffice"


@pytest.mark.parametrize(
    "presented",
    [b"", b"a" * 19, b"a" * 21, SECRET_A.upper().encode(), b"x" * (MAX_PRESENTED_KEY_BYTES + 1)],
)
def test_anything_but_an_exact_key_is_refused(presented):
    assert load_keyring({"API_KEYS": f"backoffice:{SECRET_A}"}).authenticate(presented) is None


def test_keys_come_from_a_secret_file_with_comments_and_a_trailing_newline(tmp_path):
    secret_file = tmp_path / "api_keys"
    secret_file.write_text(f"# rotated 2026-11\nbackoffice:{SECRET_A}\n\nbroker:{SECRET_B}\n")
    ring = load_keyring({"API_KEYS_FILE": str(secret_file)})
    assert ring.authenticate(SECRET_A.encode()) == "backoffice"
    assert ring.authenticate(SECRET_B.encode()) == "broker"


def test_no_key_at_all_refuses_to_start_and_says_how_to_set_one():
    with pytest.raises(ConfigError, match="REFAPI_API_KEYS") as raised:
        load_keyring({"API_KEYS": "", "API_KEYS_FILE": ""})
    assert "REFAPI_API_KEYS_FILE" in str(raised.value)


def test_an_empty_secret_file_refuses_to_start(tmp_path):
    secret_file = tmp_path / "api_keys"
    secret_file.write_text("# nothing yet\n")
    with pytest.raises(ConfigError, match="No API key"):
        load_keyring({"API_KEYS_FILE": str(secret_file)})


def test_both_sources_set_refuses_to_start(tmp_path):
    secret_file = tmp_path / "api_keys"
    secret_file.write_text(f"backoffice:{SECRET_A}\n")
    with pytest.raises(ConfigError, match="Both"):
        load_keyring({"API_KEYS": f"broker:{SECRET_B}", "API_KEYS_FILE": str(secret_file)})


def test_an_unreadable_secret_file_refuses_to_start(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_keyring({"API_KEYS_FILE": str(tmp_path / "missing")})


@pytest.mark.parametrize(
    "entry",
    [
        "no-colon-here-at-all",
        f":{SECRET_A}",
        f"bad name:{SECRET_A}",
        "backoffice:short",
        "backoffice:" + "x" * 257,
        "backoffice:has spaces in the secret",
        "backoffice:nön-ascii-secret-value",
    ],
)
def test_a_malformed_entry_refuses_to_start_without_echoing_the_secret(entry):
    with pytest.raises(ConfigError) as raised:
        parse_keys([entry], "REFAPI_API_KEYS")
    message = str(raised.value)
    assert "entry 1" in message
    secret = entry.partition(":")[2]
    if len(secret) >= 4:
        assert secret not in message


def test_two_clients_sharing_a_secret_refuse_to_start():
    with pytest.raises(ConfigError, match="share a secret"):
        parse_keys([f"a:{SECRET_A}", f"b:{SECRET_A}"], "REFAPI_API_KEYS")


def test_a_key_never_appears_in_its_repr():
    keys = parse_keys([f"backoffice:{SECRET_A}"], "REFAPI_API_KEYS")
    assert SECRET_A not in repr(keys)
    assert SECRET_A not in repr(KeyRing(keys).__dict__)
