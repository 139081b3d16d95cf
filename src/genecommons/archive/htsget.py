"""htsget 1.3 serving: tickets whose URLs cut region slices out of an archived BAM or VCF (or
the recipient's fingerprinted copy), and the data behind those URLs. Only the Crypt4GH segments
that cover a slice are decrypted; the request rules are checked first (`htsget_requests.py`).
"""

from __future__ import annotations

import base64
import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from genecommons.archive import bgzf
from genecommons.archive.crypt import decrypt_range, session_keys
from genecommons.archive.hts_index import HtsIndex, parse_index
from genecommons.archive.htsget_requests import (
    MAX_REGIONS,
    InvalidRangeError,
    Region,
    UnsupportedFormatError,
)
from genecommons.archive.keys_and_store import archive_keys, object_store
from genecommons.archive.recipient_copies import RecipientCopies
from genecommons.archive.served import (
    ArchivedObject,
    Transfer,
    archived_accession,
    object_for,
    record_copy_delivery,
)
from genecommons.archive.store import ObjectStore
from genecommons.config import Settings
from genecommons.db import write_transaction
from genecommons.errors import InvalidInputError, NotFoundError
from genecommons.ledger.events import EventTag, record_event
from genecommons.policy.models import Subject

HTSGET_FORMATS = {"reads": {"bam": "BAM"}, "variants": {"vcf": "VCF"}}


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
    copies: RecipientCopies,
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
    obj, decision = object_for(factory, settings, subject, object_id, copies=copies)
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
            subject=f"file:{archived_accession(obj)}",
            details={
                "datasets": list(obj.datasets),
                "regions": [
                    {"referenceName": r.reference_name, "start": r.start, "end": r.end}
                    for r in regions[:50]
                ],
                "obligations": list(decision.obligations),
            },
        )
        record_copy_delivery(
            session,
            subject,
            obj,
            copies=copies,
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
    copies: RecipientCopies,
    object_id: str,
    start: int,
    end: int,
) -> Transfer:
    """The BGZF bytes between two virtual offsets of an archived file (a ticket's URL),
    audited when the transfer ends with the bytes sent."""
    obj, decision = object_for(factory, settings, subject, object_id, copies=copies)
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
                subject=f"file:{archived_accession(obj)}",
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
