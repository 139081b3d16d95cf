"""A VCF's GT calls read as a stream, a block of sites at a time, in memory bounded by the block.

What a recipient's fingerprinted copy of an archived VCF is made from (`copies.py`
reads the archived object twice this way, never holding more than a block), and what tracing
reads an archived VCF with. The text arrives in chunks of any size (decrypted from the archive
as it is read), gzip/BGZF-compressed or plain.

Records of the common layout, FORMAT `GT` (or GT first) and single-digit diploid calls such as
`0|1`, are parsed a block at a time with numpy; any other record goes through a per-cell parser.
Both give what `genotypes.from_vcf` always gave: allele indices (-1 a missing allele, -2 the
padding of a call shorter than the block's longest), phasing (a `|` in the call), REF and ALTs.

No web framework, no database: file formats only.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from genecommons.errors import InvalidInputError

BLOCK_SITES = 4096
INFLATE_PIECE = 1 << 20  # decompressed bytes produced at a time
_GZIP = 16 + zlib.MAX_WBITS
_TAB, _NEWLINE, _DOT, _ZERO, _NINE = (ord(c) for c in "\t\n.09")
_SLASH, _BAR = ord("/"), ord("|")
Calls = npt.NDArray[np.int8]
Dosages = npt.NDArray[np.int8]
_NOT_A_CALL = 127


def _pair_tables() -> tuple[npt.NDArray[np.int8], npt.NDArray[np.int8]]:
    """What a cell's two byte pairs (first byte in the low half) say: the allele of
    (allele, '/' or '|') and of (allele, tab), -1 for '.', _NOT_A_CALL for anything else."""
    first = np.full(1 << 16, _NOT_A_CALL, dtype=np.int8)
    second = np.full(1 << 16, _NOT_A_CALL, dtype=np.int8)
    for code, allele in [(_DOT, -1), *((_ZERO + d, d) for d in range(10))]:
        first[code | _SLASH << 8] = first[code | _BAR << 8] = allele
        second[code | _TAB << 8] = allele
    return first, second


_FIRST, _SECOND = _pair_tables()


@dataclass(frozen=True, slots=True)
class VcfHead:
    """What a VCF's header says: its samples and contigs (name, length when given)."""

    samples: tuple[str, ...]
    contigs: tuple[tuple[str, int | None], ...]


@dataclass(frozen=True, slots=True)
class SiteBlock:
    """Consecutive sites of a VCF: `calls[site, sample, allele]` (at least 2 alleles wide,
    -2 padding), `phased[site, sample]`, and `ploidy`, the longest call in the block."""

    first: int  # the number of sites before the block in the file
    calls: Calls
    phased: npt.NDArray[np.bool_]
    chroms: tuple[str, ...]
    positions: npt.NDArray[np.int64]
    alleles: tuple[tuple[str, ...], ...]  # REF then ALTs per site
    ploidy: int

    def __len__(self) -> int:
        return len(self.positions)

    def dosages(self) -> Dosages:
        """ALT dosage of the biallelic diploid calls; -1 for anything else."""
        return dosages_of(self.calls, self.alleles)


def dosages_of(calls: Calls, alleles: tuple[tuple[str, ...], ...]) -> Dosages:
    """ALT dosage of biallelic diploid calls; -1 for anything else (never marked)."""
    if calls.shape[2] != 2:
        return np.full(calls.shape[:2], -1, dtype=np.int8)
    first, second = calls[:, :, 0], calls[:, :, 1]
    dosage = first + second
    dosage[(first < 0) | (second < 0)] = -1
    biallelic = np.asarray([len(a) == 2 for a in alleles], dtype=np.bool_)
    dosage[~biallelic] = -1
    return dosage.astype(np.int8, copy=False)


def bad_vcf(name: str, what: str) -> InvalidInputError:
    """The error for a file that is not a genotype file GeneCommons can read."""
    return InvalidInputError(
        f"{name}: not a genotype file GeneCommons can trace ({what}). Give a VCF or a TSV whose "
        "columns are CHROM, POS, REF, ALT and then one per sample.",
        message_zh=f"{name}：不是可追溯的基因型文件（{what}）。请提供 VCF，或列为 CHROM、POS、REF、ALT "
        "及各样本的 TSV。",
        details={"file": name},
    )


def parse_gt(text: bytes) -> tuple[tuple[int, ...], bool]:
    """One GT value: its allele indices (-1 missing; capped at 127) and whether it is phased."""
    phased = b"|" in text
    alleles = text.replace(b"|", b"/").split(b"/")
    calls = tuple(-1 if a in (b"", b".") or not a.isdigit() else min(int(a), 127) for a in alleles)
    return calls, phased


