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

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Row, Select, distinct, func, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.selectable import Subquery

from genecommons.catalog.tables import (
    ENTITY_TABLES,
    LINK_TABLES,
    phenotype_records,
    phenotype_terms,
)


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

Rows = list[Row[*tuple[Any, ...]]]
"""Rows of a statement, read by column name."""


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


def dataset_sample_rows(session: Session, dataset_id: int) -> Rows:
    """The samples of the dataset with row id `dataset_id` (through its analyses and its runs):
    each sample's alias and accession, with its individual's population and sex."""
    samples, individuals = ENTITY_TABLES["samples"], ENTITY_TABLES["individuals"]
    runs, experiments = ENTITY_TABLES["runs"], ENTITY_TABLES["experiments"]
    dataset_runs = LINK_TABLES[("datasets", "runs")]
    dataset_analyses = LINK_TABLES[("datasets", "analyses")]
    analysis_samples = LINK_TABLES[("analyses", "samples")]
    by_analyses = (
        select(analysis_samples.c.target_id.label("sample_id"))
        .join(dataset_analyses, dataset_analyses.c.target_id == analysis_samples.c.analyses_id)
        .where(dataset_analyses.c.datasets_id == dataset_id)
    )
    by_runs = (
        select(experiments.c.sample_id.label("sample_id"))
        .join(runs, runs.c.experiment_id == experiments.c.id)
        .join(dataset_runs, dataset_runs.c.target_id == runs.c.id)
        .where(dataset_runs.c.datasets_id == dataset_id)
    )
    members = by_analyses.union(by_runs).subquery()
    query = (
        select(samples.c.alias, samples.c.accession, individuals.c.population, individuals.c.sex)
        .join(individuals, individuals.c.id == samples.c.individual_id)
        .where(samples.c.id.in_(select(members.c.sample_id)))
    )
    return list(session.execute(query).all())


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


# -- what the Beacon reads --------------------------------------------------------------------


def beacon_dataset_statements() -> tuple[Select[Any], Select[Any]]:
    """Two statements for the Beacon: every dataset (all its columns and `study_public`, in id
    order), and each dataset's analyses' reference assemblies (dataset id, assembly)."""
    datasets, studies = ENTITY_TABLES["datasets"], ENTITY_TABLES["studies"]
    analyses = ENTITY_TABLES["analyses"]
    links = LINK_TABLES[("datasets", "analyses")]
    rows = (
        select(datasets, studies.c.public.label("study_public"))
        .join(studies, studies.c.id == datasets.c.study_id)
        .order_by(datasets.c.id)
    )
    assemblies = select(links.c.datasets_id, analyses.c.reference_assembly).join(
        analyses, analyses.c.id == links.c.target_id
    )
    return rows, assemblies


def dataset_members(
    session: Session, dataset_ids: Sequence[int]
) -> tuple[Rows, dict[int, set[str]]]:
    """The samples of these datasets (through their analyses and their runs) with their
    individuals, in dataset then sample order; and, by individual id, the phenotypic features
    and diseases each individual has (not excluded)."""
    samples, individuals = ENTITY_TABLES["samples"], ENTITY_TABLES["individuals"]
    runs, experiments = ENTITY_TABLES["runs"], ENTITY_TABLES["experiments"]
    dataset_runs = LINK_TABLES[("datasets", "runs")]
    dataset_analyses = LINK_TABLES[("datasets", "analyses")]
    analysis_samples = LINK_TABLES[("analyses", "samples")]
    ids = list(dataset_ids)
    by_analyses = (
        select(
            dataset_analyses.c.datasets_id.label("dataset_id"),
            analysis_samples.c.target_id.label("sample_id"),
        )
        .join(analysis_samples, analysis_samples.c.analyses_id == dataset_analyses.c.target_id)
        .where(dataset_analyses.c.datasets_id.in_(ids))
    )
    by_runs = (
        select(
            dataset_runs.c.datasets_id.label("dataset_id"),
            experiments.c.sample_id.label("sample_id"),
        )
        .join(runs, runs.c.id == dataset_runs.c.target_id)
        .join(experiments, experiments.c.id == runs.c.experiment_id)
        .where(dataset_runs.c.datasets_id.in_(ids))
    )
    pairs = by_analyses.union(by_runs).subquery()
    rows = session.execute(
        select(
            pairs.c.dataset_id,
            samples.c.id.label("sample_id"),
            samples.c.accession.label("sample"),
            samples.c.alias.label("sample_alias"),
            individuals.c.id.label("individual_id"),
            individuals.c.accession.label("individual"),
            individuals.c.sex,
            individuals.c.population,
            individuals.c.ethnic_group,
            individuals.c.study_id,
        )
        .join(samples, samples.c.id == pairs.c.sample_id)
        .join(individuals, individuals.c.id == samples.c.individual_id)
        .order_by(pairs.c.dataset_id, samples.c.id)
    ).all()
    terms: dict[int, set[str]] = {}
    if rows:
        people = select(samples.c.individual_id).where(samples.c.id.in_(select(pairs.c.sample_id)))
        for individual_id, term in session.execute(
            select(phenotype_terms.c.individual_id, phenotype_terms.c.term_id).where(
                phenotype_terms.c.kind.in_(("feature", "disease")),
                phenotype_terms.c.excluded.is_(False),
                phenotype_terms.c.individual_id.in_(people),
            )
        ):
            terms.setdefault(int(individual_id), set()).add(str(term))
    return list(rows), terms


