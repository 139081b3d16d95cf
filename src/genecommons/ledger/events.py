"""Audit event tags and the single function that appends an event to the log.

Every security-relevant action records itself here, in the same transaction as the action, so
an event exists if and only if the action happened. Each event is a leaf of the RFC 9162 Merkle
tree (ledger/merkle.py): its canonical JSON is stored with it, and the tree's nodes are written in
the same transaction. Tags follow `capability:subject:action`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from genecommons import clock, request_ids
from genecommons.db import GroupCommit
from genecommons.errors import ConflictError, Refusal
from genecommons.ledger.merkle import MerkleTree, canonical_leaf
from genecommons.ledger.store import SqlNodeStore, insert_rows
from genecommons.ledger.tables import audit_events, audit_head, audit_queue


class EventTag(StrEnum):
    """The kinds of audited events."""

    SUBMISSION_ACCEPTED = "catalog:submission:accept"
    SUBMISSION_REJECTED = "catalog:submission:reject"
    RECORD_READ = "catalog:record:read"
    VARIANT_STORE_BUILT = "variants:store:build"
    VARIANT_STORE_REMOVED = "variants:store:remove"  # a leftover or refused store removed
    VARIANT_STORE_VERIFIED = "variants:store:verify"
    VARIANT_COUNTS_READ = "variants:counts:read"
    REFERENCE_LOADED = "variants:reference:load"  # public reference counts for the Beacon
    BEACON_QUERY = "variants:beacon:query"
    ACCESS_DENIED = "access:decision:deny"
    USER_CREATED = "access:user:create"
    INSTITUTION_VERIFIED = "access:institution:verify"
    TOKEN_CREATED = "access:token:create"  # noqa: S105 - an event tag, not a secret
    TOKEN_REVOKED = "access:token:revoke"  # noqa: S105 - an event tag, not a secret
    TOKEN_USED = "access:token:use"  # noqa: S105 - an event tag, not a secret
    TOKEN_REFUSED = "access:token:refuse"  # noqa: S105 - an event tag, not a secret
    SIGN_IN = "access:session:sign-in"
    SIGN_IN_FAILED = "access:session:fail"
    TOTP_ENROLLED = "access:totp:enrol"
    IDENTITY_LINKED = "access:identity:link"  # an OpenID Connect identity linked to an account
    USER_REGISTERED = "access:user:register"  # a researcher registered themselves
    EMAIL_VERIFIED = "access:email:verify"
    USER_UPDATED = "access:user:update"  # an administrator changed an account's institution
    INSTITUTION_DOMAINS_SET = "access:institution:domains"  # its declared e-mail domains
    AFFILIATION_CONFIRMED = "access:affiliation:confirm"  # a claimed institution confirmed
    AFFILIATION_REJECTED = "access:affiliation:reject"
    REQUEST_CREATED = "access:request:create"
    REQUEST_REJECTED = "access:request:reject"
    GRANT_CREATED = "access:grant:create"
    GRANT_REVOKED = "access:grant:revoke"
    UPLOAD_STARTED = "archive:upload:start"
    FILE_ARCHIVED = "archive:file:archive"
    FILE_REJECTED = "archive:file:reject"
    FILE_DOWNLOADED = "archive:file:download"
    ACCESS_URL_ISSUED = "archive:drs:access"
    HTSGET_TICKET = "archive:htsget:ticket"
    HTSGET_DATA = "archive:htsget:data"
    KEY_REGISTERED = "archive:key:register"
    OBJECT_VERIFIED = "archive:object:verify"
    OBJECT_DAMAGED = "archive:object:damage"
    OBJECT_ORPHANS_REMOVED = "archive:object:remove_orphans"
    UPLOADS_EXPIRED = "archive:upload:expire"
    FINGERPRINT_DELIVERED = "audit:fingerprint:deliver"
    FINGERPRINT_POLICY_SET = "audit:fingerprint:policy"
    LEAK_TRACED = "audit:trace:run"
    PRIVACY_BUDGET_LOW = "privacy:budget:low"
    REFERENCE_CHECKED = "privacy:reference:check"  # whether the public reference suits a dataset
    PRIVACY_MEASURED = "privacy:assessment:record"  # attacks measured on a dataset, kept
    PRIVACY_REPORT_READ = "privacy:report:read"
    FREQUENCIES_CLOSED = "privacy:frequencies:close"  # a dataset's open route spent its bound
    ALERT_RAISED = "audit:alert:raise"
    BACKUP_MADE = "node:backup:create"  # a copy of the database, keys and store manifest
    BACKUP_RESTORED = "node:backup:restore"


@dataclass(frozen=True, slots=True)
class Event:
    """One security-relevant event, before it is appended."""

    tag: EventTag
    actor: str
    subject: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    occurred_at: datetime | None = None


def _lock_head(session: Session, count: int) -> int:
    """Take the log's write lock and reserve `count` leaves; the size before them."""
    for _ in range(2):
        updated = session.execute(
            update(audit_head)
            .where(audit_head.c.id == 1)
            .values(size=audit_head.c.size + count)
            .returning(audit_head.c.size)
        ).scalar_one_or_none()
        if updated is not None:
            return int(updated) - count
        try:
            with session.begin_nested():
                session.execute(insert(audit_head).values(id=1, size=0))
        except IntegrityError:
            pass  # created by a concurrent first event
    raise RuntimeError("the audit head row could not be created")


