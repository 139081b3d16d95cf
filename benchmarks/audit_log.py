"""Benchmark: appending audit events durably to the database-backed Merkle log, and proofs.

Appends N events (in transactions of B events each, every one committed), then times
inclusion and consistency proofs read from the database, on SQLite and on PostgreSQL.

    .venv/bin/python -m benchmarks.audit_log --events 200000 --batch 100
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
import uuid

POSTGRES_URL = os.environ.get(
    "GENECOMMONS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def run(url: str, events: int, batch: int) -> dict[str, float]:
    """Append, then time proofs; figures in events/s and ms."""
    from genecommons.audit.events import Event, EventTag, record_events
    from genecommons.audit.merkle import MerkleTree
    from genecommons.audit.store import SqlNodeStore
    from genecommons.db import make_engine, make_session_factory
    from genecommons.migrate import upgrade

    upgrade(url)
    engine = make_engine(url)
    factory = make_session_factory(engine)
    started = time.perf_counter()
    for start in range(0, events, batch):
        with factory() as session, session.begin():
            record_events(
                session,
                [
                    Event(
                        EventTag.RECORD_READ,
                        f"user:u{i % 977}@example.org",
                        f"individual:GCI{i:08d}",
                        {"n": i, "dataset": "GCD00000001"},
                    )
                    for i in range(start, min(start + batch, events))
                ],
            )
    seconds = time.perf_counter() - started
    rng = random.Random(3)
    inclusion, consistency = [], []
    with factory() as session:
        tree = MerkleTree(SqlNodeStore(session))
        for _ in range(300):
            size = rng.randint(2, events)
            t = time.perf_counter()
            tree.inclusion_proof(leaf_index=rng.randrange(size), tree_size=size)
            inclusion.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            tree.consistency_proof(first=rng.randint(1, size - 1), second=size)
            consistency.append((time.perf_counter() - t) * 1000)
    engine.dispose()
    return {
        "rate": events / seconds,
        "inclusion_p50": statistics.median(inclusion),
        "consistency_p50": statistics.median(consistency),
    }


def main() -> None:
    """Run on SQLite and, when reachable, PostgreSQL."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()
    print(f"audit log: {args.events} events appended in committed transactions of {args.batch}")
    print(f"{'backend':<12}{'events/s':>10}{'inclusion p50 ms':>18}{'consistency p50 ms':>20}")
    with tempfile.TemporaryDirectory(prefix="gc-audit-") as temp:
        targets = {"sqlite": f"sqlite:///{temp}/audit.sqlite3"}
        schema = None
        try:
            from sqlalchemy import create_engine, text

            admin = create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
            schema = f"gc_bench_{uuid.uuid4().hex[:8]}"
            with admin.begin() as connection:
                connection.execute(text(f'CREATE SCHEMA "{schema}"'))
            targets["postgresql"] = f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
        except Exception as error:
            print(f"PostgreSQL skipped: {type(error).__name__}")
        try:
            for name, url in targets.items():
                r = run(url, args.events, args.batch)
                print(
                    f"{name:<12}{r['rate']:>10.0f}{r['inclusion_p50']:>18.3f}"
                    f"{r['consistency_p50']:>20.3f}"
                )
        finally:
            if schema is not None:
                with admin.begin() as connection:
                    connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


if __name__ == "__main__":
    main()
