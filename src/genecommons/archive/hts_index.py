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


# -- writing ----------------------------------------------------------------------------------

TBI_LIMIT = 1 << 29  # the largest position a TBI (14 + 3 * 5 bits) covers
CSI_DEPTH = 6  # what tabix -C uses with 14-bit windows: positions up to 2**32
_TABIX_VCF = struct.pack("<6i", 2, 1, 2, 0, ord("#"), 0)  # tbx_conf_vcf


def reg2bin(start: int, end: int, min_shift: int, depth: int) -> int:
    """The smallest bin holding [start, end) (0-based), as htslib's hts_reg2bin."""
    end -= 1
    shift, level = min_shift, depth
    first = ((1 << (3 * depth)) - 1) // 7
    while level > 0:
        if start >> shift == end >> shift:
            return first + (start >> shift)
        shift += 3
        level -= 1
        first -= 1 << (3 * level)
    return 0


def _bin_bottom(bin_number: int, depth: int) -> int:
    """The first window (of 2**min_shift bp) of a bin."""
    level, first = 0, 0
    while level < depth and bin_number >= first + (1 << (3 * level)):
        first += 1 << (3 * level)
        level += 1
    return (bin_number - first) << (3 * (depth - level))


@dataclass(slots=True)
class _Growing:
    bins: dict[int, list[list[int]]] = field(default_factory=dict)
    linear: list[int | None] = field(default_factory=list)
    last_bin: int = -1
    last_begin: int = 0
    first_offset: int = 0
    last_offset: int = 0
    records: int = 0


class IndexWriter:
    """A TBI (or, for positions beyond 2**29, CSI) index of a bgzipped VCF, built from its
    records as they are written, in file order: what htslib's `tabix -p vcf` builds from the
    finished file, so that a copy is indexed in the same pass that writes it."""

    def __init__(self, *, kind: Literal["tbi", "csi"] = "tbi") -> None:
        self.kind = kind
        self.min_shift = 14
        self.depth = 5 if kind == "tbi" else CSI_DEPTH
        self._limit = 1 << (self.min_shift + 3 * self.depth)
        self._names: list[str] = []
        self._references: list[_Growing] = []

    @staticmethod
    def kind_for(largest_end: int) -> Literal["tbi", "csi"]:
        """The index a file whose records end at most at `largest_end` (0-based) needs."""
        return "tbi" if largest_end <= TBI_LIMIT else "csi"

    def push(self, *, reference: str, begin: int, end: int, start: int, stop: int) -> None:
        """A record on `reference` covering [begin, end) (0-based), written between the
        virtual offsets `start` and `stop`."""
        end = max(end, begin + 1)
        if not self._names or self._names[-1] != reference:
            if reference in self._names:
                raise _unsorted(f"records of {reference} are not together")
            self._names.append(reference)
            self._references.append(_Growing(first_offset=start))
        current = self._references[-1]
        if begin < current.last_begin:
            raise _unsorted(f"{reference}:{begin + 1} comes after {current.last_begin + 1}")
        if end > self._limit:
            raise InvalidInputError(
                f"{reference}:{begin + 1} lies beyond what a {self.kind.upper()} index covers.",
                message_zh=f"{reference}:{begin + 1} 超出 {self.kind.upper()} 索引的范围。",
            )
        current.last_begin = begin
        bin_number = reg2bin(begin, end, self.min_shift, self.depth)
        if bin_number == current.last_bin:
            current.bins[bin_number][-1][1] = stop
        else:
            current.bins.setdefault(bin_number, []).append([start, stop])
            current.last_bin = bin_number
        first, last = begin >> self.min_shift, (end - 1) >> self.min_shift
        linear = current.linear
        if len(linear) <= last:
            linear.extend([None] * (last + 1 - len(linear)))
        for window in range(first, last + 1):
            if linear[window] is None:
                linear[window] = start
        current.last_offset = stop
        current.records += 1

    def finish(self) -> bytes:
        """The index file's bytes (BGZF-compressed, as htslib writes it)."""
        from genecommons.archive.bgzf import EOF_BLOCK, compress_blocks

        names = b"".join(name.encode() + b"\0" for name in self._names)
        tabix = _TABIX_VCF + struct.pack("<i", len(names)) + names
        out = bytearray()
        if self.kind == "tbi":
            out += b"TBI\x01" + struct.pack("<i", len(self._names)) + tabix
        else:
            out += b"CSI\x01" + struct.pack("<iii", self.min_shift, self.depth, len(tabix))
            out += tabix + struct.pack("<i", len(self._names))
        pseudo = ((1 << (3 * (self.depth + 1))) - 1) // 7 + 1
        for reference in self._references:
            linear = _filled(reference.linear)
            out += struct.pack("<i", len(reference.bins) + 1)
            for bin_number in sorted(reference.bins):
                chunks = reference.bins[bin_number]
                out += struct.pack("<I", bin_number)
                if self.kind == "csi":
                    bottom = _bin_bottom(bin_number, self.depth)
                    out += struct.pack("<Q", linear[bottom] if bottom < len(linear) else 0)
                out += struct.pack("<i", len(chunks))
                out += struct.pack(f"<{2 * len(chunks)}Q", *(v for chunk in chunks for v in chunk))
            out += struct.pack("<I", pseudo)
            if self.kind == "csi":
                out += struct.pack("<Q", 0)
            out += struct.pack(
                "<i4Q", 2, reference.first_offset, reference.last_offset, reference.records, 0
            )
            if self.kind == "tbi":
                out += struct.pack(f"<i{len(linear)}Q", len(linear), *linear)
        out += struct.pack("<Q", 0)  # records without coordinates
        return compress_blocks(bytes(out)) + EOF_BLOCK


def _filled(linear: list[int | None]) -> list[int]:
    """Windows no record overlaps take the offset of the next window that has one (every
    record overlapping a later window starts after them)."""
    filled: list[int] = [0] * len(linear)
    following = 0
    for window in range(len(linear) - 1, -1, -1):
        value = linear[window]
        following = value if value is not None else following
        filled[window] = following
    return filled


def _unsorted(what: str) -> InvalidInputError:
    return InvalidInputError(
        f"The VCF is not sorted ({what}); an index needs records sorted by contig and position.",
        message_zh=f"VCF 未排序（{what}）；建立索引需要按染色体和位置排序。",
    )
