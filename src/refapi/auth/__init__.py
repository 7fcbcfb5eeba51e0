"""Authentication with pre-shared API keys."""

from refapi.api import API_KEY_SCHEME, BEARER_SCHEME
from refapi.auth.hooks import init_app
from refapi.auth.keys import KeyRing, load_keyring

__all__ = ["API_KEY_SCHEME", "BEARER_SCHEME", "KeyRing", "init_app", "load_keyring"]