def leaf_document(
    *,
    tag: str,
    actor: str,
    subject: str | None,
    details: Mapping[str, Any],
    occurred_at: datetime,
) -> dict[str, Any]:
    """The facts of an event as they are hashed (times in UTC, to the microsecond)."""
    moment = occurred_at if occurred_at.tzinfo else occurred_at.replace(tzinfo=UTC)
    return {
        "occurred_at": moment.astimezone(UTC).isoformat(timespec="microseconds"),
        "tag": tag,
        "actor": actor,
        "subject": subject,
        "details": dict(details),
    }


def with_request_id(details: Mapping[str, Any] | None) -> dict[str, Any]:
    """An event's details, with the id of the HTTP request that records it (`request_id`)
    when it is recorded for one, so that the event is found from the request's log lines and
    answer, and back."""
    facts = dict(details or {})
    request_id = request_ids.current()
    if request_id is not None and "request_id" not in facts:
        facts["request_id"] = request_id
    return facts


def record_events(session: Session, events: Sequence[Event]) -> int:
    """Append events to the audit log inside the caller's transaction; the new tree size."""
    if not events:
        return 0
    now = clock.now()
    documents = []
    for event in events:
        document = leaf_document(
            tag=str(event.tag),
            actor=event.actor,
            subject=event.subject,
            details=with_request_id(event.details),
            occurred_at=event.occurred_at or now,
        )
        documents.append((event.occurred_at or now, document, canonical_leaf(document)))
    return _append(session, _lock_head(session, len(events)), documents)


def _append(
    session: Session, start: int, documents: Sequence[tuple[datetime, dict[str, Any], bytes]]
) -> int:
    """Write leaves start.. (the head already reserved) and their tree nodes; the new size."""
    rows = [
        {
            "leaf_index": start + offset,
            "occurred_at": moment,
            "tag": document["tag"],
            "actor": document["actor"],
            "subject": document["subject"],
            "details": document["details"],
            "leaf": leaf,
        }
        for offset, (moment, document, leaf) in enumerate(documents)
    ]
    size = MerkleTree(SqlNodeStore(session)).append_many([leaf for _, _, leaf in documents])
    if size != start + len(documents):
        raise ConflictError(
            "The audit log's tree and its head disagree; run `genecommons audit verify`.",
            message_zh="审计日志的树与其头部记录不一致，请运行 `genecommons audit verify`。",
        )
    insert_rows(session, audit_events, rows)
    return size


