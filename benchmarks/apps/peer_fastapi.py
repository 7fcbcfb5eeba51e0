"""The peer: a minimal FastAPI app under uvicorn that reads one row from SQLite per request.

The stack of the exam refapi grew from, written the way FastAPI's docs teach it: a plain `def`
endpoint (FastAPI runs it in its thread pool, since sqlite3 blocks), one connection per thread,
the key checked from a header. `PEER_DB_DELAY` (seconds) makes every query slower, for the
concurrency study.
"""

from __future__ import annotations

import hmac
import json
import os
import sqlite3
import threading
import time
from typing import Any

from fastapi import FastAPI, Header, HTTPException

DATABASE = os.environ["PEER_DATABASE"]
API_KEY = os.environ["PEER_API_KEY"].encode()
CLIENT = os.environ.get("PEER_CLIENT", "bench")
DB_DELAY = float(os.environ.get("PEER_DB_DELAY", "0"))

app = FastAPI()
_local = threading.local()


def connection() -> sqlite3.Connection:
    found = getattr(_local, "connection", None)
    if found is None:
        found = _local.connection = sqlite3.connect(DATABASE, check_same_thread=False)
    return found


@app.get("/ping")
def ping() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/get/{key:path}")
def get(key: str, x_api_key: str = Header(default="")) -> dict[str, Any]:
    if not hmac.compare_digest(x_api_key.encode(), API_KEY):
        raise HTTPException(status_code=401, detail="A valid API key is required.")
    if DB_DELAY:
        time.sleep(DB_DELAY)
    row = (
        connection()
        .execute("SELECT value, version FROM entries WHERE client = ? AND key = ?", (CLIENT, key))
        .fetchone()
    )
    if row is None:
        raise HTTPException(status_code=404, detail=f"There is no key {key!r}.")
    return {"key": key, "value": json.loads(row[0]), "version": row[1]}
