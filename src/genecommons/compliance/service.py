"""Compliance use cases: gather the facts for a period's report (read only)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy.orm import Session, sessionmaker

from genecommons import clock
from genecommons.access.reads import every_grant
from genecommons.catalog import reads as catalog
from genecommons.compliance.reports import (
    ApprovalFact,
    ComplianceReport,
    GrantFact,
    build_report,
    check_period,
)
from genecommons.policy.decision import require
from genecommons.policy.models import Action, Resource, Subject

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
    with factory() as session:
        filings = catalog.provision_abroad_filings(session)
        granted = every_grant(session)
        approvals = [
            ApprovalFact(a.kind, a.accession, a.study, a.number, a.valid_until)
            for a in catalog.approvals_with_an_end(session)
        ]
    facts = []
    for g in granted:
        country = g.verified_country or g.declared_country
        foreign = (country is not None and country != MAINLAND) or bool(g.foreign_controlled)
        facts.append(
            GrantFact(
                grant=g.id,
                dataset=g.dataset,
                study=g.study,
                hgr_information=bool(g.study_doc.get("hgr_information", True)),
                grantee=g.grantee,
                institution=g.institution,
                institution_name=g.institution_name,
                country=country,
                foreign_party=foreign,
                granted_on=_day(g.granted_at),
                expires_on=_day(g.expires_at),
                revoked=g.revoked_at is not None,
                filing_numbers=tuple(filings.get(g.study, ())),
            )
        )
    return build_report(start=start, end=end, today=today, grants=facts, approvals=approvals)
