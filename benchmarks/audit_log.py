"""Benchmark: appending audit events durably to the database-backed Merkle log, and proofs.

Three parts, on SQLite and on PostgreSQL (goal: 5,000 events/s or more appended durably; an
inclusion or consistency proof in under 5 ms at 10 million entries):

1. `record_events`: N events in transactions of B events each, every one committed.
2. The queued path of high-rate events (`record_soon`, as every token use takes): P producer
   threads each commit one event per transaction, as requests do, while one sequencer appends
   the queue to the tree in batches; events/s from the first commit until the last event is in
   the tree (durable twice: queued with its action, then as a leaf).
3. Proofs at L leaves: the log's tree nodes (the RFC 9162 hashes of 10 million leaves, computed
   here) are bulk loaded (SQLite executemany, PostgreSQL COPY), then inclusion and consistency
   proofs are read from the database through `SqlNodeStore`, p50 / p99. Proofs read only the
   tree nodes and the head, so the event rows themselves are not loaded for this part.

    .venv/bin/python -m benchmarks.audit_log --events 200000 --batch 100 --proof-leaves 10000000
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import os
import random
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

POSTGRES_URL = os.environ.get(
    "GENECOMMONS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _percentiles(samples: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(samples, n=100)
    return cuts[49], cuts[98]


@functools.cache
def _key() -> Any:
    """The SQLCipher key of the benchmark's SQLite files (one for the run)."""
    from genecommons.db import DatabaseKey

    return DatabaseKey(os.urandom(32), "the benchmark's key")


def append_rate(url: str, events: int, batch: int) -> float:
    """Events/s of `record_events` in committed transactions of `batch`."""
    from genecommons.db import make_engine, make_session_factory
    from genecommons.ledger.events import Event, EventTag, record_events

    engine = make_engine(url, key=_key())
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
    engine.dispose()
    return events / seconds


def queued_rate(url: str, events: int, producers: int) -> tuple[float, float]:
    """Events/s end to end of the queued path, and of the sequencer alone (events/s)."""
    from sqlalchemy import func, select

    from genecommons.audit.service import sequence_queued
    from genecommons.db import make_engine, make_session_factory
    from genecommons.ledger.events import EventTag, record_soon, sequence
    from genecommons.ledger.tables import audit_head

    engine = make_engine(url, key=_key())
    factory = make_session_factory(engine)
    with factory() as session:
        before = int(
            session.execute(select(func.coalesce(func.max(audit_head.c.size), 0))).scalar()
        )
    done = threading.Event()
    each = events // producers

    def produce(offset: int) -> None:
        for i in range(offset, offset + each):
            with factory() as session, session.begin():
                record_soon(
                    session,
                    tag=EventTag.TOKEN_USED,
                    actor=f"user:u{i % 977}@example.org",
                    subject=f"token:{i % 5000}",
                    details={"address": f"10.{i % 200}.0.1", "institution": "GCO00000001"},
                )

    def sequencer() -> None:
        while not done.is_set():
            with factory() as session, session.begin():
                appended = sequence(session)
            if not appended:
                time.sleep(0.01)

    threads = [threading.Thread(target=produce, args=(p * each,)) for p in range(producers)]
    running = threading.Thread(target=sequencer)
    started = time.perf_counter()
    running.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done.set()
    running.join()
    sequence_queued(factory)
    seconds = time.perf_counter() - started
    with factory() as session:
        after = int(session.execute(select(audit_head.c.size)).scalar_one())
    assert after - before == each * producers, (before, after)
    # the sequencer alone: a queue of `events` waiting, appended in batches
    for start in range(0, events, 1000):
        with factory() as session, session.begin():
            for i in range(start, min(start + 1000, events)):
                record_soon(session, tag=EventTag.TOKEN_USED, actor=f"user:u{i}@example.org")
    started_sequencer = time.perf_counter()
    sequence_queued(factory)
    sequencer_seconds = time.perf_counter() - started_sequencer
    engine.dispose()
    return each * producers / seconds, events / sequencer_seconds


