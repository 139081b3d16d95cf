"""What the access capability publishes for the capabilities above it to read (the audit
log's watcher, the compliance report): grants, with who holds them and where, read only.
Nothing outside access reads its tables."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from genecommons.access.tables import grants, institution_verifications, users
from genecommons.catalog import reads as catalog


@dataclass(frozen=True, slots=True)
class GrantSpan:
    """When a grant on a dataset was in force."""

    id: int
    dataset: str
    granted_at: datetime
    expires_at: datetime
    revoked_at: datetime | None


def grants_of(session: Session, email: str, datasets: Sequence[str]) -> list[GrantSpan]:
    """Every grant, in force or not, that the account `email` holds on any of `datasets`."""
    datasets_view = catalog.DATASETS
    return [
        GrantSpan(int(r.id), r.accession, r.granted_at, r.expires_at, r.revoked_at)
        for r in session.execute(
            select(
                grants.c.id,
                datasets_view.c.accession,
                grants.c.granted_at,
                grants.c.expires_at,
                grants.c.revoked_at,
            )
            .join(users, users.c.id == grants.c.user_id)
            .join(datasets_view, datasets_view.c.id == grants.c.dataset_id)
            .where(users.c.email == email, datasets_view.c.accession.in_(list(datasets)))
        )
    ]


@dataclass(frozen=True, slots=True)
class GrantRecord:
    """A grant with its dataset, its study and its holder's institution, for reports."""

    id: int
    dataset: str
    study: str
    study_doc: dict[str, object]
    grantee: str
    institution: str | None
    institution_name: str | None
    declared_country: str | None
    verified_country: str | None  # as an administrator verified it
    foreign_controlled: bool | None
    granted_at: datetime
    expires_at: datetime
    revoked_at: datetime | None


def every_grant(session: Session) -> list[GrantRecord]:
    """Every grant this node has made, in force or not."""
    datasets, studies, institutions = catalog.DATASETS, catalog.STUDIES, catalog.INSTITUTIONS
    rows = session.execute(
        select(
            grants.c.id,
            grants.c.granted_at,
            grants.c.expires_at,
            grants.c.revoked_at,
            datasets.c.accession.label("dataset"),
            studies.c.accession.label("study"),
            studies.c.doc.label("study_doc"),
            users.c.email,
            institutions.c.accession.label("institution"),
            institutions.c.name_en,
            institutions.c.country.label("declared_country"),
            institution_verifications.c.country.label("verified_country"),
            institution_verifications.c.foreign_controlled,
        )
        .join(datasets, datasets.c.id == grants.c.dataset_id)
        .join(studies, studies.c.id == datasets.c.study_id)
        .join(users, users.c.id == grants.c.user_id)
        .outerjoin(institutions, institutions.c.id == users.c.institution_id)
        .outerjoin(
            institution_verifications,
            institution_verifications.c.institution_id == institutions.c.id,
        )
    ).all()
    return [
        GrantRecord(
            id=int(r.id),
            dataset=r.dataset,
            study=r.study,
            study_doc=r.study_doc,
            grantee=r.email,
            institution=r.institution,
            institution_name=r.name_en,
            declared_country=r.declared_country,
            verified_country=r.verified_country,
            foreign_controlled=r.foreign_controlled,
            granted_at=r.granted_at,
            expires_at=r.expires_at,
            revoked_at=r.revoked_at,
        )
        for r in rows
    ]
