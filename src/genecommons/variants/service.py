"""Use cases of the variant store: build a dataset's store from its joint-called VCF, with the
samples grouped by what the catalog says of their individuals; look variants up."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from genecommons.access.models import Action, Resource, Subject
from genecommons.access.policy import require
from genecommons.audit.events import EventTag, record_event
from genecommons.catalog.tables import ENTITY_TABLES, LINK_TABLES
from genecommons.config import Settings
from genecommons.errors import NotFoundError
from genecommons.variants.normalize import parse_key
from genecommons.variants.store import (
    SampleInfo,
    SiteCounts,
    StoreSummary,
    VariantStore,
    build_store,
)


def store_path(settings: Settings, dataset: str) -> Path:
    """Where the store of `dataset` lives."""
    return settings.data_dir / "variants" / dataset


def _dataset_id(session: Session, dataset: str) -> int:
    datasets = ENTITY_TABLES["datasets"]
    found = session.execute(select(datasets.c.id).where(datasets.c.accession == dataset)).first()
    if found is None:
        raise NotFoundError(f"No dataset {dataset}.", message_zh=f"不存在数据集 {dataset}。")
    return int(found.id)


def dataset_samples(session: Session, dataset: str) -> dict[str, SampleInfo]:
    """The samples of a dataset (through its analyses and its runs), by alias and by
    accession (a VCF may name them either way), with their individual's population and sex."""
    samples, individuals = ENTITY_TABLES["samples"], ENTITY_TABLES["individuals"]
    runs, experiments = ENTITY_TABLES["runs"], ENTITY_TABLES["experiments"]
    dataset_runs = LINK_TABLES[("datasets", "runs")]
    dataset_analyses = LINK_TABLES[("datasets", "analyses")]
    analysis_samples = LINK_TABLES[("analyses", "samples")]
    dataset_id = _dataset_id(session, dataset)
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
    rows = session.execute(
        select(samples.c.alias, samples.c.accession, individuals.c.population, individuals.c.sex)
        .join(individuals, individuals.c.id == samples.c.individual_id)
        .where(samples.c.id.in_(select(members.c.sample_id)))
    ).all()
    found: dict[str, SampleInfo] = {}
    for row in rows:
        info = SampleInfo(population=row.population, sex=row.sex)
        found[row.alias] = found[row.accession] = info
    return found


def build_dataset_store(
    factory: sessionmaker[Session],
    settings: Settings,
    *,
    subject: Subject,
    dataset: str,
    vcf: Path,
) -> StoreSummary:
    """Build the variant store of `dataset` from its joint-called VCF (bgzipped, indexed)."""
    require(subject, Action.SUBMIT, Resource("dataset", dataset))
    with factory() as session:
        samples = dataset_samples(session, dataset)
    summary = build_store(vcf, store_path(settings, dataset), samples=samples)
    with factory.begin() as session:
        record_event(
            session,
            tag=EventTag.VARIANT_STORE_BUILT,
            actor=subject.id,
            subject=dataset,
            details={
                "file": vcf.name,
                "samples": summary.samples,
                "records": summary.records,
                "sites": summary.sites,
                "groups": list(summary.groups),
            },
        )
    return summary


def variant_counts(
    settings: Settings, *, subject: Subject, dataset: str, key: str
) -> SiteCounts | None:
    """The counts by group of the variant `chrom-pos-ref-alt` in a dataset (record tier)."""
    require(subject, Action.READ_RECORDS, Resource("dataset", dataset))
    path = store_path(settings, dataset)
    if not path.exists():
        raise NotFoundError(
            f"Dataset {dataset} has no variant store yet: build it with `genecommons variants "
            "build`.",
            message_zh=f"数据集 {dataset} 尚无变异库：请用 `genecommons variants build` 建立。",
        )
    return VariantStore(path).lookup(parse_key(key))
