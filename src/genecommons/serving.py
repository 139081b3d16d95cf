"""How `genecommons serve` runs uvicorn: which forwarded headers it believes, and how long it
waits for a client's request.

Forwarded headers: uvicorn believes X-Forwarded-For from loopback unless told otherwise, so any
local process (or a proxy that passes the header through) could name the address that the audit
log records and the sign-in throttle counts. The node believes them only from the proxies named
in GENECOMMONS_FORWARDED_ALLOW_IPS (none by default); every part of the app then reads the one
address uvicorn resolved (`request.client`, through `deps.client_address`).

Timeouts: uvicorn closes idle keep-alive connections, but waits without end for a connection
that sends nothing, and for a request whose head or body arrives slowly (a "slow-loris" holds a
connection with a byte now and then). `TimedHttpToolsProtocol`, uvicorn's httptools protocol
with a watchdog per connection, closes a connection whose request head is not complete within
`header_seconds` (from connecting, for its first request; from its first byte, for the next
ones), and one whose body goes `body_seconds` without a byte or brings less than
`body_min_bytes_per_second` on average over a window of `body_seconds`. While the server itself
holds the body up (its buffer is full because the app has not taken the body yet, or it owes
the client a `100 Continue`), the body's clock stands still: a slow but progressing upload of
any size goes through. The client gets `408 Request Timeout` when no response has started.

Start: uvicorn kills a worker that does not answer its health check within
`timeout_worker_healthcheck` (5 s by default), and a worker answers only once it has imported
the parent's main module; on a loaded machine importing takes longer, and workers were killed
and restarted without end. The node gives them GENECOMMONS_WORKER_STARTUP_SECONDS, keeps heavy
libraries out of the app's import (zarr, pysam, the simulation, sign-in's HTTP client load
where used), and says it is ready only once `/health` answers (`announce_when_ready`).

Workers: uvicorn's workers share one listening socket, and a worker woken by new connections
accepts every one that is waiting (its event loop accepts in a loop): clients that connect
together (a load balancer's pool, a Beacon network's aggregator, a load test) land on one
worker and leave the others idle. Each worker here listens on a socket of its own instead, all
bound to the address with SO_REUSEPORT (`listening_sockets`), and the kernel spreads new
connections over them by a hash of each connection's addresses and ports
(`BalancedWorkers`). A worker's socket is held by the server and handed to the worker that
replaces it, so connections waiting on it are answered by the replacement.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.machinery
import logging
import socket
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Any, ClassVar, Protocol

from uvicorn.config import STARTUP_FAILURE, Config
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState
from uvicorn.supervisors.multiprocess import Multiprocess, Process

from genecommons.config import Settings, get_settings

logger = logging.getLogger(__name__)

_TIMEOUT_TEXT = b"The request did not arrive in time; send it again.\n"
TIMEOUT_RESPONSE = b"".join(
    [
        b"HTTP/1.1 408 Request Timeout\r\n",
        b"content-type: text/plain; charset=utf-8\r\n",
        b"content-length: %d\r\n" % len(_TIMEOUT_TEXT),
        b"connection: close\r\n\r\n",
        _TIMEOUT_TEXT,
    ]
)


@dataclass(frozen=True, slots=True)
class ReadTimeouts:
    """How long the server waits for a request's head, and how its body must progress."""

    header_seconds: float
    body_seconds: float
    body_min_bytes_per_second: int

    @classmethod
    def of(cls, settings: Settings) -> ReadTimeouts:
        """The timeouts the settings give."""
        return cls(
            header_seconds=settings.header_timeout_seconds,
            body_seconds=settings.body_timeout_seconds,
            body_min_bytes_per_second=settings.body_min_bytes_per_second,
        )

    @property
    def body_min_bytes(self) -> float:
        """The bytes a body must bring in each window (at least one: some progress)."""
        return max(1.0, self.body_min_bytes_per_second * self.body_seconds)


class Phase(Enum):
    """What a connection waits for from its client."""

    HEAD = "head"  # the (rest of the) head of a request
    BODY = "body"  # the rest of a request's body
    NONE = "none"  # nothing: the app is answering, or the connection idles between requests


