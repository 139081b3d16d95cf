"""What the catalog publishes for the other capabilities to read.

The catalog's tables are its own: another capability reads catalog records only through this
module, never through `catalog.tables` (a foreign key in another capability's tables.py may name
a catalog table; nothing else may). What is published is narrow and read only:

- views: named selections of a few columns of one table, for another capability's joins, so
  that a statement that is one round trip stays one (a view is a subquery, which SQLite and
  PostgreSQL flatten into the statement that uses it);
- lookups: small functions answering one question about the catalog.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import Select, distinct, func, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.selectable import Subquery

from genecommons.catalog.tables import ENTITY_TABLES, LINK_TABLES


def _view(entity: str, *columns: str) -> Subquery:
    table = ENTITY_TABLES[entity]
    return select(*(table.c[name] for name in columns)).subquery(f"catalog_{entity}")


INSTITUTIONS = _view("institutions", "id", "accession", "alias", "doc", "country", "name_en")
"""Institutions: the record (`doc`) and the declared country (ISO 3166 alpha-2)."""
STUDIES = _view("studies", "id", "accession", "public", "doc")
"""Studies: whether public, and the record (its HGR flags in `doc`)."""
DATASETS = _view("datasets", "id", "accession", "study_id", "access_tier", "doc")
"""Datasets: their study, access tier and record."""
FILES = _view(
    "files",
    "id",
    "accession",
    "alias",
    "run_id",
    "analysis_id",
    "format",
    "md5",
    "sha256",
    "size",
    "created_by",
)
"""Data files as submitted: their run or analysis, format, declared checksums and size."""
ANALYSES = _view("analyses", "id", "accession", "reference_assembly")
"""Analyses: the reference assembly their files are aligned or called against."""

SEQUENCE_STRATEGIES = ("WGS", "WES")


def institution_id(session: Session, accession: str) -> int | None:
    """The row id of the institution `accession`, or None when there is none."""
    table = ENTITY_TABLES["institutions"]
    found = session.execute(
        select(table.c.id).where(table.c.accession == accession.strip())
    ).scalar()
    return None if found is None else int(found)


def institution_country(session: Session, accession: str) -> str | None:
    """The country the institution `accession` declared in its record."""
    table = ENTITY_TABLES["institutions"]
    return session.execute(
        select(table.c.country).where(table.c.accession == accession)
    ).scalar_one_or_none()


def dataset_id(session: Session, accession: str) -> int | None:
    """The row id of the dataset `accession`, or None when there is none."""
    table = ENTITY_TABLES["datasets"]
    found = session.execute(select(table.c.id).where(table.c.accession == accession)).scalar()
    return None if found is None else int(found)


def datasets_releasing(
    session: Session, run_id: int | None, analysis_id: int | None
) -> tuple[str, ...]:
    """Accessions of the datasets that release a file of this run or analysis."""
    datasets = ENTITY_TABLES["datasets"]
    found: set[str] = set()
    for (entity, field), target in (
        (("datasets", "runs"), run_id),
        (("datasets", "analyses"), analysis_id),
    ):
        if target is None:
            continue
        link = LINK_TABLES[(entity, field)]
        found.update(
            session.execute(
                select(datasets.c.accession)
                .join(link, link.c.datasets_id == datasets.c.id)
                .where(link.c.target_id == target)
            ).scalars()
        )
    return tuple(sorted(found))


def study_datasets(session: Session, study_accession: str) -> list[str]:
    """The accessions of the datasets of the study `study_accession`, in the order made."""
    query = (
        select(DATASETS.c.accession)
        .join(STUDIES, STUDIES.c.id == DATASETS.c.study_id)
        .where(STUDIES.c.accession == study_accession)
        .order_by(DATASETS.c.id)
    )
    return [str(accession) for accession in session.execute(query).scalars()]


def dataset_file_ids(dataset_id: int) -> Select[tuple[int]]:
    """A statement selecting the ids of the files of a dataset (through its runs and its
    analyses), for a capability that keeps something per file."""
    files = ENTITY_TABLES["files"]
    dataset_runs = LINK_TABLES[("datasets", "runs")]
    dataset_analyses = LINK_TABLES[("datasets", "analyses")]
    return select(files.c.id).where(
        files.c.run_id.in_(
            select(dataset_runs.c.target_id).where(dataset_runs.c.datasets_id == dataset_id)
        )
        | files.c.analysis_id.in_(
            select(dataset_analyses.c.target_id).where(dataset_analyses.c.datasets_id == dataset_id)
        )
    )


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


@dataclass(frozen=True, slots=True)
class StudyConsent:
    """What a study's record and its consents say about its data leaving the country."""

    hgr_information: bool
    important_pedigree: bool
    specific_region_population: bool
    consent_abroad_allowed: bool  # every consent of the study allows it (and there is one)


def study_consent(session: Session, study_id: int) -> StudyConsent:
    """The HGR flags of a study's record and whether its consents allow provision abroad."""
    studies, consents = ENTITY_TABLES["studies"], ENTITY_TABLES["consents"]
    study = session.execute(select(studies.c.doc).where(studies.c.id == study_id)).scalar_one()
    abroad = (
        session.execute(select(consents.c.abroad_allowed).where(consents.c.study_id == study_id))
        .scalars()
        .all()
    )
    return StudyConsent(
        hgr_information=bool(study.get("hgr_information", True)),
        important_pedigree=bool(study.get("important_pedigree")),
        specific_region_population=bool(study.get("specific_region_population")),
        consent_abroad_allowed=bool(abroad) and all(abroad),
    )


def hgr_record_in_force(session: Session, study_id: int, category: str, on: date) -> str | None:
    """The number of the study's latest HGR record of `category` in force on `on`."""
    hgr = ENTITY_TABLES["hgr_records"]
    return (
        session.execute(
            select(hgr.c.number)
            .where(
                hgr.c.study_id == study_id,
                hgr.c.category == category,
                hgr.c.issued_on <= on,
                or_(hgr.c.valid_until.is_(None), hgr.c.valid_until >= on),
            )
            .order_by(hgr.c.issued_on.desc(), hgr.c.id.desc())
        )
        .scalars()
        .first()
    )


@dataclass(frozen=True, slots=True)
class Approval:
    """An ethics approval or HGR record with an end of validity."""

    kind: str  # ethics_approval | hgr_record
    accession: str
    study: str
    number: str
    valid_until: date


def approvals_with_an_end(session: Session) -> list[Approval]:
    """Every ethics approval and HGR record that has an end of validity."""
    studies = ENTITY_TABLES["studies"]
    found = []
    for kind, entity in (("ethics_approval", "ethics_approvals"), ("hgr_record", "hgr_records")):
        table = ENTITY_TABLES[entity]
        found += [
            Approval(kind, r.accession, r.study, r.number, r.valid_until)
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
    return found


def provision_abroad_filings(session: Session) -> dict[str, list[str]]:
    """The numbers of every study's provision-abroad filings, by study accession."""
    studies, hgr = ENTITY_TABLES["studies"], ENTITY_TABLES["hgr_records"]
    filings: dict[str, list[str]] = {}
    for study, number in session.execute(
        select(studies.c.accession, hgr.c.number)
        .join(studies, studies.c.id == hgr.c.study_id)
        .where(hgr.c.category == "provision_abroad")
    ):
        filings.setdefault(study, []).append(number)
    return filings
