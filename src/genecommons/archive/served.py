"""What every delivery of an archived file shares, DRS (drs.py) or htsget (htsget.py): the
object served, decided by the decision point first, and the audited transfer of its bytes.

Every delivery asks the decision point (a grant in force for a dataset that releases the file,
jurisdiction rules allowing) and is recorded in the audit log.

A VCF of a fingerprinted dataset, delivered under the decision's `fingerprint-delivery`
obligation, is served as the recipient's own copy, which the fingerprint capability makes and
records through the interface the archive declares (`recipient_copies.py`): DRS describes that
copy (its own id, size and checksums), downloads stream it and htsget cuts its ranges from it.
Each such DRS download and htsget ticket is recorded as a delivery for leak tracing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from genecommons.access.workflow import dataset_resource
from genecommons.archive.catalog_files import CatalogFile, catalog_file, missing_file
from genecommons.archive.holdings import archived_here
from genecommons.archive.recipient_copies import RecipientCopies, RecipientCopy, Source
from genecommons.archive.tables import archive_objects
from genecommons.config import Settings
from genecommons.errors import AccessDeniedError, ConflictError, NotFoundError
from genecommons.policy.decision import FINGERPRINT, decide, hidden, refusal, visible
from genecommons.policy.models import Action, Decision, Resource, Subject, SubjectKind

SEND_PIECE = 256 * 1024  # what a transfer hands the connection at a time: its audit's grain


@dataclass(frozen=True, slots=True)
class ArchivedObject:
    """An archived file, with what delivery needs to know of it."""

    accession: str
    name: str
    format: str
    size: int
    md5: str
    sha256: str
    created: datetime
    datasets: tuple[str, ...]
    object_key: str
    header: bytes
    body_size: int
    index_key: str | None
    index_kind: str | None
    index_header: bytes | None
    index_body_size: int | None
    state: str
    file_id: int
    copy: RecipientCopy | None = None  # the recipient's fingerprinted copy this object is


def _object(session: Session, accession: str, *, file: CatalogFile | None = None) -> ArchivedObject:
    file = file or catalog_file(session, accession)
    row = session.execute(
        select(archive_objects).where(archive_objects.c.file_id == file.id)
    ).first()
    if row is None:
        raise NotFoundError(
            f"{accession} is declared but not archived yet; its submitter has to upload it.",
            message_zh=f"{accession} 已声明但尚未归档；需由提交者上传。",
        )
    if row.state != "archived":
        raise ConflictError(
            f"{accession} failed its last integrity check and cannot be delivered; the "
            "operator has been told by the audit log.",
            message_zh=f"{accession} 未通过最近一次完整性检查，暂不能提供。",
        )
    return ArchivedObject(
        accession=accession,
        name=file.alias,
        format=row.format,
        size=row.plain_size,
        md5=row.md5,
        sha256=row.sha256,
        created=row.archived_at,
        datasets=file.datasets,
        object_key=row.object_key,
        header=row.header,
        body_size=row.body_size,
        index_key=row.index_key,
        index_kind=row.index_kind,
        index_header=row.index_header,
        index_body_size=row.index_body_size,
        state=row.state,
        file_id=file.id,
    )


def archived_object(session: Session, accession: str) -> ArchivedObject:
    """An archived file, as delivery sees it (no access decision: the caller asked it)."""
    return _object(session, accession)


def _authorize(session: Session, subject: Subject, file: CatalogFile) -> Decision:
    """Allow when a dataset that releases the file allows the subject its records. A file
    whose datasets the subject may not see does not exist for them (the refusal answered as
    its absence would be); either refusal carries its record for the audit log."""
    resources = [
        dataset_resource(session, subject, accession, archived_here=archived_here)
        for accession in file.datasets
    ]
    decisions = [decide(subject, Action.READ_RECORDS, resource) for resource in resources]
    for decision in decisions:
        if decision.allowed:
            return decision
    if not decisions:
        decisions = [decide(subject, Action.READ_RECORDS, Resource("dataset", tier="controlled"))]
    refused = decisions[0]
    record = refusal(
        subject,
        Action.READ_RECORDS,
        Resource("file", file.accession),
        rule=refused.rule,
        datasets=file.datasets,
    )
    shown = [r.accession for r in resources if visible(subject, r)]
    if not shown and not visible(subject, Resource("file", owner=file.created_by)):
        raise hidden(missing_file(file.accession), record)
    raise AccessDeniedError(
        f"{file.accession}: " + " ".join(refused.reasons),
        message_zh=f"{file.accession}：" + "".join(refused.reasons_zh),
        details={"rule": refused.rule, "datasets": shown},
        refusal=record,
    )


def _deliverable(
    factory: sessionmaker[Session], subject: Subject, accession: str
) -> tuple[ArchivedObject, Decision]:
    with factory() as session:
        file = catalog_file(session, accession)
        decision = _authorize(session, subject, file)  # before anything else is said of it
        return _object(session, accession, file=file), decision


def object_for(
    factory: sessionmaker[Session],
    settings: Settings,
    subject: Subject,
    object_id: str,
    *,
    copies: RecipientCopies,
) -> tuple[ArchivedObject, Decision]:
    """What the subject gets for `object_id`: the archived file, or, for a VCF of a
    fingerprinted dataset delivered under the `fingerprint-delivery` obligation, the subject's
    own copy (built in the background: until it is, NotReadyError). A copy's id serves its
    recipient only (`copies`: how recipients' copies are made and found). The decision point
    is asked first, every time."""
    original = copies.original_accession(object_id)
    if original is not None:
        obj, decision = _deliverable(factory, subject, original)
        with factory() as session:
            copy = copies.find_copy(session, copy_id=object_id, accession=original)
        if copy is None or copy.recipient != _recipient(subject) or copy.object_key is None:
            raise NotFoundError(
                f"No object {object_id}: a fingerprinted copy is served to its recipient only; "
                f"ask for {original}.",
                message_zh=f"不存在对象 {object_id}：带指纹的副本仅提供给其接收者；请请求 {original}。",
            )
        return _copy_object(obj, copy), decision
    obj, decision = _deliverable(factory, subject, object_id)
    if obj.format != "vcf" or FINGERPRINT not in decision.obligations:
        return obj, decision
    copy = copies.copy_for(
        factory,
        settings,
        source=source_of(obj),
        datasets=obj.datasets,
        recipient=_recipient(subject),
        requested_by=subject.id,
    )
    if copy is None:  # no dataset of the file marks its deliveries
        return obj, decision
    if copy.object_key is None:  # nothing to mark: the archived file, as it is
        return replace(obj, copy=copy), decision
    return _copy_object(obj, copy), decision


def source_of(obj: ArchivedObject) -> Source:
    """The archived file a copy of `obj` is made from."""
    return Source(
        file_id=obj.file_id,
        accession=obj.accession,
        name=obj.name,
        object_key=obj.object_key,
        header=obj.header,
        body_size=obj.body_size,
    )


def _recipient(subject: Subject) -> str:
    """Who a copy is marked for: a user's e-mail address (as exports name recipients)."""
    return subject.id.removeprefix("user:") if subject.kind is SubjectKind.USER else subject.id


def _copy_object(obj: ArchivedObject, copy: RecipientCopy) -> ArchivedObject:
    assert copy.object_key is not None and copy.header is not None
    assert copy.index_key is not None and copy.plain_size is not None
    return replace(
        obj,
        accession=copy.copy_id,
        size=copy.plain_size,
        md5=copy.md5 or "",
        sha256=copy.sha256 or "",
        created=copy.created_at,
        object_key=copy.object_key,
        header=copy.header,
        body_size=copy.body_size or 0,
        index_key=copy.index_key,
        index_kind=copy.index_key.rsplit(".", 2)[-2],
        index_header=copy.index_header,
        index_body_size=copy.index_body_size,
        copy=copy,
    )


def archived_accession(obj: ArchivedObject) -> str:
    """The archived file's accession (of a copy: the file it was made from)."""
    return obj.copy.accession if obj.copy is not None else obj.accession


def record_copy_delivery(
    session: Session,
    subject: Subject,
    obj: ArchivedObject,
    *,
    copies: RecipientCopies,
    channel: str,
    **what: Any,
) -> None:
    """A DRS or htsget delivery of a fingerprinted dataset's VCF, for leak tracing (nothing
    for an archived file served as it is)."""
    if obj.copy is None:
        return
    copies.record_delivery(
        session, actor=subject.id, copy=obj.copy, channel=channel, sha256=obj.sha256, what=what
    )


class Transfer:
    """The bytes of a delivery as they go to the client, audited when the transfer ends with
    what was actually sent. The bytes are handed to the connection in pieces of at most
    SEND_PIECE, the next only once the connection has taken the one before; a piece counts as
    sent when it is handed over (so the client cannot have received more than the count, and
    at most a piece less). The transfer is complete when the last piece was taken. Reading to
    the end records the event; `close` (the client went away, or the server stops) records it
    with what went so far. Recorded once."""

    def __init__(self, pieces: Iterator[bytes], *, record: Callable[[int, bool], None]) -> None:
        self._pieces = pieces
        self._record = record
        self._lock = threading.Lock()
        self._rest = memoryview(b"")
        self.sent = 0
        self.finished = False

    def __iter__(self) -> Transfer:
        return self

    def __next__(self) -> bytes:
        with self._lock:
            if self.finished:
                raise StopIteration
            while not self._rest:
                try:
                    self._rest = memoryview(next(self._pieces))
                except StopIteration:
                    self._finish(completed=True)
                    raise
                except BaseException:
                    self._finish(completed=False)
                    raise
            piece = bytes(self._rest[:SEND_PIECE])
            self._rest = self._rest[SEND_PIECE:]
            self.sent += len(piece)
            return piece

    def close(self) -> None:
        """End the transfer where it stands, recording what was sent (once)."""
        with self._lock:
            self._finish(completed=False)

    def _finish(self, *, completed: bool) -> None:
        if self.finished:
            return
        self.finished = True
        self._rest = memoryview(b"")
        close = getattr(self._pieces, "close", None)
        if close is not None:
            close()
        self._record(self.sent, completed)
