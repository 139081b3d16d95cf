"""Audit events held back within a request, to be committed with the request's own event.

A Beacon query by token would commit twice before it answers: the token's use, then the
query's event. On the Beacon's routes the token's use is instead held in the request
(`held(scope)`) and committed in the query's own transaction (`GroupedQueue.record(after=)`).
Whatever is still held when the response is about to start (an error, a route that records no
event of its own) is committed first by `HeldEventsMiddleware`; if that commit fails the
response is replaced by a 503, so no answer leaves without its events, and a request that ends
without a response (the client went away) still commits what it held.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from genecommons.ledger.events import GroupedQueue

KEY = "genecommons.held_events"
PREFIX = "/beacon"  # the routes whose token uses are held (read-only queries)


def held(scope: Scope) -> list[bytes] | None:
    """The events this request holds back (None: its events are committed as they happen)."""
    found = scope.get(KEY)
    return found if isinstance(found, list) else None


class HeldEventsMiddleware:
    """Holds the token uses of Beacon requests back, and commits what is left of them before a
    response starts (or when the request ends without one)."""

    def __init__(self, app: ASGIApp, *, events: GroupedQueue) -> None:
        self.app = app
        self.events = events

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope.get("path", "")).startswith(PREFIX):
            await self.app(scope, receive, send)
            return
        pending: list[bytes] = []
        scope[KEY] = pending
        replaced = False

        async def flush() -> None:
            leaves = list(pending)
            pending.clear()  # a commit that fails is not tried again
            await run_in_threadpool(self.events.flush, leaves)

        async def sending(message: Message) -> None:
            nonlocal replaced
            if replaced:
                return  # the app's response was replaced: drop the rest of it
            if message["type"] == "http.response.start" and pending:
                try:
                    await flush()
                except Exception:  # the events could not be committed: no answer goes out
                    replaced = True
                    await _unavailable(send)
                    return
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            if pending:  # the request ended without a response: its events still count
                with anyio.CancelScope(shield=True):
                    await flush()


async def _unavailable(send: Send) -> None:
    body: dict[str, Any] = {
        "error": {
            "errorCode": 503,
            "errorMessage": "The audit log could not record this request; try again.",
            "errorMessage_zh": "审计日志无法记录此请求，请重试。",
        }
    }
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
