"""Archive use cases: keys, uploads, ingest, listing and verification.

Delivery is in drs.py and htsget.py (served.py: what they share). These are the only archive
functions that open transactions.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import shutil
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from sqlalchemy import event, func, insert, select, update
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

from genecommons import clock, metrics
from genecommons.archive import formats
from genecommons.archive.crypt import MAGIC as CRYPT4GH_MAGIC
from genecommons.archive.crypt import BodyEncryptor
from genecommons.archive.ingest import Declared, Ingested, ingest
from genecommons.archive.keys import (
    KeyPair,
    ensure_archive_keys,
    load_secret_key,
    parse_public_key,
)
from genecommons.archive.locks import object_base, object_locks
from genecommons.archive.store import FULL, ObjectStore, open_store
from genecommons.archive.tables import archive_objects, recipient_keys, uploads
from genecommons.catalog import reads as catalog
from genecommons.config import Settings
from genecommons.db import write_transaction
from genecommons.errors import (
    ConfigurationError,
    ConflictError,
    GeneCommonsError,
    InvalidInputError,
    NotFoundError,
    PayloadTooLargeError,
    StorageFullError,
    human_size,
)
from genecommons.fingerprint.tables import fingerprint_copies
from genecommons.ledger.events import EventTag, record_event
from genecommons.policy.decision import require
from genecommons.policy.models import Action, Resource, Subject
from genecommons.progress import SILENT
from genecommons.progress import Progress as StagedProgress
from genecommons.secrets import (
    NodeKeys,
    create_sealed_file,
    node_keys,
    read_sealed_file,
    seal_file_in_place,
)

logger = logging.getLogger(__name__)

Progress = Callable[[int], None]
INDEXED = {"bam": "bai", "vcf": "tbi"}  # formats htsget serves, with the index they need


# -- keys and store ---------------------------------------------------------------------------


ARCHIVE_PASSPHRASE_PURPOSE = "archive-key-passphrase"  # noqa: S105 - a label, not a secret


def archive_passphrase(settings: Settings, *, create: bool = False) -> str:
    """The passphrase of the archive's secret key: from the environment, else from the secret
    file; outside production a file in the key directory is made on `create`, sealed by the node
    key store (a file an operator wrote in plaintext is read as is)."""
    if settings.archive_key_passphrase is not None:
        return settings.archive_key_passphrase.get_secret_value()
    path = settings.archive_key_passphrase_file or settings.archive_key_dir / "passphrase"
    if not path.exists() and create and settings.environment != "production":
        create_sealed_file(
            path,
            node_keys(settings, create=True),
            purpose=ARCHIVE_PASSPHRASE_PURPOSE,
            make=lambda: secrets.token_urlsafe(32).encode("ascii"),
        )
    if not path.exists():
        raise ConfigurationError(
            "The archive key passphrase is not configured: set GENECOMMONS_ARCHIVE_KEY_PASSPHRASE "
            f"or GENECOMMONS_ARCHIVE_KEY_PASSPHRASE_FILE (no file at {path}).",
            message_zh="未配置归档密钥口令：请设置 GENECOMMONS_ARCHIVE_KEY_PASSPHRASE 或 "
            "GENECOMMONS_ARCHIVE_KEY_PASSPHRASE_FILE。",
        )
    content = read_sealed_file(
        path, lambda: node_keys(settings), purpose=ARCHIVE_PASSPHRASE_PURPOSE
    )
    passphrase = content.decode("utf-8", "replace").strip()
    if not passphrase:
        raise ConfigurationError(
            f"The archive key passphrase file {path} is empty.",
            message_zh=f"归档密钥口令文件 {path} 为空。",
        )
    return passphrase


def seal_archive_passphrase(settings: Settings, keys: NodeKeys) -> bool:
    """Seal the passphrase file an earlier version made in plaintext outside production (the
    passphrase unchanged); whether there was one to seal. A file the operator configured
    (GENECOMMONS_ARCHIVE_KEY_PASSPHRASE_FILE), or any file in production, is theirs: left as
    it is."""
    if settings.archive_key_passphrase_file is not None or settings.environment == "production":
        return False
    return seal_file_in_place(
        settings.archive_key_dir / "passphrase", keys, purpose=ARCHIVE_PASSPHRASE_PURPOSE
    )


def archive_keys(settings: Settings, *, create: bool = False) -> KeyPair:
    """The archive's Crypt4GH key pair (made on `create` when there is none)."""
    passphrase = archive_passphrase(settings, create=create)
    if create:
        return ensure_archive_keys(settings.archive_key_dir, passphrase=passphrase)
    return _load_keys(str(settings.archive_key_dir / "archive.sec"), passphrase)


