"""Delivery of archived files: GA4GH DRS objects and downloads, htsget tickets and data.

Every delivery asks the decision point (a grant in force for a dataset that releases the file,
jurisdiction rules allowing) and is recorded in the audit log. A download re-encrypts only the
Crypt4GH header for the recipient and streams the stored body unchanged; htsget data blocks are
cut from the encrypted store by decrypting only the segments that cover them.

A VCF of a fingerprinted dataset, delivered under the decision's `fingerprint-delivery`
obligation, is served as the recipient's own copy (`copies.py`): DRS describes that copy (its
own id, size and checksums), downloads stream it and htsget cuts its ranges from it. Each such
DRS download and htsget ticket is recorded as a delivery for leak tracing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from genecommons import clock
from genecommons.access.models import Action, Decision, Resource, Subject, SubjectKind
from genecommons.access.policy import FINGERPRINT, decide, hidden, refusal, visible
from genecommons.access.workflow import dataset_resource
from genecommons.archive import bgzf, copies, copy_jobs
from genecommons.archive.crypt import decrypt_range, reencrypt_header, session_keys
from genecommons.archive.hts_index import HtsIndex, parse_index
from genecommons.archive.htsget import (
    MAX_REGIONS,
    InvalidRangeError,
    Region,
    UnsupportedFormatError,
)
from genecommons.archive.keys import parse_public_key
from genecommons.archive.service import (
    CatalogFile,
    archive_keys,
    catalog_file,
    missing_file,
    object_store,
)
from genecommons.archive.store import ObjectStore
from genecommons.archive.tables import archive_objects, recipient_keys
from genecommons.audit import fingerprint
from genecommons.audit.events import EventTag, record_event
from genecommons.audit.trace_service import Delivery, record_delivery
from genecommons.config import Settings
from genecommons.db import write_transaction
from genecommons.errors import (
    AccessDeniedError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
)

READ_SIZE = 4 * 1024 * 1024
SEND_PIECE = 256 * 1024  # what a transfer hands the connection at a time: its audit's grain
HTSGET_FORMATS = {"reads": {"bam": "BAM"}, "variants": {"vcf": "VCF"}}


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
    copy: copies.Copy | None = None  # the recipient's fingerprinted copy this object is


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
    resources = [dataset_resource(session, subject, accession) for accession in file.datasets]
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


def _served(
    factory: sessionmaker[Session], settings: Settings, subject: Subject, object_id: str
) -> tuple[ArchivedObject, Decision]:
    """What the subject gets for `object_id`: the archived file, or, for a VCF of a
    fingerprinted dataset delivered under the `fingerprint-delivery` obligation, the subject's
    own copy (built in the background: until it is, CopyNotReadyError). A copy's id serves its
    recipient only. The decision point is asked first, every time."""
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
    with factory() as session:
        dataset = copies.fingerprinted_dataset(session, obj.datasets)
    if dataset is None:
        return obj, decision
    copy = copy_jobs.copy_for(
        factory,
        settings,
        source=copies.Source(
            file_id=obj.file_id,
            accession=obj.accession,
            name=obj.name,
            object_key=obj.object_key,
            header=obj.header,
            body_size=obj.body_size,
        ),
        dataset=dataset,
        recipient=_recipient(subject),
        requested_by=subject.id,
    )
    if copy.object_key is None:  # nothing to mark: the archived file, as it is
        return replace(obj, copy=copy), decision
    return _copy_object(obj, copy), decision


def _recipient(subject: Subject) -> str:
    """Who a copy is marked for: a user's e-mail address (as exports name recipients)."""
    return subject.id.removeprefix("user:") if subject.kind is SubjectKind.USER else subject.id


def _copy_object(obj: ArchivedObject, copy: copies.Copy) -> ArchivedObject:
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


def _original(obj: ArchivedObject) -> str:
    """The archived file's accession (of a copy: the file it was made from)."""
    return obj.copy.accession if obj.copy is not None else obj.accession


def _record_delivery(
    session: Session, subject: Subject, obj: ArchivedObject, *, channel: str, **what: Any
) -> None:
    """A DRS or htsget delivery of a fingerprinted dataset's VCF, for leak tracing."""
    copy = obj.copy
    if copy is None:
        return
    record_delivery(
        session,
        Delivery(
            delivery_id=str(uuid.uuid4()),
            recipient=copy.recipient,
            dataset=copy.dataset,
            delivered_at=clock.now(),
            channel=channel,
            fingerprinted=copy.object_key is not None,
            what={
                "format": "vcf.gz",
                "file": copy.accession,
                "source": f"file:{copy.accession}",
                "copy": copy.copy_id if copy.object_key is not None else None,
                "sha256": obj.sha256,
                "marked_positions": copy.marked_positions,
                **what,
            },
            key_id=copy.key_id,
            utility=copy.utility,
        ),
        scheme=fingerprint.Scheme(),
        actor=subject.id,
    )


