"""One-time codes (RFC 6238 TOTP) that administrators and DAC members give with their password.

An account's TOTP secret is kept sealed by the node key store (`genecommons.secrets`, purpose
"totp", bound to the account's row id), so that the database alone (a dump, a backup, a replica)
does not let anyone compute the codes. Secrets stored in plaintext by earlier versions are still
read, and `seal_plaintext_secrets` (run by `genecommons init`) seals them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from genecommons.access import identity
from genecommons.access.tables import users
from genecommons.config import Settings
from genecommons.db import write_transaction
from genecommons.errors import NotFoundError
from genecommons.ledger.events import EventTag, record_event
from genecommons.policy.decision import require
from genecommons.policy.models import Action, Resource, Subject
from genecommons.secrets import NodeKeys, node_keys

PURPOSE = "totp"


def _context(user_id: int) -> str:
    return f"user:{user_id}"


@dataclass(frozen=True, slots=True)
class StoredSecret:
    """An account's TOTP secret as its row holds it: sealed, or (before `init` sealed it) in
    plaintext."""

    user_id: int
    sealed: bytes | None
    plaintext: str | None

    @property
    def enrolled(self) -> bool:
        """Whether the account has a secret at all."""
        return self.sealed is not None or bool(self.plaintext)


def code_matches(
    settings: Settings, stored: StoredSecret, code: str | None, *, at: datetime
) -> bool:
    """Whether `code` is the account's current one-time code (False when it has no secret)."""
    if not stored.enrolled or not code:
        return False
    if stored.sealed is not None:
        secret = (
            node_keys(settings)
            .open(stored.sealed, purpose=PURPOSE, context=_context(stored.user_id))
            .decode("ascii")
        )
    else:
        assert stored.plaintext is not None
        secret = stored.plaintext
    return identity.verify_totp(secret, code, at=at)


def enrol(
    factory: sessionmaker[Session], settings: Settings, *, email: str, actor: Subject
) -> tuple[str, str]:
    """Give an account a new TOTP secret; returns it and its otpauth:// URI (shown once)."""
    email = email.strip().lower()
    require(actor, Action.MANAGE_TOKENS, Resource("token", f"user:{email}"))
    keys = node_keys(settings)
    with write_transaction(factory) as session:
        user_id = session.execute(select(users.c.id).where(users.c.email == email)).scalar()
        if user_id is None:
            raise NotFoundError(f"No account {email}.", message_zh=f"不存在账号 {email}。")
        return enrol_in(session, keys, user_id=int(user_id), email=email, actor=actor)


def enrol_in(
    session: Session, keys: NodeKeys, *, user_id: int, email: str, actor: Subject
) -> tuple[str, str]:
    """Give the account `user_id` a new TOTP secret within the caller's transaction (the
    caller has checked that `actor` may); the secret and its otpauth:// URI (shown once)."""
    secret = identity.new_totp_secret()
    _store(session, keys, user_id=user_id, secret=secret)
    record_event(session, tag=EventTag.TOTP_ENROLLED, actor=actor.id, subject=f"user:{email}")
    return secret, identity.totp_uri(secret, email=email)


def _store(session: Session, keys: NodeKeys, *, user_id: int, secret: str) -> None:
    sealed = keys.seal(secret.encode("ascii"), purpose=PURPOSE, context=_context(user_id))
    session.execute(
        update(users).where(users.c.id == user_id).values(totp_sealed=sealed, totp_secret=None)
    )


def seal_plaintext_secrets(factory: sessionmaker[Session], keys: NodeKeys) -> int:
    """Seal the TOTP secrets that earlier versions stored in plaintext (the codes stay the
    same); how many. Safe to run again."""
    with write_transaction(factory) as session:
        rows = session.execute(
            select(users.c.id, users.c.totp_secret).where(users.c.totp_secret.is_not(None))
        ).all()
        for row in rows:
            _store(session, keys, user_id=int(row.id), secret=row.totp_secret)
    return len(rows)
