"""`genecommons serve --workers 2` as it runs: the metrics of both workers added up whichever
answers the scrape, the metrics directory emptied at start, JSON log lines carrying the request
id that the audit event of the request carries too."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from genecommons.config import Settings
from genecommons.db import node_engine

from .test_ops import parse, value

SRC = Path(__file__).resolve().parents[2] / "src"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def served(env: dict[str, str], log: Path, *args: str) -> Iterator[str]:
    """`genecommons serve ARGS` on a free loopback port until the block ends; its base URL."""
    port = _free_port()
    with log.open("w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "genecommons", "serve", "--port", str(port), *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            with contextlib.suppress(httpx.TransportError):
                # (not /livez, whose requests the test counts: a probe that timed out on a
                # loaded machine was still answered, and counted, by the server)
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            if server.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("genecommons serve did not start: " + log.read_text())
            time.sleep(0.2)
        yield base
    finally:
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=30)


def _pids(directory: Path) -> set[str]:
    """The processes that wrote counters to the metrics directory."""
    return {p.stem.rsplit("_", 1)[-1] for p in directory.glob("counter_*.db")}


def _pool_requests(port: int, *, connections: int, each: int) -> int:
    """GET /livez `each` times on each of `connections` kept-alive connections, all opened
    before the first request; how many were answered (all, or the test fails)."""
    pool = [http.client.HTTPConnection("127.0.0.1", port, timeout=30) for _ in range(connections)]
    try:
        for connection in pool:
            connection.connect()
        for _ in range(each):
            for connection in pool:
                connection.request("GET", "/livez")
                response = connection.getresponse()
                response.read()
                assert response.status == 200
    finally:
        for connection in pool:
            connection.close()
    return connections * each


@pytest.mark.slow
def test_two_workers_count_together_and_log_json(
    tmp_path: Path, genecommons_cli: Callable[..., Any]
) -> None:
    data = tmp_path / "data"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")])),
        "GENECOMMONS_DATA_DIR": str(data),
        "GENECOMMONS_ENVIRONMENT": "test",
        "GENECOMMONS_LOG_FORMAT": "json",
        "GENECOMMONS_METRICS_ALLOW_IPS": "127.0.0.1",
    }
    for name in ("GENECOMMONS_DATABASE_URL", "PROMETHEUS_MULTIPROC_DIR"):
        env.pop(name, None)
    genecommons_cli(env, "init")
    metrics_dir = data / "metrics"
    metrics_dir.mkdir(mode=0o700)
    stale = metrics_dir / "counter_999999.db"
    stale.write_bytes(b"a previous run's counts")
    log = tmp_path / "serve.log"
    with served(env, log, "--workers", "2", "--access-log") as base:
        assert not stale.exists()
        # 16 connections opened together, as a client's pool opens them, until both workers
        # have answered (the second may still be starting on a loaded machine): each listens
        # on a socket of its own, over which the kernel spreads the connections
        sent = 0
        port = int(base.rsplit(":", 1)[1])
        deadline = time.monotonic() + 120
        while len(_pids(metrics_dir)) < 2 and time.monotonic() < deadline:
            sent += _pool_requests(port, connections=16, each=2)
        assert len(_pids(metrics_dir)) == 2, "the second worker never answered"
        # whichever worker answers, the scrape counts every worker's requests
        for _ in range(6):
            scraped = parse(httpx.get(f"{base}/metrics", timeout=10).text)
            counted = value(
                scraped,
                "genecommons_http_requests_total",
                method="GET",
                route="/livez",
                status="200",
            )
            assert counted == sent
        refused = httpx.get(
            f"{base}/api/v1/audit/entries",
            params={"start": 0, "end": 1},
            headers={"X-Request-ID": "serve-req-1"},
            timeout=10,
        )
        assert refused.status_code == 403
        assert refused.headers["x-request-id"] == "serve-req-1"
        # the refusal's event, appended to the log by the server's sequencer
        deadline = time.monotonic() + 60
        found: list[Any] = []
        engine = node_engine(Settings(data_dir=data, environment="test"))  # the node's key
        try:
            while not found and time.monotonic() < deadline:
                with engine.connect() as db:
                    found = [
                        tuple(row)
                        for row in db.execute(
                            text("SELECT tag FROM audit_events WHERE details LIKE '%serve-req-1%'")
                        )
                    ]
                time.sleep(0.3)
        finally:
            engine.dispose()
        assert found == [("access:decision:deny",)]
    lines = [line for line in log.read_text().splitlines() if line.startswith("{")]
    documents = [json.loads(line) for line in lines]
    assert any(d["logger"] == "uvicorn.error" for d in documents)
    (access,) = [d for d in documents if d.get("request_id") == "serve-req-1"]
    assert access["logger"] == "uvicorn.access" and access["status"] == 403
    assert access["path"].startswith("/api/v1/audit/entries")