def archive_public_key(settings: Settings) -> bytes:
    """The archive's Crypt4GH public key; needs no passphrase."""
    path = settings.archive_key_dir / "archive.pub"
    try:
        return parse_public_key(path.read_bytes())
    except OSError as error:
        raise ConfigurationError(
            f"The archive has no key pair yet (no readable file at {path}): run `genecommons init`.",
            message_zh=f"归档尚无密钥对（{path} 不可读）：请运行 `genecommons init`。",
        ) from error


@lru_cache(maxsize=8)
def _load_keys(path: str, passphrase: str) -> KeyPair:
    # unlocking the key costs a scrypt derivation; do it once per process
    return load_secret_key(Path(path), passphrase=passphrase)


def object_store(settings: Settings) -> ObjectStore:
    """The object store the settings name."""
    options: dict[str, Any] | None = None
    url = settings.effective_archive_url
    if url.startswith("s3://"):
        options = {"client_kwargs": {"region_name": settings.archive_s3_region}}
        if settings.archive_s3_endpoint_url:
            options["client_kwargs"]["endpoint_url"] = settings.archive_s3_endpoint_url
        if settings.archive_s3_access_key and settings.archive_s3_secret_key:
            options["key"] = settings.archive_s3_access_key.get_secret_value()
            options["secret"] = settings.archive_s3_secret_key.get_secret_value()
    return _store(url, tuple(sorted(_flatten(options or {}))))


def _flatten(options: dict[str, Any], prefix: str = "") -> Iterable[tuple[str, Any]]:
    for key, value in options.items():
        if isinstance(value, dict):
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


@lru_cache(maxsize=8)
def _store(url: str, flat: tuple[tuple[str, Any], ...]) -> ObjectStore:
    options: dict[str, Any] = {}
    for dotted, value in flat:
        target = options
        *parents, leaf = dotted.split(".")
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = value
    return open_store(url, storage_options=options or None)


# -- catalog facts ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CatalogFile:
    """A data file as the catalog declares it, with the datasets it belongs to."""

    id: int
    accession: str
    alias: str
    format: str
    md5: str
    sha256: str
    size: int | None
    created_by: str
    assembly: str | None
    datasets: tuple[str, ...]

    def declared(self) -> Declared:
        """What the ingest checks the bytes against."""
        return Declared(
            name=self.alias,
            format=self.format,
            md5=self.md5,
            sha256=self.sha256,
            size=self.size,
            assembly=self.assembly,
        )


def catalog_file(session: Session, accession: str) -> CatalogFile:
    """The catalog's record of a data file, by accession; NotFoundError if there is none."""
    files, analyses = catalog.FILES, catalog.ANALYSES
    row = session.execute(
        select(files, analyses.c.reference_assembly)
        .outerjoin(analyses, analyses.c.id == files.c.analysis_id)
        .where(files.c.accession == accession)
    ).first()
    if row is None:
        raise missing_file(accession)
    return CatalogFile(
        id=row.id,
        accession=row.accession,
        alias=row.alias,
        format=row.format,
        md5=row.md5,
        sha256=row.sha256,
        size=row.size,
        created_by=row.created_by,
        assembly=row.reference_assembly,
        datasets=file_datasets(session, row.run_id, row.analysis_id),
    )


