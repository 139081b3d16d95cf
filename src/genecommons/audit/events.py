"""Audit event tags and the single function that appends an event to the log.

Every security-relevant action records itself here, in the same transaction as the action, so
an event exists if and only if the action happened. Each event is a leaf of the RFC 9162 Merkle
tree (audit/merkle.py): its canonical JSON is stored with it, and the tree's nodes are written in
the same transaction. Tags follow `capability:subject:action`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import insert, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from genecommons.audit.merkle import MerkleTree, canonical_leaf
from genecommons.audit.store import SqlNodeStore
from genecommons.audit.tables import audit_events, audit_head
from genecommons.errors import ConflictError


class EventTag(StrEnum):
    """The kinds of audited events."""

    SUBMISSION_ACCEPTED = "catalog:submission:accept"
    SUBMISSION_REJECTED = "catalog:submission:reject"
    RECORD_READ = "catalog:record:read"
    VARIANT_STORE_BUILT = "variants:store:build"
    VARIANT_COUNTS_READ = "variants:counts:read"
    BEACON_QUERY = "variants:beacon:query"
    ACCESS_DENIED = "access:decision:deny"
    USER_CREATED = "access:user:create"
    INSTITUTION_VERIFIED = "access:institution:verify"
    TOKEN_CREATED = "access:token:create"  # noqa: S105 - an event tag, not a secret
    TOKEN_REVOKED = "access:token:revoke"  # noqa: S105 - an event tag, not a secret
    SIGN_IN = "access:session:sign-in"
    SIGN_IN_FAILED = "access:session:fail"
    TOTP_ENROLLED = "access:totp:enrol"
    IDENTITY_LINKED = "access:identity:link"  # an OpenID Connect identity linked to an account
    USER_REGISTERED = "access:user:register"  # a researcher registered themselves
    EMAIL_VERIFIED = "access:email:verify"
    USER_UPDATED = "access:user:update"  # an administrator changed an account's institution
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
    FINGERPRINT_DELIVERED = "audit:fingerprint:deliver"
    FINGERPRINT_POLICY_SET = "audit:fingerprint:policy"
    LEAK_TRACED = "audit:trace:run"
    PRIVACY_BUDGET_LOW = "privacy:budget:low"


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


def record_events(session: Session, events: Sequence[Event]) -> int:
    """Append events to the audit log inside the caller's transaction; the new tree size."""
    if not events:
        return 0
    start = _lock_head(session, len(events))
    rows, leaves = [], []
    now = datetime.now(UTC)
    for offset, event in enumerate(events):
        moment = event.occurred_at or now
        document = leaf_document(
            tag=str(event.tag),
            actor=event.actor,
            subject=event.subject,
            details=event.details,
            occurred_at=moment,
        )
        leaf = canonical_leaf(document)
        leaves.append(leaf)
        rows.append(
            {
                "leaf_index": start + offset,
                "occurred_at": moment,
                "tag": str(event.tag),
                "actor": event.actor,
                "subject": event.subject,
                "details": document["details"],
                "leaf": leaf,
            }
        )
    size = MerkleTree(SqlNodeStore(session)).append_many(leaves)
    if size != start + len(events):
        raise ConflictError(
            "The audit log's tree and its head disagree; run `genecommons audit verify`.",
            message_zh="审计日志的树与其头部记录不一致，请运行 `genecommons audit verify`。",
        )
    session.execute(insert(audit_events), rows)
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