# -- DRS -------------------------------------------------------------------------------------


def drs_object(
    factory: sessionmaker[Session],
    settings: Settings,
    *,
    subject: Subject,
    object_id: str,
    base_url: str,
) -> dict[str, Any]:
    """The DRS 1.4 DrsObject of an archived file the subject may read (of the subject's own
    copy, for a VCF of a fingerprinted dataset)."""
    obj, _ = _served(factory, settings, subject, object_id)
    host = base_url.split("://", 1)[-1].rstrip("/")
    created = clock.as_utc(obj.created).isoformat()
    return {
        "id": obj.accession,
        "name": obj.name,
        "self_uri": f"drs://{host}/{obj.accession}",
        "size": obj.size,
        "created_time": created,
        "updated_time": created,
        "version": obj.sha256[:12],
        "mime_type": "application/octet-stream",
        "checksums": [
            {"type": "sha-256", "checksum": obj.sha256},
            {"type": "md5", "checksum": obj.md5},
        ],
        "description": (
            f"{obj.format.upper()} file of dataset(s) {', '.join(obj.datasets)}"
            + (
                f", the fingerprinted copy of {obj.copy.accession} made for you"
                if obj.copy is not None and obj.copy.object_key is not None
                else ""
            )
            + ". Delivered Crypt4GH-encrypted for the recipient's public key; size and "
            "checksums are those of the decrypted file."
        ),
        "access_methods": [{"type": "https", "access_id": "crypt4gh"}],
    }


def drs_access_url(
    factory: sessionmaker[Session],
    settings: Settings,
    *,
    subject: Subject,
    object_id: str,
    access_id: str,
    base_url: str,
    headers: list[str],
) -> dict[str, Any]:
    """The DRS AccessURL of a file: where to fetch it, with the headers to send."""
    if access_id != "crypt4gh":
        raise NotFoundError(
            f"No access method {access_id!r}; use 'crypt4gh'.",
            message_zh=f"不存在访问方式 {access_id!r}；请使用 crypt4gh。",
        )
    obj, decision = _served(factory, settings, subject, object_id)
    with write_transaction(factory) as session:
        record_event(
            session,
            tag=EventTag.ACCESS_URL_ISSUED,
            actor=subject.id,
            subject=f"file:{_original(obj)}",
            details={"datasets": list(obj.datasets), "obligations": list(decision.obligations)},
        )
    return {
        "url": f"{base_url.rstrip('/')}/ga4gh/drs/v1/objects/{obj.accession}/download",
        "headers": headers,
    }


def recipient_key(
    factory: sessionmaker[Session], *, subject: Subject, offered: str | None
) -> bytes:
    """The Crypt4GH public key to encrypt for: the one offered with the request, else the one
    the subject registered."""
    if offered:
        try:
            return parse_public_key(offered)
        except InvalidInputError:
            try:  # the whole PEM, base64-encoded to fit in a header
                return parse_public_key(base64.b64decode(offered, validate=True))
            except (binascii.Error, ValueError, InvalidInputError):
                raise InvalidInputError(
                    "X-Crypt4GH-Public-Key must hold a Crypt4GH public key: the base64 line of "
                    "the key file that crypt4gh-keygen writes.",
                    message_zh="X-Crypt4GH-Public-Key 须为 Crypt4GH 公钥（crypt4gh-keygen 生成的"
                    "公钥文件中的 base64 行）。",
                ) from None
    with factory() as session:
        found = session.execute(
            select(recipient_keys.c.public_key).where(recipient_keys.c.subject_id == subject.id)
        ).scalar()
    if found is None:
        raise InvalidInputError(
            "No Crypt4GH public key is registered for you: register one "
            "(PUT /api/v1/me/crypt4gh-key, or `genecommons archive register-key`) or send it in the "
            "X-Crypt4GH-Public-Key header.",
            message_zh="您尚未登记 Crypt4GH 公钥：请先登记，或在 X-Crypt4GH-Public-Key 请求头中提供。",
        )
    return bytes(found)


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


@dataclass(frozen=True, slots=True)
class Download:
    """A Crypt4GH stream for one recipient: a fresh header, then the stored body."""

    name: str
    size: int
    chunks: Transfer


