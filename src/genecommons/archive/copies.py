"""Recipients' fingerprinted copies of archived VCFs, for DRS and htsget.

A controlled delivery of a VCF whose dataset is fingerprinted (the decision carries the
`fingerprint-delivery` obligation and the dataset's setting says yes) serves the recipient's own
copy instead of the archived file. The copy is made on the first request of that recipient:
the archived VCF is decrypted, its GT calls are marked for the recipient (`audit.fingerprint`,
keyed by the dataset), written as a bgzipped VCF with a tabix index, and both are encrypted for
the archive key and stored beside the original, which is never touched. The copy has a DRS id of
its own (`<file accession>-fp-<16 hex>`), its own size and checksums, and htsget cuts its byte
ranges from it. Plaintext exists only in the staging directory while the copy is made.

A file none of whose cells can carry a mark (too few samples or common sites) gets a row with
no object: the archived file is served, and the deliveries say so.
"""

from __future__ import annotations

import hashlib
import logging
import os
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from genecommons import clock
from genecommons.archive import formats
from genecommons.archive.crypt import BodyDecryptor, BodyEncryptor, session_keys
from genecommons.archive.service import archive_keys, object_store
from genecommons.archive.tables import fingerprint_copies
from genecommons.audit import fingerprint, genotypes
from genecommons.audit.trace_service import fingerprint_required, fingerprint_secret
from genecommons.config import Settings
from genecommons.errors import GeneCommonsError

logger = logging.getLogger(__name__)

SEPARATOR = "-fp-"
READ_SIZE = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Source:
    """The archived VCF a copy is made from."""

    file_id: int
    accession: str
    name: str
    object_key: str
    header: bytes


@dataclass(frozen=True, slots=True)
class Copy:
    """A recipient's copy (`object_key` None: nothing could be marked; the original is served)."""

    copy_id: str
    file_id: int
    accession: str
    recipient: str
    dataset: str
    key_id: str
    marked_positions: int
    utility: dict[str, Any]
    object_key: str | None
    header: bytes | None
    body_size: int | None
    plain_size: int | None
    md5: str | None
    sha256: str | None
    index_key: str | None
    index_header: bytes | None
    index_body_size: int | None
    created_at: datetime


def original_accession(object_id: str) -> str | None:
    """The archived file's accession of a copy's DRS id (None: not a copy's id)."""
    accession, separator, tag = object_id.partition(SEPARATOR)
    if not separator or len(tag) != 16 or not all(c in "0123456789abcdef" for c in tag):
        return None
    return accession


def fingerprinted_dataset(session: Session, datasets: tuple[str, ...]) -> str | None:
    """The dataset whose setting marks the file's deliveries (the first in order), if any."""
    for dataset in sorted(datasets):
        if fingerprint_required(session, dataset):
            return dataset
    return None


def _copy(row: Any, accession: str) -> Copy:
    return Copy(
        copy_id=row.copy_id,
        file_id=row.file_id,
        accession=accession,
        recipient=row.recipient,
        dataset=row.dataset,
        key_id=row.key_id,
        marked_positions=row.marked_positions,
        utility=dict(row.utility),
        object_key=row.object_key,
        header=row.header,
        body_size=row.body_size,
        plain_size=row.plain_size,
        md5=row.md5,
        sha256=row.sha256,
        index_key=row.index_key,
        index_header=row.index_header,
        index_body_size=row.index_body_size,
        created_at=row.created_at,
    )


def find_copy(session: Session, *, copy_id: str, accession: str) -> Copy | None:
    """A copy by its DRS id."""
    row = session.execute(
        select(fingerprint_copies).where(fingerprint_copies.c.copy_id == copy_id)
    ).first()
    return None if row is None else _copy(row, accession)


def _existing(session: Session, source: Source, recipient: str, key_id: str) -> Copy | None:
    row = session.execute(
        select(fingerprint_copies)
        .where(fingerprint_copies.c.file_id == source.file_id)
        .where(fingerprint_copies.c.recipient == recipient)
        .where(fingerprint_copies.c.key_id == key_id)
    ).first()
    return None if row is None else _copy(row, source.accession)


def archived_genotypes(
    settings: Settings, *, object_key: str, header: bytes, name: str
) -> genotypes.Genotypes:
    """The GT calls of an archived VCF, decrypted in memory."""
    keys = session_keys(header, keys=archive_keys(settings))
    decryptor = BodyDecryptor(keys)
    parts: list[bytes] = []
    with object_store(settings).open(object_key) as body:
        while chunk := body.read(READ_SIZE):
            parts.append(decryptor.update(chunk))
    parts.append(decryptor.finish())
    return genotypes.from_vcf(b"".join(parts), name=name)


