"""GA4GH DRS 1.4: the DrsObject and access URL of an archived file, its download as a Crypt4GH
stream for the recipient, and the bulk requests (many objects, or many access URLs, in one
request).

A download re-encrypts only the Crypt4GH header for the recipient and streams the stored body
unchanged. A bulk request answers each id as its own request would be (`drs_object`,
`drs_access_url`: the same decision, the same audit events); the ones that could not be answered
are listed with the status their own request would have had.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from genecommons import clock
from genecommons.archive.crypt import reencrypt_header
from genecommons.archive.keys import parse_public_key
from genecommons.archive.keys_and_store import archive_keys, object_store
from genecommons.archive.recipient_copies import RecipientCopies
from genecommons.archive.served import (
    Transfer,
    archived_accession,
    object_for,
    record_copy_delivery,
)
from genecommons.archive.store import ObjectStore
from genecommons.archive.tables import recipient_keys
from genecommons.config import Settings
from genecommons.db import write_transaction
from genecommons.errors import (
    AccessDeniedError,
    GeneCommonsError,
    InvalidInputError,
    NotFoundError,
    NotReadyError,
    RequestTooLargeError,
)
from genecommons.ledger.events import EventTag, record_event
from genecommons.policy.models import Subject, SubjectKind

READ_SIZE = 4 * 1024 * 1024


def drs_object(
    factory: sessionmaker[Session],
    settings: Settings,
    *,
    subject: Subject,
    copies: RecipientCopies,
    object_id: str,
    base_url: str,
) -> dict[str, Any]:
    """The DRS 1.4 DrsObject of an archived file the subject may read (of the subject's own
    copy, for a VCF of a fingerprinted dataset)."""
    obj, _ = object_for(factory, settings, subject, object_id, copies=copies)
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
    copies: RecipientCopies,
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
    obj, decision = object_for(factory, settings, subject, object_id, copies=copies)
    with write_transaction(factory) as session:
        record_event(
            session,
            tag=EventTag.ACCESS_URL_ISSUED,
            actor=subject.id,
            subject=f"file:{archived_accession(obj)}",
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
    copies: RecipientCopies,
    object_id: str,
    recipient_public: bytes | None = None,
    offered_key: str | None = None,
) -> Download:
    """The file as a Crypt4GH stream readable with the recipient's secret key only: the key
    given, else the one offered with the request, else the one the subject registered. The
    download is audited when it ends, with the bytes sent; a fingerprinted copy's delivery is
    recorded before its first byte goes."""
    obj, decision = object_for(factory, settings, subject, object_id, copies=copies)
    if recipient_public is None:
        recipient_public = recipient_key(factory, subject=subject, offered=offered_key)
    header = reencrypt_header(
        obj.header, keys=archive_keys(settings), recipient_public=recipient_public
    )
    size = len(header) + obj.body_size
    if obj.copy is not None:
        with write_transaction(factory) as session:
            record_copy_delivery(session, subject, obj, copies=copies, channel="drs")

    def record(sent: int, completed: bool) -> None:
        with write_transaction(factory) as session:
            record_event(
                session,
                tag=EventTag.FILE_DOWNLOADED,
                actor=subject.id,
                subject=f"file:{archived_accession(obj)}",
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


# the most ids one bulk request may name (service-info's maxBulkRequestLength)
MAX_BULK = 100


def status_of(error: GeneCommonsError, *, anonymous: bool) -> int:
    """The HTTP status DRS answers `error` with: input errors are 400 there, and a refusal of a
    caller who sent no credentials is 401 (authenticate, then ask again), not 403, and an
    object still being prepared is 202 (ask again after Retry-After)."""
    if isinstance(error, AccessDeniedError) and anonymous:
        return 401
    if isinstance(error, NotReadyError):  # an object being prepared: DRS 1.4 answers 202
        return 202
    return 400 if error.http_status == 422 else error.http_status


def _bounded(count: int) -> None:
    if count > MAX_BULK:
        raise RequestTooLargeError(
            f"A bulk request names at most {MAX_BULK} ids (maxBulkRequestLength); it named "
            f"{count}. Split it into several requests.",
            message_zh=f"批量请求最多包含 {MAX_BULK} 个标识（maxBulkRequestLength），"
            f"本次为 {count} 个；请拆分为多个请求。",
        )


def _bulk(
    keys: list[Any], answer: Callable[[Any], Any], *, subject: Subject
) -> tuple[list[Any], list[dict[str, Any]]]:
    """Each key's answer, and the keys without one grouped by the status of their error."""
    resolved: list[Any] = []
    failed: dict[int, list[str]] = {}
    anonymous = subject.kind is SubjectKind.ANONYMOUS
    for key in keys:
        try:
            resolved.append(answer(key))
        except GeneCommonsError as error:
            object_id = key if isinstance(key, str) else key[0]
            failed.setdefault(status_of(error, anonymous=anonymous), []).append(object_id)
    unresolved = [
        {"error_code": code, "object_ids": list(dict.fromkeys(ids))}
        for code, ids in sorted(failed.items())
    ]
    return resolved, unresolved


def _summary(requested: int, resolved: int) -> dict[str, int]:
    return {"requested": requested, "resolved": resolved, "unresolved": requested - resolved}


def drs_objects(
    factory: sessionmaker[Session],
    settings: Settings,
    *,
    subject: Subject,
    copies: RecipientCopies,
    object_ids: Sequence[str],
    base_url: str,
) -> dict[str, Any]:
    """DRS `GetBulkObjects`: the DrsObject of each id the subject may read."""
    _bounded(len(object_ids))
    ids = list(dict.fromkeys(object_ids))  # each id answered once, in the order first named
    resolved, unresolved = _bulk(
        ids,
        lambda object_id: drs_object(
            factory,
            settings,
            subject=subject,
            copies=copies,
            object_id=object_id,
            base_url=base_url,
        ),
        subject=subject,
    )
    return {
        "summary": _summary(len(ids), len(resolved)),
        "unresolved_drs_objects": unresolved,
        "resolved_drs_object": resolved,
    }


def drs_access_urls(
    factory: sessionmaker[Session],
    settings: Settings,
    *,
    subject: Subject,
    copies: RecipientCopies,
    wanted: Sequence[tuple[str, Sequence[str]]],
    base_url: str,
    headers: list[str],
) -> dict[str, Any]:
    """DRS `GetBulkAccessURL`: an access URL for each (object id, access id) pair the subject
    may fetch."""
    _bounded(sum(max(len(access), 1) for _, access in wanted))
    pairs = list(
        dict.fromkeys(
            (object_id, access_id) for object_id, access in wanted for access_id in access
        )
    )

    def access_url(pair: tuple[str, str]) -> dict[str, Any]:
        object_id, access_id = pair
        url = drs_access_url(
            factory,
            settings,
            subject=subject,
            copies=copies,
            object_id=object_id,
            access_id=access_id,
            base_url=base_url,
            headers=headers,
        )
        return {"drs_object_id": object_id, "drs_access_id": access_id, **url}

    resolved, unresolved = _bulk(pairs, access_url, subject=subject)
    return {
        "summary": _summary(len(pairs), len(resolved)),
        "unresolved_drs_objects": unresolved,
        "resolved_drs_object_access_urls": resolved,
    }
