"""What the recorded deliveries were marked on, and a file's digest as deliveries record it.

An export's marks are made on its dataset's variant store (`VARIANT_STORE`); a DRS or htsget
delivery's on the archived VCF it served (`file:ACC`). Tracing reads the same genotypes again.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from genecommons.archive.served import archived_object, source_of
from genecommons.config import Settings
from genecommons.errors import NotFoundError
from genecommons.fingerprint import copies, genotypes
from genecommons.fingerprint.tables import fingerprint_deliveries

VARIANT_STORE = "variant-store"  # the source of an export's marks


def variant_store_calls(factory: sessionmaker[Session], settings: Settings, dataset: str) -> Any:
    """The genotype store of `dataset` (a Zarr group), opened as the catalog binds it."""
    from genecommons.variants.store_service import open_store

    with factory() as session:
        store = open_store(session, settings, dataset)
    if store is None:
        raise NotFoundError(
            f"Dataset {dataset} has no variant store: build it with `genecommons variants build`.",
            message_zh=f"数据集 {dataset} 尚无变异库：请用 `genecommons variants build` 建立。",
            details={"dataset": dataset},
        )
    return store.calls()


def file_sha256(path: Path) -> str:
    """The SHA-256 of the file at `path`, in hex."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def delivered_sources(session: Session, dataset: str | None) -> list[tuple[str, str]]:
    """(dataset, source) of every recorded delivery: a copy is marked on the genotypes of its
    source, the dataset's variant store (exports) or an archived VCF (`file:ACC`, DRS/htsget)."""
    query = select(fingerprint_deliveries.c.dataset, fingerprint_deliveries.c.what)
    if dataset is not None:
        query = query.where(fingerprint_deliveries.c.dataset == dataset)
    found = {
        (str(d), str((what or {}).get("source") or VARIANT_STORE))
        for d, what in session.execute(query).all()
    }
    return sorted(found)


def source_genotypes(
    factory: sessionmaker[Session], settings: Settings, dataset: str, source: str
) -> genotypes.Genotypes:
    """The genotypes a delivery's marks were made on."""
    if source == VARIANT_STORE:
        return genotypes.from_zarr(variant_store_calls(factory, settings, dataset))
    with factory() as session:
        obj = archived_object(session, source.removeprefix("file:"))
    return copies.archived_genotypes(settings, source=source_of(obj))
