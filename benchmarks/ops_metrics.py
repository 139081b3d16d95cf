"""Benchmark: what counting and timing every request (metrics.RequestMetrics) and giving it an
id (request_ids.RequestIds) add to a request.

The real application (create_app) answers GET /livez, its cheapest route, called in-process as
an ASGI app (no sockets, so the middleware's share is not lost in the network's noise) in four
builds: without either middleware, with request ids only, with metrics only, with both (as
served). Rounds alternate between the builds so that the machine's drift falls on all of them;
the figure is the median over rounds of the mean CPU time per request (the process's
CPU time: the machine is shared, and other processes' load would swamp wall-clock time). Then the metrics of one
process are written to a multiprocess directory, as a worker of `serve --workers N` writes
them, and timed the same way.

    .venv/bin/python -m benchmarks.ops_metrics [--requests 2000] [--rounds 15]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BUILDS = ("neither", "request ids", "metrics", "both (served)")


def _app(settings: Any, keep: Callable[[type], bool]) -> Any:
    from genecommons.app import create_app

    app = create_app(settings)
    app.user_middleware = [m for m in app.user_middleware if keep(m.cls)]
    return app


async def _requests(app: Any, count: int) -> float:
    """CPU seconds per request, over `count` GET /livez."""
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/livez",
        "raw_path": b"/livez",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"node"), (b"x-request-id", b"bench-1")],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    statuses: list[int] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    started = time.process_time()  # this process's CPU: other sessions' load does not count
    for _ in range(count):
        await app(dict(scope), receive, send)
    elapsed = time.process_time() - started
    assert len(statuses) == count and set(statuses) == {200}, set(statuses)
    return elapsed / count


def main() -> None:
    """Build the apps, time them in alternating rounds, print the table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()

    from genecommons.config import Settings
    from genecommons.db import Base, node_engine
    from genecommons.metrics import RequestMetrics
    from genecommons.node_init import create_node_secrets
    from genecommons.request_ids import RequestIds

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            data_dir=Path(tmp) / "data",
            database_url=f"sqlite:///{tmp}/bench.sqlite3",
            environment="test",
        )
        create_node_secrets(settings)  # as `genecommons init` makes them
        engine = node_engine(settings)
        Base.metadata.create_all(engine)
        engine.dispose()
        apps = {
            "neither": _app(settings, lambda c: c not in (RequestMetrics, RequestIds)),
            "request ids": _app(settings, lambda c: c is not RequestMetrics),
            "metrics": _app(settings, lambda c: c is not RequestIds),
            "both (served)": _app(settings, lambda c: True),
        }
        times = _rounds(apps, args.requests, args.rounds)
        multiprocess = _multiprocess(settings, args.requests, args.rounds)
        for app in apps.values():
            app.state.services.engine.dispose()

    alone = _alone(args.requests * 20, args.rounds)
    base = times["neither"]
    print(
        f"GET /livez in-process, {args.requests} requests x {args.rounds} rounds, median of "
        "the rounds' mean CPU time per request"
    )
    print(f"{'build':<34} {'us/request':>11} {'added us':>9} {'ratio':>6}")
    for name in BUILDS:
        print(
            f"{name:<34} {times[name]:>11.1f} {times[name] - base:>9.1f} {times[name] / base:>6.3f}"
        )
    label = "both, multiprocess files (serve -w N)"
    print(
        f"{label:<34} {multiprocess:>11.1f} {multiprocess - base:>9.1f} {multiprocess / base:>6.3f}"
    )
    print(
        f"\nthe middleware alone, around an app that answers at once ({args.requests * 20} calls)"
    )
    print(f"{'middleware':<34} {'us/request':>11}")
    for name, cost in alone.items():
        print(f"{name:<34} {cost:>11.2f}")


async def _bare(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def _alone(count: int, rounds: int) -> dict[str, float]:
    """CPU microseconds each middleware adds to a request, measured around an app that answers
    at once (the bare app's own time subtracted); the route label is set as routing sets it."""
    from starlette.routing import Route

    from genecommons.metrics import RequestMetrics
    from genecommons.request_ids import RequestIds

    route = Route("/livez", _bare)

    async def routed(scope: Any, receive: Any, send: Any) -> None:
        scope["route"] = route
        await _bare(scope, receive, send)

    apps = {
        "none (the bare app)": routed,
        "RequestIds": RequestIds(routed),
        "RequestMetrics": RequestMetrics(routed),
        "both": RequestIds(RequestMetrics(routed)),
    }
    times = _rounds(apps, count, rounds)
    bare = times.pop("none (the bare app)")
    return {name: cost - bare for name, cost in times.items()}


def _rounds(apps: dict[str, Any], count: int, rounds: int) -> dict[str, float]:
    samples: dict[str, list[float]] = {name: [] for name in apps}

    async def run() -> None:
        for app in apps.values():  # warm up: build the middleware stacks, first queries
            await _requests(app, 200)
        for _ in range(rounds):
            for name, app in apps.items():
                samples[name].append(await _requests(app, count) * 1e6)

    asyncio.run(run())
    return {name: statistics.median(values) for name, values in samples.items()}


def _multiprocess(settings: Any, count: int, rounds: int) -> float:
    """Microseconds per request with both middlewares, the metrics written to files of a
    multiprocess directory (as under `serve --workers N`)."""
    from prometheus_client import values

    from genecommons import metrics
    from genecommons.config import share_metrics_dir, unshare_metrics_dir

    for metric in (metrics.HTTP_REQUESTS, metrics.HTTP_LATENCY):
        metric.clear()  # the values made so far are in memory; the next ones in files
    directory = metrics.prepare_directory(settings.data_dir / "metrics")
    share_metrics_dir(directory)
    saved = values.ValueClass
    # this process switches after importing prometheus-client (a worker starts switched): its
    # labelled values, made on first use, are made in files from here on
    values.ValueClass = values.get_value_class()
    try:
        app = _app(settings, lambda c: True)
        result = _rounds({"mp": app}, count, rounds)["mp"]
        app.state.services.engine.dispose()
        assert any(directory.glob("counter_*.db")), "no metrics were written to files"
        return result
    finally:
        values.ValueClass = saved
        unshare_metrics_dir()


if __name__ == "__main__":
    main()
