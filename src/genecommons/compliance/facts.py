"""Gathering, from the catalog, the facts the jurisdiction rules decide on (read only)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import distinct, func, or_, select
from sqlalchemy.orm import Session

from genecommons import clock
from genecommons.catalog.tables import ENTITY_TABLES, LINK_TABLES
from genecommons.compliance.rules import DatasetFacts

SEQUENCE_STRATEGIES = ("WGS", "WES")


def sequence_individuals(session: Session, dataset_id: int) -> int:
    """Individuals with exome or genome sequence data in a dataset: through its WGS/WES runs
    and through the samples of its analyses."""
    runs, experiments = ENTITY_TABLES["runs"], ENTITY_TABLES["experiments"]
    samples = ENTITY_TABLES["samples"]
    dataset_runs = LINK_TABLES[("datasets", "runs")]
    dataset_analyses = LINK_TABLES[("datasets", "analyses")]
    analysis_samples = LINK_TABLES[("analyses", "samples")]
    by_runs = (
        select(samples.c.individual_id)
        .join(experiments, experiments.c.sample_id == samples.c.id)
        .join(runs, runs.c.experiment_id == experiments.c.id)
        .join(dataset_runs, dataset_runs.c.target_id == runs.c.id)
        .where(
            dataset_runs.c.datasets_id == dataset_id,
            experiments.c.library_strategy.in_(SEQUENCE_STRATEGIES),
        )
    )
    by_analyses = (
        select(samples.c.individual_id)
        .join(analysis_samples, analysis_samples.c.target_id == samples.c.id)
        .join(dataset_analyses, dataset_analyses.c.target_id == analysis_samples.c.analyses_id)
        .where(dataset_analyses.c.datasets_id == dataset_id)
    )
    union = by_runs.union(by_analyses).subquery()
    return int(session.execute(select(func.count(distinct(union.c.individual_id)))).scalar_one())


def dataset_facts(session: Session, dataset: Any, *, archived_here: bool) -> DatasetFacts:
    """The facts of a dataset row (id, study_id) for the jurisdiction rules."""
    studies, consents = ENTITY_TABLES["studies"], ENTITY_TABLES["consents"]
    study = session.execute(
        select(studies.c.doc).where(studies.c.id == dataset.study_id)
    ).scalar_one()
    abroad = (
        session.execute(
            select(consents.c.abroad_allowed).where(consents.c.study_id == dataset.study_id)
        )
        .scalars()
        .all()
    )
    filing = _record_in_force(session, dataset.study_id, "provision_abroad")
    review = _record_in_force(session, dataset.study_id, "security_review")
    return DatasetFacts(
        hgr_information=bool(study.get("hgr_information", True)),
        sequence_individuals=sequence_individuals(session, dataset.id),
        consent_abroad_allowed=bool(abroad) and all(abroad),
        archived_here=archived_here,
        important_pedigree=bool(study.get("important_pedigree")),
        specific_region_population=bool(study.get("specific_region_population")),
        provision_abroad_filing=filing,
        security_review=review,
    )


def _record_in_force(session: Session, study_id: int, category: str) -> str | None:
    """The number of the study's latest HGR record of `category` that is in force today."""
    hgr = ENTITY_TABLES["hgr_records"]
    today = clock.now().date()
    return (
        session.execute(
            select(hgr.c.number)
            .where(
                hgr.c.study_id == study_id,
                hgr.c.category == category,
                hgr.c.issued_on <= today,
                or_(hgr.c.valid_until.is_(None), hgr.c.valid_until >= today),
            )
            .order_by(hgr.c.issued_on.desc(), hgr.c.id.desc())
        )
        .scalars()
        .first()
    )
