"""Use cases of the variant stores as things on disk: the binding of each store to its dataset
and source (recorded with the catalog), opening a store only as the catalog bound it, and
verifying the stores directory, where leftovers are found and removed.

A leftover is a store no committed row binds: one built by a submission that never committed
(killed, or rolled back), a store being replaced that was renamed aside, a store that was
moved. A leftover is never served, never adopted by a later build, and removed by
`genecommons variants verify --remove` and at `genecommons serve` start; a store under a build
in progress (its lease held by another process) is left alone.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session, sessionmaker

from genecommons.catalog import reads as catalog_reads
from genecommons.config import Settings
from genecommons.db import write_transaction
from genecommons.errors import NotFoundError
from genecommons.ledger.events import EventTag, record_event
from genecommons.policy.decision import require
from genecommons.policy.models import Action, Resource, Subject
from genecommons.secrets import node_keys
from genecommons.variants import upkeep
from genecommons.variants.manifest import StoreBinding
from genecommons.variants.sealed import StoreIntegrityError
from genecommons.variants.store import StoreSummary, VariantStore
from genecommons.variants.tables import variant_stores

logger = logging.getLogger(__name__)

State = Literal["ok", "damaged", "leftover", "legacy", "in-progress", "missing", "restored"]


def stores_root(settings: Settings) -> Path:
    """The directory of the variant stores."""
    return settings.data_dir / "variants"


def store_path(settings: Settings, name: str) -> Path:
    """Where the store called `name` lives (a binding's `dataset`: the accession of its
    dataset, or of the datasets that share it joined by "+")."""
    return stores_root(settings) / name


def store_id_at(path: Path) -> str | None:
    """The id of the store at `path` (None when there is no store there)."""
    return upkeep.store_id_of(path)


def dataset_id(session: Session, dataset: str) -> int:
    """The catalog row of the dataset `dataset` (NotFoundError when there is none)."""
    found = catalog_reads.dataset_id(session, dataset)
    if found is None:
        raise NotFoundError(f"No dataset {dataset}.", message_zh=f"不存在数据集 {dataset}。")
    return found


def _binding(row: Any) -> StoreBinding:  # a row of variant_stores
    binding = StoreBinding(
        str(row.store_id), str(row.store), str(row.source_sha256), str(row.source_name)
    )
    if str(row.dataset) not in binding.datasets:
        raise _not_built_for(str(row.dataset), binding)
    return binding


def _not_built_for(dataset: str, binding: StoreBinding) -> StoreIntegrityError:
    return StoreIntegrityError(
        f"The variant store {binding.dataset} was not built for {dataset}: a store serves only "
        "the datasets it was built for. Rebuild the store of "
        f"{dataset} with `genecommons variants build`.",
        message_zh=f"变异库 {binding.dataset} 并非为 {dataset} 建立，不能为其服务。请用 "
        f"`genecommons variants build` 重建 {dataset} 的变异库。",
        details={"dataset": dataset, "store": binding.dataset},
    )


def binding_of(session: Session, dataset: str) -> StoreBinding | None:
    """The store the catalog binds to `dataset` (None when it has none)."""
    row = session.execute(select(variant_stores).where(variant_stores.c.dataset == dataset)).first()
    return _binding(row) if row is not None else None


def store_samples(session: Session, dataset: str) -> int | None:
    """How many samples the store bound to `dataset` holds (None when it has none)."""
    found = session.execute(
        select(variant_stores.c.samples).where(variant_stores.c.dataset == dataset)
    ).scalar()
    return int(found) if found is not None else None


def binding_named(session: Session, name: str) -> StoreBinding | None:
    """The committed binding of the store called `name` (None when none binds it)."""
    row = session.execute(select(variant_stores).where(variant_stores.c.store == name)).first()
    return _binding(row) if row is not None else None


def all_bindings(session: Session) -> dict[str, StoreBinding]:
    """Every committed binding, by dataset accession (a shared store under each of its
    datasets)."""
    return {str(r.dataset): _binding(r) for r in session.execute(select(variant_stores)).all()}


def bind(
    session: Session, *, dataset: str, summary: StoreSummary, subject: Subject, now: datetime
) -> None:
    """Record (replacing any before) that `dataset` is served by the store `summary` built,
    inside the caller's transaction; StoreIntegrityError when that store was not built for
    `dataset`."""
    binding = summary.binding
    if dataset not in binding.datasets:
        raise _not_built_for(dataset, binding)
    row_id = dataset_id(session, dataset)
    session.execute(delete(variant_stores).where(variant_stores.c.dataset_id == row_id))
    session.execute(
        insert(variant_stores).values(
            dataset_id=row_id,
            dataset=dataset,
            store=binding.dataset,
            store_id=binding.store_id,
            source_sha256=binding.source_sha256,
            source_name=binding.source_name[:500],
            samples=summary.samples,
            records=summary.records,
            sites=summary.sites,
            built_at=now,
            built_by=subject.id,
        )
    )


def open_store(session: Session, settings: Settings, dataset: str) -> VariantStore | None:
    """The store of `dataset` as the catalog binds it (None when the dataset has none);
    StoreIntegrityError when what is on disk is not that store."""
    binding = binding_of(session, dataset)
    if binding is None:
        return None
    return open_bound(settings, binding)


def open_bound(settings: Settings, binding: StoreBinding) -> VariantStore:
    """The store `binding` names, checked against it."""
    path = store_path(settings, binding.dataset)
    if not path.is_dir():
        raise StoreIntegrityError(
            f"The variant store of {binding.dataset} is recorded but missing at {path}: "
            "restore the data directory from the backup, or rebuild it with `genecommons "
            "variants build`.",
            message_zh=f"{binding.dataset} 的变异库已登记但在 {path} 缺失：请从备份恢复数据目录，"
            "或用 `genecommons variants build` 重建。",
            details={"dataset": binding.dataset},
        )
    return VariantStore(path, keys=node_keys(settings), binding=binding)


@dataclass(frozen=True, slots=True)
class Finding:
    """What `verify_stores` found of one store or directory."""

    path: Path
    dataset: str | None
    state: State
    detail: str
    removed: bool = False


def verify_stores(
    factory: sessionmaker[Session],
    settings: Settings,
    *,
    subject: Subject,
    remove: bool = False,
    deep: bool = True,
    keep_legacy: bool = False,
) -> list[Finding]:
    """Check every store against its binding (and, when `deep`, that every value it holds
    authenticates), and find leftovers, plaintext stores of the format before encryption, and
    recorded stores that are missing; with `remove`, remove leftovers and plaintext stores and
    restore a store left aside by an interrupted replacement (plaintext stores stay with
    `keep_legacy`). Removals are audited."""
    require(subject, Action.SUBMIT, Resource("variant-stores"))
    root = stores_root(settings)
    with factory() as session:
        bound = {b.dataset: b for b in all_bindings(session).values()}  # by store name
    findings: list[Finding] = []
    seen: set[str] = set()
    for found in upkeep.scan(root):
        binding = bound.get(found.dataset or "")
        if found.kind == "store" and binding is not None and found.store_id == binding.store_id:
            seen.add(binding.dataset)
            findings.append(_check(settings, found.path, binding, deep=deep))
            continue
        removing = remove and not (keep_legacy and found.kind == "legacy")
        findings.append(_leftover(factory, settings, found, remove=removing))
        if findings[-1].state == "restored" and found.dataset:
            seen.add(found.dataset)
    for dataset, binding in sorted(bound.items()):
        if dataset not in seen:
            findings.append(
                Finding(
                    store_path(settings, dataset),
                    dataset,
                    "missing",
                    f"store {binding.store_id} is recorded but not on disk: rebuild it with "
                    "`genecommons variants build`",
                )
            )
    removed = [f for f in findings if f.removed]
    with write_transaction(factory) as session:
        for finding in removed:
            record_event(
                session,
                tag=EventTag.VARIANT_STORE_REMOVED,
                actor=subject.id,
                subject=finding.dataset,
                details={"path": finding.path.name, "state": finding.state},
            )
        if deep:
            record_event(
                session,
                tag=EventTag.VARIANT_STORE_VERIFIED,
                actor=subject.id,
                details={
                    state: sum(1 for f in findings if f.state == state)
                    for state in sorted({f.state for f in findings})
                },
            )
    return findings


def _check(settings: Settings, path: Path, binding: StoreBinding, *, deep: bool) -> Finding:
    try:
        store = VariantStore(path, keys=node_keys(settings), binding=binding)
        store.calls()  # the sealed attributes carry the same binding
        if deep:
            store.authenticate()
    except StoreIntegrityError as error:
        return Finding(path, binding.dataset, "damaged", error.message)
    return Finding(path, binding.dataset, "ok", f"store {binding.store_id}")


def _leftover(
    factory: sessionmaker[Session], settings: Settings, found: upkeep.Found, *, remove: bool
) -> Finding:
    """A directory that no committed binding names at its place: removed (or restored) only
    when no other process holds its lease, and only after the binding is read again."""
    legacy = found.kind == "legacy"
    state: State = "legacy" if legacy else "leftover"
    what = {
        "legacy": "built before stores were encrypted (plaintext genotypes): rebuild it with "
        "`genecommons variants build`",
        "building": "a build that never finished or never committed",
        "retired": "a store set aside while being replaced",
        "store": "a store no committed row binds (a submission that did not commit, or moved)",
        "unknown": "not a variant store",
    }[found.kind]
    if not remove:
        return Finding(found.path, found.dataset, state, what)
    lease = upkeep.Lease.take(found.path)
    if lease is None:
        return Finding(found.path, found.dataset, "in-progress", "held by another process")
    with lease:
        with factory() as session:  # read after taking the lease: a build commits first
            binding = binding_named(session, found.dataset) if found.dataset else None
        current = upkeep.store_id_of(found.path)  # it may have changed since the scan
        if binding is not None and current == binding.store_id:
            # the bound store itself, out of its place: never removed, put back
            if found.kind == "store":
                return Finding(found.path, found.dataset, "ok", f"store {current}")
            target = store_path(settings, binding.dataset)
            misplaced = target.exists() and upkeep.store_id_of(target) != binding.store_id
            if misplaced and not upkeep.remove(target):  # a leftover there goes first
                return Finding(found.path, found.dataset, "in-progress", "its place is busy")
            if target.exists():
                return Finding(found.path, found.dataset, state, what)
            os.rename(found.path, target)  # an interrupted replacement: put it back
            return Finding(found.path, found.dataset, "restored", f"{what}, put back in place")
        shutil.rmtree(found.path)
    return Finding(found.path, found.dataset, state, what, removed=True)


def clear_leftovers(
    factory: sessionmaker[Session], settings: Settings, *, subject: Subject
) -> list[Finding]:
    """Remove the leftovers at start (not plaintext stores, which `variants verify --remove`
    removes once the operator has seen them); what was found."""
    return verify_stores(
        factory, settings, subject=subject, remove=True, deep=False, keep_legacy=True
    )
