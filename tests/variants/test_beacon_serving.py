"""`genecommons serve --workers 2` end to end: two worker processes answer concurrent Beacon
queries on one database (SQLite in WAL mode, and PostgreSQL), every query's audit event is in
the log exactly once, and one sequencer (the parent's) appends them to an intact Merkle log."""

from __future__ import annotations

import collections
import json
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from sqlalchemy import func, select

from genecommons.audit import service as audit_service
from genecommons.ledger.events import EventTag
from genecommons.ledger.tables import audit_events, audit_queue

REPO = Path(__file__).resolve().parents[2]
QUERIES = 96


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _serve(world: SimpleNamespace, port: int, workers: int) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO / "src"),
        "GENECOMMONS_DATA_DIR": str(world.settings.data_dir),
        "GENECOMMONS_DATABASE_URL": world.settings.effective_database_url,
        "GENECOMMONS_ENVIRONMENT": "test",
        "GENECOMMONS_AUDIT_SEQUENCE_INTERVAL_SECONDS": "0.2",
    }
    server = subprocess.Popen(
        [
            *(sys.executable, "-m", "genecommons", "serve"),
            *("--port", str(port), "--workers", str(workers)),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    for _ in range(240):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        if server.poll() is not None:
            break
        time.sleep(0.25)
    server.kill()
    output, _ = server.communicate(timeout=30)
    raise AssertionError(f"genecommons serve did not start:\n{output[-3000:]}")


def _stop(server: subprocess.Popen[str]) -> str:
    server.terminate()
    try:
        output, _ = server.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        server.kill()
        output, _ = server.communicate(timeout=30)
    return output


def _queued(world: SimpleNamespace) -> int:
    with world.factory() as session:
        return int(session.execute(select(func.count()).select_from(audit_queue)).scalar_one())


@pytest.mark.slow
def test_two_workers_answer_concurrent_queries_and_log_each_exactly_once(
    world: SimpleNamespace,
) -> None:
    world.app.state.services.engine.dispose()  # the served workers have engines of their own
    port = _free_port()
    server = _serve(world, port, workers=2)
    base = f"http://127.0.0.1:{port}"
    # every query is unique (its start), half anonymous (boolean), half a verified reader
    # (count: the token's use and the budget charge write too, from both workers at once)
    starts = [10_000 + i for i in range(QUERIES)]

    def ask(start: int) -> tuple[int, dict[str, str], str]:
        headers = world.headers["reader"] if start % 2 else {}
        response = httpx.get(
            f"{base}/beacon/g_variants",
            params={
                "referenceName": "chr22",
                "start": str(start),
                "referenceBases": "A",
                "alternateBases": "G",
            },
            headers=headers,
            timeout=60,
        )
        return response.status_code, dict(response.headers), response.text

    try:
        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(ask, starts))
        for status, _, text in answers:
            assert status == 200, text[:2000]
        granularities = {json.loads(text)["meta"]["returnedGranularity"] for _, _, text in answers}
        assert granularities == {"boolean", "count"}
        for _ in range(200):  # the parent's sequencer appends the queue every 0.2 s
            if _queued(world) == 0:
                break
            time.sleep(0.1)
        assert _queued(world) == 0
    finally:
        output = _stop(server)
    assert "database is locked" not in output, output[-3000:]
    # the audit log's background work ran once, in the serving process, not in a worker
    running = [line for line in output.splitlines() if "sequencer and early-warning" in line]
    assert len(running) == 1, output[-3000:]
    assert f"process {server.pid}" in running[0]

    with world.factory() as session:
        rows = session.execute(
            select(audit_events.c.leaf_index, audit_events.c.details).where(
                audit_events.c.tag == str(EventTag.BEACON_QUERY)
            )
        ).all()
        indices = list(session.execute(select(audit_events.c.leaf_index)).scalars())
    logged = collections.Counter(row.details["parameters"]["start"][0] for row in rows)
    assert logged == collections.Counter(starts)  # each query's event, exactly once
    assert sorted(indices) == list(range(len(indices)))  # leaves without gaps or repeats
    key = audit_service.signing_key(world.settings, create=True)
    verification = audit_service.verify(world.factory, key.public_key())
    assert verification.problems == []
    assert verification.queued == 0
