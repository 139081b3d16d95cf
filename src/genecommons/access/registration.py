"""Self-registration of researchers: an account that waits for its e-mail address and its
institution.

`register` creates an inactive researcher account at a named institution and e-mails a code
through the outbox (the same transaction). `verify_email` checks the code; the account becomes
usable at once when an administrator has verified the institution, otherwise when they do
(`activate_for_institution`, called by `service.verify_institution`). A registration never
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

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from genecommons import clock
from genecommons.access import identity, notify, oidc
from genecommons.access.models import Role
from genecommons.access.tables import (
    institution_verifications,
    login_failures,
    registrations,
    user_roles,
    users,
)
from genecommons.access.throttle import refuse_if_throttled
from genecommons.audit.events import EventTag, record_event
from genecommons.catalog.tables import ENTITY_TABLES
from genecommons.config import Settings
from genecommons.errors import (
    AccessDeniedError,
    InvalidInputError,
)

logger = logging.getLogger(__name__)
THROTTLE = identity.ThrottlePolicy(max_failures=5, window=timedelta(hours=1))
AWAITING_EMAIL = "awaiting_email"
AWAITING_INSTITUTION = "awaiting_institution"
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
    institutions = ENTITY_TABLES["institutions"]
    with factory() as session, session.begin():  # counted even when refused below
        _count_attempt(session, (f"register:address:{address}", f"register:{email}"), now=now)
    with factory() as session, session.begin():
        institution_id = session.execute(
            select(institutions.c.id).where(institutions.c.accession == institution.strip())
        ).scalar_one_or_none()
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
                    institution_id=institution_id,
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
                        "institution_id": institution_id,
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
        subject, body = _code_mail(code=code, hours=hours)
        notify.enqueue(session, recipient=email, subject=subject, body=body)
        record_event(
            session,
            tag=EventTag.USER_REGISTERED,
            actor=f"address:{address}",
            subject=f"user:{email}",
            details={"roles": [str(Role.RESEARCHER)], "institution": institution.strip()},
        )
    return Registered(email, expires)


def verify_email(
    factory: sessionmaker[Session], *, email: str, code: str, password: str, address: str
) -> dict[str, str]:
    """Check the e-mailed code with the password given at registration; the account's status
    afterwards (`active` when its institution is verified, else `awaiting_institution`).

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
    with factory() as session, session.begin():
        row = session.execute(
            select(
                users.c.id,
                users.c.institution_id,
                users.c.password_hash,
                registrations.c.code_digest,
                registrations.c.code_expires_at,
                registrations.c.email_verified_at,
            )
            .join(registrations, registrations.c.user_id == users.c.id)
            .where(users.c.email == email)
        ).first()
        if row is not None and row.email_verified_at is not None:
            return {"email": email, "status": AWAITING_INSTITUTION}
        good = bool(
            row is not None
            and row.code_digest
            and oidc.same_secret(oidc.digest(code), row.code_digest)
            and clock.as_utc(row.code_expires_at) > now
            and row.password_hash
            and identity.verify_password(row.password_hash, password)
        )
    if not good or row is None:
        with factory() as session, session.begin():
            _count_attempt(session, (f"verify:address:{address}", f"verify:{email}"), now=now)
        raise refused
    with factory() as session, session.begin():
        session.execute(
            update(registrations)
            .where(registrations.c.user_id == row.id)
            .values(code_digest=None, email_verified_at=now)
        )
        record_event(
            session, tag=EventTag.EMAIL_VERIFIED, actor=f"user:{email}", subject=f"user:{email}"
        )
        verified = session.execute(
            select(institution_verifications.c.institution_id).where(
                institution_verifications.c.institution_id == row.institution_id
            )
        ).first()
        if verified is not None:
            _activate(session, [int(row.id)], actor=f"user:{email}")
            return {"email": email, "status": ACTIVE}
    return {"email": email, "status": AWAITING_INSTITUTION}


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


def activate_for_institution(session: Session, *, institution_id: int, actor: str) -> int:
    """Inside the verification of an institution: activate the accounts that registered at it
    and verified their e-mail. Returns how many."""
    waiting = list(
        session.execute(
            select(users.c.id)
            .join(registrations, registrations.c.user_id == users.c.id)
            .where(
                users.c.institution_id == institution_id,
                registrations.c.email_verified_at.is_not(None),
            )
        ).scalars()
    )
    _activate(session, waiting, actor=actor)
    return len(waiting)


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
    return (
        "Your institution has not been verified by an administrator yet; the account becomes "
        "usable once it is.",
        "您所在的机构尚未经系统管理员核验；核验后账号即可使用。",
    )