def tree_nodes(leaves: int) -> Iterator[tuple[int, bytearray]]:
    """(level, packed 32-byte hashes) of every complete subtree of a log of `leaves` synthetic
    event-sized entries, level 0 first (RFC 9162 leaf and node hashes)."""
    level: bytearray = bytearray()
    for i in range(leaves):
        entry = (
            b'{"actor":"user:u%d@example.org","details":{"n":%d},'
            b'"occurred_at":"2026-11-02T09:00:00.000000+00:00","subject":null,'
            b'"tag":"catalog:record:read"}' % (i % 977, i)
        )
        level += hashlib.sha256(b"\x00" + entry).digest()
    number = 0
    while len(level) >= 64:
        yield number, level
        parent = bytearray()
        view = memoryview(level)
        for start in range(0, len(level) - 63, 64):
            parent += hashlib.sha256(b"\x01" + view[start : start + 64]).digest()
        level, number = parent, number + 1
    yield number, level


def bulk_load(url: str, leaves: int) -> float:
    """Load the nodes of a log of `leaves` entries and its head; seconds taken."""
    from sqlalchemy import create_engine

    started = time.perf_counter()
    if url.startswith("sqlite"):
        from pathlib import Path

        from genecommons.db import connect_encrypted

        connection = connect_encrypted(Path(url.removeprefix("sqlite:///")), _key())
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        with connection:
            for level, packed in tree_nodes(leaves):
                connection.executemany(
                    "INSERT INTO merkle_nodes (level, idx, hash) VALUES (?, ?, ?)",
                    (
                        (level, i, bytes(packed[i * 32 : i * 32 + 32]))
                        for i in range(len(packed) // 32)
                    ),
                )
            connection.execute("DELETE FROM audit_head")
            connection.execute("INSERT INTO audit_head (id, size) VALUES (1, ?)", (leaves,))
        connection.execute("ANALYZE")
        connection.close()
    else:
        engine = create_engine(url)
        raw: Any = engine.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute("ALTER TABLE merkle_nodes DROP CONSTRAINT pk_merkle_nodes")
            with cursor.copy("COPY merkle_nodes (level, idx, hash) FROM STDIN") as copy:
                for level, packed in tree_nodes(leaves):
                    for i in range(len(packed) // 32):
                        copy.write_row((level, i, bytes(packed[i * 32 : i * 32 + 32])))
            cursor.execute(
                "ALTER TABLE merkle_nodes ADD CONSTRAINT pk_merkle_nodes PRIMARY KEY (level, idx)"
            )
            cursor.execute("DELETE FROM audit_head")
            cursor.execute("INSERT INTO audit_head (id, size) VALUES (1, %s)", (leaves,))
            raw.commit()
            cursor.execute("ANALYZE merkle_nodes")
            raw.commit()
        finally:
            raw.close()
            engine.dispose()
    return time.perf_counter() - started


def proofs(url: str, leaves: int, count: int, seed: int = 3) -> dict[str, tuple[float, float]]:
    """p50 and p99 ms of inclusion and consistency proofs read from the database, each in its
    own session as the API serves them, at random leaves and sizes of the `leaves` log (and at
    the full size)."""
    from genecommons.audit.service import consistency, inclusion
    from genecommons.db import make_engine, make_session_factory
    from genecommons.ledger.merkle import MerkleTree
    from genecommons.ledger.store import SqlNodeStore

    engine = make_engine(url, key=_key())
    factory = make_session_factory(engine)
    rng = random.Random(seed)
    with factory() as session:  # the tree is whole: the root of the full size folds
        MerkleTree(SqlNodeStore(session)).root(leaves)

    def sample(call: Callable[[], object]) -> float:
        started = time.perf_counter()
        call()
        return (time.perf_counter() - started) * 1000

    results: dict[str, list[float]] = {"inclusion": [], "consistency": []}
    for _ in range(count):
        size = rng.choice([leaves, rng.randint(leaves // 2, leaves)])
        index = rng.randrange(size)
        first = rng.randint(1, size - 1)
        results["inclusion"].append(
            sample(lambda: inclusion(factory, leaf_index=index, tree_size=size))  # noqa: B023
        )
        results["consistency"].append(
            sample(lambda: consistency(factory, first=first, second=size))  # noqa: B023
        )
    engine.dispose()
    return {name: _percentiles(values) for name, values in results.items()}


def main() -> None:
    """Run on SQLite and, when reachable, PostgreSQL."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--queued", type=int, default=20_000, help="events of the queued path")
    parser.add_argument("--producers", type=int, default=4)
    parser.add_argument("--proof-leaves", type=int, default=10_000_000)
    parser.add_argument("--proofs", type=int, default=1000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    from genecommons.migrate import upgrade

    with tempfile.TemporaryDirectory(prefix="gc-audit-") as temp:
        targets: dict[str, Callable[[str], str]] = {}
        schemas: list[str] = []
        admin: Any = None
        if "sqlite" in args.backends:
            targets["sqlite"] = lambda name: f"sqlite:///{temp}/{name}.sqlite3"
        if "postgresql" in args.backends:
            try:
                from sqlalchemy import create_engine, text

                admin = create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
                with admin.connect() as connection:
                    connection.execute(text("select 1"))

                def schema_url(name: str) -> str:
                    schema = f"gc_bench_{name}_{uuid.uuid4().hex[:8]}"
                    with admin.begin() as connection:
                        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
                    schemas.append(schema)
                    return f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"

                targets["postgresql"] = schema_url
            except Exception as error:
                print(f"PostgreSQL skipped: {type(error).__name__}")
        try:
            print(
                "audit log, durable appends (goal >= 5,000 events/s); machine shared, figures noisy"
            )
            print(f"{'backend':<12}{'path':<58}{'events/s':>10}{'/ goal':>8}")
            for name, make_url in targets.items() if args.events else ():
                url = make_url("append")
                upgrade(url, key=_key())
                rate = append_rate(url, args.events, args.batch)
                path = f"record_events, {args.events} in commits of {args.batch}"
                print(f"{name:<12}{path:<58}{rate:>10.0f}{rate / 5000:>8.2f}")
                end_to_end, sequencer = queued_rate(url, args.queued, args.producers)
                path = f"record_soon, {args.producers} threads x 1 event a commit, + sequencer"
                print(f"{name:<12}{path:<58}{end_to_end:>10.0f}{end_to_end / 5000:>8.2f}")
                path = f"sequencer alone, {args.queued} queued events"
                print(f"{name:<12}{path:<58}{sequencer:>10.0f}{sequencer / 5000:>8.2f}")
            if args.proof_leaves:
                print(
                    f"\nproofs read from the database at {args.proof_leaves:,} entries "
                    f"(goal < 5 ms), {args.proofs} of each"
                )
                print(
                    f"{'backend':<12}{'bulk load s':>12}{'inclusion p50/p99 ms':>24}"
                    f"{'consistency p50/p99 ms':>26}{'p99 / goal':>12}"
                )
                for name, make_url in targets.items():
                    url = make_url("proofs")
                    upgrade(url, key=_key())
                    loaded = bulk_load(url, args.proof_leaves)
                    timing = proofs(url, args.proof_leaves, args.proofs)
                    i50, i99 = timing["inclusion"]
                    c50, c99 = timing["consistency"]
                    print(
                        f"{name:<12}{loaded:>12.0f}{f'{i50:.2f} / {i99:.2f}':>24}"
                        f"{f'{c50:.2f} / {c99:.2f}':>26}{max(i99, c99) / 5:>12.2f}"
                    )
        finally:
            if admin is not None:
                from sqlalchemy import text

                with admin.begin() as connection:
                    for schema in schemas:
                        connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
                admin.dispose()


if __name__ == "__main__":
    main()
