"""Audit event tags and the single function that appends an event to the log.

Every security-relevant action records itself here, in the same transaction as the action, so
an event exists if and only if the action happened. Tags follow `capability:subject:action`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from genecommons.audit.tables import audit_events


class EventTag(StrEnum):
    """The kinds of audited events."""

    SUBMISSION_ACCEPTED = "catalog:submission:accept"
    SUBMISSION_REJECTED = "catalog:submission:reject"
    RECORD_READ = "catalog:record:read"
    ACCESS_DENIED = "access:decision:deny"
    USER_CREATED = "access:user:create"
    INSTITUTION_VERIFIED = "access:institution:verify"
    TOKEN_CREATED = "access:token:create"  # noqa: S105 - an event tag, not a secret
    TOKEN_REVOKED = "access:token:revoke"  # noqa: S105 - an event tag, not a secret
    SIGN_IN = "access:session:sign-in"
    SIGN_IN_FAILED = "access:session:fail"
    TOTP_ENROLLED = "access:totp:enrol"
    REQUEST_CREATED = "access:request:create"
    REQUEST_REJECTED = "access:request:reject"
    GRANT_CREATED = "access:grant:create"
    GRANT_REVOKED = "access:grant:revoke"


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
    session.execute(
        insert(audit_events).values(
            occurred_at=now or datetime.now(UTC),
            tag=str(tag),
            actor=actor,
            subject=subject,
            details=dict(details or {}),
        )
    )
