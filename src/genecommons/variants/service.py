"""Use cases of the variant store: build a dataset's store from its joint-called VCF, with the
samples grouped by what the catalog says of their individuals, bound to the dataset and the
VCF (store_service.py); look variants up; load the node's public reference counts and open
them."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import Protocol

from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from genecommons import clock
from genecommons.catalog import reads as catalog_reads
from genecommons.config import Settings
from genecommons.db import write_transaction
from genecommons.errors import ConflictError, NotFoundError
from genecommons.ledger.events import EventTag, record_event
from genecommons.policy.decision import require
from genecommons.policy.models import Action, Resource, Subject
from genecommons.progress import SILENT, Progress
from genecommons.secrets import node_keys
from genecommons.variants import store_service, upkeep
from genecommons.variants.manifest import new_binding, shared_groups, store_name
from genecommons.variants.normalize import parse_key
from genecommons.variants.reference import (
    ReferenceCounts,
    ReferenceSummary,
    build_reference,
    read_sample_names,
)
from genecommons.variants.store import SampleInfo, SiteCounts, StoreSummary, build_store
from genecommons.variants.store_service import store_path
from genecommons.variants.upkeep import RETIRED, Lease

logger = logging.getLogger(__name__)

__all__ = ["store_path"]  # where readers find a dataset's store (store_service.py)


class ArchivedVcf(Protocol):
    """What the sink needs to know of an archived file (archive.catalog_files.CatalogFile)."""

    @property
    def alias(self) -> str:
        """The file's name in its submission."""

    @property
    def format(self) -> str:
        """Its declared format."""

    @property
    def sha256(self) -> str:
        """The SHA-256 of its plaintext, as the archive checked it."""

    @property
    def datasets(self) -> tuple[str, ...]:
        """The datasets that release it."""


def dataset_samples(session: Session, dataset: str) -> dict[str, SampleInfo]:
    """The samples of a dataset (through its analyses and its runs), by alias and by
    accession (a VCF may name them either way), with their individual's population and sex."""
    rows = catalog_reads.dataset_sample_rows(session, store_service.dataset_id(session, dataset))
    found: dict[str, SampleInfo] = {}
    for row in rows:
        info = SampleInfo(population=row.population, sex=row.sex)
        found[row.alias] = found[row.accession] = info
    return found


def _is_bgzipped(path: Path) -> bool:
    with open(path, "rb") as handle:
        head = handle.read(18)
    return len(head) >= 14 and head[12:14] == b"BC"


class VariantStoreSink:
    """Builds the variant store of each dataset whose joint-called VCF a submission archives,
    inside the submission's transaction (archive.ingestion.ArchivedFileHook): the store and its
    binding appear with the catalog records or not at all. Datasets that release the same VCF
    with the same samples share one store, built once for them all (and named after them: it
    serves no other dataset). It never adopts a directory it did not build: a dataset keeps the
    store its committed binding names, and whatever else lies at the store's place is a
    leftover, removed before the build."""

    def __init__(
        self, settings: Settings, subject: Subject, *, progress: Progress = SILENT
    ) -> None:
        self.settings = settings
        self.subject = subject
        self.progress = progress
        self.built: list[StoreSummary] = []
        self.skipped: list[str] = []

    def take(self, session: Session, file: ArchivedVcf, path: Path) -> None:
        """Build the stores of the datasets that release `file`, if it is a VCF."""
        if file.format != "vcf":
            return
        unbound: list[str] = []
        for dataset in file.datasets:
            if store_service.binding_of(session, dataset) is not None:
                # a dataset has one store, from its first joint-called VCF; rebuilding on a
                # new file is a separate step (genecommons variants build)
                self.skipped.append(dataset)
            elif not _is_bgzipped(path):
                self.skipped.append(dataset)
                logger.warning("%s is not bgzipped: no variant store for %s", file.alias, dataset)
            else:
                unbound.append(dataset)
        for datasets, samples in _sharing(session, unbound):
            self._build(session, file, path, datasets, samples)

    def _build(
        self,
        session: Session,
        file: ArchivedVcf,
        path: Path,
        datasets: tuple[str, ...],
        samples: dict[str, SampleInfo],
    ) -> None:
        """Build one store of `file` for `datasets` (the same samples) and bind it to each."""
        name = store_name(datasets)
        target = store_path(self.settings, name)
        _clear_unbound(target)
        with self.progress.stage(f"building the variant store of {name}", unit="sites") as step:
            summary = build_store(
                path,
                target,
                samples=samples,
                keys=node_keys(self.settings),
                binding=new_binding(
                    dataset=name, source_sha256=file.sha256, source_name=file.alias
                ),
                progress=step.advance,
            )
        if not self.built:
            # each lease is held until the transaction ends: a store whose binding is not
            # yet committed is no leftover to a process cleaning up meanwhile
            event.listen(session, "after_commit", self._committed, once=True)
        self.built.append(summary)
        for dataset in datasets:
            store_service.bind(
                session, dataset=dataset, summary=summary, subject=self.subject, now=clock.now()
            )
            _record_build(session, self.subject, dataset, file.alias, summary)

    def _committed(self, _session: Session) -> None:
        for summary in self.built:
            summary.lease.release()  # bound now: `built` stays, as what was made

    def discard(self) -> None:
        """Remove the stores built (the submission did not commit)."""
        for summary in self.built:
            shutil.rmtree(summary.path, ignore_errors=True)
            summary.lease.release()
        self.built.clear()