def download(
    factory: sessionmaker[Session],
    settings: Settings,
    *,
    subject: Subject,
    object_id: str,
    recipient_public: bytes | None = None,
    offered_key: str | None = None,
) -> Download:
    """The file as a Crypt4GH stream readable with the recipient's secret key only: the key
    given, else the one offered with the request, else the one the subject registered. The
    download is audited when it ends, with the bytes sent; a fingerprinted copy's delivery is
    recorded before its first byte goes."""
    obj, decision = _served(factory, settings, subject, object_id)
    if recipient_public is None:
        recipient_public = recipient_key(factory, subject=subject, offered=offered_key)
    header = reencrypt_header(
        obj.header, keys=archive_keys(settings), recipient_public=recipient_public
    )
    size = len(header) + obj.body_size
    if obj.copy is not None:
        with write_transaction(factory) as session:
            _record_delivery(session, subject, obj, channel="drs")

    def record(sent: int, completed: bool) -> None:
        with write_transaction(factory) as session:
            record_event(
                session,
                tag=EventTag.FILE_DOWNLOADED,
                actor=subject.id,
                subject=f"file:{_original(obj)}",
                details={
                    "datasets": list(obj.datasets),
                    "recipient_key_sha256": hashlib.sha256(recipient_public).hexdigest(),
                    "bytes": sent,
                    "size": size,
                    "completed": completed,
                    "obligations": list(decision.obligations),
                },
            )

    store = object_store(settings)
    return Download(
        name=f"{obj.name}.c4gh",
        size=size,
        chunks=Transfer(_stream(header, store, obj.object_key), record=record),
    )


def _stream(header: bytes, store: ObjectStore, key: str) -> Iterator[bytes]:
    yield header
    with store.open(key) as body:
        while chunk := body.read(READ_SIZE):
            yield chunk


# -- htsget ----------------------------------------------------------------------------------


class _Plaintext:
    """Random access to the plaintext of an archived object, decrypting only what is read."""

    def __init__(self, store: ObjectStore, key: str, keys_in_header: list[bytes], size: int):
        self._store = store
        self._key = key
        self._session_keys = keys_in_header
        self._body_size = size

    def read_at(self, offset: int, length: int) -> bytes:
        from genecommons.archive.crypt import plain_body_size

        end = min(offset + length, plain_body_size(self._body_size))
        if end <= offset:
            return b""
        return b"".join(
            decrypt_range(
                self._store_read,
                session_keys=self._session_keys,
                body_size=self._body_size,
                start=offset,
                end=end,
            )
        )

    def _store_read(self, offset: int, length: int) -> bytes:
        return self._store.read_range(self._key, offset, length)


@dataclass(frozen=True, slots=True)
class _Prepared:
    """What tickets need of an object, computed once per process."""

    plaintext: _Plaintext
    index: HtsIndex
    header: bgzf.HeaderInfo
    references: tuple[str, ...]


_prepare_lock = threading.Lock()


@lru_cache(maxsize=64)
def _prepared(settings: Settings, key: str, header: bytes, body_size: int, index: tuple[Any, ...]):  # type: ignore[no-untyped-def]
    index_key, index_kind, index_header, index_body_size = index
    keys = archive_keys(settings)
    store = object_store(settings)
    plaintext = _Plaintext(store, key, session_keys(header, keys=keys), body_size)
    index_plain = _Plaintext(
        store, index_key, session_keys(index_header, keys=keys), index_body_size
    )
    from genecommons.archive.crypt import plain_body_size

    index_bytes = index_plain.read_at(0, plain_body_size(index_body_size))
    parsed = parse_index(index_bytes, kind=index_kind)
    header_info = bgzf.header_end(plaintext.read_at, kind="bam" if index_kind == "bai" else "vcf")
    names = tuple(parsed.reference_names or header_info.reference_names)
    return _Prepared(plaintext, parsed, header_info, names)


def _prepare(settings: Settings, obj: ArchivedObject) -> _Prepared:
    if obj.index_key is None or obj.index_kind is None or obj.index_header is None:
        raise InvalidInputError(
            f"{obj.accession} has no index, so htsget cannot serve regions of it; download the "
            "whole file through DRS.",
            message_zh=f"{obj.accession} 没有索引，htsget 无法按区域提供；请通过 DRS 下载整个文件。",
        )
    with _prepare_lock:
        prepared: _Prepared = _prepared(
            settings,
            obj.object_key,
            obj.header,
            obj.body_size,
            (obj.index_key, obj.index_kind, obj.index_header, obj.index_body_size),
        )
    return prepared


