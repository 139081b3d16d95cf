"""Recipients' fingerprinted copies of archived VCFs, for DRS and htsget.

A controlled delivery of a VCF whose dataset is fingerprinted (the decision carries the
`fingerprint-delivery` obligation and the dataset's setting says yes) serves the recipient's own
copy instead of the archived file. The copy is built in the background (`copy_jobs.py`), in two
streaming passes over the archived object, decrypted as it is read:

1. the keyed plan of marked positions (`codes.PlanBuilder`), a block of sites at a time;
2. the recipient's marks applied block by block, the copy written as BGZF (VCF 4.3, GT only,
   phasing kept) straight into a Crypt4GH stream for the archive key that the object store
   receives, its tabix index built from the records' virtual offsets in the same pass.

Memory is bounded by a segment of sites (about a million calls) and the plan (a few bytes per
marked position), not by the file; no plaintext of the copy is ever written anywhere. The marks
are those the whole-matrix functions give (the plan, the code and the marks are computed block
by block by the same code), so tracing is unchanged.

The copy has a DRS id of its own (`<file accession>-fp-<16 hex>`), its own size and checksums,
and htsget cuts its byte ranges from it. A file none of whose cells can carry a mark (too few
samples or common sites) gets a row with no object: the archived file is served, and the
deliveries say so.
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import select
from sqlalchemy.orm import Session

from genecommons.archive.bgzf import BgzfWriter
from genecommons.archive.crypt import BodyDecryptor, BodyEncryptor, session_keys
from genecommons.archive.hts_index import IndexWriter
from genecommons.archive.keys_and_store import archive_keys, object_store
from genecommons.archive.recipient_copies import Source
from genecommons.config import Settings
from genecommons.errors import ConflictError, GeneCommonsError
from genecommons.fingerprint import codes, genotypes
from genecommons.fingerprint.models import Copy
from genecommons.fingerprint.secret import fingerprint_secret
from genecommons.fingerprint.tables import fingerprint_copies
from genecommons.fingerprint.vcf_blocks import VcfHead, dosages_of, read_vcf

logger = logging.getLogger(__name__)

SEPARATOR = "-fp-"
READ_SIZE = 4 * 1024 * 1024
Progress = Callable[[float], None]


def original_accession(object_id: str) -> str | None:
    """The archived file's accession of a copy's DRS id (None: not a copy's id)."""
    accession, separator, tag = object_id.partition(SEPARATOR)
    if not separator or len(tag) != 16 or not all(c in "0123456789abcdef" for c in tag):
        return None
    return accession


def copy_keys(accession: str, copy_id: str) -> list[str]:
    """Every object key a copy (or an attempt at it) may have written."""
    base = f"{accession}/copies/{copy_id}"
    return [f"{base}.c4gh", f"{base}.tbi.c4gh", f"{base}.csi.c4gh"]


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


def object_keys(session: Session) -> set[str]:
    """The object store's keys that recipients' copies use (objects and indexes)."""
    keys: set[str] = set()
    for row in session.execute(
        select(fingerprint_copies.c.object_key, fingerprint_copies.c.index_key)
    ):
        keys.update(key for key in row if key is not None)
    return keys


def existing_copy(
    session: Session, *, file_id: int, accession: str, recipient: str, key_id: str
) -> Copy | None:
    """The recipient's finished copy of a file under the secret `key_id`, if there is one."""
    row = session.execute(
        select(fingerprint_copies)
        .where(fingerprint_copies.c.file_id == file_id)
        .where(fingerprint_copies.c.recipient == recipient)
        .where(fingerprint_copies.c.key_id == key_id)
    ).first()
    return None if row is None else _copy(row, accession)


def _plaintext(
    settings: Settings,
    source: Source,
    data_keys: list[bytes],
    progress: Progress | None = None,
    *,
    span: float = 1.0,
) -> Iterator[bytes]:
    """The archived object's bytes, decrypted as they are read (progress: the share read,
    scaled to `span`)."""
    decryptor = BodyDecryptor(data_keys)
    read = 0
    with object_store(settings).open(source.object_key) as body:
        while chunk := body.read(READ_SIZE):
            read += len(chunk)
            yield decryptor.update(chunk)
            if progress is not None and source.body_size:
                progress(span * min(1.0, read / source.body_size))
    yield decryptor.finish()


def archived_genotypes(settings: Settings, *, source: Source) -> genotypes.Genotypes:
    """The GT calls of an archived VCF (what tracing scores its deliveries on), decrypted and
    parsed as a stream: only the call arrays are held."""
    data_keys = session_keys(source.header, keys=archive_keys(settings))
    return genotypes.from_vcf_stream(_plaintext(settings, source, data_keys), name=source.name)


@dataclass(slots=True)
class _Scan:
    """What the first pass learns: the plan, and what the header and the index need."""

    head: VcfHead
    plan: codes.Plan | None  # None: no cell can carry a mark
    chroms: dict[str, None] = field(default_factory=dict)
    sites: int = 0
    largest_end: int = 0
    called_cells: int = 0


def _scan(
    settings: Settings,
    source: Source,
    data_keys: list[bytes],
    *,
    secret: bytes,
    dataset: str,
    progress: Progress | None,
) -> _Scan:
    """The first pass: the dataset's plan of marked positions, a block of sites at a time."""
    head, blocks = read_vcf(
        _plaintext(settings, source, data_keys, progress, span=0.5),
        name=source.name,
        block_cells=codes.SEGMENT_CELLS,
    )
    builder = codes.PlanBuilder(samples=len(head.samples), secret=secret, dataset=dataset)
    scan = _Scan(head=head, plan=None)
    ploidy = 2
    for block in blocks:
        ploidy = max(ploidy, block.ploidy)
        scan.chroms.update(dict.fromkeys(block.chroms))
        scan.sites += len(block)
        ends = block.positions - 1 + np.fromiter((len(a[0]) for a in block.alleles), np.int64)
        scan.largest_end = max(scan.largest_end, int(ends.max()))
        builder.add(block.dosages())
    plan = builder.finish()
    scan.called_cells = builder.called_cells
    # a call of more than two alleles anywhere makes every dosage undefined (as whole-matrix
    # dosages are): nothing is marked
    scan.plan = plan if len(plan) and ploidy == 2 else None
    return scan


@dataclass(frozen=True, slots=True)
class _Marks:
    """The recipient's marks: the plan's positions whose bit is 1 (all the second pass needs
    of the plan, about half of it)."""

    sites: npt.NDArray[np.int64]
    up: npt.NDArray[np.int64]
    down: npt.NDArray[np.int64]


@dataclass(slots=True)
class _Written:
    """What the second pass measured of the copy it wrote."""

    md5: Any = field(default_factory=lambda: hashlib.md5(usedforsecurity=False))
    sha256: Any = field(default_factory=hashlib.sha256)
    plain_size: int = 0
    sites: int = 0
    utility: codes.Utility = field(default_factory=lambda: codes.Utility(0, 0, 0.0))
    index: bytes = b""


def _copy_body(
    settings: Settings,
    source: Source,
    data_keys: list[bytes],
    scan: _Scan,
    *,
    marks: _Marks,
    copy_id: str,
    index: IndexWriter,
    encryptor: BodyEncryptor,
    written: _Written,
    progress: Progress | None,
) -> Iterator[bytes]:
    """The second pass: the marked copy as BGZF, encrypted, in pieces (its index is built on
    the way and left in `written`)."""
    head, blocks = read_vcf(
        _plaintext(
            settings,
            source,
            data_keys,
            None if progress is None else (lambda share: progress(0.5 + share)),
            span=0.5,
        ),
        name=source.name,
        block_cells=codes.SEGMENT_CELLS,
    )
    if head.samples != scan.head.samples:
        raise _changed(source)
    sink = io.BytesIO()
    writer = BgzfWriter(sink, level=genotypes.BGZF_LEVEL)

    def emit() -> bytes:
        data = sink.getvalue()
        sink.seek(0)
        sink.truncate()
        written.md5.update(data)
        written.sha256.update(data)
        written.plain_size += len(data)
        return bytes(encryptor.update(data))

    writer.write(
        genotypes.header_text(
            samples=head.samples,
            contigs=head.contigs or tuple((c, None) for c in scan.chroms),
            source=f"GeneCommons {source.accession}",
            extra=[f"##genecommons_copy={copy_id}"],
        )
    )
    changed, deviation = 0, 0.0
    for block in blocks:
        calls = block.calls
        # what the marks cost (what codes.utility measures on the whole matrix): only the
        # sites they touch can differ
        lo, hi = np.searchsorted(marks.sites, [block.first, block.first + len(block)])
        touched = np.unique(marks.sites[lo:hi]) - block.first
        touched_alleles = tuple(block.alleles[i] for i in touched)
        before = dosages_of(calls[touched], touched_alleles)
        genotypes.mark_calls(
            calls, sites=marks.sites, up=marks.up, down=marks.down, first=block.first
        )
        after = dosages_of(calls[touched], touched_alleles)
        changed += int(np.count_nonzero((before != after) & (before >= 0)))
        moved = np.abs(codes.allele_frequencies(after) - codes.allele_frequencies(before))
        deviation = max([deviation, *moved[np.isfinite(moved)].tolist()])
        records = genotypes.vcf_records(
            chroms=block.chroms,
            positions=block.positions,
            alleles=block.alleles,
            calls=calls,
            phased=block.phased,
        )
        for j, record in enumerate(records):
            start = writer.tell()
            writer.write(record)
            begin = int(block.positions[j]) - 1
            index.push(
                reference=block.chroms[j],
                begin=begin,
                end=begin + len(block.alleles[j][0]),
                start=start,
                stop=writer.tell(),
            )
        written.sites += len(block)
        yield emit()
    writer.close()
    if written.sites != scan.sites:
        raise _changed(source)
    written.utility = codes.Utility(scan.called_cells, changed, deviation)
    written.index = index.finish()
    yield emit()
    yield bytes(encryptor.finish())


def _recipient_marks(scan: _Scan, *, secret: bytes, dataset: str, recipient: str) -> _Marks:
    """The recipient's marks; the plan is dropped (the rest of it is not needed any more)."""
    plan = scan.plan
    assert plan is not None
    scan.plan = None
    on = np.flatnonzero(
        codes.recipient_bits(plan, secret=secret, dataset=dataset, recipient=recipient)
    )
    return _Marks(sites=plan.site[on], up=plan.up[on], down=plan.down[on])


def _changed(source: Source) -> ConflictError:
    return ConflictError(
        f"{source.accession} read differently on the second pass; its archived object may be "
        "damaged: run `genecommons archive verify`.",
        message_zh=f"{source.accession} 两次读取的内容不同，归档对象可能已损坏："
        "请运行 `genecommons archive verify`。",
    )


def build_copy(
    settings: Settings,
    *,
    source: Source,
    dataset: str,
    recipient: str,
    copy_id: str,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Build the recipient's copy of `source` under the id `copy_id` and store it (body and
    index encrypted for the archive key); the values of its `fingerprint_copies` row. Nothing
    of it is left in the store when it fails. `progress` is told the share done (it may raise
    to stop the build)."""
    secret = fingerprint_secret(settings)
    values: dict[str, Any] = {
        "copy_id": copy_id,
        "file_id": source.file_id,
        "recipient": recipient,
        "dataset": dataset,
        "key_id": codes.key_id(secret),
    }
    keys = archive_keys(settings)
    data_keys = session_keys(source.header, keys=keys)
    scan = _scan(settings, source, data_keys, secret=secret, dataset=dataset, progress=progress)
    if scan.plan is None:
        logger.warning("%s: too few samples or common sites to mark; served as archived", dataset)
        values.update(marked_positions=0, utility=codes.Utility(0, 0, 0.0).as_json())
        return values
    positions = len(scan.plan)
    marks = _recipient_marks(scan, secret=secret, dataset=dataset, recipient=recipient)
    store = object_store(settings)
    body_key, *index_keys = copy_keys(source.accession, copy_id)
    kind = IndexWriter.kind_for(scan.largest_end)
    encryptor = BodyEncryptor()
    header = encryptor.header_for([keys.public], sender=keys)
    written = _Written()
    stored: list[str] = []
    try:
        body_size = store.put(
            body_key,
            _copy_body(
                settings,
                source,
                data_keys,
                scan,
                marks=marks,
                copy_id=copy_id,
                index=IndexWriter(kind=kind),
                encryptor=encryptor,
                written=written,
                progress=progress,
            ),
        )
        stored.append(body_key)
        index_key = index_keys[0] if kind == "tbi" else index_keys[1]
        index_encryptor = BodyEncryptor()
        index_header = index_encryptor.header_for([keys.public], sender=keys)
        index_body = bytes(index_encryptor.update(written.index) + index_encryptor.finish())
        store.put(index_key, [index_body])
        stored.append(index_key)
    except BaseException:
        discard(settings, stored)
        raise
    values.update(
        marked_positions=positions,
        utility=written.utility.as_json(),
        object_key=body_key,
        header=header,
        body_size=body_size,
        plain_size=written.plain_size,
        md5=written.md5.hexdigest(),
        sha256=written.sha256.hexdigest(),
        index_key=index_key,
        index_header=index_header,
        index_body_size=len(index_body),
    )
    return values


def discard(settings: Settings, keys: list[str]) -> None:
    """Remove the objects of a copy that was not recorded (missing ones are no error)."""
    store = object_store(settings)
    for key in keys:
        try:
            store.delete(key)
        except GeneCommonsError:
            logger.exception("could not remove %s of an unfinished copy", key)
