"""Affiliations: who vouches that an account belongs to an institution.

An account's institution (`users.institution_id`) is what every decision reads: the registered
tier, requests, jurisdiction, the AffiliationAndRole and ResearcherStatus visas. An
administrator who creates an account at an institution, or moves it there, vouches for it. A
self-registered researcher only *claims* one (`affiliation_claims`); the claim counts for
nothing until it is confirmed, which happens

- when a data steward of that institution, or an administrator, confirms it, or
- when the claimant's e-mail address, verified by the code sent to it, is at a domain the
  institution declared (`institution_domains`, set by an administrator; a subdomain of a
  declared domain counts too).

A confirmed claim becomes the account's institution and is gone; a rejected one is gone too, and
with it a registration that never completed (its address may register again). Each step is an
audit event.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from genecommons import clock
from genecommons.access import notify
from genecommons.access.tables import (
    affiliation_claims,
    institution_domains,
    institution_verifications,
    registrations,
    users,
)
from genecommons.catalog import reads as catalog
from genecommons.db import write_transaction
from genecommons.errors import InvalidInputError, NotFoundError
from genecommons.ledger.events import EventTag, record_event
from genecommons.policy.decision import decide, require
from genecommons.policy.models import Action, Resource, Role, Subject

MAX_DOMAINS = 50
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DOMAIN_RE = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})+$")
_INSTITUTIONS = catalog.INSTITUTIONS


def normalize_domain(text: str) -> str:
    """An e-mail domain as institutions declare it: lower case, ASCII (IDNA), no leading `@`;
    InvalidInputError when it is not a domain name."""
    candidate = text.strip().lower().removeprefix("@").rstrip(".")
    try:
        candidate = candidate.encode("idna").decode("ascii")
    except UnicodeError:
        candidate = ""
    if not _DOMAIN_RE.match(candidate):
        raise InvalidInputError(
            f"{text!r} is not an e-mail domain (for example: bgc.org.cn).",
            message_zh=f"{text!r} 不是电子邮件域名（例如 bgc.org.cn）。",
            details={"place": "domains", "value": text[:253]},
        )
    return candidate


def email_at(email: str, domains: set[str] | frozenset[str]) -> bool:
    """Whether `email` is at one of `domains` or a subdomain of one."""
    domain = email.rsplit("@", 1)[-1].strip().lower().rstrip(".")
    return any(domain == d or domain.endswith(f".{d}") for d in domains)


def _institution(session: Session, accession: str) -> Any:
    row = session.execute(
        select(_INSTITUTIONS.c.id, _INSTITUTIONS.c.accession).where(
            _INSTITUTIONS.c.accession == accession.strip()
        )
    ).first()
    if row is None:
        raise NotFoundError(f"No institution {accession}.", message_zh=f"不存在机构 {accession}。")
    return row


def _declared(session: Session, institution_id: int) -> frozenset[str]:
    return frozenset(
        session.execute(
            select(institution_domains.c.domain).where(
                institution_domains.c.institution_id == institution_id
            )
        ).scalars()
    )


def email_domains(factory: sessionmaker[Session], *, institution: str, actor: Subject) -> list[str]:
    """The e-mail domains `institution` declared."""
    require(actor, Action.VERIFY_INSTITUTIONS, Resource("institution", institution))
    with factory() as session:
        return sorted(_declared(session, _institution(session, institution).id))


def set_email_domains(
    factory: sessionmaker[Session], *, institution: str, domains: list[str], actor: Subject
) -> dict[str, Any]:
    """Declare the e-mail domains of `institution` (replacing what it declared before); claims
    waiting for it whose verified address is at one of them are confirmed at once."""
    require(actor, Action.VERIFY_INSTITUTIONS, Resource("institution", institution))
    if len(domains) > MAX_DOMAINS:
        raise InvalidInputError(
            f"At most {MAX_DOMAINS} domains per institution.",
            message_zh=f"每个机构最多声明 {MAX_DOMAINS} 个域名。",
            details={"place": "domains"},
        )
    declared = sorted({normalize_domain(d) for d in domains})
    now = clock.now()
    with write_transaction(factory) as session:
        row = _institution(session, institution)
        session.execute(
            delete(institution_domains).where(institution_domains.c.institution_id == row.id)
        )
        for domain in declared:
            session.execute(
                insert(institution_domains).values(
                    institution_id=row.id, domain=domain, declared_by=actor.id, declared_at=now
                )
            )
        record_event(
            session,
            tag=EventTag.INSTITUTION_DOMAINS_SET,
            actor=actor.id,
            subject=f"institution:{row.accession}",
            details={"domains": declared},
        )
        waiting = session.execute(
            select(affiliation_claims.c.id, affiliation_claims.c.user_id, users.c.email)
            .join(users, users.c.id == affiliation_claims.c.user_id)
            .outerjoin(registrations, registrations.c.user_id == users.c.id)
            .where(
                affiliation_claims.c.institution_id == row.id,
                # a verified address: the registration verified it, or is complete
                (registrations.c.user_id.is_(None))
                | registrations.c.email_verified_at.is_not(None),
            )
        ).all()
        confirmed = []
        for found in waiting:
            if email_at(found.email, frozenset(declared)):
                _confirm(session, claim_id=found.id, actor=actor.id, how="e-mail domain", now=now)
                complete_if_ready(session, user_id=int(found.user_id), actor=actor.id)
                confirmed.append(found.email)
    return {"institution": row.accession, "domains": declared, "confirmed": confirmed}


def claim(session: Session, *, user_id: int, institution_id: int, now: datetime) -> None:
    """Inside a registration: the account claims `institution_id` (replacing an earlier
    claim); it has no institution until the claim is confirmed."""
    session.execute(delete(affiliation_claims).where(affiliation_claims.c.user_id == user_id))
    session.execute(
        insert(affiliation_claims).values(
            user_id=user_id, institution_id=institution_id, claimed_at=now
        )
    )
    session.execute(update(users).where(users.c.id == user_id).values(institution_id=None))


def confirm_by_domain(session: Session, *, user_id: int, actor: str, now: datetime) -> bool:
    """Inside an e-mail verification: confirm the account's claim when its (now verified)
    address is at a domain its institution declared. Whether it did."""
    found = session.execute(
        select(affiliation_claims.c.id, affiliation_claims.c.institution_id, users.c.email)
        .join(users, users.c.id == affiliation_claims.c.user_id)
        .where(affiliation_claims.c.user_id == user_id)
    ).first()
    if found is None or not email_at(found.email, _declared(session, found.institution_id)):
        return False
    _confirm(session, claim_id=found.id, actor=actor, how="e-mail domain", now=now)
    return True


def complete_if_ready(session: Session, *, user_id: int, actor: str) -> bool:
    """Activate a self-registration whose e-mail is verified, whose affiliation is confirmed
    and whose institution an administrator verified; whether the account is active now."""
    row = session.execute(
        select(
            users.c.active,
            users.c.institution_id,
            registrations.c.user_id.label("registering"),
            registrations.c.email_verified_at,
        )
        .outerjoin(registrations, registrations.c.user_id == users.c.id)
        .where(users.c.id == user_id)
    ).one()
    if row.registering is None:
        return bool(row.active)  # not a registration (or a completed one)
    if row.email_verified_at is None or row.institution_id is None or pending(session, user_id):
        return False
    verified = session.execute(
        select(institution_verifications.c.institution_id).where(
            institution_verifications.c.institution_id == row.institution_id
        )
    ).first()
    if verified is None:
        return False
    _activate(session, [user_id], actor=actor)
    return True


def activate_for_institution(session: Session, *, institution_id: int, actor: str) -> int:
    """Inside the verification of an institution: activate the accounts that registered at it,
    verified their e-mail and had their affiliation confirmed. Returns how many."""
    waiting = list(
        session.execute(
            select(users.c.id)
            .join(registrations, registrations.c.user_id == users.c.id)
            .where(
                users.c.institution_id == institution_id,  # set once a claim is confirmed
                registrations.c.email_verified_at.is_not(None),
            )
        ).scalars()
    )
    _activate(session, waiting, actor=actor)
    return len(waiting)


def _activate(session: Session, user_ids: list[int], *, actor: str) -> None:
    """Make verified registrations usable accounts; the registration is then complete."""
    for user_id in user_ids:
        email = session.execute(select(users.c.email).where(users.c.id == user_id)).scalar_one()
        session.execute(update(users).where(users.c.id == user_id).values(active=True))
        session.execute(delete(registrations).where(registrations.c.user_id == user_id))
        record_event(
            session,
            tag=EventTag.USER_UPDATED,
            actor=actor,
            subject=f"user:{email}",
            details={"active": True, "reason": "registration complete"},
        )


def pending(session: Session, user_id: int) -> bool:
    """Whether the account's claimed affiliation waits for confirmation."""
    return (
        session.execute(
            select(affiliation_claims.c.id).where(affiliation_claims.c.user_id == user_id)
        ).first()
        is not None
    )


