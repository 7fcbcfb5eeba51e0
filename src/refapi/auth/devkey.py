"""Create a development API key on first run, and print it: ``python -m refapi.auth.devkey FILE``.

Used by ``make run`` so that a fresh checkout serves the API with no configuration. The file
has the ``REFAPI_API_KEYS_FILE`` format and is readable by its owner only. ``--curl-target``
is what the printed curl is pointed at (``make run`` gives the address it serves on).
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path

CLIENT = "dev"
DEFAULT_TARGET = "http://127.0.0.1:5000/authorize"


def ensure_key_file(path: Path) -> str:
    """The development secret in ``path``, created (mode 0600) if the file does not exist."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        secret = secrets.token_urlsafe(32)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as key_file:
            key_file.write("# Development key created by `make run`; not for production.\n")
            key_file.write(f"{CLIENT}:{secret}\n")
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith(f"{CLIENT}:"):
            return line.partition(":")[2].strip()
    raise SystemExit(f"{path} has no {CLIENT}:<secret> line; delete it to get a new key.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m refapi.auth.devkey")
    parser.add_argument("file", type=Path, help="the key file, created if it does not exist")
    parser.add_argument(
        "--curl-target",
        default=DEFAULT_TARGET,
        help=f"what the printed curl reaches after its key header (default {DEFAULT_TARGET})",
    )
    args = parser.parse_args(argv)
    secret = ensure_key_file(args.file)
    print(f"Development API key (client {CLIENT!r}, kept in {args.file}): {secret}")
    print(f'Try: curl -H "X-API-Key: {secret}" {args.curl_target}')
    return 0


if __name__ == "__main__":
    sys.exit(main())
