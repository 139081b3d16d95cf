"""Throttling of repeated attempts (sign-ins, OIDC sign-ins, registrations): one window and
one check, over the attempts recorded in `login_failures`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from genecommons import clock
from genecommons.access import identity
from genecommons.access.tables import login_failures
from genecommons.errors import TooManyAttemptsError

THROTTLE = identity.ThrottlePolicy()


def refuse_if_throttled(
    session: Session,
    keys: Sequence[str],
    *,
    now: datetime,
    message: str,
    message_zh: str,
    policy: identity.ThrottlePolicy = THROTTLE,
) -> None:
    """Raise TooManyAttemptsError when any of `keys` (an account, an address) has used up its
    attempts in the policy's window (sign-ins by default; registrations pass their own)."""
    # attempts older than the window no longer count; only these keys' (policies' windows differ)
    session.execute(
        delete(login_failures).where(
            login_failures.c.key.in_(list(keys)), login_failures.c.failed_at < now - policy.window
        )
    )
    for key in keys:
        attempts = [
            clock.as_utc(a)
            for a in session.execute(
                select(login_failures.c.failed_at).where(login_failures.c.key == key)
            ).scalars()
        ]
        retry = policy.blocked(attempts, now=now)
        if retry is not None:
            raise TooManyAttemptsError(
                message, message_zh=message_zh, details={"retry_after": retry.isoformat()}
            )