def recipient_copy(
    factory: sessionmaker[Session],
    settings: Settings,
    *,
    source: Source,
    dataset: str,
    recipient: str,
) -> Copy:
    """The recipient's copy of `source`, made and stored on the first request."""
    secret = fingerprint_secret(settings)
    key_id = fingerprint.key_id(secret)
    with factory() as session:
        found = _existing(session, source, recipient, key_id)
    if found is not None:
        return found
    original = archived_genotypes(
        settings, object_key=source.object_key, header=source.header, name=source.name
    )
    dosages = original.dosages()
    plan = fingerprint.make_plan(dosages, secret=secret, dataset=dataset)
    copy_id = f"{source.accession}{SEPARATOR}{uuid.uuid4().hex[:16]}"
    values: dict[str, Any] = {
        "copy_id": copy_id,
        "file_id": source.file_id,
        "recipient": recipient,
        "dataset": dataset,
        "key_id": key_id,
        "marked_positions": len(plan),
        "created_at": clock.now(),
    }
    stored: list[str] = []
    if len(plan):
        bits = fingerprint.recipient_bits(plan, secret=secret, dataset=dataset, recipient=recipient)
        marked = genotypes.mark(original, plan, bits)
        values["utility"] = fingerprint.utility(dosages, marked.dosages()).as_json()
        values.update(_store_copy(settings, marked, copy_id, source, stored))
    else:
        logger.warning("%s: too few samples or common sites to mark; served as archived", dataset)
        values["utility"] = fingerprint.Utility(0, 0, 0.0).as_json()
    try:
        with factory.begin() as session:
            session.execute(insert(fingerprint_copies).values(**values))
    except IntegrityError:  # another worker made this recipient's copy first
        _discard(settings, stored)
        with factory() as session:
            found = _existing(session, source, recipient, key_id)
        if found is None:
            raise
        return found
    except BaseException:
        _discard(settings, stored)
        raise
    with factory() as session:
        made = _existing(session, source, recipient, key_id)
    assert made is not None
    return made


def _store_copy(
    settings: Settings,
    marked: genotypes.Genotypes,
    copy_id: str,
    source: Source,
    stored: list[str],
) -> dict[str, Any]:
    """Write the copy bgzipped, index it, encrypt both for the archive and store them."""

    staging = settings.staging_dir / "copies"
    staging.mkdir(parents=True, exist_ok=True)
    plain = staging / f"{copy_id}.vcf.gz"
    index: Path | None = None
    try:
        descriptor = os.open(plain, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(descriptor)
        handle: Any = genotypes.BgzfFile(plain)
        try:
            genotypes.write_vcf(
                marked,
                handle,
                source=f"GeneCommons {source.accession}",
                extra=[f"##genecommons_copy={copy_id}"],
            )
        finally:
            handle.close()
        index = formats.make_index(plain, fmt="vcf", out_dir=staging)
        keys = archive_keys(settings)
        store = object_store(settings)
        base = f"{source.accession}/copies/{copy_id}"
        md5 = hashlib.md5(usedforsecurity=False)
        sha256 = hashlib.sha256()
        encryptor = BodyEncryptor()
        header = encryptor.header_for([keys.public], sender=keys)

        def chunks() -> Any:
            with plain.open("rb") as stream:
                while chunk := stream.read(READ_SIZE):
                    md5.update(chunk)
                    sha256.update(chunk)
                    yield encryptor.update(chunk)
            yield encryptor.finish()

        body_size = store.put(f"{base}.c4gh", chunks())
        stored.append(f"{base}.c4gh")
        index_encryptor = BodyEncryptor()
        index_header = index_encryptor.header_for([keys.public], sender=keys)
        index_body = bytes(index_encryptor.update(index.read_bytes()) + index_encryptor.finish())
        index_key = f"{base}.{index.suffix.lstrip('.')}.c4gh"
        store.put(index_key, [index_body])
        stored.append(index_key)
        return {
            "object_key": f"{base}.c4gh",
            "header": header,
            "body_size": body_size,
            "plain_size": plain.stat().st_size,
            "md5": md5.hexdigest(),
            "sha256": sha256.hexdigest(),
            "index_key": index_key,
            "index_header": index_header,
            "index_body_size": len(index_body),
        }
    except BaseException:
        _discard(settings, stored)
        raise
    finally:
        plain.unlink(missing_ok=True)
        if index is not None:
            index.unlink(missing_ok=True)


def _discard(settings: Settings, keys: list[str]) -> None:
    store = object_store(settings)
    for key in keys:
        try:
            store.delete(key)
        except GeneCommonsError:
            logger.exception("could not remove %s after a failed copy", key)
    keys.clear()
