"""Archiving catalog files: check, encrypt and store their bytes (archive/ingest.py), with the
index htsget needs, and name them in the catalog; one file (`archive_path`) or a submission's
folder inside its transaction (`BundleArchiver`). Archived files are immutable."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import uuid
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from sqlalchemy import event, insert, select
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

from genecommons import clock, metrics
from genecommons.archive import formats
from genecommons.archive.catalog_files import CatalogFile, catalog_file
from genecommons.archive.crypt import MAGIC as CRYPT4GH_MAGIC
from genecommons.archive.crypt import BodyEncryptor
from genecommons.archive.ingest import Declared, Ingested, Progress, ingest
from genecommons.archive.keys import KeyPair
from genecommons.archive.keys_and_store import archive_keys, object_store
from genecommons.archive.locks import object_locks
from genecommons.archive.store import ObjectStore
from genecommons.archive.tables import archive_objects
from genecommons.config import Settings
from genecommons.db import write_transaction
from genecommons.errors import ConflictError, GeneCommonsError, StorageFullError, human_size
from genecommons.ledger.events import EventTag, record_event
from genecommons.policy.decision import require
from genecommons.policy.models import Action, Resource, Subject
from genecommons.progress import SILENT
from genecommons.progress import Progress as StagedProgress

logger = logging.getLogger(__name__)


INDEXED = {"bam": "bai", "vcf": "tbi"}  # formats htsget serves, with the index they need


@dataclass(frozen=True, slots=True)
class ArchivedFile:
    """A file now kept in the archive."""

    accession: str
    object_key: str
    size: int
    md5: str
    sha256: str
    format: str
    index: str | None
    encrypted_upload: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "accession": self.accession,
            "size": self.size,
            "md5": self.md5,
            "sha256": self.sha256,
            "format": self.format,
            "index": self.index,
            "encrypted_upload": self.encrypted_upload,
            "state": "archived",
        }


class Ingestion:
    """Archives files inside a caller's transaction; `discard` removes what it stored when
    that transaction does not commit."""

    def __init__(self, settings: Settings, subject: Subject) -> None:
        self.settings = settings
        self.subject = subject
        self.stored: list[str] = []
        self._held = ExitStack()  # the locks of the objects stored (archive.locks)
        self._watched: set[int] = set()

    def _unlock_with(self, session: Session) -> None:
        """Keep the objects stored locked until `session`'s transaction ends (committed, the
        catalog names them; rolled back, `discard` removes them)."""
        if id(session) not in self._watched:
            self._watched.add(id(session))
            event.listen(session, "after_transaction_end", self._transaction_ended)

    def _transaction_ended(self, _session: Session, transaction: SessionTransaction) -> None:
        if transaction.parent is None:
            self.release()

    def release(self) -> None:
        """Let go of the locks of the objects stored (once the catalog names them)."""
        self._held.close()

    def archive(
        self,
        session: Session,
        file: CatalogFile,
        source: BinaryIO,
        *,
        plain_path: Path | None = None,
        progress: Progress | None = None,
    ) -> ArchivedFile:
        """Check, encrypt and store `source` as the catalog file `file`, in `session`.

        `plain_path` is the plaintext on disk when there is one (to build the index from).
        """
        require(self.subject, Action.UPLOAD_FILES, Resource("file", owner=file.created_by))
        _refuse_archived(session, file)
        stored = self.store(file, source, plain_path=plain_path, progress=progress)
        self._unlock_with(session)
        return self.record(session, file, stored)

    def store(
        self,
        file: CatalogFile,
        source: BinaryIO,
        *,
        plain_path: Path | None = None,
        progress: Progress | None = None,
    ) -> tuple[Ingested, tuple[str, str, bytes, int, str] | None]:
        """Check, encrypt and store `source` (and its index) for the catalog file `file`,
        outside any transaction; its objects stay locked (archive.locks) until `record` is
        committed or `discard` removes them."""
        require(self.subject, Action.UPLOAD_FILES, Resource("file", owner=file.created_by))
        keys = archive_keys(self.settings)
        store = object_store(self.settings)
        base = f"{file.accession}/{uuid.uuid4().hex}"
        self._held.enter_context(object_locks(self.settings).hold(base))
        declared = file.declared()
        try:
            result = ingest(
                source,
                declared=declared,
                keys=keys,
                store=store,
                object_key=f"{base}.c4gh",
                progress=progress,
            )
            self.stored.append(result.body.key)
            metrics.INGEST_BYTES.labels(declared.format).inc(result.plain_size)
            index = self._index(result, declared, plain_path, store, keys, base)
        except StorageFullError as error:
            raise self._full(file, declared.size or _source_size(source)) from error
        return result, index

    def record(
        self,
        session: Session,
        file: CatalogFile,
        stored: tuple[Ingested, tuple[str, str, bytes, int, str] | None],
    ) -> ArchivedFile:
        """Name what `store` stored in the catalog, in `session`, and audit it."""
        result, index = stored
        declared = file.declared()
        now = clock.now()
        session.execute(
            insert(archive_objects).values(
                file_id=file.id,
                object_key=result.body.key,
                header=result.body.header,
                body_size=result.body.body_size,
                body_sha256=result.body.body_sha256,
                plain_size=result.plain_size,
                md5=result.md5,
                sha256=result.sha256,
                format=declared.format,
                summary=result.summary,
                index_key=index[0] if index else None,
                index_kind=index[1] if index else None,
                index_header=index[2] if index else None,
                index_body_size=index[3] if index else None,
                index_body_sha256=index[4] if index else None,
                state="archived",
                encrypted_upload=result.encrypted_upload,
                archived_at=now,
                archived_by=self.subject.id,
            )
        )
        record_event(
            session,
            tag=EventTag.FILE_ARCHIVED,
            actor=self.subject.id,
            subject=f"file:{file.accession}",
            details={
                "size": result.plain_size,
                "sha256": result.sha256,
                "format": declared.format,
                "encrypted_upload": result.encrypted_upload,
                "datasets": list(file.datasets),
            },
        )
        return ArchivedFile(
            accession=file.accession,
            object_key=result.body.key,
            size=result.plain_size,
            md5=result.md5,
            sha256=result.sha256,
            format=declared.format,
            index=index[1] if index else None,
            encrypted_upload=result.encrypted_upload,
        )

    def _full(self, file: CatalogFile, size: int | None) -> StorageFullError:
        """The archive's disk is full: where, the space it has, and the space `file` needs
        (its encrypted body: the plaintext and 28 bytes a 64 KiB segment, with its index)."""
        url = self.settings.effective_archive_url
        local = (
            None
            if "://" in url and not url.startswith("file://")
            else Path(url.removeprefix("file://"))
        )
        free = free_space(local) if local is not None else 0
        needed = (size or 0) + ((size or 0) // 65536 + 1) * 28 + 1024 * 1024
        where = str(local) if local is not None else url
        return StorageFullError(
            f"The archive's storage ({where}) is full: it has {human_size(free)} free, while "
            f"{file.accession} ({file.alias}) needs about {human_size(needed)}. Nothing of it "
            "was kept; free or add space there, then archive it again.",
            message_zh=f"归档存储（{where}）已满：剩余 {human_size(free)}，而 {file.accession}"
            f"（{file.alias}）约需 {human_size(needed)}。未保留任何部分；请释放或增加空间后重新归档。",
            details={"free_bytes": free, "needed_bytes": needed, "where": where},
        )

    def _index(
        self,
        result: Ingested,
        declared: Declared,
        plain_path: Path | None,
        store: ObjectStore,
        keys: KeyPair,
        base: str,
    ) -> tuple[str, str, bytes, int, str] | None:
        """Build the index htsget needs (BAI, TBI/CSI), encrypt and store it."""
        if declared.format not in INDEXED or plain_path is None:
            return None
        if declared.format == "vcf" and result.summary.get("compressed") != "bgzf":
            return None
        staging = self.settings.staging_dir / "index"
        staging.mkdir(parents=True, exist_ok=True)
        index_path = formats.make_index(plain_path, fmt=declared.format, out_dir=staging)
        try:
            kind = index_path.suffix.lstrip(".")
            encryptor = BodyEncryptor()
            header = encryptor.header_for([keys.public], sender=keys)
            body = bytes(encryptor.update(index_path.read_bytes()) + encryptor.finish())
            key = f"{base}.{kind}.c4gh"
            store.put(key, [body])
            self.stored.append(key)
            return key, kind, header, len(body), hashlib.sha256(body).hexdigest()
        finally:
            index_path.unlink(missing_ok=True)

    def discard(self) -> None:
        """Remove every object stored by this ingestion (its transaction did not commit)."""
        store = object_store(self.settings)
        for key in self.stored:
            try:
                store.delete(key)
            except GeneCommonsError:
                logger.exception("could not remove %s after a failed ingest", key)
        self.stored.clear()
        self.release()


class ArchivedFileHook(Protocol):
    """Told of each file a submission archives, with its plaintext, inside the submission's
    transaction (the variant store builds from the VCFs); `discard` undoes what it did when
    that transaction does not commit."""

    def take(self, session: Session, file: CatalogFile, path: Path) -> None:
        """Process a file just archived."""

    def discard(self) -> None:
        """Undo every `take`."""


class BundleArchiver(Ingestion):
    """Archives the data files a submission's folder holds, in the submission's transaction
    (catalog.service.DataFileSink). Files archived before with the same content are skipped,
    so that submitting the same folder again changes nothing."""

    def __init__(
        self,
        settings: Settings,
        subject: Subject,
        *,
        progress: StagedProgress = SILENT,
        after: ArchivedFileHook | None = None,
    ) -> None:
        super().__init__(settings, subject)
        self._progress = progress
        self._after = after

    def attach(
        self, session: Session, files: Mapping[str, str], paths: Mapping[str, Path]
    ) -> list[str]:
        """Archive `paths` (alias -> path) as the catalog files `files` (alias -> accession)."""
        archived = []
        for alias, path in sorted(paths.items()):
            file = catalog_file(session, files[alias])
            existing = session.execute(
                select(archive_objects.c.sha256).where(archive_objects.c.file_id == file.id)
            ).first()
            if existing is not None and existing.sha256 == file.sha256.lower():
                continue
            with (
                self._progress.stage(
                    f"archiving {alias}", total=path.stat().st_size, unit="bytes"
                ) as step,
                path.open("rb") as source,
            ):
                encrypted = source.read(len(CRYPT4GH_MAGIC)) == CRYPT4GH_MAGIC
                source.seek(0)
                self.archive(
                    session,
                    file,
                    source,
                    plain_path=None if encrypted else path,
                    progress=step.advance,
                )
            archived.append(file.accession)
            if self._after is not None and not encrypted:
                self._after.take(session, file, path)
        return archived

    def discard(self) -> None:
        """Remove what was stored (and what the hook made)."""
        if self._after is not None:
            self._after.discard()
        super().discard()


def archive_path(
    factory: sessionmaker[Session],
    settings: Settings,
    *,
    subject: Subject,
    accession: str,
    path: Path,
    progress: Progress | None = None,
) -> ArchivedFile:
    """Archive the file at `path` (plaintext, or Crypt4GH for the archive's key) as the
    catalog file `accession`."""
    ingestion = Ingestion(settings, subject)
    try:
        with factory() as session:
            file = catalog_file(session, accession)
            require(subject, Action.UPLOAD_FILES, Resource("file", owner=file.created_by))
            _refuse_archived(session, file)
        # checked, encrypted and stored outside any transaction (a large file takes minutes:
        # no write lock is held meanwhile), then named in the catalog in a short one
        with path.open("rb") as source:
            encrypted = source.read(len(CRYPT4GH_MAGIC)) == CRYPT4GH_MAGIC
            source.seek(0)
            stored = ingestion.store(
                file, source, plain_path=None if encrypted else path, progress=progress
            )
        with write_transaction(factory) as session:
            _refuse_archived(session, file)
            return ingestion.record(session, file, stored)
    except BaseException:
        ingestion.discard()
        _record_rejection(factory, subject, accession)
        raise
    finally:
        ingestion.release()


def _refuse_archived(session: Session, file: CatalogFile) -> None:
    """ConflictError when `file` is archived already (archived files are immutable)."""
    existing = session.execute(
        select(archive_objects.c.sha256).where(archive_objects.c.file_id == file.id)
    ).first()
    if existing is not None:
        raise ConflictError(
            f"{file.accession} ({file.alias}) is already archived; archived files are "
            "immutable. Declare a new file to archive a new version.",
            message_zh=f"{file.accession}（{file.alias}）已归档，归档文件不可修改；"
            "如需新版本请声明新文件。",
        )


def _record_rejection(factory: sessionmaker[Session], subject: Subject, accession: str) -> None:
    with write_transaction(factory) as session:
        record_event(
            session,
            tag=EventTag.FILE_REJECTED,
            actor=subject.id,
            subject=f"file:{accession}",
        )


def _source_size(source: BinaryIO) -> int | None:
    try:
        return os.fstat(source.fileno()).st_size
    except (OSError, ValueError, AttributeError):
        return None


def free_space(path: Path) -> int:
    """Bytes free on the disk holding `path` (or its nearest existing folder); 0 if unknown."""
    for folder in (path, *path.parents):
        try:
            return shutil.disk_usage(folder).free
        except OSError:
            continue
    return 0
