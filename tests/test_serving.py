"""How `genecommons serve` serves (genecommons/serving.py), on real servers over loopback
sockets: a client that sends its request head or body too slowly is cut off while slow but
progressing uploads go through, and forwarded headers are believed only from configured proxies.

No assertion here is on how long something took: a test that waits for the server to close a
connection waits up to a generous bound (many times the configured timeout) and fails only if
the connection is still open then, which without the timeouts it stays for ever."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import select
from starlette.types import Receive, Scope, Send
from uvicorn.config import STARTUP_FAILURE

from genecommons.config import Settings
from genecommons.db import node_engine
from genecommons.ledger.events import EventTag
from genecommons.ledger.tables import audit_events
from genecommons.serving import (
    PROTOCOL,
    ReadTimeouts,
    TimedHttpToolsProtocol,
    announce_when_ready,
    health_url,
)

REPO = Path(__file__).resolve().parents[1]
HEADER_SECONDS = 1.0
BODY_SECONDS = 1.5
CLOSED_WITHIN = 20.0  # the generous bound: many times either timeout


class QuickTimeouts(TimedHttpToolsProtocol):
    """The served protocol with timeouts short enough to test."""

    timeouts = ReadTimeouts(
        header_seconds=HEADER_SECONDS, body_seconds=BODY_SECONDS, body_min_bytes_per_second=200
    )


class Counter:
    """An ASGI app that reads the whole body (after `wait` seconds, if the query asks) and
    answers its size; it remembers the requests whose client went away."""

    def __init__(self) -> None:
        self.disconnected: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        query = scope["query_string"].decode()
        if query.startswith("wait="):
            await asyncio.sleep(float(query.removeprefix("wait=")))
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.disconnected.append(scope["path"])
                return
            size += len(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = str(size).encode()
        headers = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def counter() -> Counter:
    return Counter()


@pytest.fixture
def port(counter: Counter) -> Iterator[int]:
    """A uvicorn server in this process, with the served protocol and short timeouts."""
    port = _free_port()
    config = uvicorn.Config(
        counter,
        host="127.0.0.1",
        port=port,
        http=QuickTimeouts,
        log_level="warning",
        lifespan="off",
    )
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


def _connect(port: int) -> socket.socket:
    connection = socket.create_connection(("127.0.0.1", port), timeout=CLOSED_WITHIN)
    connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return connection


def _until_closed(connection: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (failing the test if it
    is still open after CLOSED_WITHIN seconds)."""
    received = b""
    try:
        while chunk := connection.recv(65536):
            received += chunk
    except TimeoutError:
        pytest.fail(f"the server kept the connection open; it sent {received!r}")
    except ConnectionResetError:
        pass
    return received


