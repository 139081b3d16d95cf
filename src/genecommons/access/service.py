"""Identity use cases: accounts, API tokens, sign-in. The only access code opening transactions."""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from genecommons import clock
from genecommons.access import identity, registration, second_factor
from genecommons.access.institution_service import institution_id_of
from genecommons.access.tables import (
    api_tokens,
    login_failures,
    user_roles,
    users,
)
from genecommons.access.throttle import refuse_if_throttled
from genecommons.access.token_subjects import (
    TOUCH,
    token_problem,
    token_subject,
    token_subject_statement,
)
from genecommons.config import Settings
from genecommons.db import prepared, write_transaction
from genecommons.errors import (
    AccessDeniedError,
    AuthenticationError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    Refusal,
)
from genecommons.ledger.events import (
    EventTag,
    GroupedQueue,
    event_leaf,
    record_event,
    record_soon,
)
from genecommons.policy.decision import decide_new_token, require
from genecommons.policy.models import (
    Action,
    CredentialKind,
    Resource,
    Role,
    Subject,
)
from genecommons.secrets import node_keys

logger = logging.getLogger(__name__)
ADMIN_EMAIL = "admin@localhost"
SESSION_TOKEN_HOURS = 12


@dataclass(frozen=True, slots=True)
class NewUser:
    """An account just created; `password` is set when one was generated (shown once)."""

    email: str
    roles: tuple[str, ...]
    institution: str | None
    password: str | None
    totp_secret: str | None = None  # set when an authenticator was enrolled with the account
    totp_uri: str | None = None


def add_user(
    factory: sessionmaker[Session],
    *,
    email: str,
    roles: list[str],
    institution: str | None,
    actor: Subject,
    password: str | None = None,
    generate_password: bool = False,
    totp: Settings | None = None,
) -> NewUser:
    """Create an account at `institution` (an accession) with `roles`; with `totp` (the
    node's settings), an authenticator secret is enrolled in the same transaction, so that
    the account and its second factor exist together or not at all."""
    require(actor, Action.MANAGE_USERS, Resource("user"))
    email = email.strip().lower()
    if not identity.valid_email(email):
        raise InvalidInputError(
            f"{email!r} is not an e-mail address.", message_zh=f"{email!r} 不是有效的电子邮件地址。"
        )
    try:
        role_values = tuple(sorted({str(Role(r)) for r in roles}))
    except ValueError as error:
        raise InvalidInputError(
            f"Unknown role; roles are {', '.join(r.value for r in Role)}.",
            message_zh=f"未知角色；可用角色为 {', '.join(r.value for r in Role)}。",
        ) from error
    if password is None and generate_password:
        password = identity.new_password()
    if password is not None and len(password) < identity.MIN_PASSWORD_LENGTH:
        raise InvalidInputError(
            f"A password needs at least {identity.MIN_PASSWORD_LENGTH} characters.",
            message_zh=f"密码至少需要 {identity.MIN_PASSWORD_LENGTH} 个字符。",
        )
    keys = node_keys(totp) if totp is not None else None
    secret: tuple[str, str] | None = None
    with write_transaction(factory) as session:
        institution_id = institution_id_of(session, institution) if institution else None
        try:
            user_id = session.execute(
                insert(users).returning(users.c.id),
                {
                    "email": email,
                    "display_name": None,
                    "institution_id": institution_id,
                    "password_hash": identity.hash_password(password) if password else None,
                    "active": True,
                    "created_at": clock.now(),
                    "created_by": actor.id,
                },
            ).scalar_one()
        except IntegrityError as error:
            raise ConflictError(
                f"An account {email} exists already.", message_zh=f"账号 {email} 已存在。"
            ) from error
        for role in role_values:
            session.execute(insert(user_roles).values(user_id=user_id, role=role))
        record_event(
            session,
            tag=EventTag.USER_CREATED,
            actor=actor.id,
            subject=f"user:{email}",
            details={"roles": list(role_values), "institution": institution},
        )
        if keys is not None:
            secret = second_factor.enrol_in(
                session, keys, user_id=int(user_id), email=email, actor=actor
            )
    return NewUser(
        email,
        role_values,
        institution,
        password if generate_password else None,
        totp_secret=secret[0] if secret else None,
        totp_uri=secret[1] if secret else None,
    )


