"""Pre-shared API keys: parsed once at start-up, compared in constant time."""

from __future__ import annotations

import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from refapi.config import ConfigError

# A key longer than this is never ours: reject it before comparing.
MAX_PRESENTED_KEY_BYTES = 512
MIN_SECRET_LENGTH = 16
MAX_SECRET_LENGTH = 256

_CLIENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
# Visible ASCII but the comma, which separates entries in REFAPI_API_KEYS.
_SECRET = re.compile(r"[\x21-\x2b\x2d-\x7e]+")

HOW_TO_SET_A_KEY = (
    "Set REFAPI_API_KEYS to comma-separated client:secret pairs "
    "(for example REFAPI_API_KEYS=backoffice:<secret>, with a secret from "
    "`python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`) "
    "or REFAPI_API_KEYS_FILE to a file with one client:secret per line. "
    f"Client names are letters, digits, '.', '_' or '-'; secrets are {MIN_SECRET_LENGTH} to "
    f"{MAX_SECRET_LENGTH} visible ASCII characters without commas."
)


@dataclass(frozen=True)
class ApiKey:
    client: str
    secret: bytes = field(repr=False)


class KeyRing:
    """The configured keys; ``authenticate`` tells which client a presented key belongs to."""

    def __init__(self, keys: Iterable[ApiKey]) -> None:
        self._keys = tuple(keys)

    @property
    def clients(self) -> frozenset[str]:
        return frozenset(key.client for key in self._keys)

    def authenticate(self, presented: bytes) -> str | None:
        """The client whose key this is, or None. Every key is compared, each in constant time."""
        if not presented or len(presented) > MAX_PRESENTED_KEY_BYTES:
            return None
        client = None
        for key in self._keys:
            if hmac.compare_digest(presented, key.secret):
                client = key.client
        return client


def parse_keys(entries: Iterable[str], source: str) -> list[ApiKey]:
    """Parse ``client:secret`` entries; errors name the entry, never its secret."""
    keys: list[ApiKey] = []
    for number, entry in enumerate(entries, start=1):
        client, colon, secret = entry.strip().partition(":")
        if not colon or not _CLIENT.fullmatch(client):
            raise ConfigError(
                f"{source}: entry {number} is not client:secret with a valid client name. "
                + HOW_TO_SET_A_KEY
            )
        if not (
            MIN_SECRET_LENGTH <= len(secret) <= MAX_SECRET_LENGTH and _SECRET.fullmatch(secret)
        ):
            raise ConfigError(
                f"{source}: the secret of entry {number} (client {client!r}) is not "
                f"{MIN_SECRET_LENGTH} to {MAX_SECRET_LENGTH} visible ASCII characters. "
                + HOW_TO_SET_A_KEY
            )
        keys.append(ApiKey(client=client, secret=secret.encode("ascii")))
    secrets = [key.secret for key in keys]
    if len(set(secrets)) != len(secrets):
        raise ConfigError(f"{source}: two entries share a secret; give each client its own.")
    return keys


def load_keyring(settings: Mapping[str, Any]) -> KeyRing:
    """The keys of ``API_KEYS`` or ``API_KEYS_FILE``: exactly one of them, with one key or more."""
    inline = settings.get("API_KEYS") or ""
    path = settings.get("API_KEYS_FILE") or ""
    if inline and path:
        raise ConfigError(
            "Both REFAPI_API_KEYS and REFAPI_API_KEYS_FILE are set: keep one of them."
        )
    if path:
        try:
            with open(path, encoding="utf-8") as secret_file:
                lines = secret_file.read().splitlines()
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(
                f"REFAPI_API_KEYS_FILE: cannot read {path}: {type(error).__name__}. "
                + HOW_TO_SET_A_KEY
            ) from None
        entries = [line for line in lines if line.strip() and not line.lstrip().startswith("#")]
        keys = parse_keys(entries, "REFAPI_API_KEYS_FILE")
    else:
        entries = [entry for entry in inline.split(",") if entry.strip()]
        keys = parse_keys(entries, "REFAPI_API_KEYS")
    if not keys:
        raise ConfigError(
            "No API key is configured, so no client could call refapi. " + HOW_TO_SET_A_KEY
        )
    return KeyRing(keys)