def run_sample(session: Session, run: str) -> str | None:
    """The accession of the sample the run `run` (an accession) sequenced, or None."""
    runs, experiments = ENTITY_TABLES["runs"], ENTITY_TABLES["experiments"]
    samples = ENTITY_TABLES["samples"]
    return session.execute(
        select(samples.c.accession)
        .join(experiments, experiments.c.sample_id == samples.c.id)
        .join(runs, runs.c.experiment_id == experiments.c.id)
        .where(runs.c.accession == run)
    ).scalar()


def study_id(session: Session, accession: str) -> int | None:
    """The row id of the study `accession`, or None when there is none."""
    studies = ENTITY_TABLES["studies"]
    return session.execute(select(studies.c.id).where(studies.c.accession == accession)).scalar()


def individuals_with_phenopackets(session: Session, accessions: Sequence[str]) -> Rows:
    """The individuals `accessions` (every column), each with its phenopacket (`document`,
    None when it has none)."""
    individuals = ENTITY_TABLES["individuals"]
    return list(
        session.execute(
            select(individuals, phenotype_records.c.document)
            .outerjoin(phenotype_records, phenotype_records.c.individual_id == individuals.c.id)
            .where(individuals.c.accession.in_(accessions))
        ).all()
    )


def samples_with_individuals(session: Session, accessions: Sequence[str]) -> Rows:
    """The samples `accessions` (every column), each with its individual's accession
    (`individual`)."""
    samples, individuals = ENTITY_TABLES["samples"], ENTITY_TABLES["individuals"]
    return list(
        session.execute(
            select(samples, individuals.c.accession.label("individual"))
            .join(individuals, individuals.c.id == samples.c.individual_id)
            .where(samples.c.accession.in_(accessions))
        ).all()
    )


def dataset_runs(session: Session, dataset_id: int) -> Rows:
    """The runs a dataset releases, in id order: accession, dates, the experiment's strategy,
    platform and record (`experiment`), and the biosample and individual accessions."""
    runs, experiments = ENTITY_TABLES["runs"], ENTITY_TABLES["experiments"]
    samples, individuals = ENTITY_TABLES["samples"], ENTITY_TABLES["individuals"]
    links = LINK_TABLES[("datasets", "runs")]
    return list(
        session.execute(
            select(
                runs.c.accession,
                runs.c.run_date,
                runs.c.created_at,
                experiments.c.library_strategy,
                experiments.c.platform,
                experiments.c.doc.label("experiment"),
                samples.c.accession.label("biosample"),
                individuals.c.accession.label("individual"),
            )
            .join(links, links.c.target_id == runs.c.id)
            .join(experiments, experiments.c.id == runs.c.experiment_id)
            .join(samples, samples.c.id == experiments.c.sample_id)
            .join(individuals, individuals.c.id == samples.c.individual_id)
            .where(links.c.datasets_id == dataset_id)
            .order_by(runs.c.id)
        ).all()
    )


def dataset_analyses(session: Session, dataset_id: int) -> tuple[Rows, dict[int, int]]:
    """The analyses a dataset releases (every column, in id order), and how many samples each
    analyses, by analysis id."""
    analyses = ENTITY_TABLES["analyses"]
    links = LINK_TABLES[("datasets", "analyses")]
    members = LINK_TABLES[("analyses", "samples")]
    rows = list(
        session.execute(
            select(analyses)
            .join(links, links.c.target_id == analyses.c.id)
            .where(links.c.datasets_id == dataset_id)
            .order_by(analyses.c.id)
        ).all()
    )
    counts: dict[int, int] = {}
    for analysis_id, _ in session.execute(
        select(members.c.analyses_id, members.c.target_id).where(
            members.c.analyses_id.in_([r.id for r in rows])
        )
    ):
        counts[int(analysis_id)] = counts.get(int(analysis_id), 0) + 1
    return rows, counts


def studies_with_sizes(session: Session, study_ids: Sequence[int]) -> tuple[Rows, dict[int, int]]:
    """The studies of these ids (every column, in id order), and how many individuals each
    holds, by study id."""
    studies, individuals = ENTITY_TABLES["studies"], ENTITY_TABLES["individuals"]
    ids = list(study_ids)
    rows = list(
        session.execute(select(studies).where(studies.c.id.in_(ids)).order_by(studies.c.id)).all()
    )
    sizes: dict[int, int] = {}
    for (study_id,) in session.execute(
        select(individuals.c.study_id).where(individuals.c.study_id.in_(ids))
    ):
        sizes[int(study_id)] = sizes.get(int(study_id), 0) + 1
    return rows, sizes
