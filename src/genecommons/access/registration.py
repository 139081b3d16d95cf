"""Self-registration of researchers: an account that waits for its e-mail address, its
affiliation and its institution.

`register` creates an inactive researcher account that *claims* an institution (it has none
until the claim is confirmed, `affiliation.py`) and e-mails a code through the outbox (the same
transaction). `verify_email` checks the code; an address at an e-mail domain the institution
declared confirms the claim at once, otherwise a data steward of the institution or an
administrator confirms it. The account becomes usable when its e-mail is verified, its
affiliation confirmed and its institution verified by an administrator, whichever comes last
(`affiliation.complete_if_ready`, `affiliation.activate_for_institution`). A registration never
grants any role but researcher. Registering an address that has an account already answers
exactly as a new registration does (no account enumeration) and tells the address's owner by
e-mail; registering an address still awaiting its code sends a fresh code. Attempts are
throttled per address and per account.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from genecommons import clock
from genecommons.access import affiliation, identity, notify, oidc
from genecommons.access.tables import (
    login_failures,
    registrations,
    user_roles,
    users,
)
from genecommons.access.throttle import refuse_if_throttled
from genecommons.catalog import reads as catalog
from genecommons.config import Settings
from genecommons.db import write_transaction
from genecommons.errors import (
    AccessDeniedError,
    InvalidInputError,
)
from genecommons.ledger.events import EventTag, record_event
from genecommons.policy.models import Role

logger = logging.getLogger(__name__)
THROTTLE = identity.ThrottlePolicy(max_failures=5, window=timedelta(hours=1))
AWAITING_EMAIL = "awaiting_email"
AWAITING_AFFILIATION = "awaiting_affiliation"  # the institution has not confirmed the claim
AWAITING_INSTITUTION = "awaiting_institution"  # an administrator has not verified it
ACTIVE = "active"


@dataclass(frozen=True, slots=True)
class Registered:
    """What a registration answers (the same whether or not the address had an account)."""

    email: str
    code_expires_at: datetime


def _count_attempt(session: Session, keys: tuple[str, ...], *, now: datetime) -> None:
    """Refuse when a key has used its attempts in the window, else count this one."""
    refuse_if_throttled(
        session,
        keys,
        now=now,
        message="Too many registration attempts; try again later.",
        message_zh="注册尝试次数过多，请稍后再试。",
        policy=THROTTLE,
    )
    for key in keys:
        session.execute(insert(login_failures).values(key=key, failed_at=now))


def _code_mail(*, code: str, hours: int) -> tuple[str, str]:
    subject = "Verify your e-mail address / 验证您的电子邮件地址"
    body = (
        f"Your GeneCommons verification code is:\n\n    {code}\n\n"
        "Give it with your e-mail address and password to POST /api/v1/auth/register/verify.\n"
        f"It is valid for {hours} hours. If you did not register, ignore this message.\n\n"
        f"您的 GeneCommons 验证码为：\n\n    {code}\n\n"
        f"请连同电子邮件地址和密码提交至 POST /api/v1/auth/register/verify；{hours} 小时内有效。"
        "如非本人注册，请忽略本邮件。\n"
    )
    return subject, body


def register(
    factory: sessionmaker[Session],
    settings: Settings,
    *,
    email: str,
    name: str,
    password: str,
    institution: str,
    address: str,
) -> Registered:
    """Register a researcher at `institution` (an accession); a code goes to `email`."""
    if not settings.registration_open:
        raise AccessDeniedError(
            "Self-registration is closed on this node; ask an administrator for an account.",
            message_zh="本节点未开放自助注册，请联系系统管理员开通账号。",
        )
    email = email.strip().lower()
    name = name.strip()
    if not identity.valid_email(email):
        raise InvalidInputError(
            f"{email!r} is not an e-mail address.",
            message_zh=f"{email!r} 不是有效的电子邮件地址。",
            details={"place": "email", "value": email},
        )
    if not name or not name.isprintable():
        raise InvalidInputError(
            "Give your name (printable characters only).",
            message_zh="请填写姓名（仅限可打印字符）。",
            details={"place": "name"},
        )
    if not institution.strip().isprintable():
        raise InvalidInputError(
            f"{institution!r} is not an institution accession.",
            message_zh=f"{institution!r} 不是机构登记号。",
            details={"place": "institution", "value": institution},
        )
    if len(password) < identity.MIN_PASSWORD_LENGTH:
        raise InvalidInputError(
            f"A password needs at least {identity.MIN_PASSWORD_LENGTH} characters.",
            message_zh=f"密码至少需要 {identity.MIN_PASSWORD_LENGTH} 个字符。",
            details={"place": "password"},
        )
    now = clock.now()
    hours = settings.registration_code_hours
    expires = now + timedelta(hours=hours)
    code = secrets.token_urlsafe(24)
    with write_transaction(factory) as session:  # counted even when refused below
        _count_attempt(session, (f"register:address:{address}", f"register:{email}"), now=now)
    with write_transaction(factory) as session:
        institution_id = catalog.institution_id(session, institution)
        if institution_id is None:
            raise InvalidInputError(
                f"No institution {institution!r}: give your institution's accession "
                "(GET /api/v1/studies names them), or ask it to submit its record first.",
                message_zh=f"不存在机构 {institution!r}：请填写所在机构的登记号，"
                "或请该机构先提交其机构信息。",
                details={"place": "institution", "value": institution},
            )
        existing = session.execute(
            select(users.c.id, registrations.c.email_verified_at, registrations.c.user_id)
            .outerjoin(registrations, registrations.c.user_id == users.c.id)
            .where(users.c.email == email)
        ).first()
        if existing is not None and (
            existing.user_id is None or existing.email_verified_at is not None
        ):
            # an account (or a verified registration) exists: say so to its owner only
            notify.enqueue(
                session,
                recipient=email,
                subject="Registration attempt / 注册尝试",
                body=(
                    "Someone (perhaps you) tried to register a GeneCommons account with this "
                    "address, which has one already. Sign in with it instead; if this was not "
                    "you, nothing has changed.\n\n有人（可能是您）尝试用本地址注册 GeneCommons "
                    "账号，但该地址已有账号。请直接登录；如非本人操作，您的账号未受影响。\n"
                ),
            )
            return Registered(email, expires)
        if existing is not None:  # awaiting its code: a fresh code, the new details
            user_id = int(existing.id)
            session.execute(
                update(users)
                .where(users.c.id == user_id)
                .values(
                    display_name=name[:200],
                    password_hash=identity.hash_password(password),
                )
            )
            session.execute(
                update(registrations)
                .where(registrations.c.user_id == user_id)
                .values(
                    code_digest=oidc.digest(code),
                    code_expires_at=expires,
                    requested_at=now,
                    address=address[:100],
                )
            )
        else:
            user_id = int(
                session.execute(
                    insert(users).returning(users.c.id),
                    {
                        "email": email,
                        "display_name": name[:200],
                        "institution_id": None,  # a claim, until confirmed
                        "password_hash": identity.hash_password(password),
                        "active": False,
                        "created_at": now,
                        "created_by": "self-registration",
                    },
                ).scalar_one()
            )
            session.execute(insert(user_roles).values(user_id=user_id, role=str(Role.RESEARCHER)))
            session.execute(
                insert(registrations).values(
                    user_id=user_id,
                    code_digest=oidc.digest(code),
                    code_expires_at=expires,
                    requested_at=now,
                    address=address[:100],
                    email_verified_at=None,
                )
            )
        affiliation.claim(session, user_id=user_id, institution_id=institution_id, now=now)
        subject, body = _code_mail(code=code, hours=hours)
        notify.enqueue(session, recipient=email, subject=subject, body=body)
        record_event(
            session,
            tag=EventTag.USER_REGISTERED,
            actor=f"address:{address}",
            subject=f"user:{email}",
            details={"roles": [str(Role.RESEARCHER)], "claimed_institution": institution.strip()},
        )
    return Registered(email, expires)


def verify_email(
    factory: sessionmaker[Session], *, email: str, code: str, password: str, address: str
) -> dict[str, str]:
    """Check the e-mailed code with the password given at registration; the account's status
    afterwards: `active`, `awaiting_affiliation` (the institution has not confirmed the claim
    yet) or `awaiting_institution` (an administrator has not verified the institution yet).

    The password is asked too because anyone may register an address that is still awaiting
    its code (sending the owner a fresh code, with the new details): a code alone would then
    confirm a stranger's password for the owner's account."""
    email = email.strip().lower()
    now = clock.now()
    if not identity.valid_email(email):
        raise InvalidInputError(
            f"{email!r} is not an e-mail address.",
            message_zh=f"{email!r} 不是有效的电子邮件地址。",
            details={"place": "email", "value": email},
        )
    refused = InvalidInputError(
        "The code or the password is wrong, or the code has expired (only the newest code "
        "counts); register again to receive a new one.",
        message_zh="验证码或密码错误，或验证码已过期（仅最新的验证码有效），请重新注册以获取新的验证码。",
        details={"place": "code"},
    )
    with write_transaction(factory) as session:
        row = session.execute(
            select(
                users.c.id,
                users.c.password_hash,
                registrations.c.code_digest,
                registrations.c.code_expires_at,
                registrations.c.email_verified_at,
            )
            .join(registrations, registrations.c.user_id == users.c.id)
            .where(users.c.email == email)
        ).first()
        if row is not None and row.email_verified_at is not None:
            return {"email": email, "status": _waiting_for(session, int(row.id))}
        good = bool(
            row is not None
            and row.code_digest
            and oidc.same_secret(oidc.digest(code), row.code_digest)
            and clock.as_utc(row.code_expires_at) > now
            and row.password_hash
            and identity.verify_password(row.password_hash, password)
        )
    if not good or row is None:
        with write_transaction(factory) as session:
            _count_attempt(session, (f"verify:address:{address}", f"verify:{email}"), now=now)
        raise refused
    actor = f"user:{email}"
    with write_transaction(factory) as session:
        session.execute(
            update(registrations)
            .where(registrations.c.user_id == row.id)
            .values(code_digest=None, email_verified_at=now)
        )
        record_event(session, tag=EventTag.EMAIL_VERIFIED, actor=actor, subject=actor)
        affiliation.confirm_by_domain(session, user_id=int(row.id), actor=actor, now=now)
        if affiliation.complete_if_ready(session, user_id=int(row.id), actor=actor):
            return {"email": email, "status": ACTIVE}
        return {"email": email, "status": _waiting_for(session, int(row.id))}


def _waiting_for(session: Session, user_id: int) -> str:
    """What a registration with a verified e-mail still waits for."""
    if affiliation.pending(session, user_id):
        return AWAITING_AFFILIATION
    return AWAITING_INSTITUTION


def pending_reason(session: Session, user_id: int) -> tuple[str, str] | None:
    """Why a registered account cannot sign in yet (English, Chinese), or None."""
    row = session.execute(
        select(registrations.c.email_verified_at).where(registrations.c.user_id == user_id)
    ).first()
    if row is None:
        return None
    if row.email_verified_at is None:
        return (
            "Verify your e-mail address first with the code we sent "
            "(POST /api/v1/auth/register/verify).",
            "请先使用我们发送的验证码验证电子邮件地址（POST /api/v1/auth/register/verify）。",
        )
    if affiliation.pending(session, user_id):
        return (
            "Your institution has not confirmed that you belong to it yet: its data steward "
            "(or an administrator) confirms it, or register with an address at an e-mail "
            "domain the institution declared. The account becomes usable once it is confirmed.",
            "您所申报的机构尚未确认您的归属：须由该机构的数据管理员（或系统管理员）确认，"
            "或使用该机构声明的电子邮件域名下的地址注册。确认后账号即可使用。",
        )
    return (
        "Your institution has not been verified by an administrator yet; the account becomes "
        "usable once it is.",
        "您所在的机构尚未经系统管理员核验；核验后账号即可使用。",
    )
