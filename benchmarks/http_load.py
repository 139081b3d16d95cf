"""A lean HTTP/1.1 load generator: `clients` keep-alive connections on one asyncio loop, each
sending its next request as soon as the last response is read (a closed loop, like wrk).

It speaks only what the benchmarks need (GET, Content-Length or chunked responses), so that a
request costs the generator a few tens of microseconds of CPU instead of an httpx client's
few hundred: on a 2-core machine the generator shares the cores with the server it measures,
and what it spends is reported beside the rate (`Load.generator_cpu`).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Load:
    """What one run measured."""

    seconds: float
    done: int  # responses with status 200
    failed: int  # other statuses
    latencies: list[float]  # seconds, of every response
    reconnects: int  # connections the server closed (Connection: close) and the client reopened
    generator_cpu: float  # CPU seconds the generator used per second of the run
    server_cpu: float | None  # the same for the server's processes (None: not measured)
    server_split: tuple[float, ...] = ()  # the same per server process using >= 0.05 core

    @property
    def rate(self) -> float:
        """Answered (200) requests per second."""
        return self.done / self.seconds

    def quantile(self, q: float) -> float:
        """The latency (ms) below which a fraction `q` of the responses came."""
        if len(self.latencies) < 2:
            return float("nan")
        return statistics.quantiles(self.latencies, n=100)[round(q * 100) - 1] * 1e3

    def line(self, label: str, goal: float | None = None) -> str:
        """One line of a benchmark table."""
        text = (
            f"  {label:44s} {self.rate:7,.0f} req/s  p50 {self.quantile(0.5):6.2f} ms  "
            f"p99 {self.quantile(0.99):6.2f} ms  failed {self.failed}"
        )
        if goal:
            text += f"  -> {self.rate / goal:.2f}x the {goal:,.0f} req/s goal"
        server = "" if self.server_cpu is None else f", server {self.server_cpu:.2f}"
        if len(self.server_split) > 1:  # how the work spread over the server's processes
            server += " (" + " + ".join(f"{u:.2f}" for u in self.server_split) + ")"
        if self.reconnects:
            server += f"; {self.reconnects:,} connections closed by the server and reopened"
        return text + f"\n  {'':44s} CPU in cores: generator {self.generator_cpu:.2f}{server}"


class _Connection(asyncio.Protocol):
    """One keep-alive connection: a request is written, its response parsed as bytes arrive."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[int] | None = None
        self.lost: Exception | None = None
        self.closing = False  # the last response said `Connection: close`

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = exc or ConnectionError("the server closed the connection")
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(self.lost)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        complete = _complete(self.buffer)
        if complete is None:
            return
        status, self.closing = complete
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(status)

    def send(self, request: bytes) -> asyncio.Future[int]:
        """Write one request; the future is its response's status."""
        if self.lost is not None:
            raise self.lost
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return self.waiter


def _complete(buffer: bytearray) -> tuple[int, bool] | None:
    """The status of the response at the head of `buffer` once it is whole (and drop it), and
    whether the server closes the connection after it."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = bytes(buffer[:end]).split(b"\r\n")
    status = int(head[0].split(b" ", 2)[1])
    length = None
    chunked = False
    closing = False
    for line in head[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
        elif name == b"connection" and b"close" in value.lower():
            closing = True
    start = end + 4
    if chunked:
        position = start
        while True:
            line_end = buffer.find(b"\r\n", position)
            if line_end < 0:
                return None
            size = int(bytes(buffer[position:line_end]).split(b";")[0], 16)
            position = line_end + 2 + size + 2
            if position > len(buffer):
                return None
            if size == 0:
                del buffer[:position]
                return status, closing
    if length is None:
        raise ValueError("a response without Content-Length or chunked encoding")
    if len(buffer) < start + length:
        return None
    del buffer[: start + length]
    return status, closing


def process_cpu(pids: Sequence[int]) -> float:
    """CPU seconds used so far by the processes and their children (Linux /proc; 0 elsewhere)."""
    return sum(process_cpus(pids).values())


def process_cpus(pids: Sequence[int]) -> dict[int, float]:
    """CPU seconds used so far by each of the processes and their children, by process id
    (Linux /proc; empty elsewhere)."""
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    wanted = set(pids)
    found: dict[int, float] = {}
    try:
        entries = list(Path("/proc").iterdir())
    except OSError:
        return found
    for entry in entries:
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, parent = int(entry.name), int(fields[1])
        if pid in wanted or parent in wanted:
            found[pid] = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return found


async def _run(
    host: str,
    port: int,
    requests: Sequence[bytes],
    clients: int,
    seconds: float,
    server_pids: Sequence[int],
    source: str | None = None,
) -> Load:
    loop = asyncio.get_running_loop()
    local = None if source is None else (source, 0)

    async def connect() -> _Connection:
        return (await loop.create_connection(_Connection, host, port, local_addr=local))[1]

    connections = [await connect() for _ in range(clients)]
    latencies: list[float] = []
    counts = [0, 0]
    reconnects = [0]
    started_cpu = time.process_time()
    started_server = process_cpus(server_pids) if server_pids else None
    started = time.perf_counter()
    stop = started + seconds

    async def client(index: int, connection: _Connection) -> None:
        i = index
        clock = time.perf_counter
        while True:
            sent = clock()
            if sent >= stop:
                return
            status = await connection.send(requests[i % len(requests)])
            latencies.append(clock() - sent)
            counts[status != 200] += 1
            i += clients
            if connection.closing:  # as an HTTP/1.1 client does: a new connection (timed)
                if connection.transport is not None:
                    connection.transport.close()
                connection = await connect()
                connections[index] = connection
                reconnects[0] += 1

    try:
        await asyncio.gather(*(client(i, c) for i, c in enumerate(connections)))
    finally:
        for connection in connections:
            if connection.transport is not None:
                connection.transport.close()
    elapsed = time.perf_counter() - started
    server = None
    split: tuple[float, ...] = ()
    if started_server is not None:
        ended = process_cpus(server_pids)
        used = {p: (t - started_server.get(p, 0.0)) / elapsed for p, t in ended.items()}
        server = sum(used.values())
        split = tuple(sorted((u for u in used.values() if u >= 0.05), reverse=True))
    return Load(
        seconds=elapsed,
        done=counts[0],
        failed=counts[1],
        latencies=latencies,
        reconnects=reconnects[0],
        generator_cpu=(time.process_time() - started_cpu) / elapsed,
        server_cpu=server,
        server_split=split,
    )


def request_bytes(host: str, port: int, path: str, headers: dict[str, str] | None = None) -> bytes:
    """A keep-alive GET request for `path`, as sent."""
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "Accept: application/json"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def load(
    host: str,
    port: int,
    paths: Sequence[str],
    *,
    clients: int = 16,
    seconds: float = 10.0,
    headers: dict[str, str] | None = None,
    server_pids: Sequence[int] = (),
    source: str | None = None,
) -> Load:
    """Drive the server at host:port with `clients` concurrent keep-alive connections for
    `seconds`, cycling through `paths`; what was measured. `source`: the local address the
    connections come from (another loopback address is another caller to the server)."""
    requests = [request_bytes(host, port, p, headers) for p in paths]
    return asyncio.run(_run(host, port, requests, clients, seconds, server_pids, source))
