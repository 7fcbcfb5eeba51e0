"""Single requests outside the load: probes, warming, seeding through the API."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

TIMEOUT = 10.0


def call(
    url: str,
    *,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    body: str | None = None,
) -> tuple[int, Any]:
    """The status and the decoded JSON body (None when it is not JSON)."""
    data = body.encode() if body is not None else None
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError(f"the harness only calls its own loopback servers, not {url}")
    # Loopback http only, checked above.
    request = urllib.request.Request(  # noqa: S310
        url, data=data, method=method, headers=dict(headers or {})
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310 - loopback
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, None


def call_many(
    requests: Iterable[tuple[str, str, str | None]],
    *,
    headers: Mapping[str, str],
    parallel: int = 8,
) -> list[int]:
    """(method, url, body) requests, ``parallel`` at a time; their statuses."""

    def one(item: tuple[str, str, str | None]) -> int:
        method, url, body = item
        return call(url, method=method, headers=headers, body=body)[0]

    with ThreadPoolExecutor(max_workers=parallel) as pool:
        return list(pool.map(one, requests))
