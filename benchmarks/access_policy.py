"""Benchmark: the policy decision point and the cost of authorization on a request.

1,000 datasets and 10,000 grants (1,000 researchers x 10). Times, p50/p95 over many calls:
`decide` for a record-level read; `authenticate` (token -> subject with roles and grants, one
database round trip, the token use queued as an audit event in it); and an HTTP request
(in-process ASGI) anonymous vs. with a bearer token; then the sequencing of the queued token-use
events into the audit log.

    .venv/bin/python -m benchmarks.access_policy
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from benchmarks.catalog_submission import write_submission


def _percentiles(samples: list[float]) -> tuple[float, float]:
    return statistics.median(samples), statistics.quantiles(samples, n=20)[18]


def _time(call: Callable[[], object], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        out.append((time.perf_counter() - started) * 1000)
    return out


def main() -> None:
    """Build the fixture, time, print."""
    from fastapi.testclient import TestClient
    from sqlalchemy import insert

    from genecommons.access import identity
    from genecommons.access import service as access
    from genecommons.access.tables import (
        access_requests,
        api_tokens,
        grants,
        request_datasets,
        user_roles,
        users,
    )
    from genecommons.app import create_app
    from genecommons.catalog import service as catalog
    from genecommons.config import Settings
    from genecommons.db import make_session_factory, node_engine
    from genecommons.migrate import upgrade_node
    from genecommons.node_init import create_node_secrets
    from genecommons.policy.decision import decide
    from genecommons.policy.models import Action, Resource, Subject

    with tempfile.TemporaryDirectory(prefix="gc-policy-") as temp:
        bundle = write_submission(Path(temp) / "bundle", 1000)
        rows = ["alias\tstudy\ttitle\taccess_tier\tduo_codes\tdac\truns"]
        rows += [
            f"D{i:04d}\tBIG\tDataset {i}\tcontrolled\tGRU\tDAC\tI{i:06d}-R" for i in range(1000)
        ]
        (bundle / "datasets.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
        url = f"sqlite:///{temp}/policy.sqlite3"
        settings = Settings(data_dir=Path(temp), database_url=url)
        upgrade_node(settings)
        create_node_secrets(settings)  # as `genecommons init` makes them
        factory = make_session_factory(node_engine(settings))
        result = catalog.submit(factory, bundle, subject=Subject.operator("bench"))
        dataset_ids = list(range(1, 1001))
        now = datetime.now(UTC)
        with factory() as session, session.begin():
            session.execute(
                insert(users),
                [
                    {
                        "email": f"r{i}@example.org",
                        "display_name": None,
                        "institution_id": 1,
                        "password_hash": None,
                        "active": True,
                        "created_at": now,
                        "created_by": "bench",
                    }
                    for i in range(1000)
                ],
            )
            session.execute(
                insert(user_roles), [{"user_id": i + 1, "role": "researcher"} for i in range(1000)]
            )
            session.execute(
                insert(access_requests),
                [
                    {"user_id": i + 1, "purpose": {}, "agreement_version": "v1", "created_at": now}
                    for i in range(1000)
                ],
            )
            rng = random.Random(1)
            items, grant_rows = [], []
            for user in range(1, 1001):
                for dataset in rng.sample(dataset_ids, 10):
                    items.append(
                        {
                            "request_id": user,
                            "dataset_id": dataset,
                            "dac_id": None,
                            "verdict": "compatible",
                            "match": {},
                            "status": "approved",
                            "decided_by": "bench",
                            "decided_at": now,
                            "reason": "ok",
                        }
                    )
            session.execute(insert(request_datasets), items)
            for item_id, item in enumerate(items, start=1):
                grant_rows.append(
                    {
                        "user_id": item["request_id"],
                        "dataset_id": item["dataset_id"],
                        "request_dataset_id": item_id,
                        "conditions": [],
                        "granted_at": now,
                        "granted_by": "bench",
                        "expires_at": now + timedelta(days=365),
                        "revoked_at": None,
                        "revoked_by": None,
                    }
                )
            session.execute(insert(grants), grant_rows)
            token = identity.new_token()
            session.execute(
                insert(api_tokens).values(
                    user_id=1,
                    digest=identity.token_digest(token),
                    label=None,
                    scopes=None,
                    created_at=now,
                    expires_at=now + timedelta(days=1),
                    revoked_at=None,
                    last_used_at=None,
                )
            )
        subject = access.authenticate(factory, token)
        datasets = sorted(result.accessions["datasets"].values())
        granted = next(iter(subject.grants))
        resources = [Resource("dataset", d, tier="controlled") for d in datasets]
        decide_ms = _time(
            lambda: decide(subject, Action.READ_RECORDS, rng.choice(resources)), 20000
        )
        assert decide(
            subject, Action.READ_RECORDS, Resource("dataset", granted, tier="controlled")
        ).allowed
        auth_ms = _time(lambda: access.authenticate(factory, token), 2000)
        app = create_app(settings)
        with TestClient(app) as client:
            bearer = {"Authorization": f"Bearer {token}"}
            for _ in range(50):  # warm up
                client.get("/api/v1/studies", params={"page_size": 1})
                client.get("/api/v1/studies", params={"page_size": 1}, headers=bearer)
            anonymous_ms = _time(
                lambda: client.get("/api/v1/studies", params={"page_size": 1}), 2000
            )
            signed_ms = _time(
                lambda: client.get("/api/v1/studies", params={"page_size": 1}, headers=bearer), 2000
            )
        print("access policy: 1,000 datasets, 10,000 grants (the subject holds 10)")
        print(f"{'measure':<42}{'p50 ms':>10}{'p95 ms':>10}")
        for name, samples in (
            ("decide (record-level read)", decide_ms),
            ("authenticate (token -> subject, grants)", auth_ms),
            ("GET /api/v1/studies anonymous", anonymous_ms),
            ("GET /api/v1/studies with bearer token", signed_ms),
        ):
            p50, p95 = _percentiles(samples)
            print(f"{name:<42}{p50:>10.3f}{p95:>10.3f}")
        added = statistics.median(signed_ms) - statistics.median(anonymous_ms)
        print(f"authorization adds {added:.3f} ms p50 to a request (goal < 2 ms)")
        # the cost of the token-use event alone, by interleaved blocks (robust to the load of a
        # shared machine): the request's write transaction with and without `record_soon`
        from sqlalchemy import update

        from genecommons.ledger.events import EventTag, record_soon

        def touch(queue_event: bool) -> None:
            with factory() as session, session.begin():
                session.execute(
                    update(api_tokens).where(api_tokens.c.id == 1).values(last_used_at=now)
                )
                if queue_event:
                    record_soon(
                        session,
                        tag=EventTag.TOKEN_USED,
                        actor="user:r0@example.org",
                        subject="token:1",
                        details={"address": "testclient", "institution": "GCO00000001"},
                    )

        paired: dict[bool, list[float]] = {True: [], False: []}
        for _ in range(20):
            for queue_event in (True, False):
                paired[queue_event] += _time(lambda q=queue_event: touch(q), 100)
        event_ms = statistics.median(paired[True]) - statistics.median(paired[False])
        print(f"of which the queued token-use event (record_soon), interleaved: {event_ms:.3f} ms")
        # every token use above was queued as an audit event; the sequencer appends them
        from genecommons.audit.service import sequence_queued

        started = time.perf_counter()
        sequenced = sequence_queued(factory)
        seconds = time.perf_counter() - started
        print(
            f"token-use events queued by the requests above, sequenced into the log: "
            f"{sequenced} in {seconds:.2f} s ({sequenced / seconds:.0f} events/s)"
        )


if __name__ == "__main__":
    main()