def _response(connection: socket.socket) -> bytes:
    """One whole response with a content-length (the connection stays open)."""
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = connection.recv(65536)
        assert chunk, f"closed early: {received!r}"
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    length = int(
        next(
            line.split(b":")[1]
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
    )
    while len(body) < length:
        chunk = connection.recv(65536)
        assert chunk, f"closed early: {received!r}"
        body += chunk
    return head + b"\r\n\r\n" + body


@pytest.mark.parametrize(
    "sent",
    [
        b"",  # connects and sends nothing
        b"GET / HT",  # part of the request line
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: a",  # part of the headers
    ],
)
def test_a_request_head_that_stops_is_cut_off(port: int, sent: bytes) -> None:
    with _connect(port) as connection:
        connection.sendall(sent)
        answer = _until_closed(connection)
    assert answer.startswith(b"HTTP/1.1 408 ")


def test_a_head_that_trickles_is_cut_off_all_the_same(port: int) -> None:
    """One header byte every tenth of a second keeps a connection busy, but not for longer
    than the head's timeout: the clock runs from the start of the head."""
    with _connect(port) as connection:
        connection.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        trickled = 0
        with contextlib.suppress(OSError):  # the server closes while we still send
            while trickled < CLOSED_WITHIN * 10:
                connection.sendall(b"X-Slow-Loris: a\r\n"[trickled % 16 : trickled % 16 + 1])
                trickled += 1
                time.sleep(0.1)
        answer = _until_closed(connection)
    assert trickled < CLOSED_WITHIN * 10, "the trickle was never cut"
    assert answer.startswith(b"HTTP/1.1 408 ")


def test_the_second_request_of_a_connection_has_its_own_clock(port: int) -> None:
    with _connect(port) as connection:
        connection.sendall(b"GET /one HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _response(connection).endswith(b"\r\n\r\n0")
        connection.sendall(b"GET /two HTTP/1.1\r\nHo")
        answer = _until_closed(connection)
    assert answer.startswith(b"HTTP/1.1 408 ")


def test_a_body_that_stops_is_cut_off_and_the_app_told(port: int, counter: Counter) -> None:
    with _connect(port) as connection:
        connection.sendall(
            b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"a" * 5000
        )
        answer = _until_closed(connection)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert counter.disconnected == ["/upload"]


def test_a_body_that_trickles_below_the_rate_is_cut_off(port: int) -> None:
    """A byte every quarter second is progress, but less than the 200 bytes a second the
    server asks for on average over each window."""
    with _connect(port) as connection:
        connection.sendall(b"POST /rudy HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
        trickled = 0
        with contextlib.suppress(OSError):
            while trickled < CLOSED_WITHIN * 4:
                connection.sendall(b"a")
                trickled += 1
                time.sleep(0.25)
        answer = _until_closed(connection)
    assert trickled < CLOSED_WITHIN * 4, "the trickle was never cut"
    assert answer.startswith(b"HTTP/1.1 408 ")


def _send_slowly(port: int, chunks: int, *, path: str = "/", pause: float = 0.25) -> bytes:
    """POST a body of `chunks` chunks of 1,000 bytes, one every `pause` seconds: well above
    the rate asked for, but taking several times the body's timeout in all."""
    with _connect(port) as connection:
        connection.sendall(
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {chunks * 1000}\r\n\r\n".encode()
        )
        for _ in range(chunks):
            connection.sendall(b"b" * 1000)
            time.sleep(pause)
        return _response(connection)


def test_a_slow_but_progressing_body_goes_through(port: int) -> None:
    chunks = int(4 * BODY_SECONDS / 0.25)  # four timeouts' worth of sending
    assert _send_slowly(port, chunks).endswith(b"\r\n\r\n%d" % (chunks * 1000))


def test_a_body_the_app_has_not_taken_yet_is_not_the_clients_fault(port: int) -> None:
    """The app waits before reading a body larger than the server buffers: the server stops
    reading, the client's sends block, and no timeout runs meanwhile."""
    size = 4 * 1024 * 1024
    wait = 3 * BODY_SECONDS
    with _connect(port) as connection:
        connection.sendall(
            f"POST /?wait={wait} HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n".encode()
        )
        connection.sendall(b"c" * size)
        assert _response(connection).endswith(b"\r\n\r\n%d" % size)


def test_a_client_waiting_for_continue_is_not_cut_off(port: int) -> None:
    """A client that asks `Expect: 100-continue` sends its body only when told to; the app
    asks for it late."""
    wait = 3 * BODY_SECONDS
    with _connect(port) as connection:
        connection.sendall(
            f"POST /?wait={wait} HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
            "Expect: 100-continue\r\n\r\n".encode()
        )
        assert connection.recv(65536).startswith(b"HTTP/1.1 100 ")
        connection.sendall(b"hello")
        assert _response(connection).endswith(b"\r\n\r\n5")


def test_quick_requests_keep_their_connection(port: int) -> None:
    with _connect(port) as connection:
        for _ in range(int(3 * HEADER_SECONDS / 0.2)):
            connection.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
            assert _response(connection).endswith(b"\r\n\r\n3")
            time.sleep(0.2)


# -- `genecommons serve` ------------------------------------------------------------------------


@pytest.fixture
def node(tmp_path: Path, genecommons_cli: Callable[..., Any]) -> dict[str, str]:
    """The environment of an initialised node on SQLite, with short read timeouts."""
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO / "src"),
        "GENECOMMONS_DATA_DIR": str(tmp_path / "data"),
        "GENECOMMONS_ENVIRONMENT": "test",
        "GENECOMMONS_HEADER_TIMEOUT_SECONDS": str(HEADER_SECONDS),
        "GENECOMMONS_BODY_TIMEOUT_SECONDS": str(BODY_SECONDS),
    }
    for name in (
        "GENECOMMONS_DATABASE_URL",
        "GENECOMMONS_FORWARDED_ALLOW_IPS",
        "FORWARDED_ALLOW_IPS",
    ):
        env.pop(name, None)
    genecommons_cli(env, "init")
    return env


# the `genecommons` console script of this environment, as `make run` starts it
SCRIPT = Path(sys.executable).with_name("genecommons")


@contextlib.contextmanager
def served(
    env: dict[str, str], log: Path, *, workers: int, within: float = 120, script: bool = False
) -> Iterator[int]:
    """`genecommons serve --workers N` on a free loopback port (`python -m genecommons`, or the
    console script), answering within `within` seconds; the port."""
    port = _free_port()
    command = [str(SCRIPT)] if script else [sys.executable, "-m", "genecommons"]
    with log.open("w") as out:
        server = subprocess.Popen(
            [*command, "serve", *("--port", str(port), "--workers", str(workers))],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + within
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("genecommons serve did not start: " + log.read_text())
            time.sleep(0.2)
        yield port
    finally:
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=30)


@pytest.mark.slow
def test_serve_with_two_workers_cuts_slow_clients_off(node: dict[str, str], tmp_path: Path) -> None:
    with served(node, tmp_path / "serve.log", workers=2) as port:
        # several connections, so that both workers accept some
        connections = [_connect(port) for _ in range(6)]
        for connection in connections:
            connection.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: a")
        for connection in connections:
            with connection:
                assert _until_closed(connection).startswith(b"HTTP/1.1 408 ")
        # a slow but progressing JSON body of a real route is read whole
        chunks = int(4 * BODY_SECONDS / 0.25)
        with _connect(port) as connection:
            body = b'{"email": "' + b"a" * (chunks * 1000 - 13) + b'"}'
            connection.sendall(
                b"POST /api/v1/auth/register HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
            )
            for start in range(0, len(body), 1000):
                connection.sendall(body[start : start + 1000])
                time.sleep(0.25)
            answer = _response(connection)
        assert answer.startswith(b"HTTP/1.1 422 "), answer[:300]  # read, then validated


def _sign_in_failures(env: dict[str, str], port: int, forwarded: list[str]) -> list[int]:
    """Wrong passwords for as many different accounts, each claiming another address."""
    statuses = []
    for i, address in enumerate(forwarded):
        response = httpx.post(
            f"http://127.0.0.1:{port}/api/v1/auth/token",
            data={"username": f"nobody{i}@example.org", "password": "wrong"},
            headers={"X-Forwarded-For": address},
            timeout=30,
        )
        statuses.append(response.status_code)
    return statuses


def _failure_addresses(env: dict[str, str]) -> list[str]:
    settings = Settings(data_dir=Path(env["GENECOMMONS_DATA_DIR"]))
    engine = node_engine(settings)  # the node's key: its data directory's node key
    try:
        with engine.connect() as connection:
            actors = connection.execute(
                select(audit_events.c.actor)
                .where(audit_events.c.tag == str(EventTag.SIGN_IN_FAILED))
                .order_by(audit_events.c.leaf_index)
            ).scalars()
            return [a.removeprefix("address:") for a in actors]
    finally:
        engine.dispose()


SPOOFED = [f"203.0.113.{i}" for i in range(1, 9)]


@pytest.mark.slow
def test_forwarded_addresses_are_believed_only_from_configured_proxies(
    node: dict[str, str], tmp_path: Path
) -> None:
    # no proxy configured: the header changes nothing; the sixth failure from this peer is
    # throttled however many addresses it claims, and the log names the peer
    with served(node, tmp_path / "direct.log", workers=2) as port:
        statuses = _sign_in_failures(node, port, SPOOFED)
    assert statuses == [401] * 5 + [429] * 3
    assert set(_failure_addresses(node)) == {"127.0.0.1"}
    # behind a proxy on loopback (as nginx on the same host): its header names the client
    proxied = {**node, "GENECOMMONS_FORWARDED_ALLOW_IPS": "127.0.0.1, ::1"}
    with served(proxied, tmp_path / "proxied.log", workers=2) as port:
        statuses = _sign_in_failures(proxied, port, [f"192.0.2.7, {a}" for a in SPOOFED])
    assert statuses == [401] * 8
    assert _failure_addresses(node)[-8:] == SPOOFED  # the last address before the proxy


def test_serve_hands_uvicorn_the_protocol_and_the_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    from genecommons import serving

    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: seen.update(options, app=app))
    serving.run(settings=Settings(), host="127.0.0.1", port=8000, workers=1, access_log=False)
    assert seen["http"] == PROTOCOL and seen["workers"] == 1 and seen["app"] == serving.APP
    assert seen["proxy_headers"] is False
    options = serving.uvicorn_options(
        Settings(forwarded_allow_ips="10.0.0.7/24", worker_startup_seconds=90),
        host="127.0.0.1",
        port=8000,
        workers=2,
        access_log=False,
    )
    assert options["http"] == PROTOCOL and options["workers"] == 2
    assert options["proxy_headers"] is True and options["forwarded_allow_ips"] == ["10.0.0.0/24"]
    assert options["timeout_worker_healthcheck"] == 90