def missing_file(accession: str) -> NotFoundError:
    """What asking for a data file that is not in the catalog answers (and asking for one the
    caller may not see)."""
    return NotFoundError(
        f"No data file {accession} in the catalog; submit its metadata first.",
        message_zh=f"目录中不存在数据文件 {accession}；请先提交其元数据。",
    )


def file_resource(session: Session, file: CatalogFile) -> Resource:
    """A data file as the decision point sees it: its submitter, and public when a dataset
    that releases it belongs to a public study."""
    datasets, studies = catalog.DATASETS, catalog.STUDIES
    public = bool(file.datasets) and (
        session.execute(
            select(studies.c.id)
            .join(datasets, datasets.c.study_id == studies.c.id)
            .where(datasets.c.accession.in_(file.datasets), studies.c.public.is_(True))
            .limit(1)
        ).first()
        is not None
    )
    return Resource("file", file.accession, public=public, owner=file.created_by)


def file_datasets(session: Session, run_id: int | None, analysis_id: int | None) -> tuple[str, ...]:
    """Accessions of the datasets that release a file of this run or analysis."""
    return catalog.datasets_releasing(session, run_id, analysis_id)


# -- ingest -----------------------------------------------------------------------------------


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


# -- resumable uploads --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UploadState:
    """Where an upload stands."""

    id: str
    file: str
    received: int
    expected_size: int | None
    state: str
    error: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "id": self.id,
            "file": self.file,
            "offset": self.received,
            "expected_size": self.expected_size,
            "state": self.state,
            "error": self.error,
        }


def _staged(settings: Settings, upload_id: str) -> Path:
    return settings.staging_dir / "uploads" / f"{upload_id}.part"