class _Connection(Protocol):
    """What the watchdog needs of the connection it watches."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...

    def phase(self) -> Phase: ...

    def server_holds_body(self) -> tuple[bool, bool]: ...

    def time_out(self, phase: Phase) -> None: ...


class _Watchdog:
    """The read timeouts of one connection: one timer, moved as the request progresses.

    Timers are armed only when the connection starts waiting for something; a request that
    arrives whole in one read (most do) arms none."""

    def __init__(self, connection: _Connection, timeouts: ReadTimeouts) -> None:
        self.connection = connection
        self.timeouts = timeouts
        self.timer: asyncio.TimerHandle | None = None
        self.head_since: float | None = None  # when the connection began to wait for a head
        self.window_start: float | None = None  # None: the body's clock is not running
        self.window_bytes = 0
        self.last_byte_at = 0.0

    def received(self, count: int) -> None:
        """`count` bytes arrived and were parsed."""
        if self.window_start is not None:
            self.window_bytes += count
            self.last_byte_at = self.connection.loop.time()
        self.reconcile()

    def new_head(self) -> None:
        """A new request begins after one that is complete: its head has its own clock."""
        self.head_since = None

    def reconcile(self) -> None:
        """Arm, keep or stop the timer for what the connection now waits for."""
        phase = self.connection.phase()
        if phase is not Phase.HEAD and self.head_since is not None:
            self.head_since = None
            self.cancel()  # the head's timer
        if phase is Phase.HEAD:
            self.window_start = None
            if self.head_since is None:
                self.head_since = self.connection.loop.time()
                self._arm(self.timeouts.header_seconds)
            return
        if phase is Phase.NONE:
            self.window_start = None
            self.cancel()
            return
        paused, owes_continue = self.connection.server_holds_body()
        if paused:  # the server reads again later, and reconciles then
            self.window_start = None
            self.cancel()
        elif owes_continue:  # nothing tells when the app takes the body: look now and then
            self.window_start = None
            if self.timer is None:
                self._arm(self.timeouts.body_seconds)
        elif self.window_start is None:
            self._start_window()

    def cancel(self) -> None:
        """Stop the timer (the connection closes, or waits for nothing)."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _start_window(self) -> None:
        self.window_start = self.last_byte_at = self.connection.loop.time()
        self.window_bytes = 0
        self._arm(self.timeouts.body_seconds)

    def _arm(self, delay: float) -> None:
        self.cancel()
        self.timer = self.connection.loop.call_later(delay, self._fire)

    def _fire(self) -> None:
        self.timer = None
        phase = self.connection.phase()
        now = self.connection.loop.time()
        if phase is Phase.HEAD and self.head_since is not None:
            left = self.head_since + self.timeouts.header_seconds - now
            if left > 0:  # the loop may run a timer a little early
                self._arm(left)
            else:
                self.connection.time_out(phase)
            return
        if phase is not Phase.BODY or self.window_start is None:
            self.reconcile()  # the server held the body up at the last look
            return
        idle = now - self.last_byte_at
        elapsed = now - self.window_start
        limit = self.timeouts.body_seconds
        if idle >= limit:
            self.connection.time_out(phase)
        elif elapsed < limit:
            self._arm(min(limit - idle, limit - elapsed))
        elif self.window_bytes < self.timeouts.body_min_bytes:
            self.connection.time_out(phase)
        else:
            self._start_window()


class _WatchedFlow(FlowControl):
    """uvicorn's flow control, telling the watchdog when the server stops and starts reading."""

    def __init__(self, transport: asyncio.Transport, watchdog: _Watchdog) -> None:
        super().__init__(transport)
        self._watchdog = watchdog

    def pause_reading(self) -> None:
        super().pause_reading()
        self._watchdog.reconcile()

    def resume_reading(self) -> None:
        if self.read_paused:
            super().resume_reading()
            self._watchdog.reconcile()


class TimedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with read timeouts: `timeouts`, or else the settings'."""

    timeouts: ClassVar[ReadTimeouts | None] = None

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._phase = Phase.HEAD
        self._watchdog = _Watchdog(self, self.timeouts or ReadTimeouts.of(get_settings()))

    # the watched connection

    def phase(self) -> Phase:
        """What the connection waits for from its client."""
        return self._phase

    def server_holds_body(self) -> tuple[bool, bool]:
        """Whether the server stopped reading, and whether it owes the client `100 Continue`
        (either way, the body waits for the server, not the client)."""
        owes = self.cycle is not None and self.cycle.waiting_for_100_continue
        return self.flow.read_paused, owes

    def time_out(self, phase: Phase) -> None:
        """Close the connection: its client took too long to send `phase`."""
        cycle = self.cycle
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "unknown"
        logger.info(
            "Closed the connection of %s: its request %s came too slowly.", client, phase.value
        )
        answering = cycle is not None and cycle.response_started and not cycle.response_complete
        if not answering:  # (a complete response was the previous request's)
            self.transport.write(TIMEOUT_RESPONSE)
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True  # the app reads a disconnect, and its answer is dropped
            cycle.message_event.set()
        self.transport.close()

    # uvicorn's protocol, told to the watchdog

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.flow = _WatchedFlow(transport, self._watchdog)
        self._watchdog.reconcile()

    def connection_lost(self, exc: Exception | None) -> None:
        self._watchdog.cancel()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if not self.transport.is_closing():
            self._watchdog.received(len(data))

    def on_message_begin(self) -> None:
        if self._phase is not Phase.HEAD:
            self._watchdog.new_head()
        self._phase = Phase.HEAD
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._phase = Phase.BODY
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._phase = Phase.NONE
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._watchdog.reconcile()


PROTOCOL = f"{__name__}:{TimedHttpToolsProtocol.__name__}"


APP = "genecommons.app:create_app"


def uvicorn_options(
    settings: Settings, *, host: str, port: int, workers: int, access_log: bool
) -> dict[str, Any]:
    """What uvicorn is told to serve the app with (its `run` or `Config` keywords)."""
    from genecommons.logs import logging_config

    proxies = settings.forwarded_proxies
    return {
        "factory": True,
        "host": host,
        "port": port,
        "workers": workers,
        "log_level": "info",
        "log_config": logging_config(settings.log_format),
        "access_log": access_log,
        "http": PROTOCOL,
        # forwarded headers only from the configured proxies (uvicorn's default: loopback)
        "proxy_headers": bool(proxies),
        "forwarded_allow_ips": proxies or [],
        "timeout_worker_healthcheck": settings.worker_startup_seconds,
    }


def run(*, settings: Settings, host: str, port: int, workers: int, access_log: bool) -> None:
    """Serve the app with uvicorn on `host`:`port` with `workers` processes, until stopped.
    Each worker builds its app, and its protocol's timeouts, from the environment's settings
    (as this process read them); several workers listen on sockets of their own
    (`BalancedWorkers`)."""
    import uvicorn

    options = uvicorn_options(
        settings, host=host, port=port, workers=workers, access_log=access_log
    )
    with _workers_skip_main():
        if workers <= 1:
            uvicorn.run(APP, **options)
            return
        config = Config(APP, **options)
        errors = logging.getLogger("uvicorn.error")
        try:
            sockets = listening_sockets(host, port, workers)
        except OSError as error:  # as uvicorn says it: the address is taken, or not this host's
            errors.error(error)
            sys.exit(STARTUP_FAILURE)
        bound = int(sockets[0].getsockname()[1])
        where = f"[{host}]:{bound}" if ":" in host else f"{host}:{bound}"
        errors.info(
            "Uvicorn running on http://%s, %d workers (Press CTRL+C to quit)", where, workers
        )
        try:
            BalancedWorkers(config, sockets).run()
        except KeyboardInterrupt:
            pass
        finally:
            for sock in sockets:
                sock.close()