def _sharing(
    session: Session, datasets: list[str]
) -> list[tuple[tuple[str, ...], dict[str, SampleInfo]]]:
    """`datasets` (releasing one VCF) in groups of the same samples, the same way grouped
    (population, sex), each small enough to be named (manifest.shared_groups), in order."""
    by_samples: dict[tuple[tuple[str, str | None, str | None], ...], list[str]] = {}
    samples_of: dict[str, dict[str, SampleInfo]] = {}
    for dataset in datasets:
        samples = samples_of[dataset] = dataset_samples(session, dataset)
        key = tuple(sorted((name, info.population, info.sex) for name, info in samples.items()))
        by_samples.setdefault(key, []).append(dataset)
    groups = [
        (group, samples_of[group[0]])
        for same in by_samples.values()
        for group in shared_groups(same)
    ]
    return sorted(groups, key=lambda found: found[0])


def _clear_unbound(target: Path) -> None:
    """Remove what lies at `target`, which no committed binding names (the caller checked): a
    leftover, never adopted; ConflictError when another process is building it."""
    if not target.exists():
        return
    lease = Lease.take(target)
    if lease is None:
        raise ConflictError(
            f"Another process is building the variant store at {target}; submit again when it "
            "has finished.",
            message_zh=f"另一进程正在 {target} 建立变异库；请待其完成后重新提交。",
        )
    with lease:
        logger.warning("removing %s: no committed binding names it (a leftover)", target)
        shutil.rmtree(target)


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
            "sha256": summary.binding.source_sha256,
            "store": summary.binding.store_id,
            "samples": summary.samples,
            "records": summary.records,
            "sites": summary.sites,
            "groups": list(summary.groups),
        },
    )


def _sha256(path: Path, progress: Progress) -> str:
    digest = hashlib.sha256()
    with (
        progress.stage(
            f"checksumming {path.name}", total=path.stat().st_size, unit="bytes"
        ) as step,
        path.open("rb") as handle,
    ):
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
            step.advance(len(chunk))
    return digest.hexdigest()


def build_dataset_store(
    factory: sessionmaker[Session],
    settings: Settings,
    *,
    subject: Subject,
    dataset: str,
    vcf: Path,
    progress: Progress = SILENT,
) -> StoreSummary:
    """Build the variant store of `dataset` from its joint-called VCF (bgzipped), replacing the
    store it had: the new store is built aside, then bound and put in place in one
    transaction; the old one is removed once that commits. `progress` hears the checksum and
    the build."""
    require(subject, Action.SUBMIT, Resource("dataset", dataset))
    with factory() as session:
        store_service.dataset_id(session, dataset)  # NotFoundError before any work
        samples = dataset_samples(session, dataset)
    target = store_path(settings, dataset)
    source_sha256 = _sha256(vcf, progress)
    with progress.stage(f"building the variant store of {dataset}", unit="sites") as step:
        summary = build_store(
            vcf,
            target,
            samples=samples,
            keys=node_keys(settings),
            binding=new_binding(dataset=dataset, source_sha256=source_sha256, source_name=vcf.name),
            progress=step.advance,
            into_place=False,
        )
    retired: Path | None = None
    try:
        with write_transaction(factory) as session:
            store_service.bind(
                session, dataset=dataset, summary=summary, subject=subject, now=clock.now()
            )
            _record_build(session, subject, dataset, vcf.name, summary)
            session.flush()  # the binding is written (and its row locked) before any rename
            if target.exists():  # the store it replaces, or a leftover: set aside
                retired = target.with_name(f".{dataset}{RETIRED}{uuid.uuid4().hex}")
                os.rename(target, retired)
            os.rename(summary.path, target)
    except BaseException:
        if upkeep.store_id_of(target) == summary.binding.store_id:
            os.rename(target, summary.path)  # not committed: the new store is no one's
        if retired is not None and not target.exists():
            os.rename(retired, target)
        shutil.rmtree(summary.path, ignore_errors=True)
        summary.lease.release()
        raise
    summary.lease.release()
    if retired is not None:
        upkeep.remove(retired)
    return dataclasses.replace(summary, path=target)


def variant_counts(
    factory: sessionmaker[Session],
    settings: Settings,
    *,
    subject: Subject,
    dataset: str,
    key: str,
) -> SiteCounts | None:
    """The counts by group of the variant `chrom-pos-ref-alt` in a dataset (record tier)."""
    require(subject, Action.READ_RECORDS, Resource("dataset", dataset))
    with factory() as session:
        store = store_service.open_store(session, settings, dataset)
    if store is None:
        raise NotFoundError(
            f"Dataset {dataset} has no variant store yet: build it with `genecommons variants "
            "build`.",
            message_zh=f"数据集 {dataset} 尚无变异库：请用 `genecommons variants build` 建立。",
        )
    return store.lookup(parse_key(key))


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

    def record(summary: ReferenceSummary) -> None:
        # committed before the new file replaces the old (in a short transaction of its
        # own: the build holds no write lock): an event that cannot be written leaves the
        # previous reference in place
        with write_transaction(factory) as session:
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

    return build_reference(
        vcf, settings.effective_beacon_reference, samples=samples, before_replace=record
    )
