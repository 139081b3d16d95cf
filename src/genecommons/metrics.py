"""The node's Prometheus metrics, counted where things happen, and their exposition.

Counted in the process that did the work: requests and their latency (by route template and
status), Beacon answers by returned granularity, bytes ingested into the archive. Under
`genecommons serve` with several workers, each worker writes its counts to files of its own in
the metrics directory (prometheus-client's multiprocess mode, the directory emptied at each
start) and the worker that answers GET /metrics adds up every worker's files; with one worker,
or under a test client, the counts are this process's. What is kept in the database (the audit
queue, alerts raised) is read from it at each scrape instead (`ops.service`), so it is the same
whichever worker answers.

Every metric here has labels: a labelled metric makes its values on first use, so a process
that switches to multiprocess mode after importing this module still writes every value to its
files.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# the text format `generate_latest` writes (0.0.4, which every Prometheus reads)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# no `_created` series: multiprocess mode has none, so a scrape reads the same with 1 or N workers
disable_created_metrics()  # type: ignore[no-untyped-call]
REGISTRY = CollectorRegistry(auto_describe=True)  # this process's metrics (one worker)

HTTP_REQUESTS = Counter(
    "genecommons_http_requests",
    "HTTP requests answered, by method, route template and status.",
    ["method", "route", "status"],
    registry=REGISTRY,
)
HTTP_LATENCY = Histogram(
    "genecommons_http_request_duration_seconds",
    "Time from a request's arrival to the end of its answer, by method and route template.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
    registry=REGISTRY,
)
BEACON_ANSWERS = Counter(
    "genecommons_beacon_answers",
    "Beacon queries answered, by entry type and the granularity they were answered at.",
    ["entry_type", "granularity"],
    registry=REGISTRY,
)
INGEST_BYTES = Counter(
    "genecommons_ingest_bytes",
    "Plaintext bytes checked, encrypted and stored in the archive, by file format.",
    ["format"],
    registry=REGISTRY,
)

UNMATCHED = "unmatched"  # the route label of a path no route serves (keeps the label set small)


def route_template(scope: Scope) -> str:
    """The route template a request was routed to (its path with the parameters' names), or
    `unmatched`: never the path itself, whose values would make a series each."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED


class RequestMetrics:
    """Pure ASGI middleware counting each HTTP request and timing it to the end of its answer
    (a streamed body included), by route template and status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server answers when the app fails before it starts one

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            method = scope["method"]
            route = route_template(scope)
            HTTP_REQUESTS.labels(method, route, str(status)).inc()
            HTTP_LATENCY.labels(method, route).observe(time.perf_counter() - started)


def exposition(directory: Path | None, extra: Iterable[Collector] = ()) -> bytes:
    """The metrics in Prometheus text format: every worker's, added up from `directory` (the
    multiprocess directory), or this process's when there is none; with the `extra`
    collectors' (read from the database at the time of asking)."""
    registry = CollectorRegistry(auto_describe=True)
    if directory is not None:
        MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]
    else:
        registry.register(_Registered(REGISTRY))
    for collector in extra:
        registry.register(collector)
    return generate_latest(registry)


class _Registered(Collector):
    """A registry's metrics, as one collector of another registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterable[Metric]:
        """The registry's metrics, collected now."""
        return self.registry.collect()


def prepare_directory(directory: Path) -> Path:
    """An empty metrics directory readable by this user only (a previous run's files, whose
    counts would otherwise be added to this run's, removed)."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.chmod(0o700)
    for path in directory.iterdir():
        if path.is_file() and path.suffix == ".db":
            path.unlink()
    return directory