def ensure_admin(factory: sessionmaker[Session]) -> str | None:
    """Create admin@localhost when no administrator exists; its password, shown once."""
    with factory() as session:
        count = session.execute(
            select(func.count()).select_from(user_roles).where(user_roles.c.role == str(Role.ADMIN))
        ).scalar_one()
    if count:
        return None
    created = add_user(
        factory,
        email=ADMIN_EMAIL,
        roles=[Role.ADMIN],
        institution=None,
        actor=Subject.operator("init"),
        generate_password=True,
    )
    return created.password


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A token just made: the secret is shown this once and never stored."""

    id: int
    token: str
    expires_at: datetime


def create_token(
    factory: sessionmaker[Session],
    *,
    email: str,
    actor: Subject,
    days: int = 90,
    scopes: list[str] | None = None,
    label: str | None = None,
) -> IssuedToken:
    """A new API token for the account `email`, worth no more than the token that asks for it
    (`policy.decide_new_token`: a subset of its scopes, and not outliving an API token)."""
    email = email.strip().lower()
    require(actor, Action.MANAGE_TOKENS, Resource("token", f"user:{email}"))
    if not 1 <= days <= 366:
        raise InvalidInputError(
            "A token lives 1 to 366 days.", message_zh="令牌有效期须为 1 到 366 天。"
        )
    if scopes is not None:
        known = {str(a) for a in Action}
        unknown = sorted(set(scopes) - known)
        if unknown:
            raise InvalidInputError(
                f"Unknown scopes {unknown}; scopes are {sorted(known)}.",
                message_zh=f"未知的权限范围 {unknown}。",
            )
    now = clock.now()
    lifetime = timedelta(days=days)
    limits = decide_new_token(
        actor,
        scopes=frozenset(scopes) if scopes is not None else None,
        expires_at=now + lifetime,
    )
    if not limits.allowed:
        raise AccessDeniedError(
            " ".join(limits.reasons),
            message_zh="".join(limits.reasons_zh),
            details={"rule": limits.rule},
        )
    with write_transaction(factory) as session:
        return _issue(
            session,
            email=email,
            actor=actor,
            lifetime=lifetime,
            scopes=sorted(set(scopes)) if scopes is not None else None,
            label=label,
            now=now,
        )


def _issue(
    session: Session,
    *,
    email: str,
    actor: Subject,
    lifetime: timedelta,
    scopes: list[str] | None,
    label: str | None,
    kind: CredentialKind = CredentialKind.API,
    now: datetime | None = None,
) -> IssuedToken:
    user = session.execute(select(users.c.id, users.c.active).where(users.c.email == email)).first()
    if user is None or not user.active:
        raise NotFoundError(f"No active account {email}.", message_zh=f"不存在有效账号 {email}。")
    token = identity.new_token()
    now = now or clock.now()
    expires = now + lifetime
    token_id = session.execute(
        insert(api_tokens).returning(api_tokens.c.id),
        {
            "user_id": user.id,
            "digest": identity.token_digest(token),
            "label": label,
            "scopes": scopes,
            "kind": str(kind),
            "created_at": now,
            "expires_at": expires,
            "revoked_at": None,
            "last_used_at": None,
        },
    ).scalar_one()
    record_event(
        session,
        tag=EventTag.TOKEN_CREATED,
        actor=actor.id,
        subject=f"user:{email}",
        details={
            "token_id": token_id,
            "expires_at": expires.isoformat(),
            "scopes": scopes,
            "kind": str(kind),
        },
    )
    return IssuedToken(int(token_id), token, expires)


def revoke_token(factory: sessionmaker[Session], *, token_id: int, actor: Subject) -> None:
    """Revoke a token at once."""
    with write_transaction(factory) as session:
        row = session.execute(
            select(api_tokens.c.id, users.c.email)
            .join(users, users.c.id == api_tokens.c.user_id)
            .where(api_tokens.c.id == token_id)
        ).first()
        missing = NotFoundError(f"No token {token_id}.", message_zh=f"不存在令牌 {token_id}。")
        if row is None:
            raise missing
        require(  # someone else's token does not exist for the actor
            actor,
            Action.MANAGE_TOKENS,
            Resource("token", str(token_id), owner=f"user:{row.email}"),
            missing=missing,
        )
        session.execute(
            update(api_tokens).where(api_tokens.c.id == token_id).values(revoked_at=clock.now())
        )
        record_event(
            session,
            tag=EventTag.TOKEN_REVOKED,
            actor=actor.id,
            subject=f"user:{row.email}",
            details={"token_id": token_id},
        )


TOUCH_EVERY = timedelta(minutes=1)  # how stale a token's last use may be shown


def authenticate(
    factory: sessionmaker[Session],
    token: str,
    *,
    address: str | None = None,
    events: GroupedQueue | None = None,
    held: list[bytes] | None = None,
) -> Subject:
    """The user a bearer token belongs to; AuthenticationError if it is not valid now.

    Each use is an audit event (`access:token:use`, with the caller's address), and so is a
    refused use of a known token that has expired or been revoked (`access:token:refuse`),
    queued in the same transaction (`record_soon`: one insert, no lock on the log). An unknown
    token is a refusal that the app's error mapping records (`access:decision:deny` by the
    caller's address, group-committed with the refusals of the same moment), so that guessing
    is seen by the early-warning rules.

    With `events` (the app's group commit), a valid use is read without the write lock and its
    event committed with those of concurrent requests before this returns, and the token's
    last use is written at most once a minute; without, all in one write transaction. With
    `held` as well, a valid use's event is not committed here but appended to `held`, for the
    caller to commit with its own event before it answers (a Beacon query: one commit instead
    of two)."""
    refused = AuthenticationError(
        "The token is not valid (unknown, expired or revoked).",
        message_zh="令牌无效（未知、已过期或已撤销）。",
    )
    # the same answer, carrying its refusal for the app's error mapping to audit
    unknown = AuthenticationError(
        refused.message,
        message_zh=refused.message_zh,
        refusal=Refusal("anonymous", str(EventTag.TOKEN_USED), "token", rule="unknown-token"),
    )
    if not identity.TOKEN_RE.match(token):
        raise unknown
    now = clock.now()
    if events is not None:
        engine = factory.kw["bind"]
        read = {"digest": identity.token_digest(token), "now": now}
        statement = token_subject_statement(engine.dialect.name)
        rows = prepared(engine, statement).rows(read)
        if not rows:
            raise unknown
        row = rows[0]
        if token_problem(row.revoked_at, row.active, row.expires_at, now) is None:
            # read without the ORM, no lock held: the token's row with its user's roles and
            # grants, in one statement
            actor, token_id = f"user:{row.email}", f"token:{row.id}"
            seen = {"address": address, "institution": row.institution}
            if held is not None:
                held.append(
                    event_leaf(
                        tag=EventTag.TOKEN_USED,
                        actor=actor,
                        subject=token_id,
                        details=seen,
                        now=now,
                    )
                )
            else:
                events.record(
                    tag=EventTag.TOKEN_USED, actor=actor, subject=token_id, details=seen, now=now
                )
            last = row.last_used_at
            if last is None or clock.as_utc(last) <= now - TOUCH_EVERY:
                with write_transaction(factory) as touching:
                    touching.execute(TOUCH, {"token_id": row.id, "now": now})
            return token_subject(row)
        # a refused use is recorded in a transaction of its own, as below
    # a use is read, then queued and touched: one transaction holding SQLite's write lock
    with write_transaction(factory) as session:
        statement = token_subject_statement(session.get_bind().dialect.name)
        row = session.execute(
            statement, {"digest": identity.token_digest(token), "now": now}
        ).first()
        if row is None:
            raise unknown
        problem = token_problem(row.revoked_at, row.active, row.expires_at, now)
        seen = {"address": address, "institution": row.institution}
        if problem is not None:
            record_soon(
                session,
                tag=EventTag.TOKEN_REFUSED,
                actor=f"user:{row.email}",
                subject=f"token:{row.id}",
                details={"why": problem, **seen},
                now=now,
            )
        else:
            record_soon(
                session,
                tag=EventTag.TOKEN_USED,
                actor=f"user:{row.email}",
                subject=f"token:{row.id}",
                details=seen,
                now=now,
            )
            session.execute(TOUCH, {"token_id": row.id, "now": now})
    if problem is not None:
        raise refused
    return token_subject(row)


SECOND_FACTOR_ROLES = frozenset({str(Role.ADMIN), str(Role.DAC_MEMBER)})


@functools.cache
def _stand_in_hash() -> str:
    """A password hash no password matches, checked when the account does not exist, so that a
    sign-in costs one argon2 verification either way."""
    return identity.hash_password(identity.new_password())


def sign_in(
    factory: sessionmaker[Session],
    settings: Settings,
    *,
    email: str,
    password: str,
    address: str,
    otp: str | None = None,
) -> IssuedToken:
    """Exchange an account's password (and a TOTP code: administrators, DAC members and any
    account that enrolled an authenticator) for a session token, throttling repeated failures.

    Every refusal short of both factors is the same (one status, one body, the same checks
    run): the caller never learns which of the e-mail address, the password or the one-time
    code was wrong, so that a password cannot be tried against a second-factor account."""
    email = email.strip().lower()
    now = clock.now()
    keys = (f"account:{email}", f"address:{address}")
    with write_transaction(factory) as session:
        refuse_if_throttled(
            session,
            keys,
            now=now,
            message="Too many failed sign-ins; try again later.",
            message_zh="登录失败次数过多，请稍后再试。",
        )
        row = session.execute(
            select(
                users.c.id,
                users.c.password_hash,
                users.c.active,
                users.c.totp_sealed,
                users.c.totp_secret,
            ).where(users.c.email == email)
        ).first()
        password_ok = identity.verify_password(
            (row.password_hash if row is not None else None) or _stand_in_hash(), password
        ) and bool(row is not None and row.password_hash)
        roles = set(
            session.execute(
                select(user_roles.c.role).where(user_roles.c.user_id == (row.id if row else -1))
            ).scalars()
        )
        stored = second_factor.StoredSecret(
            user_id=int(row.id) if row is not None else -1,
            sealed=row.totp_sealed if row is not None else None,
            plaintext=row.totp_secret if row is not None else None,
        )
        needs_otp = bool(SECOND_FACTOR_ROLES & roles) or stored.enrolled
        # checked whether or not the password was right: the same work either way
        otp_ok = second_factor.code_matches(settings, stored, otp, at=now)
        factors_ok = password_ok and (otp_ok or not needs_otp)
        ok = factors_ok and row is not None and bool(row.active)
        # a self-registered account that waits for its e-mail or institution says so, but
        # only to someone who has given every factor it has
        pending = (
            registration.pending_reason(session, row.id)
            if factors_ok and not ok and row is not None
            else None
        )
        if not ok:
            for key in keys:
                session.execute(insert(login_failures).values(key=key, failed_at=now))
            record_event(
                session,
                tag=EventTag.SIGN_IN_FAILED,
                actor=f"address:{address}",
                subject=f"user:{email}",
                details={"why": _why_refused(row, password_ok, needs_otp, otp_ok)},
            )
    if pending is not None:
        raise AccessDeniedError(pending[0], message_zh=pending[1], details={"rule": "pending"})
    if not ok:
        raise AuthenticationError(
            "Wrong e-mail address, password or one-time code. Give your e-mail address and "
            "password, and, if your account has an authenticator (administrators and DAC "
            "members must), its current one-time code.",
            message_zh="电子邮件地址、密码或一次性验证码错误。请提供电子邮件地址和密码；"
            "如账号绑定了验证器（系统管理员和数据访问委员会成员必须绑定），还须提供其当前的一次性验证码。",
        )
    with write_transaction(factory) as session:
        issued = _issue(
            session,
            email=email,
            actor=Subject.user(email, roles=frozenset(), institution=None),
            lifetime=timedelta(hours=SESSION_TOKEN_HOURS),
            scopes=None,
            label="sign-in",
            kind=CredentialKind.SESSION,
        )
        record_event(
            session, tag=EventTag.SIGN_IN, actor=f"user:{email}", subject=f"address:{address}"
        )
    return issued


def _why_refused(row: Any, password_ok: bool, needs_otp: bool, otp_ok: bool) -> str:
    """What the audit log (not the caller) is told of a refused sign-in."""
    if row is None:
        return "unknown account"
    if not password_ok:
        return "password"
    if needs_otp and not otp_ok:
        return "one-time code"
    return "inactive account"
