"""Keep-alive connections closed after a number of requests, as nginx's `keepalive_requests`.

A connection stays with the worker of `genecommons serve` that accepted it. The kernel spreads
new connections over the workers' sockets (serving.py), but where clients keep their
connections for long (a load balancer's upstream pool, a Beacon network's aggregator), a
placement that came out uneven would stay so. Closing each connection after
`keepalive_requests` responses (`Connection: close` on the last, which the client follows by
reconnecting, as HTTP/1.1 clients do) places it afresh now and then, so that the load keeps
evening out. A reconnect costs a TCP handshake per `keepalive_requests` requests.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_TRACKED = 65_536  # connections counted at once (past it, counting starts again)


class KeepAliveLimit:
    """Sends `Connection: close` with every `requests`-th response on a connection (0: never)."""

    def __init__(self, app: ASGIApp, *, requests: int) -> None:
        self.app = app
        self.requests = requests
        # responses so far per open connection, by the client's (address, port); a connection
        # the client closes first leaves its count behind, hence the bound
        self._served: dict[tuple[str, int], int] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        if scope["type"] != "http" or not client or self.requests <= 0:
            await self.app(scope, receive, send)
            return
        key = (str(client[0]), int(client[1]))
        served = self._served.pop(key, 0) + 1
        if served < self.requests:
            if len(self._served) >= MAX_TRACKED:
                self._served.clear()
            self._served[key] = served
            await self.app(scope, receive, send)
            return

        async def closing(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0].lower() != b"connection"]
                message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        await self.app(scope, receive, closing)
