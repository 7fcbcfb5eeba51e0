"""Create a development API key on first run, and print it: ``python -m refapi.auth.devkey FILE``.

Used by ``make run`` so that a fresh checkout serves the API with no configuration. The file
has the ``REFAPI_API_KEYS_FILE`` format and is readable by its owner only.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

CLIENT = "dev"


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
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m refapi.auth.devkey FILE", file=sys.stderr)
        return 2
    secret = ensure_key_file(Path(args[0]))
    print(f"Development API key (client {CLIENT!r}, kept in {args[0]}): {secret}")
    print(f'Try: curl -H "X-API-Key: {secret}" http://127.0.0.1:5000/authorize')
    return 0


if __name__ == "__main__":
    sys.exit(main())