def htsget_ticket(
    factory: sessionmaker[Session],
    settings: Settings,
    *,
    subject: Subject,
    endpoint: str,
    object_id: str,
    requested_format: str | None,
    regions: list[Region],
    header_only: bool,
    base_url: str,
    headers: dict[str, str],
) -> dict[str, Any]:
    """An htsget 1.3 ticket: URLs whose concatenated bytes are a valid file holding the records
    of `regions` (every record when there is none)."""
    formats = HTSGET_FORMATS[endpoint]
    obj, decision = _served(factory, settings, subject, object_id)
    if obj.format not in formats:
        raise UnsupportedFormatError(
            f"{object_id} is a {obj.format.upper()} file; /htsget/{endpoint} serves "
            f"{', '.join(formats.values())}.",
            message_zh=f"{object_id} 是 {obj.format.upper()} 文件，此接口不提供该格式。",
        )
    served = formats[obj.format]
    if requested_format is not None and requested_format.upper() != served:
        raise UnsupportedFormatError(
            f"{object_id} is available as {served} only (asked for {requested_format}).",
            message_zh=f"{object_id} 仅以 {served} 格式提供。",
        )
    if len(regions) > MAX_REGIONS:
        raise InvalidInputError(
            f"At most {MAX_REGIONS} regions per request.",
            message_zh=f"每次最多 {MAX_REGIONS} 个区域。",
        )
    prepared = _prepare(settings, obj)
    data = f"{base_url.rstrip('/')}/htsget/data/{obj.accession}"
    plain_end = obj.size << 16
    urls: list[dict[str, Any]] = []

    def url(start: int, end: int, klass: str | None = None) -> dict[str, Any]:
        item: dict[str, Any] = {"url": f"{data}?start={start}&end={end}", "headers": headers}
        if klass:
            item["class"] = klass
        return item

    header_end = prepared.header.end_offset
    urls.append(url(0, header_end, "header"))
    if not header_only:
        if not regions:
            urls.append(url(header_end, plain_end, "body"))
        else:
            for start, end in _chunks(prepared, regions):
                urls.append(url(start, end, "body"))
            urls.append(
                {
                    "url": "data:application/octet-stream;base64,"
                    + base64.b64encode(bgzf.EOF_BLOCK).decode(),
                    "class": "body",
                }
            )
    with write_transaction(factory) as session:
        record_event(
            session,
            tag=EventTag.HTSGET_TICKET,
            actor=subject.id,
            subject=f"file:{_original(obj)}",
            details={
                "datasets": list(obj.datasets),
                "regions": [
                    {"referenceName": r.reference_name, "start": r.start, "end": r.end}
                    for r in regions[:50]
                ],
                "obligations": list(decision.obligations),
            },
        )
        _record_delivery(
            session,
            subject,
            obj,
            channel="htsget",
            regions=[
                {"referenceName": r.reference_name, "start": r.start, "end": r.end}
                for r in regions[:50]
            ],
            header_only=header_only,
        )
    return {"htsget": {"format": served, "urls": urls}}


def _chunks(prepared: _Prepared, regions: list[Region]) -> list[tuple[int, int]]:
    """Merged virtual-offset ranges covering every region, in file order."""
    ranges: list[tuple[int, int]] = []
    for region in regions:
        reference = _reference_index(prepared, region.reference_name)
        if region.end is not None and region.end < region.start:
            raise InvalidRangeError(
                f"The region {region.reference_name}:{region.start}-{region.end} ends before it "
                "starts.",
                message_zh="区域的 end 小于 start。",
            )
        ranges.extend(prepared.index.chunks(reference, region.start, region.end))
    ranges.sort()
    merged: list[tuple[int, int]] = []
    for start, end in ranges:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _reference_index(prepared: _Prepared, name: str) -> int:
    try:
        return prepared.references.index(name)
    except ValueError:
        raise NotFoundError(
            f"No reference {name!r} in this file; it has {', '.join(prepared.references[:30])}.",
            message_zh=f"此文件中没有参考序列 {name!r}。",
        ) from None


def htsget_data(
    factory: sessionmaker[Session],
    settings: Settings,
    *,
    subject: Subject,
    object_id: str,
    start: int,
    end: int,
) -> Transfer:
    """The BGZF bytes between two virtual offsets of an archived file (a ticket's URL),
    audited when the transfer ends with the bytes sent."""
    obj, decision = _served(factory, settings, subject, object_id)
    if not 0 <= start <= end <= obj.size << 16:
        raise InvalidRangeError(
            f"start and end must be virtual offsets with 0 <= start <= end <= {obj.size << 16}.",
            message_zh="start 与 end 必须为有效的虚拟偏移量。",
        )
    prepared = _prepare(settings, obj)

    def record(sent: int, completed: bool) -> None:
        with write_transaction(factory) as session:
            record_event(
                session,
                tag=EventTag.HTSGET_DATA,
                actor=subject.id,
                subject=f"file:{_original(obj)}",
                details={
                    "datasets": list(obj.datasets),
                    "start": start,
                    "end": end,
                    "bytes": sent,
                    "completed": completed,
                    "obligations": list(decision.obligations),
                },
            )

    return Transfer(
        bgzf.slice_stream(prepared.plaintext.read_at, start_vo=start, end_vo=end), record=record
    )
