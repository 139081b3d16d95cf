"""High-rate events: queued with the action (`record_soon`), appended to the tree in batches
(`sequence`), never twice, in an intact log; every token use and every refused use of a known
token is such an event."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from genecommons.access import identity
from genecommons.access import service as access
from genecommons.access.tables import api_tokens
from genecommons.audit import service
from genecommons.config import Settings
from genecommons.db import make_engine, make_session_factory
from genecommons.errors import AuthenticationError, InvalidInputError
from genecommons.ledger.events import (
    EventTag,
    GroupedQueue,
    record_event,
    record_soon,
    sequence,
)
from genecommons.ledger.tables import audit_events, audit_queue
from genecommons.policy.models import Subject

OPERATOR = Subject.operator("tester")


def queue(factory: Any, count: int, *, start: int = 0) -> None:
    with factory() as session, session.begin():
        for i in range(start, start + count):
            record_soon(
                session,
                tag=EventTag.TOKEN_USED,
                actor=f"user:u{i}@example.org",
                subject=f"token:{i}",
                details={"address": f"10.0.0.{i % 250}"},
            )


def test_queued_events_join_the_log_in_order_and_verify(factory: Any, settings: Settings) -> None:
    queue(factory, 30)
    with factory() as session, session.begin():
        record_event(session, tag=EventTag.RECORD_READ, actor="user:a@example.org")
    with factory() as session:
        assert session.execute(select(func.count()).select_from(audit_events)).scalar() == 1
    assert service.sequence_queued(factory, batch=7) == 30
    with factory() as session:
        rows = session.execute(
            select(
                audit_events.c.leaf_index, audit_events.c.actor, audit_events.c.details
            ).order_by(audit_events.c.leaf_index)
        ).all()
        assert session.execute(select(func.count()).select_from(audit_queue)).scalar() == 0
    assert [r.leaf_index for r in rows] == list(range(31))
    assert [r.actor for r in rows[1:]] == [f"user:u{i}@example.org" for i in range(30)]
    assert rows[5].details == {"address": "10.0.0.4"}
    key = service.signing_key(settings, create=True)
    assert service.tree_head(factory, key, interval_seconds=0).tree_size == 31
    assert service.verify(factory, key.public_key()).problems == []


def test_a_rolled_back_action_leaves_no_queued_event(factory: Any) -> None:
    def action() -> None:
        with factory() as session, session.begin():
            record_soon(session, tag=EventTag.TOKEN_USED, actor="user:a@example.org")
            raise RuntimeError("the action failed")

    with pytest.raises(RuntimeError):
        action()
    assert service.sequence_queued(factory) == 0


def test_an_event_json_cannot_carry_fails_the_action_not_the_log(factory: Any) -> None:
    with pytest.raises(InvalidInputError), factory() as session, session.begin():
        record_soon(
            session, tag=EventTag.TOKEN_USED, actor="user:a@example.org", details={"n": 2**60}
        )
    assert service.sequence_queued(factory) == 0


def test_a_head_covers_the_queued_events(factory: Any, settings: Settings) -> None:
    queue(factory, 5)
    key = service.signing_key(settings, create=True)
    waiting = service.verify(factory, key.public_key())
    assert (waiting.tree_size, waiting.queued, waiting.problems) == (0, 5, [])
    assert service.tree_head(factory, key, interval_seconds=0).tree_size == 5


def test_concurrent_sequencers_append_each_event_once(factory: Any, settings: Settings) -> None:
    errors: list[BaseException] = []

    def producer(offset: int) -> None:
        try:
            for batch in range(5):
                queue(factory, 20, start=offset + batch * 20)
        except BaseException as error:
            errors.append(error)

    def sequencer() -> None:
        try:
            for _ in range(20):
                with factory() as session, session.begin():
                    sequence(session, limit=13)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=producer, args=(i * 1000,)) for i in range(2)]
    threads += [threading.Thread(target=sequencer) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    service.sequence_queued(factory)
    with factory() as session:
        subjects = session.execute(select(audit_events.c.subject)).scalars().all()
    assert sorted(subjects) == sorted(
        f"token:{offset + i}" for offset in (0, 1000) for i in range(100)
    )
    key = service.signing_key(settings, create=True)
    assert service.verify(factory, key.public_key()).problems == []


@pytest.mark.parametrize("grouped", [False, True], ids=["one-transaction", "group-commit"])
def test_every_use_of_a_known_token_is_an_event(factory: Any, grouped: bool) -> None:
    access.add_user(
        factory, email="zhao@example.org", roles=["researcher"], institution=None, actor=OPERATOR
    )
    issued = access.create_token(factory, email="zhao@example.org", actor=OPERATOR)
    events = GroupedQueue(factory) if grouped else None
    first = access.authenticate(factory, issued.token, address="192.0.2.7", events=events)
    assert first.id == "user:zhao@example.org"
    with factory() as session:
        touched = session.execute(select(api_tokens.c.last_used_at)).scalar_one()
    assert touched is not None
    access.authenticate(factory, issued.token, events=events)
    with factory() as session:
        again = session.execute(select(api_tokens.c.last_used_at)).scalar_one()
    # the group-commit path writes the last use at most once a minute
    assert (again == touched) if grouped else (again >= touched)
    access.revoke_token(factory, token_id=issued.id, actor=OPERATOR)
    with pytest.raises(AuthenticationError):
        access.authenticate(factory, issued.token, address="198.51.100.9", events=events)
    with pytest.raises(AuthenticationError):
        access.authenticate(factory, identity.new_token(), events=events)  # unknown: no event
    service.sequence_queued(factory)
    with factory() as session:
        events = session.execute(
            select(
                audit_events.c.tag,
                audit_events.c.actor,
                audit_events.c.subject,
                audit_events.c.details,
            )
            .where(audit_events.c.tag.in_(["access:token:use", "access:token:refuse"]))
            .order_by(audit_events.c.leaf_index)
        ).all()
    token = f"token:{issued.id}"
    assert [(e.tag, e.actor, e.subject) for e in events] == [
        ("access:token:use", "user:zhao@example.org", token),
        ("access:token:use", "user:zhao@example.org", token),
        ("access:token:refuse", "user:zhao@example.org", token),
    ]
    assert events[0].details == {"address": "192.0.2.7", "institution": None}
    assert events[-1].details == {"why": "revoked", "address": "198.51.100.9", "institution": None}


def test_proofs_beyond_the_log_are_refused(factory: Any) -> None:
    queue(factory, 6)
    service.sequence_queued(factory)
    assert len(service.inclusion(factory, leaf_index=5, tree_size=6)) == 2
    for call in (
        lambda: service.inclusion(factory, leaf_index=0, tree_size=7),
        lambda: service.consistency(factory, first=2, second=7),
        lambda: service.consistency(factory, first=0, second=7),
        lambda: service.consistency(factory, first=7, second=7),
    ):
        with pytest.raises(InvalidInputError):
            call()


def test_a_large_batch_is_sequenced_intact(factory: Any, settings: Settings) -> None:
    queue(factory, 300)  # large enough for PostgreSQL's COPY path
    assert service.sequence_queued(factory) == 300
    with factory() as session:
        row = session.execute(select(audit_events).where(audit_events.c.leaf_index == 299)).one()
    assert row.details == {"address": "10.0.0.49"} and row.subject == "token:299"
    key = service.signing_key(settings, create=True)
    assert service.verify(factory, key.public_key()).problems == []


def test_grouped_events_from_many_threads_are_committed_before_record_returns(
    factory: Any, settings: Settings, in_threads: Any
) -> None:
    grouped = GroupedQueue(factory)
    missing: list[str] = []

    def record(thread: int) -> None:
        for i in range(15):
            actor = f"user:t{thread}-{i}@example.org"
            grouped.record(tag=EventTag.BEACON_QUERY, actor=actor, details={"i": i})
            with factory() as session:  # committed: another connection sees it now
                leaves = session.execute(select(audit_queue.c.leaf)).scalars().all()
                if not any(actor.encode() in bytes(leaf) for leaf in leaves):
                    missing.append(actor)

    failures = [e for e in in_threads(12, record) if e is not None]
    assert failures == []
    assert missing == []
    assert service.sequence_queued(factory) == 12 * 15
    with factory() as session:
        actors = list(session.execute(select(audit_events.c.actor)).scalars())
    assert sorted(actors) == sorted(
        f"user:t{t}-{i}@example.org" for t in range(12) for i in range(15)
    )
    key = service.signing_key(settings, create=True)
    assert service.verify(factory, key.public_key()).problems == []


def test_a_failed_group_commit_fails_every_record_waiting_for_it(
    tmp_path: Any, in_threads: Any, sqlcipher_key: Any
) -> None:
    # a database without the queue table: every commit fails, and so must each record
    empty = make_session_factory(
        make_engine(f"sqlite:///{tmp_path / 'empty.sqlite3'}", key=sqlcipher_key)
    )
    grouped = GroupedQueue(empty)
    returned: list[int] = []

    def record(thread: int) -> None:
        grouped.record(tag=EventTag.BEACON_QUERY, actor=f"user:t{thread}@example.org")
        returned.append(thread)

    raised = [e for e in in_threads(8, record) if isinstance(e, OperationalError)]
    assert returned == []
    assert len(raised) == 8
    grouped.factory.kw["bind"].dispose()
