"""What `service.authenticate` reads for a bearer token on every request, and the caller it makes.

The statements are built once per dialect: building a SQLAlchemy expression costs more than
running it on SQLite. `token_subject` turns the row into the `Subject` every decision is made
for.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select, update

from genecommons import clock
from genecommons.access.tables import (
    api_tokens,
    grants,
    institution_verifications,
    user_roles,
    users,
)
from genecommons.catalog import reads as catalog
from genecommons.policy.models import Credential, CredentialKind, Subject

MAINLAND = "CN"  # HK, MO and TW have ISO codes of their own and count as abroad under HGR


def token_problem(
    revoked_at: datetime | None, active: bool, expires_at: datetime, now: datetime
) -> str | None:
    """Why a known token cannot be used now, or None."""
    if revoked_at is not None:
        return "revoked"
    if not active:
        return "inactive user"
    if clock.as_utc(expires_at) <= now:
        return "expired"
    return None


_INSTITUTIONS = catalog.INSTITUTIONS
_DATASETS = catalog.DATASETS
_TOKEN_COLUMNS = (
    api_tokens.c.id,
    api_tokens.c.expires_at,
    api_tokens.c.revoked_at,
    api_tokens.c.scopes,
    api_tokens.c.kind,
    api_tokens.c.last_used_at,
    users.c.id.label("user_id"),
    users.c.email,
    users.c.active,
    _INSTITUTIONS.c.accession.label("institution"),
    institution_verifications.c.country.label("verified_country"),
    institution_verifications.c.foreign_controlled,
)
_TOKEN_FROM = (
    api_tokens.join(users, users.c.id == api_tokens.c.user_id)
    .outerjoin(_INSTITUTIONS, users.c.institution_id == _INSTITUTIONS.c.id)
    .outerjoin(
        institution_verifications,
        institution_verifications.c.institution_id == _INSTITUTIONS.c.id,
    )
)
_BY_DIGEST = api_tokens.c.digest == bindparam("digest")


@functools.cache
def token_subject_statement(dialect: str) -> Any:
    """The token's row with its user's roles and grants in force, in one statement (one round
    trip, one snapshot; roles and dataset accessions are identifiers, without commas)."""

    def joined(column: Any) -> Any:
        if dialect == "postgresql":
            return func.string_agg(column, ",")
        return func.group_concat(column, ",")  # SQLite's (and MySQL's) name

    roles = select(joined(user_roles.c.role)).where(user_roles.c.user_id == users.c.id)
    granted = (
        select(joined(_DATASETS.c.accession))
        .join(grants, grants.c.dataset_id == _DATASETS.c.id)
        .where(
            grants.c.user_id == users.c.id,
            grants.c.revoked_at.is_(None),
            grants.c.expires_at > bindparam("now"),
        )
    )
    return (
        select(
            *_TOKEN_COLUMNS,
            roles.scalar_subquery().label("roles"),
            granted.scalar_subquery().label("granted"),
        )
        .select_from(_TOKEN_FROM)
        .where(_BY_DIGEST)
    )


#: Records a token's last use.
TOUCH = (
    update(api_tokens)
    .where(api_tokens.c.id == bindparam("token_id"))
    .values(last_used_at=bindparam("now"))
)


def token_subject(row: Any) -> Subject:
    """The subject of a valid token's row (`token_subject_statement`'s)."""
    roles = frozenset(row.roles.split(",")) if row.roles else frozenset()
    granted = frozenset(row.granted.split(",")) if row.granted else frozenset()
    scopes = frozenset(row.scopes) if row.scopes is not None else None
    verified = row.verified_country is not None
    return Subject.user(
        row.email,
        roles=roles,
        institution=row.institution,
        scopes=scopes,
        institution_verified=verified,
        institution_country=row.verified_country,
        grants=granted,
        foreign_party=verified
        and (row.verified_country != MAINLAND or bool(row.foreign_controlled)),
        credential=Credential(
            kind=CredentialKind(row.kind), expires_at=clock.as_utc(row.expires_at)
        ),
    )
