"""JSON request bodies bounded in size and nesting before any route parses them.

FastAPI parses a JSON body (`application/json`, `application/*+json`) with `json.loads` before
the route runs, however large or deeply nested it is: a body nested a thousand deep ends in a
bare 400 that is not a problem document, one a little shallower is handed to validation, and a
body of gigabytes is held in memory whole. This middleware reads such a body first, refuses one
larger than `max_bytes` (413, without reading further) or nested deeper than
`bounded.MAX_NESTING` (422), through the app's own error rendering (so that the Beacon, htsget
and DRS answer in their own forms), and hands the route the body it read. Other bodies
(uploads, multipart forms) pass untouched.
"""

from __future__ import annotations

import email.message
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from genecommons import bounded
from genecommons.errors import GeneCommonsError, NestingTooDeepError, PayloadTooLargeError

Render = Callable[[Request, GeneCommonsError], Awaitable[Response]]


def is_json(content_type: str | None) -> bool:
    """Whether FastAPI reads a body of this content type as JSON."""
    if not content_type:
        return False
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


class BoundedJsonBodies:
    """Refuses JSON request bodies over `max_bytes` or nested deeper than `max_nesting`,
    answering with `render` (the app's handler of GeneCommons errors)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        render: Render,
        max_nesting: int = bounded.MAX_NESTING,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_nesting = max_nesting
        self.render = render

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        if not is_json(headers.get("content-type")):
            await self.app(scope, receive, send)
            return
        declared = headers.get("content-length", "")
        if declared.isdecimal() and int(declared) > self.max_bytes:
            await self._refuse(scope, send, self._too_large())
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away before the body was complete
            body += message.get("body", b"")
            if len(body) > self.max_bytes:
                await self._refuse(scope, send, self._too_large())
                return
            if not message.get("more_body", False):
                break
        try:
            bounded.check_json_nesting(body, limit=self.max_nesting, place="The request body")
        except NestingTooDeepError as error:
            await self._refuse(scope, send, error)
            return
        except ValueError:
            pass  # not JSON text: the route answers that, as for any malformed JSON
        await self.app(scope, _replay(bytes(body), receive), send)

    def _too_large(self) -> PayloadTooLargeError:
        return PayloadTooLargeError(
            f"The JSON request body is larger than {self.max_bytes:,} bytes.",
            message_zh=f"JSON 请求体超过 {self.max_bytes:,} 字节。",
            details={"max_bytes": self.max_bytes},
        )

    async def _refuse(self, scope: Scope, send: Send, error: GeneCommonsError) -> None:
        response = await self.render(Request(scope), error)
        # the rest of an unread body is not worth waiting for: the connection closes after this
        response.headers["connection"] = "close"
        await response(scope, _no_receive, send)


def _headers(scope: Scope) -> dict[str, str]:
    """The request's headers by lower-case name, the first of each name (as Starlette reads)."""
    headers: dict[str, str] = {}
    for name, value in scope["headers"]:
        headers.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
    return headers


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that gives `body` whole, then whatever the connection says next."""
    given = False

    async def replayed() -> Message:
        nonlocal given
        if given:
            return await receive()
        given = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replayed


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}
