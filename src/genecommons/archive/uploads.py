"""Resumable uploads of declared files: opened, appended to across requests and connections,
completed into the archive (archive/ingestion.py), and expired when left open too long."""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from genecommons import clock
from genecommons.archive.catalog_files import catalog_file, file_resource, missing_file
from genecommons.archive.ingest import Progress
from genecommons.archive.ingestion import ArchivedFile, archive_path, free_space
from genecommons.archive.store import FULL
from genecommons.archive.tables import archive_objects, uploads
from genecommons.catalog import reads as catalog
from genecommons.config import Settings
from genecommons.db import write_transaction
from genecommons.errors import (
    ConflictError,
    GeneCommonsError,
    InvalidInputError,
    NotFoundError,
    PayloadTooLargeError,
    StorageFullError,
    human_size,
)
from genecommons.ledger.events import EventTag, record_event
from genecommons.policy.decision import require
from genecommons.policy.models import Action, Resource, Subject

logger = logging.getLogger(__name__)


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
