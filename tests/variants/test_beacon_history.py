"""A signed-in Beacon query costs the database the same work however long the node's history:
the audit log's events, the token uses and the privacy ledger's charges of other callers.

The work is counted, not timed: SQLite's virtual machine instructions over the queries (its
progress handler, called every few instructions on each of the app's connections). A statement
that scans what grows with use (the audit log, the ledger, the token uses) shows up as
instructions in proportion to the rows it reads: an outside load test once saw signed-in
queries slow down as the log reached a few thousand events."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pysam
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

from genecommons.access import service as access_service
from genecommons.app import create_app
from genecommons.audit.service import sequence_queued
from genecommons.db import write_transaction
from genecommons.ledger.events import EventTag, record_event
from genecommons.policy.models import Subject

OPERATOR = Subject.operator("tests")
STEP = 10  # instructions between two calls of the progress handler (in each statement)
HISTORY = 3000  # audit events the log gains between the two measurements


def _paths(world: SimpleNamespace) -> list[str]:
    with pysam.VariantFile(str(world.vcf)) as vcf:
        sites = [(r.chrom, r.pos, r.ref, r.alts[0]) for r in vcf if r.alts]
    return [
        f"/beacon/g_variants?referenceName={chrom}&start={pos - 1}&referenceBases={ref}"
        f"&alternateBases={alt}&assemblyId=GRCh38"
        for chrom, pos, ref, alt in sites[:20]
    ]


@pytest.fixture
def served(shared_world: SimpleNamespace) -> Iterator[SimpleNamespace]:
    """The world's node as `serve` answers it (the defended guard, the default), with a count
    of SQLite's instructions on its connections."""
    app = create_app(shared_world.settings)
    counted = SimpleNamespace(app=app, steps=0, accounts=0)

    def count() -> int:
        counted.steps += STEP
        return 0  # go on

    def install(connection: Any, _record: Any) -> None:
        connection.set_progress_handler(count, STEP)

    event.listen(app.state.services.engine, "connect", install)
    yield counted
    app.state.services.engine.dispose()


def _researcher(world: SimpleNamespace, served: SimpleNamespace) -> dict[str, str]:
    served.accounts += 1
    email = f"history{served.accounts}@example.org"
    factory = served.app.state.services.factory
    access_service.add_user(
        factory, email=email, roles=["researcher"], institution=world.institution, actor=OPERATOR
    )
    token = access_service.create_token(factory, email=email, actor=OPERATOR).token
    return {"Authorization": f"Bearer {token}"}


def _work(world: SimpleNamespace, served: SimpleNamespace, address: str) -> int:
    """SQLite instructions of the queries asked by a new researcher from a new address."""
    headers = _researcher(world, served)
    with TestClient(served.app, client=(address, 50000)) as client:
        client.get(_paths(world)[0], headers=headers)  # the pool's connections opened
        before = int(served.steps)
        for path in _paths(world):
            answered = client.get(path, headers=headers)
            assert answered.status_code == 200, answered.text
            assert answered.json()["meta"]["returnedGranularity"] == "count"
        return int(served.steps) - before


def test_a_signed_in_query_does_no_more_database_work_as_the_history_grows(
    shared_world: SimpleNamespace, served: SimpleNamespace
) -> None:
    first = _work(shared_world, served, "10.9.0.1")
    # history: other researchers' signed-in queries (token uses, query events, ledger charges)
    # and the log grown to thousands of events, sequenced as `serve` does
    with TestClient(served.app, client=("10.9.0.2", 50000)) as client:
        for _ in range(5):
            headers = _researcher(shared_world, served)
            for path in _paths(shared_world):
                assert client.get(path, headers=headers).status_code == 200
    factory = served.app.state.services.factory
    with write_transaction(factory) as session:
        for number in range(HISTORY):
            record_event(
                session,
                tag=EventTag.BEACON_QUERY,
                actor=f"user:past{number % 50}@example.org",
                details={"address": f"10.8.{number % 200}.1", "number": number},
            )
    sequence_queued(factory)
    later = _work(shared_world, served, "10.9.0.3")
    assert first > 0
    assert later <= first * 1.2, (first, later)