def test_several_workers_each_get_a_socket_of_their_own(monkeypatch: pytest.MonkeyPatch) -> None:
    from genecommons import serving

    seen: dict[str, Any] = {}

    def supervise(self: serving.BalancedWorkers) -> None:
        seen["config"] = self.config
        seen["slots"] = [(s.fileno(), s.getsockname(), _reuses_port(s)) for s in self.slots]

    monkeypatch.setattr(serving.BalancedWorkers, "run", supervise)
    settings = Settings(forwarded_allow_ips="10.0.0.7/24", worker_startup_seconds=90)
    serving.run(settings=settings, host="127.0.0.1", port=0, workers=3, access_log=False)
    config = seen["config"]
    assert config.http == PROTOCOL and config.workers == 3 and config.factory
    assert config.forwarded_allow_ips == ["10.0.0.0/24"]
    assert config.timeout_worker_healthcheck == 90
    slots = seen["slots"]
    assert len({fd for fd, _, _ in slots}) == 3  # three sockets
    assert len({address for _, address, _ in slots}) == 1  # on one address and port
    assert all(reuses for _, _, reuses in slots)


def _reuses_port(sock: socket.socket) -> bool:
    return bool(sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT))


def test_the_kernel_spreads_connections_over_the_workers_sockets() -> None:
    """Connections opened together, as a pool's are, reach every worker's socket (a shared
    socket hands them all to whichever worker wakes first)."""
    from genecommons.serving import listening_sockets

    sockets = listening_sockets("127.0.0.1", 0, 2)
    clients: list[socket.socket] = []
    try:
        for sock in sockets:
            sock.listen(64)
            sock.setblocking(False)
        port = sockets[0].getsockname()[1]
        for _ in range(32):
            clients.append(socket.create_connection(("127.0.0.1", port), timeout=10))
        accepted = [0, 0]
        for index, sock in enumerate(sockets):
            while True:
                try:
                    connection, _ = sock.accept()
                except BlockingIOError:
                    break
                connection.close()
                accepted[index] += 1
        assert sum(accepted) == 32
        assert min(accepted) > 0  # all 32 on one of 2 sockets: a chance of 2 in 2**32
    finally:
        for sock in [*clients, *sockets]:
            sock.close()


