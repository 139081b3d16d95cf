"""BAI, TBI and CSI indexes (SAMv1 section 5, CSIv1, tabix): which BGZF chunks hold the records
that overlap a region.

No maintained Python library exposes an index's chunks (pysam only iterates records), and the
htsget server must answer from the index alone without reading the file, so the formats are
parsed here, following the specifications.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from typing import Literal

from genecommons.errors import InvalidInputError

Chunk = tuple[int, int]  # virtual offsets [begin, end)


def _bad(offset: int, what: str) -> InvalidInputError:
    return InvalidInputError(
        f"The index is damaged at byte {offset}: {what}.",
        message_zh=f"索引在第 {offset} 字节处损坏：{what}。",
        details={"offset": offset, "rule": "index.damaged"},
    )


def _gunzip(data: bytes) -> bytes:
    """Decompress a BGZF (multi-member gzip) file."""
    out = []
    while data:
        decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            out.append(decompressor.decompress(data))
        except zlib.error as error:
            raise _bad(0, f"not BGZF-compressed ({error})") from error
        if not decompressor.eof:
            raise _bad(len(data), "truncated")
        data = decompressor.unused_data
    return b"".join(out)


@dataclass(slots=True)
class _Reference:
    bins: dict[int, list[Chunk]] = field(default_factory=dict)
    loffsets: dict[int, int] = field(default_factory=dict)  # CSI: per-bin lowest offset
    linear: list[int] = field(default_factory=list)  # BAI/TBI: 16 kb windows


@dataclass(slots=True)
class HtsIndex:
    """A parsed index: per reference, bins of chunks and the offsets that skip them."""

    kind: str
    min_shift: int
    depth: int
    references: list[_Reference]
    reference_names: list[str] | None = None

    @property
    def n_references(self) -> int:
        """How many references the index covers."""
        return len(self.references)

    def chunks(self, reference: int, start: int, end: int | None) -> list[Chunk]:
        """Merged chunks holding every record that overlaps [start, end) (0-based) on the
        `reference`-th reference; end None: to the end of the reference."""
        if not 0 <= reference < len(self.references):
            return []
        limit = 1 << (self.min_shift + 3 * self.depth)
        end = limit if end is None else min(end, limit)
        if start >= end:
            return []
        index = self.references[reference]
        found: list[Chunk] = []
        for bin_number in _reg2bins(start, end, self.min_shift, self.depth):
            found.extend(index.bins.get(bin_number, ()))
        lowest = self._lowest_offset(index, start)
        found = sorted(c for c in found if c[1] > lowest)
        merged: list[Chunk] = []
        for begin, finish in found:
            if merged and begin >> 16 <= merged[-1][1] >> 16:
                if finish > merged[-1][1]:
                    merged[-1] = (merged[-1][0], finish)
            else:
                merged.append((begin, finish))
        return merged

    def _lowest_offset(self, index: _Reference, start: int) -> int:
        if self.kind != "csi":
            window = start >> 14
            if not index.linear:
                return 0
            return index.linear[min(window, len(index.linear) - 1)]
        # CSI: the loffset of the smallest existing bin that contains `start`
        shift, first = self.min_shift, ((1 << (3 * self.depth)) - 1) // 7
        for level in range(self.depth, -1, -1):
            bin_number = first + (start >> shift)
            if bin_number in index.loffsets:
                return index.loffsets[bin_number]
            shift += 3
            first -= 1 << (3 * (level - 1)) if level else 0
        return 0


def _reg2bins(start: int, end: int, min_shift: int, depth: int) -> list[int]:
    """The bins that may hold records overlapping [start, end)."""
    bins: list[int] = []
    end -= 1
    shift = min_shift + 3 * depth
    first = 0
    for level in range(depth + 1):
        bins.extend(range(first + (start >> shift), first + (end >> shift) + 1))
        shift -= 3
        first += 1 << (3 * level)
    return bins


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.position = 0

    def take(self, fmt: str) -> tuple[int, ...]:
        size = struct.calcsize(fmt)
        if self.position + size > len(self.data):
            raise _bad(self.position, "truncated")
        values = struct.unpack_from(fmt, self.data, self.position)
        self.position += size
        return values

    def one(self, fmt: str) -> int:
        return self.take(fmt)[0]

    def raw(self, size: int) -> bytes:
        if size < 0 or self.position + size > len(self.data):
            raise _bad(self.position, "truncated")
        value = self.data[self.position : self.position + size]
        self.position += size
        return value


def _count(reader: _Reader, what: str) -> int:
    value = reader.one("<i")
    if value < 0 or value > len(reader.data):
        raise _bad(reader.position - 4, f"impossible number of {what} ({value})")
    return value


def _tabix_names(block: bytes) -> list[str]:
    return [name.decode() for name in block.split(b"\0") if name]


def parse_index(data: bytes, *, kind: Literal["bai", "tbi", "csi"]) -> HtsIndex:
    """Parse an index file's bytes."""
    raw = data if kind == "bai" else _gunzip(data)
    reader = _Reader(raw)
    magic = reader.raw(4)
    expected = {"bai": b"BAI\x01", "tbi": b"TBI\x01", "csi": b"CSI\x01"}[kind]
    if magic != expected:
        raise _bad(0, f"not a {kind.upper()} index")
    names: list[str] | None = None
    min_shift, depth = 14, 5
    if kind == "csi":
        min_shift, depth = reader.one("<i"), reader.one("<i")
        aux = reader.raw(_count(reader, "aux bytes"))
        if len(aux) >= 28:
            name_length = struct.unpack_from("<i", aux, 24)[0]
            names = _tabix_names(aux[28 : 28 + name_length])
    count = _count(reader, "references")
    if kind == "tbi":
        reader.take("<6i")
        names = _tabix_names(reader.raw(_count(reader, "name bytes")))
    pseudo = ((1 << (3 * (depth + 1))) - 1) // 7 + 1
    references = []
    for _ in range(count):
        reference = _Reference()
        for _ in range(_count(reader, "bins")):
            bin_number = reader.one("<I")
            if kind == "csi":
                loffset = reader.one("<Q")
            n_chunks = _count(reader, "chunks")
            values = reader.take(f"<{2 * n_chunks}Q")
            if bin_number == pseudo:
                continue  # metadata, not records
            reference.bins[bin_number] = list(zip(values[0::2], values[1::2], strict=True))
            if kind == "csi":
                reference.loffsets[bin_number] = loffset
        if kind != "csi":
            n_windows = _count(reader, "linear index windows")
            reference.linear = list(reader.take(f"<{n_windows}Q"))
            # empty windows hold 0: carry the previous offset forward, as htslib does
            for i in range(1, n_windows):
                if reference.linear[i] == 0:
                    reference.linear[i] = reference.linear[i - 1]
        references.append(reference)
    if names is not None and names and len(names) != count:
        raise _bad(reader.position, f"{len(names)} names for {count} references")
    return HtsIndex(kind, min_shift, depth, references, names or None)
