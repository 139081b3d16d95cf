"""Institutions as accounts meet them: putting an account at one, and an administrator's
verification of an institution's location and ownership (what the jurisdiction rules place a
requester by).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from genecommons import clock
from genecommons.access import affiliation
from genecommons.access.tables import institution_verifications, users
from genecommons.access.token_subjects import MAINLAND
from genecommons.catalog import reads as catalog
from genecommons.db import write_transaction
from genecommons.errors import InvalidInputError, NotFoundError
from genecommons.ledger.events import EventTag, record_event
from genecommons.policy.decision import require
from genecommons.policy.models import Action, Resource, Subject


def institution_id_of(session: Session, accession: str) -> int:
    """The id of the institution `accession`; NotFoundError if it was never submitted."""
    found = catalog.institution_id(session, accession)
    if found is None:
        raise NotFoundError(
            f"No institution {accession}; submit it first.",
            message_zh=f"不存在机构 {accession}，请先提交该机构。",
        )
    return found


def set_institution(
    factory: sessionmaker[Session], *, email: str, institution: str, actor: Subject
) -> None:
    """Put the account `email` at `institution` (an accession), e.g. a first-time OpenID
    Connect account, which has none; it is trusted once that institution is verified. The
    administrator vouches for it: an affiliation the account claimed is settled by this."""
    require(actor, Action.MANAGE_USERS, Resource("user"))
    email = email.strip().lower()
    with write_transaction(factory) as session:
        institution_id = institution_id_of(session, institution)
        user_id = session.execute(select(users.c.id).where(users.c.email == email)).scalar()
        if user_id is None:
            raise NotFoundError(f"No account {email}.", message_zh=f"不存在账号 {email}。")
        affiliation.drop_claim(session, user_id=int(user_id))
        session.execute(
            update(users).where(users.c.id == user_id).values(institution_id=institution_id)
        )
        record_event(
            session,
            tag=EventTag.USER_UPDATED,
            actor=actor.id,
            subject=f"user:{email}",
            details={"institution": institution},
        )
        affiliation.complete_if_ready(session, user_id=int(user_id), actor=actor.id)


def verify_institution(
    factory: sessionmaker[Session],
    *,
    institution: str,
    foreign_controlled: bool,
    attestation: str,
    actor: Subject,
) -> dict[str, Any]:
    """Record that an administrator verified an institution, its location and ownership."""
    require(actor, Action.VERIFY_INSTITUTIONS, Resource("institution", institution))
    if not attestation.strip():
        raise InvalidInputError(
            "Record the institution's attestation (who declared ownership and control, when).",
            message_zh="请记录机构的声明（由谁、何时声明其所有权与控制权）。",
        )
    table = catalog.INSTITUTIONS
    with write_transaction(factory) as session:
        row = session.execute(
            select(table.c.id, table.c.country).where(table.c.accession == institution)
        ).first()
        if row is None:
            raise NotFoundError(
                f"No institution {institution}.", message_zh=f"不存在机构 {institution}。"
            )
        session.execute(
            delete(institution_verifications).where(
                institution_verifications.c.institution_id == row.id
            )
        )
        session.execute(
            insert(institution_verifications).values(
                institution_id=row.id,
                country=row.country,
                foreign_controlled=foreign_controlled,
                attestation=attestation.strip()[:2000],
                verified_by=actor.id,
                verified_at=clock.now(),
            )
        )
        record_event(
            session,
            tag=EventTag.INSTITUTION_VERIFIED,
            actor=actor.id,
            subject=f"institution:{institution}",
            details={"country": row.country, "foreign_controlled": foreign_controlled},
        )
        affiliation.activate_for_institution(session, institution_id=row.id, actor=actor.id)
    foreign = row.country != MAINLAND or foreign_controlled
    return {
        "institution": institution,
        "country": row.country,
        "foreign_controlled": foreign_controlled,
        "foreign_party": foreign,
    }