def start_upload(
    factory: sessionmaker[Session],
    settings: Settings,
    *,
    subject: Subject,
    accession: str,
    size: int | None = None,
) -> UploadState:
    """Open an upload of the catalog file `accession` (`size` in bytes, when known)."""
    if size is not None and not 0 <= size <= settings.max_upload_bytes:
        raise InvalidInputError(
            f"size must be between 0 and {settings.max_upload_bytes} bytes.",
            message_zh=f"size 须在 0 到 {settings.max_upload_bytes} 字节之间。",
        )
    upload_id = str(uuid.uuid4())
    now = clock.now()
    with write_transaction(factory) as session:
        file = catalog_file(session, accession)
        require(  # a file the subject may not see does not exist for them
            subject,
            Action.UPLOAD_FILES,
            file_resource(session, file),
            missing=missing_file(accession),
        )
        archived = session.execute(
            select(archive_objects.c.id).where(archive_objects.c.file_id == file.id)
        ).first()
        if archived is not None:
            raise ConflictError(
                f"{accession} is already archived.", message_zh=f"{accession} 已归档。"
            )
        session.execute(
            insert(uploads).values(
                id=upload_id,
                file_id=file.id,
                uploader=subject.id,
                encrypted=False,
                expected_size=size,
                received=0,
                state="open",
                created_at=now,
                updated_at=now,
            )
        )
        record_event(
            session,
            tag=EventTag.UPLOAD_STARTED,
            actor=subject.id,
            subject=f"file:{accession}",
            details={"upload": upload_id, "size": size},
        )
    path = _staged(settings, upload_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    return UploadState(upload_id, accession, 0, size, "open")


def _upload_row(session: Session, upload_id: str, subject: Subject) -> Any:
    files = catalog.FILES
    try:
        uuid.UUID(upload_id)
    except ValueError:
        row = None
    else:
        row = session.execute(
            select(uploads, files.c.accession, files.c.size.label("declared_size"))
            .join(files, files.c.id == uploads.c.file_id)
            .where(uploads.c.id == upload_id)
        ).first()
    missing = NotFoundError(
        f"No upload {upload_id} of yours.", message_zh=f"不存在您的上传 {upload_id}。"
    )
    if row is None:
        raise missing
    require(  # someone else's upload does not exist for the subject
        subject,
        Action.UPLOAD_FILES,
        Resource("upload", upload_id, owner=row.uploader),
        missing=missing,
    )
    return row


def _open_upload(factory: sessionmaker[Session], upload_id: str, subject: Subject) -> Any:
    """The row of an upload that still takes bytes; ConflictError once it is archived or
    failed."""
    with factory() as session:
        row = _upload_row(session, upload_id, subject)
    if row.state != "open":
        raise ConflictError(
            f"Upload {upload_id} is {row.state}; start a new upload.",
            message_zh=f"上传 {upload_id} 的状态为 {row.state}；请重新开始上传。",
        )
    return row


def _state(row: Any) -> UploadState:
    return UploadState(
        row.id, row.accession, int(row.received), row.expected_size, row.state, row.error
    )


def upload_status(
    factory: sessionmaker[Session], *, subject: Subject, upload_id: str
) -> UploadState:
    """An upload's state and the offset to resume from."""
    with factory() as session:
        return _state(_upload_row(session, upload_id, subject))


class UploadAppender:
    """Appends the bytes of one request to a staged upload; `close` records how many arrived.

    What arrives is written as it comes; if the connection breaks, the bytes that reached the
    disk count and the upload resumes from there.
    """

    def __init__(
        self, factory: sessionmaker[Session], settings: Settings, row: Any, subject: Subject
    ) -> None:
        self._factory = factory
        self._subject = subject
        self._id = row.id
        self._limit = upload_limit(settings, row)
        self._staging = _staged(settings, row.id).parent
        self.received = int(row.received)
        self._start = self.received  # where this request's bytes begin
        try:
            self._handle = _staged(settings, row.id).open("r+b")
            self._handle.truncate(self.received)  # drop bytes beyond the last recorded offset
            self._handle.seek(self.received)
        except OSError as error:
            raise self._storage_error(error) from error

    def _storage_error(self, error: OSError) -> GeneCommonsError:
        return _storage_error(
            error, staging=self._staging, needed=max(0, self._limit - self.received)
        )

    def write(self, chunk: bytes) -> None:
        """Append `chunk`; refuses bytes beyond the upload's size (the size it was opened
        with, else the size the catalog declares for the file): then nothing this request
        sent is kept, and the upload resumes from where the request began."""
        if self.received + len(chunk) > self._limit:
            try:
                self._handle.truncate(self._start)
                self._handle.seek(self._start)
            except OSError as error:
                raise self._storage_error(error) from error
            self.received = self._start
            raise PayloadTooLargeError(
                f"The upload would exceed its size of {self._limit} bytes; nothing this "
                f"request sent was kept. The upload stands at offset {self._start}: send "
                "the file's remaining bytes only (or the right file).",
                message_zh=f"上传内容将超过其大小 {self._limit} 字节；本次请求发送的内容均未保留。"
                f"上传停在偏移 {self._start}：请只发送文件其余的字节（或正确的文件）。",
                details={"offset": self._start, "max_bytes": self._limit},
            )
        try:
            self._handle.write(chunk)
        except OSError as error:
            raise self._storage_error(error) from error
        self.received += len(chunk)

    def close(self) -> UploadState:
        """Flush what arrived, record the new offset and give the upload's state."""
        try:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self.received = self._handle.tell()
        except OSError:
            logger.exception("could not flush upload %s", self._id)
        finally:
            self._handle.close()
        with write_transaction(self._factory) as session:
            session.execute(
                update(uploads)
                .where(uploads.c.id == self._id)
                .values(received=self.received, updated_at=clock.now())
            )
            return _state(_upload_row(session, self._id, self._subject))


def open_append(
    factory: sessionmaker[Session],
    settings: Settings,
    *,
    subject: Subject,
    upload_id: str,
    offset: int,
) -> UploadAppender:
    """Start appending at `offset`, which must be the number of bytes received so far."""
    row = _open_upload(factory, upload_id, subject)
    if offset != row.received:
        raise ConflictError(
            f"Upload {upload_id} has {row.received} bytes; send the bytes from offset "
            f"{row.received} (you sent offset {offset}).",
            message_zh=f"上传 {upload_id} 已收到 {row.received} 字节；请从偏移 "
            f"{row.received} 继续发送。",
            details={"offset": int(row.received)},
        )
    return UploadAppender(factory, settings, row, subject)


def append_upload(
    factory: sessionmaker[Session],
    settings: Settings,
    *,
    subject: Subject,
    upload_id: str,
    offset: int,
    chunks: Iterable[bytes],
) -> UploadState:
    """Append `chunks` at `offset` to an open upload (see UploadAppender)."""
    appender = open_append(factory, settings, subject=subject, upload_id=upload_id, offset=offset)
    try:
        for chunk in chunks:
            appender.write(chunk)
    finally:
        state = appender.close()
    return state


def upload_limit(settings: Settings, row: Any) -> int:
    """The most bytes an upload takes: the size it was opened with, else the size the
    catalog declares for its file, else the node's largest upload."""
    if row.expected_size is not None:
        return int(row.expected_size)
    if row.declared_size is not None:
        return min(int(row.declared_size), settings.max_upload_bytes)
    return settings.max_upload_bytes


def expire_uploads(
    factory: sessionmaker[Session], settings: Settings, *, subject: Subject
) -> list[str]:
    """Close the uploads left open longer than `upload_expiry_hours` since their last bytes
    ("expired": not resumable, start a new one) and delete their staged bytes, with the
    staged files no open upload owns (left by a process killed mid-upload); the ids closed."""
    require(subject, Action.LIST_FILES, Resource("file"))
    now = clock.now()
    cutoff = now - timedelta(hours=settings.upload_expiry_hours)
    with write_transaction(factory) as session:
        expired = [
            str(i)
            for i in session.execute(
                select(uploads.c.id)
                .where(uploads.c.state == "open")
                .where(uploads.c.updated_at < cutoff)
            ).scalars()
        ]
        if expired:
            session.execute(
                update(uploads)
                .where(uploads.c.id.in_(expired))
                .values(state="expired", updated_at=now)
            )
            record_event(
                session,
                tag=EventTag.UPLOADS_EXPIRED,
                actor=subject.id,
                subject="archive",
                details={"uploads": expired[:1000], "count": len(expired)},
            )
        open_now = {
            str(i)
            for i in session.execute(
                select(uploads.c.id).where(uploads.c.state == "open")
            ).scalars()
        }
    folder = settings.staging_dir / "uploads"
    if folder.exists():
        for path in folder.glob("*.part"):
            if path.stem not in open_now:
                path.unlink(missing_ok=True)
    if expired:
        logger.info("%d upload(s) open since before %s expired", len(expired), cutoff)
    return expired


class UploadExpiry:
    """`expire_uploads` in a thread of the server's process: at start, then every
    `upload_expiry_check_minutes`, until `stop`."""

    def __init__(
        self, factory: sessionmaker[Session], settings: Settings, *, subject: Subject
    ) -> None:
        self.factory = factory
        self.settings = settings
        self.subject = subject
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="upload-expiry", daemon=True)

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread (it ends its pass first)."""
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                expire_uploads(self.factory, self.settings, subject=self.subject)
            except Exception:  # the next pass tries again; the server keeps serving
                logger.exception("expiring stale uploads failed")
            self._stop.wait(self.settings.upload_expiry_check_minutes * 60)


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


def _storage_error(error: OSError, *, staging: Path, needed: int) -> GeneCommonsError:
    if error.errno in FULL:
        free = free_space(staging)
        return StorageFullError(
            f"The disk of the staging area ({staging}) is full: it has {human_size(free)} free, "
            f"and the rest of this upload needs {human_size(needed)}. The bytes received so far "
            "are kept: resume the upload once the operator has freed space there.",
            message_zh=f"暂存区所在磁盘（{staging}）已满：剩余 {human_size(free)}，本次上传其余部分"
            f"需要 {human_size(needed)}。已收到的字节会保留；请在运维人员释放空间后继续上传。",
            details={"free_bytes": free, "needed_bytes": needed, "where": str(staging)},
        )
    return GeneCommonsError(
        f"Could not write the upload ({error.strerror}).",
        message_zh=f"无法写入上传内容（{error.strerror}）。",
    )


def complete_upload(
    factory: sessionmaker[Session],
    settings: Settings,
    *,
    subject: Subject,
    upload_id: str,
    progress: Progress | None = None,
) -> ArchivedFile:
    """Check, encrypt and archive a finished upload; the staged bytes are removed."""
    row = _open_upload(factory, upload_id, subject)
    if row.expected_size is not None and row.received < row.expected_size:
        raise InvalidInputError(
            f"Upload {upload_id} is incomplete: {row.received} of {row.expected_size} bytes. "
            f"Resume it from offset {row.received}.",
            message_zh=f"上传 {upload_id} 不完整：已收到 {row.received}/{row.expected_size} 字节，"
            f"请从偏移 {row.received} 继续。",
            details={"offset": int(row.received)},
        )
    path = _staged(settings, upload_id)
    try:
        archived = archive_path(
            factory,
            settings,
            subject=subject,
            accession=row.accession,
            path=path,
            progress=progress,
        )
    except GeneCommonsError as error:
        _finish_upload(factory, upload_id, "failed", error.to_dict())
        path.unlink(missing_ok=True)  # never keep plaintext that will not be archived
        raise
    _finish_upload(factory, upload_id, "archived", None)
    path.unlink(missing_ok=True)
    return archived


def _finish_upload(
    factory: sessionmaker[Session], upload_id: str, state: str, error: dict[str, Any] | None
) -> None:
    with write_transaction(factory) as session:
        session.execute(
            update(uploads)
            .where(uploads.c.id == upload_id)
            .values(state=state, error=error, updated_at=clock.now())
        )


# -- listing and verification -------------------------------------------------------------------


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


def find_orphans(factory: sessionmaker[Session], settings: Settings) -> tuple[list[str], int]:
    """What the object store holds that no catalog row names (objects, and the parts of writes
    that never finished) and no live process is writing; and how many are being written."""
    store = object_store(settings)
    locks = object_locks(settings)
    found = [*store.keys(), *store.parts()]
    writing = locks.busy_among(object_base(name.partition("#")[0]) for name in found)
    free = [name for name in found if object_base(name.partition("#")[0]) not in writing]
    # read after the locks were seen free: a writer lets go of its lock only once the row
    # naming its object is committed (or the object removed)
    named: set[str] = set()
    with factory() as session:
        for table in (archive_objects, fingerprint_copies):
            for row in session.execute(select(table.c.object_key, table.c.index_key)):
                named.update(k for k in row if k is not None)
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
    progress: StagedProgress = SILENT,
    remove_orphans: bool = False,
) -> VerifyReport:
    """Re-read every stored object and report those that no longer match their checksum
    (or are missing); damaged objects are marked and each finding is audited. Objects the
    catalog does not name (left by a process killed mid-write) are reported as orphans, and
    removed with `remove_orphans`. `progress` hears the bytes re-read."""
    require(subject, Action.LIST_FILES, Resource("file"))
    orphans, in_flight = find_orphans(factory, settings)
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


# -- recipients' keys -----------------------------------------------------------------------------


def register_public_key(
    factory: sessionmaker[Session], *, subject: Subject, owner: str, public_key: bytes
) -> None:
    """Record the Crypt4GH public key that deliveries to `owner` are encrypted for."""
    require(subject, Action.REGISTER_KEY, Resource("key", owner=owner))
    now = clock.now()
    with write_transaction(factory) as session:
        exists = session.execute(
            select(recipient_keys.c.subject_id).where(recipient_keys.c.subject_id == owner)
        ).first()
        values = {"public_key": public_key, "registered_at": now}
        if exists:
            session.execute(
                update(recipient_keys).where(recipient_keys.c.subject_id == owner).values(values)
            )
        else:
            session.execute(insert(recipient_keys).values(subject_id=owner, **values))
        record_event(
            session,
            tag=EventTag.KEY_REGISTERED,
            actor=subject.id,
            subject=owner,
            details={"key_sha256": hashlib.sha256(public_key).hexdigest()},
        )
