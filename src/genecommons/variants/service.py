"""Use cases of the variant store: build a dataset's store from its joint-called VCF, with the
samples grouped by what the catalog says of their individuals; look variants up; load the
node's public reference counts and open them."""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from genecommons.access.models import Action, Resource, Subject
from genecommons.access.policy import require
from genecommons.audit.events import EventTag, record_event
from genecommons.catalog.tables import ENTITY_TABLES, LINK_TABLES
from genecommons.config import Settings
from genecommons.errors import NotFoundError
from genecommons.variants.normalize import parse_key
from genecommons.variants.reference import (
    ReferenceCounts,
    ReferenceSummary,
    build_reference,
    read_sample_names,
)
from genecommons.variants.store import (
    SampleInfo,
    SiteCounts,
    StoreSummary,
    VariantStore,
    build_store,
)

logger = logging.getLogger(__name__)


class ArchivedVcf(Protocol):
    """What the sink needs to know of an archived file (archive.service.CatalogFile)."""

    @property
    def alias(self) -> str:
        """The file's name in its submission."""

    @property
    def format(self) -> str:
        """Its declared format."""

    @property
    def datasets(self) -> tuple[str, ...]:
        """The datasets that release it."""


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


@contextlib.contextmanager
def _indexed(vcf: Path, staging: Path) -> Iterator[Path]:
    """`vcf` with a tabix or CSI index beside it (made in a temporary folder when missing)."""
    if any(vcf.with_name(vcf.name + suffix).exists() for suffix in (".tbi", ".csi")):
        yield vcf
        return
    import pysam

    staging.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=staging, prefix="variants-") as folder:
        linked = Path(folder) / vcf.name
        linked.symlink_to(vcf.resolve())
        try:
            pysam.tabix_index(str(linked), preset="vcf", keep_original=True, force=True)
        except OSError:
            pysam.tabix_index(str(linked), preset="vcf", keep_original=True, force=True, csi=True)
        yield linked


class VariantStoreSink:
    """Builds the variant store of each dataset whose joint-called VCF a submission archives,
    inside the submission's transaction (archive.service.ArchivedFileHook): the store appears
    with the catalog records or not at all."""

    def __init__(self, settings: Settings, subject: Subject) -> None:
        self.settings = settings
        self.subject = subject
        self.built: list[StoreSummary] = []
        self.skipped: list[str] = []

    def take(self, session: Session, file: ArchivedVcf, path: Path) -> None:
        """Build the stores of the datasets that release `file`, if it is a VCF."""
        if file.format != "vcf":
            return
        for dataset in file.datasets:
            target = store_path(self.settings, dataset)
            if target.exists():
                # a dataset has one store, from its first joint-called VCF; rebuilding on a
                # new file is a separate step (genecommons variants build)
                self.skipped.append(dataset)
                continue
            with open(path, "rb") as handle:
                head = handle.read(18)
            if len(head) < 14 or head[12:14] != b"BC":
                self.skipped.append(dataset)
                logger.warning("%s is not bgzipped: no variant store for %s", file.alias, dataset)
                continue
            with _indexed(path, self.settings.staging_dir) as vcf:
                summary = build_store(vcf, target, samples=dataset_samples(session, dataset))
            self.built.append(summary)
            _record_build(session, self.subject, dataset, file.alias, summary)

    def discard(self) -> None:
        """Remove the stores built (the submission did not commit)."""
        for summary in self.built:
            shutil.rmtree(summary.path, ignore_errors=True)
        self.built.clear()


def _record_build(
    session: Session, subject: Subject, dataset: str, name: str, summary: StoreSummary
) -> None:
    record_event(
        session,
        tag=EventTag.VARIANT_STORE_BUILT,
        actor=subject.id,
        subject=dataset,
        details={
            "file": name,
            "samples": summary.samples,
            "records": summary.records,
            "sites": summary.sites,
            "groups": list(summary.groups),
        },
    )


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
    with _indexed(vcf, settings.staging_dir) as indexed:
        summary = build_store(indexed, store_path(settings, dataset), samples=samples)
    with factory.begin() as session:
        _record_build(session, subject, dataset, vcf.name, summary)
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


def open_reference(settings: Settings) -> ReferenceCounts | None:
    """The node's public reference counts (GENECOMMONS_BEACON_REFERENCE), or None when no
    reference has been loaded; ConfigurationError when the file is not a reference."""
    path = settings.effective_beacon_reference
    if not path.exists():
        return None
    return ReferenceCounts(path)


def load_reference(
    factory: sessionmaker[Session],
    settings: Settings,
    *,
    subject: Subject,
    vcf: Path,
    samples_file: Path | None = None,
) -> ReferenceSummary:
    """Build the node's public reference counts from `vcf` (a sites VCF with AC and AN, or
    genotypes: of all samples, or of those `samples_file` names), replacing the previous
    reference, and record it in the audit log."""
    require(subject, Action.SUBMIT, Resource("reference"))
    samples = read_sample_names(samples_file) if samples_file is not None else None
    with factory.begin() as session:

        def record(summary: ReferenceSummary) -> None:
            # inside the transaction, before the new file replaces the old: an event that
            # cannot be written leaves the previous reference in place
            source = summary.source
            record_event(
                session,
                tag=EventTag.REFERENCE_LOADED,
                actor=subject.id,
                subject=source.file,
                details={
                    "source": source.file,
                    "sha256": source.sha256,
                    "sites": source.sites,
                    "alleles": source.alleles,
                    "records": summary.records,
                    "counted_from": source.counted_from,
                    "samples": source.samples,
                },
            )
            session.flush()

        return build_reference(
            vcf, settings.effective_beacon_reference, samples=samples, before_replace=record
        )