def record_event(
    session: Session,
    *,
    tag: EventTag,
    actor: str,
    subject: str | None = None,
    details: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> None:
    """Append one event to the audit log, inside the caller's transaction."""
    record_events(session, [Event(tag, actor, subject, dict(details or {}), now)])


# -- high-rate events: queued with the action, appended to the tree in batches ---------------


def record_soon(
    session: Session,
    *,
    tag: EventTag,
    actor: str,
    subject: str | None = None,
    details: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> None:
    """Queue one event inside the caller's transaction, for paths that run on every request
    (token use, Beacon queries): durable and atomic with the action like `record_event`, but
    one insert that takes no lock on the log.

    Its canonical leaf is made here (so an event JSON cannot carry fails the action, not the
    log) and waits in `audit_queue` until `sequence` appends queued events to the Merkle tree
    in one transaction per batch, as Trillian's sequencer integrates queued leaves: `genecommons
    serve` does so in the background every `audit_sequence_interval_seconds`, and signed tree
    heads and `genecommons audit watch` do before they read. Until then the event has no leaf
    index; its order in the log is the order it is sequenced in.
    """
    session.execute(_QUEUE, {"leaf": _queued_leaf(tag, actor, subject, details, now)})


def _queued_leaf(
    tag: EventTag,
    actor: str,
    subject: str | None,
    details: Mapping[str, Any] | None,
    now: datetime | None,
) -> bytes:
    document = leaf_document(
        tag=str(tag),
        actor=actor,
        subject=subject,
        details=with_request_id(details),
        occurred_at=now or clock.now(),
    )
    return canonical_leaf(document)


_QUEUE = insert(audit_queue)  # built once: this runs on every authenticated request


class GroupedQueue:
    """`record_soon` for events that are their own transaction (a Beacon query's), from many
    threads at once: the events that arrive while one group is being committed are queued
    together in the next transaction (a group commit, `db.GroupCommit`), and `record` returns
    only once its event is committed (or raises what failed the commit), so an answer is never
    sent without its event. One thread at a time writes, the first of a group; the others wait
    for it without contending for the database's write lock."""

    def __init__(
        self, factory: sessionmaker[Session], *, writes: GroupCommit | None = None
    ) -> None:
        self.factory = factory
        self.writes = writes or GroupCommit(factory)  # the app's, shared with its other writes

    def record(
        self,
        *,
        tag: EventTag,
        actor: str,
        subject: str | None = None,
        details: Mapping[str, Any] | None = None,
        now: datetime | None = None,
        after: Sequence[bytes] = (),
    ) -> None:
        """Queue one event, durably, in a transaction of its own or shared with events
        recorded at the same time, with the events `after` held back for it (`event_leaf`: queued
        before it, in the same transaction); return when it is committed."""
        leaf = _queued_leaf(tag, actor, subject, details, now)
        self.writes.submit(_queue_leaves, (*after, leaf))

    def flush(self, leaves: Sequence[bytes]) -> None:
        """Queue events held back (`event_leaf`), durably; return when they are committed."""
        if leaves:
            self.writes.submit(_queue_leaves, tuple(leaves))


def event_leaf(
    *,
    tag: EventTag,
    actor: str,
    subject: str | None = None,
    details: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> bytes:
    """An event as it is queued, to be committed later with another (`GroupedQueue.record`'s
    `after`) or on its own (`GroupedQueue.flush`)."""
    return _queued_leaf(tag, actor, subject, details, now)


def _queue_leaves(session: Session, items: Sequence[tuple[bytes, ...]]) -> list[None]:
    session.execute(_QUEUE, [{"leaf": leaf} for item in items for leaf in item])
    return [None] * len(items)


# -- refusals: every refusal of the decision point, whatever the caller was answered ---------


def refusal_event(refusal: Refusal, *, address: str, route: str, answered: int | None) -> Event:
    """The audit event of a refusal (`access:decision:deny`): who (the caller; for an anonymous
    one its address, so that an anonymous prober is counted by address), what action on which
    record, the rule that refused, from where, through which route, and the status the caller
    was answered (404 for a record the caller may not see; None when the request went on
    without what was refused, such as a forged visa)."""
    actor = f"address:{address}" if refusal.actor == "anonymous" else refusal.actor
    details: dict[str, Any] = {
        "action": refusal.action,
        "kind": refusal.kind,
        "rule": refusal.rule,
        "address": address,
        "route": route,
        "answered": answered,
    }
    if refusal.actor != actor:
        details["caller"] = refusal.actor  # anonymous
    if refusal.datasets:
        details["datasets"] = list(refusal.datasets)
    subject = f"{refusal.kind}:{refusal.accession}" if refusal.accession else refusal.kind
    return Event(EventTag.ACCESS_DENIED, actor, subject, details)


def record_refusal(
    events: GroupedQueue, refusal: Refusal, *, address: str, route: str, answered: int | None
) -> None:
    """Queue the event of a refusal with those recorded at the same time (one commit per
    group, however many refusals a prober causes); return once it is committed."""
    event = refusal_event(refusal, address=address, route=route, answered=answered)
    events.record(tag=event.tag, actor=event.actor, subject=event.subject, details=event.details)


SEQUENCE_BATCH = 5000


def sequence(session: Session, *, limit: int = SEQUENCE_BATCH) -> int:
    """Append up to `limit` queued events to the log, in queue order, inside the caller's
    transaction, and remove them from the queue; how many were appended.

    The log's write lock is taken before the queue is read, so two sequencers never append
    the same event; the queued rows are removed by id (a row of a transaction still open
    when the queue was read waits for the next batch).
    """
    _lock_head(session, 0)
    queued = session.execute(
        select(audit_queue.c.id, audit_queue.c.leaf).order_by(audit_queue.c.id).limit(limit)
    ).all()
    if not queued:
        return 0
    documents = []
    for row in queued:
        leaf = bytes(row.leaf)
        document = json.loads(leaf)
        moment = datetime.fromisoformat(document["occurred_at"])
        documents.append((moment, document, leaf))
    _append(session, _lock_head(session, len(queued)), documents)
    ids = [int(row.id) for row in queued]
    for chunk in range(0, len(ids), 1000):
        session.execute(delete(audit_queue).where(audit_queue.c.id.in_(ids[chunk : chunk + 1000])))
    return len(queued)
