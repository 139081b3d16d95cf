"""The id of the HTTP request being answered: taken from a sane `X-Request-ID` header or made
anew, echoed in the response, written in the log lines of the request (logs.py) and in the
details of the audit events it records (ledger/events.py)."""

from __future__ import annotations

import os
import random
import re
from contextvars import ContextVar

from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = "X-Request-ID"
_HEADER_KEY = HEADER.lower().encode("latin-1")
# what a proxy or a client may name a request by: short, printable, nothing a log line or a
# JSON document would need escaped (uuids, ULIDs, AWS/Envoy trace ids all fit)
_SANE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+/=-]{0,127}")

_random = random.Random()  # noqa: S311 (seeded from the system's randomness; ids, not secrets)
if hasattr(os, "register_at_fork"):  # a forked child draws ids of its own
    os.register_at_fork(after_in_child=_random.seed)

_current: ContextVar[str | None] = ContextVar("genecommons_request_id", default=None)


def current() -> str | None:
    """The id of the request this code runs for (None outside a request)."""
    return _current.get()


def accept(header: str | None) -> str:
    """The header's id when it is sane (1 to 128 characters of letters, digits and
    `._:+/=-`, starting with a letter or digit), else a new random one."""
    if header is not None and _SANE.fullmatch(header):
        return header
    # 128 random bits written as a uuid4's hex is (an id, not a secret: no system call for it)
    return f"{_random.getrandbits(128):032x}"


class RequestIds:
    """Pure ASGI middleware giving each HTTP request its id for as long as it is answered
    (background work after the answer included), and echoing it in `X-Request-ID`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = [v for k, v in scope["headers"] if k == _HEADER_KEY]
        request_id = accept(sent[0].decode("latin-1") if len(sent) == 1 else None)
        echoed = (_HEADER_KEY, request_id.encode("latin-1"))

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", ()) if k != _HEADER_KEY]
                message["headers"] = [*headers, echoed]
            await send(message)

        token = _current.set(request_id)
        try:
            await self.app(scope, receive, sending)
        finally:
            _current.reset(token)