def listening_sockets(host: str, port: int, count: int) -> list[socket.socket]:
    """`count` sockets bound to `host`:`port` with SO_REUSEPORT, one per worker (not listening
    yet: a worker listens on its own when it starts). OSError when something listens there
    already: a probe without SO_REUSEPORT binds first, so that another server of the same user
    (which the kernel would let join the group) is refused as any other program is."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))
        port = int(probe.getsockname()[1])  # port 0: the one the system chose, for every socket
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sockets.append(_group_socket(family, host, port))
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def _group_socket(family: int, host: str, port: int) -> socket.socket:
    """A socket of the SO_REUSEPORT group at `host`:`port`, for a worker to listen on."""
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


class BalancedWorkers(Multiprocess):
    """uvicorn's supervisor of worker processes (health checks, replacement of a dead or silent
    worker, SIGHUP restarts, SIGTTIN/SIGTTOU), each worker with a listening socket of its own:
    the worker of slot i serves `sockets[i]`, and so does the worker that replaces it."""

    def __init__(self, config: Config, sockets: list[socket.socket]) -> None:
        super().__init__(config, sockets=[])
        self.slots = list(sockets)

    def _worker(self, slot: int) -> Process:
        process = Process(self.config, [self.slots[slot]])
        process.start()
        return process

    def init_processes(self) -> None:
        """Start a worker for each socket."""
        self.processes = [self._worker(slot) for slot in range(self.processes_num)]

    def restart_all(self) -> None:
        """Replace each worker, its replacement serving before the old one stops (SIGHUP)."""
        for slot, old in enumerate(self.processes):
            if self.should_exit.is_set():
                return
            new = self._worker(slot)
            if not new.wait_until_ready(self.config.timeout_worker_healthcheck, self.should_exit):
                new.kill()
                new.join()
                if not self.should_exit.is_set():
                    logger.error(
                        "Worker %s was not ready in time; keeping worker %s and ending the "
                        "restart.",
                        new.pid,
                        old.pid,
                    )
                return
            old.terminate()
            old.join()
            self.processes[slot] = new

    def keep_subprocess_alive(self) -> None:
        """Replace a worker that died or stopped answering its health check (on its socket);
        stop the server when one failed before it started (it would fail again)."""
        if self.should_exit.is_set():
            return
        for slot, process in enumerate(self.processes):
            if process.is_alive(timeout=self.config.timeout_worker_healthcheck):
                continue
            process.kill()
            process.join()
            if process.exitcode == STARTUP_FAILURE:
                logger.error("Worker %s failed to start; stopping the server.", process.pid)
                self.should_exit.set()
                return
            if self.should_exit.is_set():
                return
            logger.info("Worker %s died; starting another.", process.pid)
            self.processes[slot] = self._worker(slot)

    def handle_ttin(self) -> None:
        """One more worker, on a socket of its own (SIGTTIN)."""
        logger.info("Received SIGTTIN, adding a worker.")
        first = self.slots[0]
        host, port = first.getsockname()[:2]
        self.slots.append(_group_socket(first.family, host, port))
        self.processes_num += 1
        self.processes.append(self._worker(len(self.processes)))

    def handle_ttou(self) -> None:
        """One worker fewer, its socket closed (SIGTTOU)."""
        logger.info("Received SIGTTOU, removing a worker.")
        if self.processes_num <= 1:
            logger.info("One worker is left; it is kept.")
            return
        self.processes_num -= 1
        process = self.processes.pop()
        process.terminate()
        process.join()
        self.slots.pop().close()


@contextlib.contextmanager
def _workers_skip_main() -> Iterator[None]:
    """While the server runs, the workers it spawns do not run this process's main module.

    multiprocessing's spawn runs the parent's main script again in each child before the child
    does anything else, and a uvicorn worker answers its health check only after that; run as
    the `genecommons` console script, it is the whole command line and every command's imports.
    A package's `__main__` is never run again in a child, so the script is named as one (the
    workers need nothing from it: uvicorn's worker and the app are imported by name)."""
    main = sys.modules["__main__"]
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name.rpartition(".")[2] == "__main__":
        yield  # `python -m genecommons`: already so
        return
    main.__spec__ = importlib.machinery.ModuleSpec("genecommons.__main__", None)
    try:
        yield
    finally:
        main.__spec__ = spec


def health_url(host: str, port: int) -> str:
    """Where this machine reaches the server's `/health` when it listens on `host`:`port`."""
    wildcard = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}  # noqa: S104
    reach = wildcard.get(host, host)
    return f"http://[{reach}]:{port}/health" if ":" in reach else f"http://{reach}:{port}/health"


def answers(url: str, *, timeout: float = 2.0) -> bool:
    """Whether the server at `url` answers 200 now."""
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
    try:
        with direct.open(url, timeout=timeout) as response:
            return int(response.status) == 200
    except (OSError, ValueError):  # refused, reset, timed out (URLError is an OSError)
        return False


def announce_when_ready(
    url: str,
    *,
    within: float,
    ready: Callable[[float], None],
    late: Callable[[float], None],
    stop: threading.Event,
) -> threading.Thread:
    """A thread that calls `ready(seconds)` once `url` answers (a worker has imported and built
    the app and listens), or `late(seconds)` if it has not answered within `within` seconds
    (it keeps trying, and calls `ready` when it does); it ends then, or when `stop` is set."""

    def watch() -> None:
        started = time.monotonic()
        said_late = False
        while not stop.is_set():
            if answers(url):
                ready(time.monotonic() - started)
                return
            waited = time.monotonic() - started
            if not said_late and waited > within:
                said_late = True
                late(waited)
            stop.wait(0.5)

    thread = threading.Thread(target=watch, name="genecommons-ready", daemon=True)
    thread.start()
    return thread
