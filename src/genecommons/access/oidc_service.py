"""Sign-in through an external OpenID Connect provider: the use cases around `oidc`.

A sign-in starts (`begin`) by storing the SHA-256 of a fresh state with its nonce and PKCE
verifier, and ends (`complete`) when the provider sends the browser back: the pending sign-in is
consumed first (so a replayed callback finds nothing), the code is exchanged, the ID token
checked, and the provider's identity (issuer + subject) mapped to a local account through
`oidc_identities`.

The account rule: an identity already linked signs in to its account. A first-time identity
gets a new account with the researcher role only and no institution, so it is not trusted
(no registered tier, no requests) until an administrator sets its institution
(`genecommons users set-institution`) and that institution is verified. Nothing the provider
asserts (groups, roles, e-mail) ever grants a role. An identity whose verified e-mail belongs
to an existing account is never linked to it automatically (the provider may not be
authoritative for that address): the account holder signs in with their password and starts
the OIDC sign-in with their token, which links it. Administrators and DAC members still give
their TOTP code: the callback then returns a short-lived ticket for `second_factor`.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from genecommons import clock
from genecommons.access import identity, notify, oidc, service
from genecommons.access.second_factor import StoredSecret, code_matches
from genecommons.access.tables import (
    login_failures,
    oidc_identities,
    oidc_logins,
    sign_in_tickets,
    user_roles,
    users,
)
from genecommons.access.throttle import refuse_if_throttled
from genecommons.config import Settings
from genecommons.db import write_transaction
from genecommons.errors import (
    AuthenticationError,
    ConflictError,
    NotFoundError,
)
from genecommons.ledger.events import EventTag, record_event
from genecommons.policy.decision import require
from genecommons.policy.models import Action, CredentialKind, Resource, Role, Subject, SubjectKind

logger = logging.getLogger(__name__)
TICKET_SECONDS = 300  # how long a second-factor ticket waits for the TOTP code


def provider(settings: Settings) -> oidc.Provider | None:
    """The configured OpenID provider, or None when OIDC sign-in is off."""
    if not settings.oidc_enabled or not settings.oidc_issuer or not settings.oidc_client_id:
        return None
    return oidc.Provider(
        issuer=settings.oidc_issuer,
        client_id=settings.oidc_client_id,
        client_secret=settings.oidc_secret(),
        redirect_uri=settings.effective_oidc_redirect_url,
        scopes=settings.oidc_scopes,
    )


def _enabled(found: oidc.Provider | None) -> oidc.Provider:
    if found is None:
        raise NotFoundError(
            "Sign-in through an OpenID Connect provider is not configured on this node "
            "(GENECOMMONS_OIDC_ISSUER, GENECOMMONS_OIDC_CLIENT_ID); sign in with your password.",
            message_zh="本节点未配置 OpenID Connect 身份提供方登录（GENECOMMONS_OIDC_ISSUER、"
            "GENECOMMONS_OIDC_CLIENT_ID），请使用密码登录。",
        )
    return found


def begin(
    factory: sessionmaker[Session],
    found: oidc.Provider | None,
    *,
    settings: Settings,
    link_to: Subject,
) -> oidc.LoginStart:
    """Start a sign-in; when `link_to` is a signed-in user, the identity the provider returns
    is linked to that account instead."""
    chosen = _enabled(found)
    if link_to.kind is SubjectKind.USER:
        # a link is one more way into the account: only a credential that may manage the
        # account's tokens may add it (a narrowly scoped token may not)
        require(link_to, Action.MANAGE_TOKENS, Resource("token", link_to.id))
    started = chosen.start()
    now = clock.now()
    with write_transaction(factory) as session:
        session.execute(delete(oidc_logins).where(oidc_logins.c.expires_at < now))
        link_user_id = None
        if link_to.kind is SubjectKind.USER:
            link_user_id = session.execute(
                select(users.c.id).where(users.c.email == link_to.id.removeprefix("user:"))
            ).scalar_one_or_none()
        session.execute(
            insert(oidc_logins).values(
                state_digest=oidc.digest(started.state),
                nonce=started.nonce,
                code_verifier=started.code_verifier,
                link_user_id=link_user_id,
                created_at=now,
                expires_at=now + timedelta(seconds=settings.oidc_login_seconds),
            )
        )
    return started


@dataclass(frozen=True, slots=True)
class SignInResult:
    """The end of a sign-in: a session token, or a ticket awaiting the TOTP code."""

    email: str
    token: service.IssuedToken | None = None
    ticket: str | None = None
    ticket_expires_at: datetime | None = None
    created: bool = False  # a new account was made for a first-time identity


def _throttle(session: Session, keys: tuple[str, ...], now: datetime) -> None:
    refuse_if_throttled(
        session,
        keys,
        now=now,
        message="Too many failed sign-ins; try again later.",
        message_zh="登录失败次数过多，请稍后再试。",
    )


def _failed(
    factory: sessionmaker[Session],
    *,
    keys: tuple[str, ...],
    address: str,
    subject: str,
    check: str,
) -> None:
    """Count a refused sign-in against the throttle and audit it."""
    now = clock.now()
    with write_transaction(factory) as session:
        for key in keys:
            session.execute(insert(login_failures).values(key=key, failed_at=now))
        record_event(
            session,
            tag=EventTag.SIGN_IN_FAILED,
            actor=f"address:{address}",
            subject=subject,
            details={"method": "oidc", "check": check},
        )


def complete(
    factory: sessionmaker[Session],
    found: oidc.Provider | None,
    *,
    state: str | None,
    browser_state: str | None,
    code: str | None,
    error: str | None,
    address: str,
) -> SignInResult:
    """Finish a sign-in the provider sent back: check the state against the browser's and
    the stored one (consumed either way), exchange the code, check the ID token, map the
    identity to an account and issue a session token (or a second-factor ticket)."""
    chosen = _enabled(found)
    keys = (f"address:{address}",)
    now = clock.now()
    with write_transaction(factory) as session:
        _throttle(session, keys, now)
    subject = f"oidc:{chosen.issuer}"[:200]
    try:
        if error:
            raise AuthenticationError(
                f"The identity provider refused the sign-in ({error[:100]}).",
                message_zh=f"身份提供方拒绝了登录（{error[:100]}）。",
                details={"check": "provider"},
            )
        if not state or not browser_state or not oidc.same_secret(state, browser_state):
            raise AuthenticationError(
                "This sign-in was not started in this browser (the state does not match); "
                "start again at /api/v1/auth/oidc/login.",
                message_zh="此次登录并非在本浏览器中发起（state 不符），"
                "请从 /api/v1/auth/oidc/login 重新开始。",
                details={"check": "state"},
            )
        with write_transaction(factory) as session:
            pending = session.execute(
                delete(oidc_logins)
                .where(oidc_logins.c.state_digest == oidc.digest(state))
                .returning(
                    oidc_logins.c.nonce,
                    oidc_logins.c.code_verifier,
                    oidc_logins.c.link_user_id,
                    oidc_logins.c.expires_at,
                )
            ).first()
        if pending is None or clock.as_utc(pending.expires_at) <= now:
            raise AuthenticationError(
                "This sign-in is unknown, used already or expired; start again at "
                "/api/v1/auth/oidc/login.",
                message_zh="此次登录不存在、已使用或已过期，请从 /api/v1/auth/oidc/login 重新开始。",
                details={"check": "state"},
            )
        if not code:
            raise AuthenticationError(
                "The identity provider sent no authorization code.",
                message_zh="身份提供方未返回授权码。",
                details={"check": "code"},
            )
        id_token = chosen.exchange(code=code[:2000], code_verifier=pending.code_verifier)
        asserted = chosen.verify(id_token, nonce=pending.nonce, now=clock.now())
    except AuthenticationError as refused:
        check = refused.details.get("check", "") if isinstance(refused.details, dict) else ""
        _failed(factory, keys=keys, address=address, subject=subject, check=str(check))
        raise
    return _sign_in(factory, asserted, link_user_id=pending.link_user_id, address=address)


def _sign_in(
    factory: sessionmaker[Session],
    asserted: oidc.ExternalIdentity,
    *,
    link_user_id: int | None,
    address: str,
) -> SignInResult:
    """Map a checked identity to its account (linking or creating it) and sign in."""
    now = clock.now()
    method = f"oidc:{asserted.issuer}"
    created = False
    with write_transaction(factory) as session:
        linked = session.execute(
            select(oidc_identities.c.id, oidc_identities.c.user_id).where(
                oidc_identities.c.issuer == asserted.issuer,
                oidc_identities.c.subject == asserted.subject,
            )
        ).first()
        if linked is not None and link_user_id is not None and linked.user_id != link_user_id:
            raise ConflictError(
                "This identity of the provider is linked to another account already.",
                message_zh="该身份提供方账号已关联到另一个账号。",
            )
        if linked is not None:
            user_id = int(linked.user_id)
            session.execute(
                update(oidc_identities)
                .where(oidc_identities.c.id == linked.id)
                .values(email=asserted.email, last_sign_in_at=now)
            )
        else:
            if link_user_id is not None:
                user_id = link_user_id
            else:
                user_id = _new_account(session, asserted, now=now)
                created = True
            session.execute(
                insert(oidc_identities).values(
                    issuer=asserted.issuer,
                    subject=asserted.subject,
                    user_id=user_id,
                    email=asserted.email,
                    linked_at=now,
                    last_sign_in_at=now,
                )
            )
        account = session.execute(
            select(
                users.c.email,
                users.c.active,
                (users.c.totp_sealed.is_not(None) | users.c.totp_secret.is_not(None)).label(
                    "has_totp"
                ),
            ).where(users.c.id == user_id)
        ).one()
        if linked is None:
            notify.enqueue(
                session,
                recipient=account.email,
                subject="A sign-in was linked to your account / 您的账号关联了新的登录方式",
                body=(
                    f"From now on you can sign in to GeneCommons through {asserted.issuer} "
                    f"(as {asserted.email}). If this was not you, tell an administrator.\n\n"
                    f"今后您可通过 {asserted.issuer}（{asserted.email}）登录 GeneCommons。"
                    "如非本人操作，请告知系统管理员。\n"
                ),
            )
            record_event(
                session,
                tag=EventTag.IDENTITY_LINKED,
                actor=f"user:{account.email}",
                subject=f"user:{account.email}",
                details={"issuer": asserted.issuer, "subject": asserted.subject},
            )
        roles = set(
            session.execute(select(user_roles.c.role).where(user_roles.c.user_id == user_id))
            .scalars()
            .all()
        )
    if not account.active:
        _failed(
            factory,
            keys=(f"address:{address}",),
            address=address,
            subject=f"user:{account.email}",
            check="inactive",
        )
        raise AuthenticationError(
            "This account is not active.",
            message_zh="该账号未启用。",
            details={"check": "inactive"},
        )
    if roles & service.SECOND_FACTOR_ROLES or account.has_totp:
        ticket = secrets.token_urlsafe(32)
        expires = now + timedelta(seconds=TICKET_SECONDS)
        with write_transaction(factory) as session:
            session.execute(delete(sign_in_tickets).where(sign_in_tickets.c.expires_at < now))
            session.execute(
                insert(sign_in_tickets).values(
                    digest=oidc.digest(ticket),
                    user_id=user_id,
                    method=method,
                    created_at=now,
                    expires_at=expires,
                )
            )
        return SignInResult(account.email, ticket=ticket, ticket_expires_at=expires)
    issued = _issue_session(factory, email=account.email, method=method, address=address)
    return SignInResult(account.email, token=issued, created=created)


def _new_account(session: Session, asserted: oidc.ExternalIdentity, *, now: datetime) -> int:
    """A researcher account, at no institution, for a first-time identity."""
    taken = session.execute(select(users.c.id).where(users.c.email == asserted.email)).first()
    if taken is not None:
        raise ConflictError(
            f"An account {asserted.email} exists already and is not linked to this identity "
            "provider: sign in with its password, then start the provider's sign-in with that "
            "token (GET /api/v1/auth/oidc/login) to link it.",
            message_zh=f"账号 {asserted.email} 已存在，但尚未关联该身份提供方：请先用密码登录，"
            "再携带该令牌访问 GET /api/v1/auth/oidc/login 完成关联。",
        )
    if not identity.valid_email(asserted.email):
        raise AuthenticationError(
            f"The provider's e-mail address {asserted.email!r} cannot name an account.",
            message_zh=f"身份提供方给出的电子邮件地址 {asserted.email!r} 无法用作账号。",
            details={"check": "email"},
        )
    user_id = int(
        session.execute(
            insert(users).returning(users.c.id),
            {
                "email": asserted.email,
                "display_name": asserted.name,
                "institution_id": None,
                "password_hash": None,
                "active": True,
                "created_at": now,
                "created_by": f"oidc:{asserted.issuer}",
            },
        ).scalar_one()
    )
    session.execute(insert(user_roles).values(user_id=user_id, role=str(Role.RESEARCHER)))
    record_event(
        session,
        tag=EventTag.USER_CREATED,
        actor=f"oidc:{asserted.issuer}"[:200],
        subject=f"user:{asserted.email}",
        details={"roles": [str(Role.RESEARCHER)], "institution": None, "via": "oidc"},
    )
    return user_id


def _issue_session(
    factory: sessionmaker[Session], *, email: str, method: str, address: str
) -> service.IssuedToken:
    with write_transaction(factory) as session:
        issued = service._issue(
            session,
            email=email,
            actor=Subject.user(email, roles=frozenset(), institution=None),
            lifetime=timedelta(hours=service.SESSION_TOKEN_HOURS),
            scopes=None,
            label="sign-in (oidc)",
            kind=CredentialKind.SESSION,
        )
        record_event(
            session,
            tag=EventTag.SIGN_IN,
            actor=f"user:{email}",
            subject=f"address:{address}",
            details={"method": method},
        )
    return issued


def second_factor(
    factory: sessionmaker[Session], settings: Settings, *, ticket: str, otp: str, address: str
) -> service.IssuedToken:
    """Exchange a second-factor ticket and the account's current TOTP code for a token."""
    now = clock.now()
    with write_transaction(factory) as session:
        found = session.execute(
            select(
                sign_in_tickets.c.id,
                sign_in_tickets.c.method,
                sign_in_tickets.c.expires_at,
                users.c.id.label("user_id"),
                users.c.email,
                users.c.totp_sealed,
                users.c.totp_secret,
            )
            .join(users, users.c.id == sign_in_tickets.c.user_id)
            .where(sign_in_tickets.c.digest == oidc.digest(ticket))
        ).first()
    if found is None or clock.as_utc(found.expires_at) <= now:
        raise AuthenticationError(
            "The sign-in ticket is unknown or expired; sign in again.",
            message_zh="登录凭证不存在或已过期，请重新登录。",
            details={"check": "ticket"},
        )
    keys = (f"account:{found.email}", f"address:{address}")
    with write_transaction(factory) as session:
        _throttle(session, keys, now)
    stored = StoredSecret(
        user_id=int(found.user_id), sealed=found.totp_sealed, plaintext=found.totp_secret
    )
    if not code_matches(settings, stored, otp, at=now):
        _failed(factory, keys=keys, address=address, subject=f"user:{found.email}", check="otp")
        raise AuthenticationError(
            "Administrators and DAC members sign in with a one-time code as well: give the "
            "current code of your authenticator (enrol with `genecommons users totp EMAIL`).",
            message_zh="系统管理员和数据访问委员会成员登录时还需提供一次性验证码（可用 "
            "`genecommons users totp EMAIL` 绑定验证器）。",
            details={"check": "otp"},
        )
    with write_transaction(factory) as session:
        consumed = session.execute(
            delete(sign_in_tickets).where(sign_in_tickets.c.id == found.id)
        ).rowcount  # type: ignore[attr-defined]
    if consumed != 1:  # a concurrent use of the same ticket won
        raise AuthenticationError(
            "The sign-in ticket was used already; sign in again.",
            message_zh="登录凭证已被使用，请重新登录。",
            details={"check": "ticket"},
        )
    return _issue_session(factory, email=found.email, method=found.method, address=address)
