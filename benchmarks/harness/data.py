"""The data a run seeds and the request lists wrk walks through."""

from __future__ import annotations

import json
import random
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import quote

CLIENT = "bench"
STORE_KEYS = 10_000
SAVE_KEYS = 1_000
MISSING_KEYS = 10_000
# Zipcodes tried for GET /zipcodes/<zipcode>; the run keeps those the imported table has.
ZIPCODE_CANDIDATES = tuple(range(1000, 10_000, 89))

_CITIES = ("Antwerpen", "Brugge", "Bruxelles", "Charleroi", "Gent", "Leuven", "Liège", "Namur")


def store_key(number: int) -> str:
    """A realistic key with a slash and a space: exercises the path converter and quoting."""
    return f"contracts/BE-2026 {number:05d}"


def document(number: int, rng: random.Random) -> dict[str, Any]:
    """A small JSON document (about 400 bytes) of the kind back offices keep."""
    return {
        "contract": f"BE-2026-{number:05d}",
        "holder": {"name": f"Client {number}", "city": rng.choice(_CITIES)},
        "zipcode": rng.randrange(1000, 9992),
        "premium": {"amount": round(rng.uniform(200, 2000), 2), "currency": "EUR"},
        "indexed": rng.random() < 0.5,
        "base_year": 2013,
        "options": sorted(rng.sample(["fire", "theft", "water", "glass", "legal", "storm"], 3)),
        "notes": "Index yearly on the anniversary, health index of the month before.",
    }


def path_of(key: str) -> str:
    return quote(key, safe="/")


def write_store_import(path: Path, *, count: int = STORE_KEYS, seed: int = 8) -> None:
    """JSON lines for `flask store import`: one entry per line, all of the bench client."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as out:
        for number in range(count):
            line = {"client": CLIENT, "key": store_key(number), "value": document(number, rng)}
            out.write(json.dumps(line, ensure_ascii=False) + "\n")


def write_peer_database(path: Path, *, count: int = STORE_KEYS, seed: int = 8) -> None:
    """The FastAPI peer's SQLite database: the same entries, in one plain table."""
    rng = random.Random(seed)
    with sqlite3.connect(path) as connection:
        connection.execute(
            "CREATE TABLE entries (client TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,"
            " version INTEGER NOT NULL, PRIMARY KEY (client, key))"
        )
        connection.executemany(
            "INSERT INTO entries VALUES (?, ?, ?, 1)",
            (
                (CLIENT, store_key(number), json.dumps(document(number, rng)))
                for number in range(count)
            ),
        )
    connection.close()


def write_requests(path: Path, targets: list[str], bodies: list[str] | None = None) -> Path:
    with path.open("w", encoding="utf-8") as out:
        for position, target in enumerate(targets):
            if "\t" in target or "\n" in target:
                raise ValueError(f"request target {target!r} has a tab or a newline")
            body = f"\t{bodies[position]}" if bodies is not None else ""
            out.write(target + body + "\n")
    return path


def save_bodies(count: int = SAVE_KEYS, seed: int = 9) -> list[str]:
    rng = random.Random(seed)
    return [
        json.dumps(
            {"key": f"bench/save/{number:04d}", "value": document(number, rng)},
            separators=(",", ":"),
        )
        for number in range(count)
    ]
