"""Listings of the access capability's records: institutions, DACs, requests, grants, API tokens
and accounts, a page at a time, and each one by its id.

What a caller may not see does not exist for them: the decision point (`policy.visible`) says
of every record whether the caller may know of it. When it says the caller sees every record of
a kind (the operator, an administrator...), a listing pages the table as it is; otherwise the
query is narrowed to the records the caller owns or reviews (the other clauses of `visible`),
and each row is still put to `visible`. A record shown by its id answers one the caller may not
see as a missing one. Read-only use cases: like service.py, the only code here opening
transactions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Select, false, func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from genecommons import clock
from genecommons.access.tables import (
    access_requests,
    api_tokens,
    dac_members,
    dacs,
    grants,
    institution_domains,
    institution_verifications,
    request_datasets,
    user_roles,
    users,
)
from genecommons.catalog import reads as catalog
from genecommons.catalog.service import Page
from genecommons.errors import AuthenticationError, InvalidInputError, NotFoundError
from genecommons.policy.decision import require, require_visible, visible
from genecommons.policy.models import Action, Resource, Subject, SubjectKind

MAX_PAGE = 1_000_000
MAX_PAGE_SIZE = 1000
INSTITUTION_FIELDS = ("name_en", "name_zh", "country", "province", "city", "kind")
_INSTITUTIONS = catalog.INSTITUTIONS
_DATASETS = catalog.DATASETS


def check_page(page: int, page_size: int) -> None:
    """InvalidInputError unless `page` and `page_size` are within the listings' bounds (the
    catalog's: pages from 1, up to 1000 records each)."""
    if not 1 <= page <= MAX_PAGE or not 1 <= page_size <= MAX_PAGE_SIZE:
        raise InvalidInputError(
            f"page must be between 1 and {MAX_PAGE:,} and page_size between 1 and {MAX_PAGE_SIZE}.",
            message_zh=f"page 须在 1 到 {MAX_PAGE:,} 之间，page_size 须在 1 到 {MAX_PAGE_SIZE} 之间。",
        )


def _iso(moment: datetime | None) -> str | None:
    return clock.as_utc(moment).isoformat() if moment is not None else None


def _paged(
    session: Session,
    statement: Select[Any],
    *,
    page: int,
    page_size: int,
    order: Any,
    shown: Callable[[Any], bool],
    item: Callable[[Any], dict[str, Any]],
) -> Page:
    """A page of `statement`'s rows, in `order`, each checked by `shown` (the decision
    point's `visible`) before it becomes an item."""
    total = session.execute(select(func.count()).select_from(statement.subquery())).scalar_one()
    rows = session.execute(
        statement.order_by(order).limit(page_size).offset((page - 1) * page_size)
    ).all()
    return Page([item(r) for r in rows if shown(r)], int(total), page, page_size)


def _signed_in(actor: Subject) -> str:
    """The signed-in user's e-mail (the operator: ''); AuthenticationError for anonymous."""
    if actor.kind is SubjectKind.OPERATOR:
        return ""
    if actor.kind is not SubjectKind.USER:
        raise AuthenticationError("Sign in first.", message_zh="请先登录。")
    return actor.id.removeprefix("user:")


def _sees_all(actor: Subject, kind: str) -> bool:
    """Whether the decision point lets `actor` know of every record of `kind` (not only those
    it owns or reviews)."""
    return visible(actor, Resource(kind))


def _reviewed_dacs(email: str) -> Select[tuple[int]]:
    """The DACs the account `email` sits on."""
    return (
        select(dac_members.c.dac_id)
        .join(users, users.c.id == dac_members.c.user_id)
        .where(users.c.email == email)
    )


def _members(session: Session, dac_ids: Iterable[int | None]) -> dict[int, list[Any]]:
    """The members of each DAC of `dac_ids` (rows with email and chair)."""
    wanted = {d for d in dac_ids if d is not None}
    found: dict[int, list[Any]] = {d: [] for d in wanted}
    if wanted:
        for row in session.execute(
            select(dac_members.c.dac_id, users.c.email, dac_members.c.chair)
            .join(users, users.c.id == dac_members.c.user_id)
            .where(dac_members.c.dac_id.in_(wanted))
            .order_by(users.c.email)
        ):
            found[row.dac_id].append(row)
    return found


