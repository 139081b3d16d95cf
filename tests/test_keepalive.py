"""Keep-alive connections are closed after `keepalive_requests` responses, on a real server:
the last response says `Connection: close` and the server closes the socket after it, so that
clients that connected together are accepted again and spread over the workers."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import uvicorn
from fastapi.testclient import TestClient
from starlette.types import Receive, Scope, Send

from genecommons.app import create_app
from genecommons.config import Settings
from genecommons.keepalive import KeepAliveLimit
from genecommons.migrate import upgrade_node


async def hello(scope: Scope, receive: Receive, send: Send) -> None:
    """A tiny ASGI app that says it wants the connection kept (the limit overrides that)."""
    headers = [
        (b"content-type", b"text/plain"),
        (b"content-length", b"5"),
        (b"connection", b"keep-alive"),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"hello"})


def _serve(app: KeepAliveLimit) -> Iterator[int]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the test server did not start"
        time.sleep(0.02)
    yield port
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def limited_port() -> Iterator[int]:
    """A server whose connections carry 3 requests."""
    yield from _serve(KeepAliveLimit(hello, requests=3))


@pytest.fixture
def unlimited_port() -> Iterator[int]:
    """A server that keeps connections open as long as clients do."""
    yield from _serve(KeepAliveLimit(hello, requests=0))


def _exchange(connection: socket.socket, port: int) -> bytes:
    """Send one keep-alive GET and read its whole response (a fixed-length body)."""
    connection.sendall(f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    received = b""
    while not received.endswith(b"hello"):
        chunk = connection.recv(65536)
        assert chunk, f"the server closed the connection early: {received!r}"
        received += chunk
    return received.lower()


def test_the_last_request_of_a_connection_closes_it(limited_port: int) -> None:
    with socket.create_connection(("127.0.0.1", limited_port), timeout=10) as connection:
        heads = [_exchange(connection, limited_port) for _ in range(3)]
        assert [b"connection: close" in h for h in heads] == [False, False, True]
        assert [h.count(b"connection:") for h in heads] == [1, 1, 1]  # the app's is replaced
        assert connection.recv(65536) == b""  # closed by the server
    # a new connection starts its count again
    with socket.create_connection(("127.0.0.1", limited_port), timeout=10) as connection:
        assert b"connection: close" not in _exchange(connection, limited_port)


def test_connections_are_counted_apart(limited_port: int) -> None:
    with (
        socket.create_connection(("127.0.0.1", limited_port), timeout=10) as first,
        socket.create_connection(("127.0.0.1", limited_port), timeout=10) as second,
    ):
        for _ in range(2):
            assert b"connection: close" not in _exchange(first, limited_port)
            assert b"connection: close" not in _exchange(second, limited_port)
        assert b"connection: close" in _exchange(second, limited_port)
        assert b"connection: close" in _exchange(first, limited_port)


def test_no_limit_keeps_connections_open(unlimited_port: int) -> None:
    with socket.create_connection(("127.0.0.1", unlimited_port), timeout=10) as connection:
        for _ in range(10):
            assert b"connection: close" not in _exchange(connection, unlimited_port)


def test_the_app_limits_connections_by_its_setting(
    tmp_path: Path, initialised: Callable[[Settings], Settings]
) -> None:
    settings = initialised(
        Settings(data_dir=tmp_path / "data", environment="test", keepalive_requests=4)
    )
    upgrade_node(settings)
    app = create_app(settings)
    try:
        with TestClient(app) as client:  # one connection, as the limit sees it
            said = [client.get("/health").headers.get("connection") for _ in range(8)]
        assert said == [None, None, None, "close", None, None, None, "close"]
    finally:
        app.state.services.engine.dispose()