def inflate(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The text of a gzip (any number of members, as BGZF) or plain stream, in pieces of at
    most `INFLATE_PIECE` bytes."""
    source = iter(chunks)
    first = b""
    for first in source:
        if first:
            break
    if first[:2] != b"\x1f\x8b":
        if first:
            yield first
        yield from source
        return
    decompressor = zlib.decompressobj(_GZIP)
    started = False  # input given to the member being read
    for chunk in _chain(first, source):
        data = chunk
        while data:
            started = True
            try:
                out = decompressor.decompress(data, INFLATE_PIECE)
            except zlib.error as error:
                raise _damaged(str(error)) from error
            if out:
                yield out
            if decompressor.eof:
                data = decompressor.unused_data
                decompressor = zlib.decompressobj(_GZIP)
                started = False
            else:
                data = decompressor.unconsumed_tail
    rest = decompressor.flush()  # what the last member's window still held
    if rest:
        yield rest
    if started and not decompressor.eof:
        raise _damaged("truncated")


def _damaged(what: str) -> InvalidInputError:
    return InvalidInputError(
        f"The compressed VCF is damaged ({what}).", message_zh=f"压缩的 VCF 已损坏（{what}）。"
    )


def _chain(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest


def lines(pieces: Iterable[bytes]) -> Iterator[bytes]:
    """The lines of a text stream (without their newline), whatever its pieces' sizes."""
    pending: list[bytes] = []
    for piece in pieces:
        parts = piece.split(b"\n")
        if len(parts) == 1:
            pending.append(piece)
            continue
        if pending:
            pending.append(parts[0])
            parts[0] = b"".join(pending)
            pending = []
        tail = parts.pop()
        yield from parts
        if tail:
            pending.append(tail)
    if pending:
        yield b"".join(pending)


def read_head(text: Iterator[bytes], *, name: str) -> tuple[VcfHead, int]:
    """Read the header lines of a VCF from `text` (its lines), leaving the records; the header
    and the number of lines read."""
    contigs: list[tuple[str, int | None]] = []
    number = 0
    for raw in text:
        number += 1
        if not raw:
            continue
        if raw.startswith(b"##"):
            if raw.startswith(b"##contig=<"):
                fields = dict(
                    part.split("=", 1)
                    for part in raw[10:].rstrip(b">").decode("utf-8", "replace").split(",")
                    if "=" in part
                )
                length = fields.get("length")
                contigs.append(
                    (fields.get("ID", ""), int(length) if length and length.isdigit() else None)
                )
            continue
        if raw.startswith(b"#CHROM"):
            fields_b = raw.rstrip(b"\r").split(b"\t")
            samples = tuple(f.decode("utf-8") for f in fields_b[9:])
            return VcfHead(samples, tuple(contigs)), number
        raise bad_vcf(name, f"line {number} is not a VCF record of 0 samples")
    raise bad_vcf(name, "it has no #CHROM header line")


def read_vcf(
    chunks: Iterable[bytes],
    *,
    name: str = "VCF",
    block_sites: int = BLOCK_SITES,
    block_cells: int | None = None,
) -> tuple[VcfHead, Iterator[SiteBlock]]:
    """The header of a VCF given as chunks of its (compressed or plain) bytes, and its records
    in blocks of `block_sites` sites (fewer, when `block_cells` caps a block's calls), read as
    the blocks are asked for."""
    text = lines(inflate(chunks))
    head, number = read_head(text, name=name)
    if block_cells is not None:
        block_sites = max(1, min(block_sites, block_cells // max(1, len(head.samples))))
    return head, _blocks(text, head, name=name, first_line=number + 1, block_sites=block_sites)


def _blocks(
    text: Iterator[bytes], head: VcfHead, *, name: str, first_line: int, block_sites: int
) -> Iterator[SiteBlock]:
    parser = _BlockParser(head, name=name)
    pending: list[tuple[int, list[bytes]]] = []
    first = 0
    for number, raw in enumerate(text, start=first_line):
        if not raw or raw.startswith(b"##"):
            continue
        parts = raw.rstrip(b"\r").split(b"\t", 9)
        pending.append((number, parts))
        if len(pending) == block_sites:
            block = parser.parse(pending, first)
            first += len(block)
            pending = []
            yield block
    if pending:
        yield parser.parse(pending, first)


class _BlockParser:
    """Records into a SiteBlock: fast rows a block at a time with numpy, others cell by cell."""

    def __init__(self, head: VcfHead, *, name: str) -> None:
        self.samples = len(head.samples)
        self.name = name
        self.cache: dict[bytes, tuple[tuple[int, ...], bool]] = {}

    def _bad(self, number: int) -> InvalidInputError:
        return bad_vcf(self.name, f"line {number} is not a VCF record of {self.samples} samples")

    def parse(self, records: list[tuple[int, list[bytes]]], first: int) -> SiteBlock:
        n = self.samples
        chroms: list[str] = []
        positions = np.empty(len(records), dtype=np.int64)
        alleles: list[tuple[str, ...]] = []
        fast_rows: list[int] = []
        fast_text: list[bytes] = []
        slow: dict[int, tuple[list[tuple[int, ...]], list[bool]]] = {}
        for row, (number, parts) in enumerate(records):
            if not self._is_record(parts):
                raise self._bad(number)
            chroms.append(parts[0].decode("utf-8"))
            positions[row] = int(parts[1])
            alts = parts[4].decode("utf-8")
            alleles.append((parts[3].decode("utf-8"), *([] if alts == "." else alts.split(","))))
            if not n:
                continue
            cells = self._gt_text(parts[8], parts[9])
            if cells is not None and len(cells) == 4 * n - 1:
                fast_rows.append(row)
                fast_text.append(cells)
            else:
                slow[row] = self._slow(parts[8], parts[9])
        fast_calls, fast_phased, odd = self._fast(fast_text)
        for index in odd:  # rows of the fast layout's length that are not of its form
            row = fast_rows[index]
            slow[row] = self._slow(records[row][1][8], records[row][1][9])
        lengths = [len(call) for row_calls, _ in slow.values() for call in row_calls]
        if len(odd) < len(fast_rows):
            lengths.append(2)
        ploidy = max(lengths, default=2)  # a block without calls counts as diploid
        width = max(ploidy, 2)
        calls = np.full((len(records), n, width), -2, dtype=np.int8)
        phased = np.zeros((len(records), n), dtype=np.bool_)
        if fast_rows:
            keep = np.ones(len(fast_rows), dtype=np.bool_)
            keep[odd] = False
            rows = np.asarray(fast_rows, dtype=np.intp)[keep]
            calls[rows, :, :2] = fast_calls[keep]
            phased[rows] = fast_phased[keep]
        for row, (row_calls, row_phased) in slow.items():
            for j, call in enumerate(row_calls):
                calls[row, j, : len(call)] = call
            phased[row] = row_phased
        return SiteBlock(
            first=first,
            calls=calls,
            phased=phased,
            chroms=tuple(chroms),
            positions=positions,
            alleles=tuple(alleles),
            ploidy=ploidy,
        )

    def _is_record(self, parts: list[bytes]) -> bool:
        """Whether the fields of a line (split at the first nine tabs) make a record."""
        if len(parts) < 9 or not parts[1].isdigit() or len(parts[1]) > 18:
            return False
        if not self.samples:
            return len(parts) == 9
        return len(parts) == 10 and parts[9].count(b"\t") == self.samples - 1

    @staticmethod
    def _gt_text(keys: bytes, cells: bytes) -> bytes | None:
        """The GT values of a record, tab-separated (None: GT is not its first field)."""
        if keys == b"GT":
            return cells
        if keys.startswith(b"GT:"):
            return b"\t".join(cell.partition(b":")[0] for cell in cells.split(b"\t"))
        return None

    def _fast(
        self, texts: list[bytes]
    ) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.bool_], list[int]]:
        """Rows whose GT values are all `a/b` or `a|b` (a, b a digit or '.'); the indices of the
        rows among `texts` that are not."""
        n = self.samples
        if not texts:
            return np.zeros((0, n, 2), np.int8), np.zeros((0, n), np.bool_), []
        # each cell is 4 bytes, read as two little-endian pairs: (allele, separator) and
        # (allele, tab), each looked up in a table of what that pair means
        raw = np.frombuffer(b"\t".join(texts) + b"\t", dtype="<u2").reshape(len(texts), n, 2)
        calls = np.empty((len(texts), n, 2), dtype=np.int8)
        calls[:, :, 0] = _FIRST[raw[:, :, 0]]
        calls[:, :, 1] = _SECOND[raw[:, :, 1]]
        odd = np.flatnonzero((calls == _NOT_A_CALL).any(axis=(1, 2))).tolist()
        return calls, (raw[:, :, 0] >> 8) == _BAR, odd

    def _slow(self, keys_text: bytes, cells: bytes) -> tuple[list[tuple[int, ...]], list[bool]]:
        keys = keys_text.split(b":")
        at = keys.index(b"GT") if b"GT" in keys else -1
        calls: list[tuple[int, ...]] = []
        phased: list[bool] = []
        cache = self.cache
        for cell in cells.split(b"\t"):
            values = cell.split(b":")
            gt = values[at] if 0 <= at < len(values) else b"."
            found = cache.get(gt)
            if found is None:
                found = parse_gt(gt)
                if len(cache) < 10_000:
                    cache[gt] = found
            calls.append(found[0])
            phased.append(found[1])
        return calls, phased