def _reviewers(members: dict[int, list[Any]], dac_ids: Iterable[int | None]) -> frozenset[str]:
    return frozenset(
        f"user:{m.email}" for d in dac_ids if d is not None for m in members.get(d, [])
    )


# --- institutions: public fields to anyone, verification details to administrators ----------


def _verification_resource(accession: str) -> Resource:
    return Resource("institution_verification", accession)


def _institution_item(row: Any, actor: Subject, domains: dict[int, list[str]]) -> dict[str, Any]:
    doc = row.doc or {}
    item: dict[str, Any] = {"accession": row.accession, "alias": row.alias}
    item.update({name: doc.get(name) for name in INSTITUTION_FIELDS})
    if visible(actor, _verification_resource(row.accession)):
        item["verification"] = (
            {
                "verified": True,
                "country": row.verified_country,
                "foreign_controlled": bool(row.foreign_controlled),
                "attestation": row.attestation,
                "verified_by": row.verified_by,
                "verified_at": _iso(row.verified_at),
            }
            if row.verified_at is not None
            else {"verified": False}
        )
        item["email_domains"] = domains.get(row.id, [])
    return item


def _institution_statement() -> Select[Any]:
    v = institution_verifications
    return select(
        _INSTITUTIONS.c.id,
        _INSTITUTIONS.c.accession,
        _INSTITUTIONS.c.alias,
        _INSTITUTIONS.c.doc,
        v.c.country.label("verified_country"),
        v.c.foreign_controlled,
        v.c.attestation,
        v.c.verified_by,
        v.c.verified_at,
    ).outerjoin(v, v.c.institution_id == _INSTITUTIONS.c.id)


def _domains(session: Session, institution_ids: list[int]) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    if institution_ids:
        for row in session.execute(
            select(institution_domains.c.institution_id, institution_domains.c.domain)
            .where(institution_domains.c.institution_id.in_(institution_ids))
            .order_by(institution_domains.c.domain)
        ):
            found.setdefault(row.institution_id, []).append(row.domain)
    return found


def list_institutions(
    factory: sessionmaker[Session], *, actor: Subject, page: int = 1, page_size: int = 50
) -> Page:
    """A page of institutions, by accession: their public description for anyone; how an
    administrator verified them (location, ownership, attestation) and their e-mail domains
    only for those the decision point lets see verifications."""
    check_page(page, page_size)
    with factory() as session:
        statement = _institution_statement()
        total = session.execute(select(func.count()).select_from(_INSTITUTIONS)).scalar_one()
        rows = session.execute(
            statement.order_by(_INSTITUTIONS.c.id).limit(page_size).offset((page - 1) * page_size)
        ).all()
        domains = _domains(session, [r.id for r in rows])
    return Page([_institution_item(r, actor, domains) for r in rows], int(total), page, page_size)


def get_institution(
    factory: sessionmaker[Session], accession: str, *, actor: Subject
) -> dict[str, Any]:
    """One institution, as `list_institutions` shows it to `actor`."""
    with factory() as session:
        row = session.execute(
            _institution_statement().where(_INSTITUTIONS.c.accession == accession)
        ).first()
        if row is None:
            raise NotFoundError(
                f"No institution {accession}; list them with `genecommons institutions list` "
                "(GET /api/v1/institutions).",
                message_zh=f"不存在机构 {accession}；可用 `genecommons institutions list` 查看机构列表。",
            )
        domains = _domains(session, [row.id])
    return _institution_item(row, actor, domains)


# --- DACs: names to anyone who may know of them, members to administrators and the members --


def _dac_item(row: Any, actor: Subject, members: dict[int, list[Any]]) -> dict[str, Any]:
    item: dict[str, Any] = {
        "alias": row.alias,
        "name": row.name,
        "created_at": _iso(row.created_at),
    }
    sitting = members.get(row.id, [])
    roster = Resource("dac_members", row.alias, reviewers=_reviewers(members, [row.id]))
    if visible(actor, roster):
        item["members"] = [{"email": m.email, "chair": bool(m.chair)} for m in sitting]
    return item


