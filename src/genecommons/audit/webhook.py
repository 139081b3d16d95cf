"""Posting an alert to the configured webhook: JSON, signed, retried, bounded in time.

The body is the alert's JSON (UTF-8). With a secret configured, the header
`X-GeneCommons-Signature: sha256=<hex>` carries the HMAC-SHA256 of the exact body, so the
receiver can check the alert came from this node. Each try has the client's timeout; a try
that fails (a connection error, a timeout, a status other than 2xx) is repeated after a
doubling pause, `tries` times at most, so a dead endpoint holds the watcher for a bounded time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import httpx

SIGNATURE_HEADER = "X-GeneCommons-Signature"


class WebhookError(Exception):
    """The webhook did not take the alert after every try; it stays pending (or failed)."""

    def __init__(self, message: str, *, attempts: int) -> None:
        super().__init__(message)
        self.attempts = attempts


def signature(body: bytes, secret: bytes) -> str:
    """The signature header's value for `body`."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def post_alert(
    client: httpx.Client,
    url: str,
    document: dict[str, Any],
    *,
    secret: bytes | None = None,
    tries: int = 3,
    backoff_seconds: float = 0.5,
) -> int:
    """POST `document` to `url`; how many tries it took. Raises `WebhookError` when none
    succeeded."""
    body = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    headers = {"Content-Type": "application/json; charset=utf-8"}
    if secret:
        headers[SIGNATURE_HEADER] = signature(body, secret)
    problem = ""
    for attempt in range(1, tries + 1):
        try:
            response = client.post(url, content=body, headers=headers)
        except httpx.HTTPError as error:
            problem = f"{type(error).__name__}: {error}"
        else:
            if 200 <= response.status_code < 300:
                return attempt
            problem = f"HTTP {response.status_code}"
        if attempt < tries:
            time.sleep(backoff_seconds * 2 ** (attempt - 1))
    raise WebhookError(f"{url}: {problem} after {tries} tries", attempts=tries)
