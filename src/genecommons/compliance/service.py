"""Compliance use cases: gather the facts for a period's report (read only)."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from genecommons import clock
from genecommons.access.models import Action, Resource, Subject
from genecommons.access.policy import require
from genecommons.access.tables import grants, institution_verifications, users
from genecommons.catalog.tables import ENTITY_TABLES
from genecommons.compliance.reports import (
    ApprovalFact,
    ComplianceReport,
    GrantFact,
    build_report,
    check_period,
)

MAINLAND = "CN"


def _day(moment: datetime) -> date:
    return clock.as_utc(moment).date()


def report(
    factory: sessionmaker[Session],
    *,
    start: date,
    end: date,
    actor: Subject,
    today: date | None = None,
) -> ComplianceReport:
    """The compliance report of [start, end]: provisions abroad, grants by institution and
    country, approvals and grants expiring within 30 days."""
    require(actor, Action.READ_COMPLIANCE, Resource("compliance"))
    check_period(start, end)
    today = today or clock.now().date()
    datasets, studies = ENTITY_TABLES["datasets"], ENTITY_TABLES["studies"]
    institutions, hgr = ENTITY_TABLES["institutions"], ENTITY_TABLES["hgr_records"]
    ethics = ENTITY_TABLES["ethics_approvals"]
    with factory() as session:
        filings: dict[str, list[str]] = defaultdict(list)
        for study, number in session.execute(
            select(studies.c.accession, hgr.c.number)
            .join(studies, studies.c.id == hgr.c.study_id)
            .where(hgr.c.category == "provision_abroad")
        ):
            filings[study].append(number)
        rows = session.execute(
            select(
                grants,
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
        facts = []
        for r in rows:
            country = r.verified_country or r.declared_country
            foreign = (country is not None and country != MAINLAND) or bool(r.foreign_controlled)
            facts.append(
                GrantFact(
                    grant=r.id,
                    dataset=r.dataset,
                    study=r.study,
                    hgr_information=bool(r.study_doc.get("hgr_information", True)),
                    grantee=r.email,
                    institution=r.institution,
                    institution_name=r.name_en,
                    country=country,
                    foreign_party=foreign,
                    granted_on=_day(r.granted_at),
                    expires_on=_day(r.expires_at),
                    revoked=r.revoked_at is not None,
                    filing_numbers=tuple(filings.get(r.study, ())),
                )
            )
        approvals = [
            ApprovalFact(kind, r.accession, r.study, r.number, r.valid_until)
            for kind, table in (("ethics_approval", ethics), ("hgr_record", hgr))
            for r in session.execute(
                select(
                    table.c.accession,
                    table.c.number,
                    table.c.valid_until,
                    studies.c.accession.label("study"),
                )
                .join(studies, studies.c.id == table.c.study_id)
                .where(table.c.valid_until.is_not(None))
            )
        ]
    return build_report(start=start, end=end, today=today, grants=facts, approvals=approvals)