def list_dacs(
    factory: sessionmaker[Session], *, actor: Subject, page: int = 1, page_size: int = 50
) -> Page:
    """A page of data access committees (datasets name them by alias, so their names are no
    secret); their members for administrators and for the committee's own members."""
    check_page(page, page_size)
    with factory() as session:
        total = session.execute(select(func.count()).select_from(dacs)).scalar_one()
        rows = session.execute(
            select(dacs).order_by(dacs.c.id).limit(page_size).offset((page - 1) * page_size)
        ).all()
        members = _members(session, [r.id for r in rows])
    return Page([_dac_item(r, actor, members) for r in rows], int(total), page, page_size)


def get_dac(factory: sessionmaker[Session], alias: str, *, actor: Subject) -> dict[str, Any]:
    """One data access committee, as `list_dacs` shows it to `actor`."""
    with factory() as session:
        row = session.execute(select(dacs).where(dacs.c.alias == alias)).first()
        if row is None:
            raise NotFoundError(
                f"No DAC {alias}; list them with `genecommons dac list`.",
                message_zh=f"不存在数据访问委员会 {alias}；可用 `genecommons dac list` 查看。",
            )
        members = _members(session, [row.id])
    return _dac_item(row, actor, members)


# --- access requests: their requester, their DACs' members, administrators, auditors --------


def _request_items(session: Session, request_ids: list[int]) -> dict[int, list[Any]]:
    found: dict[int, list[Any]] = {r: [] for r in request_ids}
    if request_ids:
        for row in session.execute(
            select(request_datasets, _DATASETS.c.accession)
            .join(_DATASETS, _DATASETS.c.id == request_datasets.c.dataset_id)
            .where(request_datasets.c.request_id.in_(request_ids))
            .order_by(request_datasets.c.id)
        ):
            found[row.request_id].append(row)
    return found


def _request_resource(row: Any, items: list[Any], members: dict[int, list[Any]]) -> Resource:
    return Resource(
        "request",
        str(row.id),
        owner=f"user:{row.email}",
        reviewers=_reviewers(members, [i.dac_id for i in items]),
    )


def _request_item(row: Any, items: list[Any]) -> dict[str, Any]:
    return {
        "id": row.id,
        "requester": row.email,
        "title": (row.purpose or {}).get("title"),
        "agreement_version": row.agreement_version,
        "created_at": _iso(row.created_at),
        "datasets": [
            {"id": i.id, "dataset": i.accession, "verdict": i.verdict, "status": i.status}
            for i in items
        ],
    }


def list_requests(
    factory: sessionmaker[Session],
    *,
    actor: Subject,
    page: int = 1,
    page_size: int = 50,
    requester: str | None = None,
) -> Page:
    """A page of access requests the actor may know of, newest last: their own, those for the
    DACs they sit on, or (administrators, auditors) all; `requester` narrows to one account's."""
    check_page(page, page_size)
    email = _signed_in(actor)
    statement = select(
        access_requests.c.id,
        access_requests.c.purpose,
        access_requests.c.agreement_version,
        access_requests.c.created_at,
        users.c.email,
    ).join(users, users.c.id == access_requests.c.user_id)
    if requester is not None:
        statement = statement.where(users.c.email == requester.strip().lower())
    if not _sees_all(actor, "request"):
        reviewed = select(request_datasets.c.request_id).where(
            request_datasets.c.dac_id.in_(_reviewed_dacs(email))
        )
        statement = statement.where(or_(users.c.email == email, access_requests.c.id.in_(reviewed)))
    with factory() as session:
        total = session.execute(select(func.count()).select_from(statement.subquery())).scalar_one()
        rows = session.execute(
            statement.order_by(access_requests.c.id).limit(page_size).offset((page - 1) * page_size)
        ).all()
        items = _request_items(session, [r.id for r in rows])
        members = _members(session, [i.dac_id for found in items.values() for i in found])
    shown = [
        _request_item(r, items[r.id])
        for r in rows
        if visible(actor, _request_resource(r, items[r.id], members))
    ]
    return Page(shown, int(total), page, page_size)


# --- grants: their holder, their DAC's members, administrators, auditors ---------------------