def test_an_address_in_use_is_refused_not_shared() -> None:
    """Another server listening on the port (even one of the same user, with SO_REUSEPORT,
    which the kernel would let join) is refused, as uvicorn refuses it with one socket."""
    from genecommons.serving import listening_sockets

    for reuse in (False, True):
        with socket.socket() as other:
            if reuse:
                other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            other.bind(("127.0.0.1", 0))
            other.listen()
            with pytest.raises(OSError, match="in use") as refused:
                listening_sockets("127.0.0.1", other.getsockname()[1], 2)
            assert refused.value.errno == errno.EADDRINUSE


def test_a_taken_address_stops_serve_as_a_failed_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from genecommons import serving

    monkeypatch.setattr(serving.BalancedWorkers, "run", lambda self: None)
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        with pytest.raises(SystemExit) as stopped:
            serving.run(
                settings=Settings(),
                host="127.0.0.1",
                port=other.getsockname()[1],
                workers=2,
                access_log=False,
            )
    assert stopped.value.code == STARTUP_FAILURE


# -- starting on a busy machine --------------------------------------------------------------

HEAVY = ("zarr", "pysam", "msprime", "stdpopsim", "tskit", "authlib", "matplotlib", "dask")


@pytest.mark.parametrize("module", ["genecommons.app", "genecommons.cli"])
def test_importing_the_app_or_the_command_line_loads_no_heavy_library(module: str) -> None:
    """Each worker imports the app (and, run from the console script, the command line) before
    it answers uvicorn's health check: libraries needed only by some commands or requests are
    imported where they are used."""
    code = f"import sys, {module}; print(' '.join(sorted(set({HEAVY!r}) & set(sys.modules))))"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == []


