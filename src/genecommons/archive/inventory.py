"""What the archive holds: the listing of archived files, and the verification of every
stored object against its checksum (with the orphans no catalog row names)."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from genecommons import clock
from genecommons.archive.catalog_files import file_datasets
from genecommons.archive.ingest import Progress
from genecommons.archive.keys_and_store import object_store
from genecommons.archive.locks import object_base, object_locks
from genecommons.archive.recipient_copies import RecipientCopies
from genecommons.archive.store import ObjectStore
from genecommons.archive.tables import archive_objects
from genecommons.catalog import reads as catalog
from genecommons.config import Settings
from genecommons.db import write_transaction
from genecommons.errors import GeneCommonsError, InvalidInputError, NotFoundError
from genecommons.ledger.events import EventTag, record_event
from genecommons.policy.decision import require
from genecommons.policy.models import Action, Resource, Subject
from genecommons.progress import SILENT
from genecommons.progress import Progress as StagedProgress

logger = logging.getLogger(__name__)


def list_files(
    factory: sessionmaker[Session],
    *,
    subject: Subject,
    page: int = 1,
    page_size: int = 50,
    dataset: str | None = None,
) -> dict[str, Any]:
    """A page of archived files (accession, datasets, size, checksums, state)."""
    require(subject, Action.LIST_FILES, Resource("file"))
    if not 1 <= page <= 1_000_000 or not 1 <= page_size <= 1000:
        raise InvalidInputError(
            "page must be between 1 and 1,000,000 and page_size between 1 and 1000.",
            message_zh="page 须在 1 到 1,000,000 之间，page_size 须在 1 到 1000 之间。",
        )
    files = catalog.FILES
    statement = select(
        files.c.accession,
        files.c.alias,
        files.c.run_id,
        files.c.analysis_id,
        archive_objects,
    ).join(archive_objects, archive_objects.c.file_id == files.c.id)
    with factory() as session:
        if dataset is not None:
            statement = statement.where(files.c.id.in_(_dataset_file_ids(session, dataset)))
        total = session.execute(select(func.count()).select_from(statement.subquery())).scalar_one()
        rows = session.execute(
            statement.order_by(files.c.id).limit(page_size).offset((page - 1) * page_size)
        ).all()
        items = [
            {
                "accession": r.accession,
                "name": r.alias,
                "datasets": list(file_datasets(session, r.run_id, r.analysis_id)),
                "format": r.format,
                "size": r.plain_size,
                "md5": r.md5,
                "sha256": r.sha256,
                "encrypted_size": r.body_size,
                "index": r.index_kind,
                "state": r.state,
                "archived_at": clock.as_utc(r.archived_at).isoformat(),
            }
            for r in rows
        ]
    return {"items": items, "total": int(total), "page": page, "page_size": page_size}


def _dataset_file_ids(session: Session, dataset: str) -> Any:
    found = catalog.dataset_id(session, dataset)
    if found is None:
        raise NotFoundError(f"No dataset {dataset}.", message_zh=f"不存在数据集 {dataset}。")
    return catalog.dataset_file_ids(found)


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """What `archive verify` found."""

    checked: int
    damaged: list[dict[str, Any]]
    orphans: list[str] = dataclass_field(
        default_factory=list
    )  # in the store, named by no catalog row
    removed: list[str] = dataclass_field(default_factory=list)  # the orphans removed
    in_flight: int = 0  # objects not yet named because a live process is writing them

    @property
    def ok(self) -> bool:
        """Whether every object still matches its checksum and no orphan is left."""
        return not self.damaged and set(self.orphans) <= set(self.removed)


def find_orphans(
    factory: sessionmaker[Session], settings: Settings, *, copies: RecipientCopies
) -> tuple[list[str], int]:
    """What the object store holds that no catalog row and no recipient's copy (`copies`)
    names (objects, and the parts of writes that never finished) and no live process is
    writing; and how many are being written."""
    store = object_store(settings)
    locks = object_locks(settings)
    found = [*store.keys(), *store.parts()]
    writing = locks.busy_among(object_base(name.partition("#")[0]) for name in found)
    free = [name for name in found if object_base(name.partition("#")[0]) not in writing]
    # read after the locks were seen free: a writer lets go of its lock only once the row
    # naming its object is committed (or the object removed)
    named: set[str] = set()
    with factory() as session:
        for row in session.execute(
            select(archive_objects.c.object_key, archive_objects.c.index_key)
        ):
            named.update(k for k in row if k is not None)
        named |= copies.object_keys(session)
    return [name for name in free if name not in named], len(found) - len(free)


def _remove_orphans(
    factory: sessionmaker[Session], settings: Settings, orphans: list[str], subject: Subject
) -> list[str]:
    """Remove `orphans` from the store (parts and objects); the ones removed, audited."""
    store = object_store(settings)
    removed = []
    for name in orphans:
        try:
            if name.startswith(".") or "/." in name or "#" in name:
                store.remove_part(name)
            else:
                store.delete(name)
        except (GeneCommonsError, OSError):
            logger.exception("could not remove the orphan %s", name)
            continue
        removed.append(name)
    if removed:
        with write_transaction(factory) as session:
            record_event(
                session,
                tag=EventTag.OBJECT_ORPHANS_REMOVED,
                actor=subject.id,
                subject="archive",
                details={"removed": removed[:1000], "count": len(removed)},
            )
    return removed


def verify(
    factory: sessionmaker[Session],
    settings: Settings,
    *,
    subject: Subject,
    copies: RecipientCopies,
    progress: StagedProgress = SILENT,
    remove_orphans: bool = False,
) -> VerifyReport:
    """Re-read every stored object and report those that no longer match their checksum
    (or are missing); damaged objects are marked and each finding is audited. Objects neither
    the catalog nor a recipient's copy (`copies`) names (left by a process killed mid-write)
    are reported as orphans, and removed with `remove_orphans`. `progress` hears the bytes
    re-read."""
    require(subject, Action.LIST_FILES, Resource("file"))
    orphans, in_flight = find_orphans(factory, settings, copies=copies)
    removed = _remove_orphans(factory, settings, orphans, subject) if remove_orphans else []
    store = object_store(settings)
    files = catalog.FILES
    with factory() as session:
        rows = session.execute(
            select(archive_objects, files.c.accession).join(
                files, files.c.id == archive_objects.c.file_id
            )
        ).all()
    damaged: list[dict[str, Any]] = []
    size = sum(row.body_size + (row.index_body_size or 0) for row in rows)
    with progress.stage(
        f"verifying {len(rows)} archived file(s)", total=size, unit="bytes"
    ) as step:
        for row in rows:
            _verify_row(factory, store, subject, row, damaged, step.advance)
    with write_transaction(factory) as session:
        record_event(
            session,
            tag=EventTag.OBJECT_VERIFIED,
            actor=subject.id,
            subject="archive",
            details={
                "checked": len(rows),
                "damaged": [d["accession"] for d in damaged],
                "orphans": len(orphans),
                "removed": len(removed),
            },
        )
    return VerifyReport(len(rows), damaged, orphans, removed, in_flight)


def _verify_row(
    factory: sessionmaker[Session],
    store: ObjectStore,
    subject: Subject,
    row: Any,
    damaged: list[dict[str, Any]],
    progress: Progress,
) -> None:
    """Check one archived file's objects, marking it and auditing what is wrong."""
    problems = []
    for key, size, digest in (
        (row.object_key, row.body_size, row.body_sha256),
        (row.index_key, row.index_body_size, row.index_body_sha256),
    ):
        if key is None:
            continue
        problem = _check_object(store, key, size, digest, progress)
        if problem:
            problems.append({"object": key, "problem": problem})
    with write_transaction(factory) as session:
        session.execute(
            update(archive_objects)
            .where(archive_objects.c.id == row.id)
            .values(
                state="damaged" if problems else "archived",
                verified_at=clock.now(),
            )
        )
        if problems:
            damaged.append({"accession": row.accession, "problems": problems})
            record_event(
                session,
                tag=EventTag.OBJECT_DAMAGED,
                actor=subject.id,
                subject=f"file:{row.accession}",
                details={"problems": problems},
            )


def _check_object(
    store: ObjectStore, key: str, size: int, digest: str, progress: Progress | None
) -> str | None:
    try:
        handle = store.open(key)
    except NotFoundError:
        return "missing"
    digest_now = hashlib.sha256()
    seen = 0
    with handle:
        while chunk := handle.read(4 * 1024 * 1024):
            digest_now.update(chunk)
            seen += len(chunk)
            if progress:
                progress(len(chunk))
    if seen != size:
        return f"size {seen}, expected {size}"
    if digest_now.hexdigest() != digest:
        return "sha256 differs"
    return None