def _grant_statement() -> Select[Any]:
    return (
        select(
            grants,
            users.c.email,
            _DATASETS.c.accession,
            request_datasets.c.dac_id,
            request_datasets.c.request_id,
        )
        .join(users, users.c.id == grants.c.user_id)
        .join(_DATASETS, _DATASETS.c.id == grants.c.dataset_id)
        .join(request_datasets, request_datasets.c.id == grants.c.request_dataset_id)
    )


def _status(row: Any, now: datetime) -> str:
    """A grant's or token's: revoked, expired or active."""
    if row.revoked_at is not None:
        return "revoked"
    return "active" if clock.as_utc(row.expires_at) > now else "expired"


def _grant_item(row: Any, now: datetime) -> dict[str, Any]:
    return {
        "id": row.id,
        "holder": row.email,
        "dataset": row.accession,
        "request": row.request_id,
        "status": _status(row, now),
        "granted_at": _iso(row.granted_at),
        "granted_by": row.granted_by,
        "expires_at": _iso(row.expires_at),
        "revoked_at": _iso(row.revoked_at),
        "conditions": row.conditions,
    }


def _grant_resource(row: Any, members: dict[int, list[Any]]) -> Resource:
    return Resource(
        "grant",
        str(row.id),
        owner=f"user:{row.email}",
        reviewers=_reviewers(members, [row.dac_id]),
    )


def list_grants(
    factory: sessionmaker[Session],
    *,
    actor: Subject,
    page: int = 1,
    page_size: int = 50,
    holder: str | None = None,
    in_force: bool = False,
    now: datetime | None = None,
) -> Page:
    """A page of grants the actor may know of, newest last: their own, those of the DACs they
    sit on, or (administrators, auditors) all; `holder` narrows to one account's, `in_force`
    to grants neither expired nor revoked."""
    check_page(page, page_size)
    email = _signed_in(actor)
    now = now or clock.now()
    statement = _grant_statement()
    if holder is not None:
        statement = statement.where(users.c.email == holder.strip().lower())
    if in_force:
        statement = statement.where(grants.c.revoked_at.is_(None), grants.c.expires_at > now)
    if not _sees_all(actor, "grant"):
        statement = statement.where(
            or_(users.c.email == email, request_datasets.c.dac_id.in_(_reviewed_dacs(email)))
        )
    with factory() as session:
        total = session.execute(select(func.count()).select_from(statement.subquery())).scalar_one()
        rows = session.execute(
            statement.order_by(grants.c.id).limit(page_size).offset((page - 1) * page_size)
        ).all()
        members = _members(session, [r.dac_id for r in rows])
    shown = [_grant_item(r, now) for r in rows if visible(actor, _grant_resource(r, members))]
    return Page(shown, int(total), page, page_size)


def get_grant(
    factory: sessionmaker[Session], grant_id: int, *, actor: Subject, now: datetime | None = None
) -> dict[str, Any]:
    """One grant, for its holder, its DAC's members, administrators and auditors; anyone else
    is answered as for a grant that does not exist."""
    missing = NotFoundError(f"No grant {grant_id}.", message_zh=f"不存在授权 {grant_id}。")
    with factory() as session:
        row = session.execute(_grant_statement().where(grants.c.id == grant_id)).first()
        if row is None:
            raise missing
        members = _members(session, [row.dac_id])
    require_visible(actor, Action.READ_REQUEST, _grant_resource(row, members), missing=missing)
    return _grant_item(row, now or clock.now())


# --- API tokens: their user and administrators; never the secret -----------------------------


def _token_item(row: Any, now: datetime) -> dict[str, Any]:
    return {
        "id": row.id,
        "user": row.email,
        "label": row.label,
        "kind": row.kind,
        "scopes": row.scopes,
        "status": _status(row, now),
        "created_at": _iso(row.created_at),
        "expires_at": _iso(row.expires_at),
        "revoked_at": _iso(row.revoked_at),
        "last_used_at": _iso(row.last_used_at),
    }


def _token_statement() -> Select[Any]:
    return select(
        api_tokens.c.id,
        api_tokens.c.label,
        api_tokens.c.kind,
        api_tokens.c.scopes,
        api_tokens.c.created_at,
        api_tokens.c.expires_at,
        api_tokens.c.revoked_at,
        api_tokens.c.last_used_at,
        users.c.email,
    ).join(users, users.c.id == api_tokens.c.user_id)


