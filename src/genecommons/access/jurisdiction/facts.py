"""Gathering, from the catalog, the facts the jurisdiction rules decide on (read only)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from genecommons import clock
from genecommons.access.jurisdiction.rules import DatasetFacts
from genecommons.catalog import reads as catalog


def dataset_facts(session: Session, dataset: Any, *, archived_here: bool) -> DatasetFacts:
    """The facts of a dataset row (id, study_id) for the jurisdiction rules."""
    consent = catalog.study_consent(session, dataset.study_id)
    today = clock.now().date()
    return DatasetFacts(
        hgr_information=consent.hgr_information,
        sequence_individuals=catalog.sequence_individuals(session, dataset.id),
        consent_abroad_allowed=consent.consent_abroad_allowed,
        archived_here=archived_here,
        important_pedigree=consent.important_pedigree,
        specific_region_population=consent.specific_region_population,
        provision_abroad_filing=catalog.hgr_record_in_force(
            session, dataset.study_id, "provision_abroad", today
        ),
        security_review=catalog.hgr_record_in_force(
            session, dataset.study_id, "security_review", today
        ),
    )