def test_the_health_url_reaches_a_wildcard_address_on_this_machine() -> None:
    assert health_url("0.0.0.0", 8000) == "http://127.0.0.1:8000/health"  # noqa: S104
    assert health_url("::", 8000) == "http://[::1]:8000/health"
    assert health_url("127.0.0.1", 81) == "http://127.0.0.1:81/health"


def test_readiness_is_told_once_the_server_answers_and_lateness_before() -> None:
    port = _free_port()
    said: list[str] = []
    late, ready, stop = threading.Event(), threading.Event(), threading.Event()

    def on_late(seconds: float) -> None:
        said.append("late")
        late.set()

    def on_ready(seconds: float) -> None:
        said.append("ready")
        ready.set()

    watcher = announce_when_ready(
        health_url("127.0.0.1", port), within=0, ready=on_ready, late=on_late, stop=stop
    )
    try:
        assert late.wait(60)
        assert not ready.is_set()  # nothing listens yet
        config = uvicorn.Config(Counter(), host="127.0.0.1", port=port, log_level="warning")
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        try:
            assert ready.wait(60)
        finally:
            server.should_exit = True
            thread.join(30)
        watcher.join(30)
        assert said == ["late", "ready"]
    finally:
        stop.set()


@contextlib.contextmanager
def busy_cores(count: int) -> Iterator[None]:
    """`count` processes spinning on the CPU until the block ends."""
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        yield
    finally:
        for burner in burners:
            burner.kill()
            burner.wait(timeout=30)


@pytest.mark.slow
def test_serve_comes_up_with_two_workers_while_the_cores_are_busy(
    node: dict[str, str], tmp_path: Path
) -> None:
    """Started as `make run` starts it (the console script), with every core busy, the server
    answers, no worker is killed for being slow to start, and it says that it is ready."""
    log = tmp_path / "serve.log"
    env = {k: v for k, v in node.items() if k != "GENECOMMONS_WORKER_STARTUP_SECONDS"}
    with busy_cores(2), served(env, log, workers=2, within=60, script=True):
        deadline = time.monotonic() + 60
        while "GeneCommons answers at" not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
    assert "died" not in log.read_text()