def drop_claim(session: Session, *, user_id: int) -> None:
    """Inside an administrator's placing of an account at an institution: any claim of the
    account is settled by it."""
    session.execute(delete(affiliation_claims).where(affiliation_claims.c.user_id == user_id))


def _claims(session: Session, claim_id: int | None = None) -> list[Any]:
    statement = (
        select(
            affiliation_claims.c.id,
            affiliation_claims.c.user_id,
            affiliation_claims.c.claimed_at,
            users.c.email,
            users.c.display_name,
            users.c.active,
            _INSTITUTIONS.c.accession.label("institution"),
            registrations.c.user_id.label("registering"),
            registrations.c.email_verified_at,
        )
        .join(users, users.c.id == affiliation_claims.c.user_id)
        .join(_INSTITUTIONS, _INSTITUTIONS.c.id == affiliation_claims.c.institution_id)
        .outerjoin(registrations, registrations.c.user_id == users.c.id)
        .order_by(affiliation_claims.c.id)
    )
    if claim_id is not None:
        statement = statement.where(affiliation_claims.c.id == claim_id)
    return list(session.execute(statement).all())


def _may_confirm(actor: Subject, institution: str) -> bool:
    return decide(actor, Action.CONFIRM_AFFILIATIONS, Resource("institution", institution)).allowed