def _token_resource(row: Any) -> Resource:
    return Resource("token", str(row.id), owner=f"user:{row.email}")


def list_tokens(
    factory: sessionmaker[Session],
    *,
    actor: Subject,
    page: int = 1,
    page_size: int = 50,
    user: str | None = None,
    now: datetime | None = None,
) -> Page:
    """A page of API tokens (never their secrets) the actor may know of: their own, or
    (administrators) everyone's; `user` narrows to one account's."""
    check_page(page, page_size)
    email = _signed_in(actor)
    now = now or clock.now()
    statement = _token_statement()
    if user is not None:
        statement = statement.where(users.c.email == user.strip().lower())
    if not _sees_all(actor, "token"):
        statement = statement.where(users.c.email == email if email else false())
    with factory() as session:
        return _paged(
            session,
            statement,
            page=page,
            page_size=page_size,
            order=api_tokens.c.id,
            shown=lambda r: visible(actor, _token_resource(r)),
            item=lambda r: _token_item(r, now),
        )


def get_token(
    factory: sessionmaker[Session], token_id: int, *, actor: Subject, now: datetime | None = None
) -> dict[str, Any]:
    """One API token (never its secret), for its user and administrators; anyone else is
    answered as for a token that does not exist."""
    missing = NotFoundError(f"No token {token_id}.", message_zh=f"不存在令牌 {token_id}。")
    with factory() as session:
        row = session.execute(_token_statement().where(api_tokens.c.id == token_id)).first()
    if row is None:
        raise missing
    require_visible(actor, Action.MANAGE_TOKENS, _token_resource(row), missing=missing)
    return _token_item(row, now or clock.now())


# --- accounts: administrators see all; a user sees their own ---------------------------------


def _user_statement() -> Select[Any]:
    return select(
        users.c.id,
        users.c.email,
        users.c.display_name,
        users.c.active,
        users.c.created_at,
        users.c.created_by,
        users.c.totp_sealed,
        users.c.totp_secret,
        _INSTITUTIONS.c.accession.label("institution"),
    ).outerjoin(_INSTITUTIONS, users.c.institution_id == _INSTITUTIONS.c.id)


def _roles(session: Session, user_ids: list[int]) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {u: [] for u in user_ids}
    if user_ids:
        for row in session.execute(
            select(user_roles.c.user_id, user_roles.c.role)
            .where(user_roles.c.user_id.in_(user_ids))
            .order_by(user_roles.c.role)
        ):
            found[row.user_id].append(row.role)
    return found


def _user_item(row: Any, roles: dict[int, list[str]]) -> dict[str, Any]:
    return {
        "email": row.email,
        "name": row.display_name,
        "institution": row.institution,
        "roles": roles.get(row.id, []),
        "active": bool(row.active),
        "authenticator": row.totp_sealed is not None or bool(row.totp_secret),
        "created_at": _iso(row.created_at),
        "created_by": row.created_by,
    }


def list_users(
    factory: sessionmaker[Session], *, actor: Subject, page: int = 1, page_size: int = 50
) -> Page:
    """A page of accounts with their roles and institution (those who manage accounts)."""
    check_page(page, page_size)
    require(actor, Action.MANAGE_USERS, Resource("user"))
    with factory() as session:
        total = session.execute(select(func.count()).select_from(users)).scalar_one()
        rows = session.execute(
            _user_statement().order_by(users.c.id).limit(page_size).offset((page - 1) * page_size)
        ).all()
        roles = _roles(session, [r.id for r in rows])
    return Page([_user_item(r, roles) for r in rows], int(total), page, page_size)


def get_user(factory: sessionmaker[Session], email: str, *, actor: Subject) -> dict[str, Any]:
    """One account, for itself and for those who manage accounts; anyone else is answered as
    for an account that does not exist."""
    email = email.strip().lower()
    missing = NotFoundError(f"No account {email}.", message_zh=f"不存在账号 {email}。")
    with factory() as session:
        row = session.execute(_user_statement().where(users.c.email == email)).first()
        if row is None:
            raise missing
        roles = _roles(session, [row.id])
    require_visible(
        actor, Action.MANAGE_USERS, Resource("user", email, owner=f"user:{email}"), missing=missing
    )
    return _user_item(row, roles)
