"""What the DRS and htsget routes share: the object id in their paths, the caller's credentials
repeated in the URLs they hand out, the stream of a delivery, and the answers while a
recipient's copy is being made."""

from __future__ import annotations

from typing import Annotated, Any

import anyio
from fastapi import Path, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.types import Receive, Scope, Send

from genecommons.archive.served import Transfer

Accession = Annotated[str, Path(min_length=1, max_length=40)]


def credentials(request: Request) -> dict[str, str]:
    """The caller's credentials, repeated in the URLs handed out so that they work as is."""
    headers = {}
    for name in ("authorization", "x-ga4gh-passport"):
        value = request.headers.get(name)
        if value:
            headers["Authorization" if name == "authorization" else "X-GA4GH-Passport"] = value
    return headers


class TransferResponse(StreamingResponse):
    """A delivery's stream, closed (and so audited with the bytes sent) however it ends: to
    the last byte, or cut off by the client or the server."""

    def __init__(self, transfer: Transfer, **kwargs: Any) -> None:
        super().__init__(transfer, **kwargs)
        self.transfer = transfer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await run_in_threadpool(self.transfer.close)


# while a recipient's fingerprinted copy is being made (errors.NotReadyError, answered in
# app.py: DRS objects and access URLs 202, byte streams and htsget tickets 503)
_WAIT: dict[str, Any] = {
    "description": "Your fingerprinted copy of the file is being made: send the same request "
    "again after Retry-After seconds.",
    "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds"}},
}
ACCEPTED: dict[int | str, dict[str, Any]] = {202: _WAIT}
UNAVAILABLE: dict[int | str, dict[str, Any]] = {503: _WAIT}