def list_claims(factory: sessionmaker[Session], *, actor: Subject) -> list[dict[str, Any]]:
    """The claims waiting for the caller: of the caller's institution for a data steward, of
    every institution for an administrator."""
    require(actor, Action.CONFIRM_AFFILIATIONS, Resource("institution", actor.institution))
    with factory() as session:
        rows = _claims(session)
    return [
        {
            "id": r.id,
            "email": r.email,
            "name": r.display_name,
            "institution": r.institution,
            "claimed_at": clock.as_utc(r.claimed_at).isoformat(),
            "email_verified": r.registering is None or r.email_verified_at is not None,
        }
        for r in rows
        if _may_confirm(actor, r.institution)
    ]


def _visible_claim(session: Session, claim_id: int, actor: Subject) -> Any:
    found = _claims(session, claim_id)
    if not found or not _may_confirm(actor, found[0].institution):
        # someone else's institution's claim does not exist for the caller
        raise NotFoundError(
            f"No affiliation claim {claim_id} waits for you.",
            message_zh=f"没有等待您处理的机构归属申请 {claim_id}。",
        )
    return found[0]


def confirm(factory: sessionmaker[Session], *, claim_id: int, actor: Subject) -> dict[str, str]:
    """A data steward of the claimed institution, or an administrator, confirms a claim: the
    account is then at that institution (and a registration waiting only for this completes
    when the institution is verified)."""
    now = clock.now()
    with write_transaction(factory) as session:
        row = _visible_claim(session, claim_id, actor)
        how = "data steward" if actor.has_role(Role.DATA_STEWARD) else "administrator"
        _confirm(session, claim_id=claim_id, actor=actor.id, how=how, now=now)
        active = complete_if_ready(session, user_id=int(row.user_id), actor=actor.id)
    return {"email": row.email, "institution": row.institution, "active": active}


def _confirm(session: Session, *, claim_id: int, actor: str, how: str, now: datetime) -> str:
    """Make a claim the account's institution; the account's address."""
    row = session.execute(
        select(
            affiliation_claims.c.user_id,
            affiliation_claims.c.institution_id,
            users.c.email,
            _INSTITUTIONS.c.accession,
        )
        .join(users, users.c.id == affiliation_claims.c.user_id)
        .join(_INSTITUTIONS, _INSTITUTIONS.c.id == affiliation_claims.c.institution_id)
        .where(affiliation_claims.c.id == claim_id)
    ).one()
    session.execute(
        update(users).where(users.c.id == row.user_id).values(institution_id=row.institution_id)
    )
    session.execute(delete(affiliation_claims).where(affiliation_claims.c.id == claim_id))
    record_event(
        session,
        tag=EventTag.AFFILIATION_CONFIRMED,
        actor=actor,
        subject=f"user:{row.email}",
        details={"institution": row.accession, "how": how},
        now=now,
    )
    notify.enqueue(
        session,
        recipient=row.email,
        subject="Your affiliation was confirmed / 机构归属已确认",
        body=(
            f"Your affiliation with institution {row.accession} on GeneCommons was confirmed "
            f"({how}).\n\n您在 GeneCommons 上与机构 {row.accession} 的归属关系已确认。\n"
        ),
    )
    return str(row.email)


def reject(
    factory: sessionmaker[Session], *, claim_id: int, reason: str, actor: Subject
) -> dict[str, str]:
    """A data steward of the claimed institution, or an administrator, rejects a claim; a
    registration that never completed goes with it (its address may register again)."""
    reason = reason.strip()
    if not reason:
        raise InvalidInputError(
            "Give the reason for rejecting the claim; the claimant is told it.",
            message_zh="请说明拒绝该机构归属申请的理由；理由将告知申请人。",
            details={"place": "reason"},
        )
    with write_transaction(factory) as session:
        row = _visible_claim(session, claim_id, actor)
        session.execute(delete(affiliation_claims).where(affiliation_claims.c.id == claim_id))
        removed = row.registering is not None and not row.active
        if removed:  # a registration that never completed: the account goes with it
            session.execute(delete(users).where(users.c.id == row.user_id))
        record_event(
            session,
            tag=EventTag.AFFILIATION_REJECTED,
            actor=actor.id,
            subject=f"user:{row.email}",
            details={
                "institution": row.institution,
                "reason": reason[:2000],
                "registration_removed": removed,
            },
        )
        notify.enqueue(
            session,
            recipient=row.email,
            subject="Your affiliation was not confirmed / 机构归属未获确认",
            body=(
                f"Your claimed affiliation with institution {row.institution} on GeneCommons "
                f"was not confirmed: {reason}\n\n您在 GeneCommons 上申报的机构 "
                f"{row.institution} 归属未获确认：{reason}\n"
            ),
        )
    return {"email": row.email, "institution": row.institution}
