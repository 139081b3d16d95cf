"""BGZF (SAMv1 section 4.1): reading blocks by offset, writing blocks, and cutting the exact
stream between two virtual offsets, which htsget's data URLs serve.

Whole blocks between the two offsets are passed through as they are; only a partial first or
last block is decompressed, sliced and compressed again. Plaintext is reached through a
`read_at(offset, length)` callable (the archive decrypts only the Crypt4GH segments it needs).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, Literal

from genecommons.errors import InvalidInputError

ReadAt = Callable[[int, int], bytes]

EOF_BLOCK = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")
MAX_BLOCK_DATA = 0xFF00  # what htslib puts in one block, so that its compressed form fits
PASS_THROUGH = 4 * 1024 * 1024
_HEADER = struct.Struct("<BBBBIBBH")


def _damaged(offset: int, what: str) -> InvalidInputError:
    return InvalidInputError(
        f"The BGZF block at byte {offset} is damaged ({what}).",
        message_zh=f"第 {offset} 字节处的 BGZF 块已损坏（{what}）。",
        details={"offset": offset, "rule": "bgzf.block"},
    )


def compress_block(data: bytes, *, level: int = 6) -> bytes:
    """One BGZF block holding `data` (at most 65280 bytes)."""
    if len(data) > MAX_BLOCK_DATA:
        raise ValueError("a BGZF block holds at most 65280 bytes")
    compressor = zlib.compressobj(level, zlib.DEFLATED, -15)
    payload = compressor.compress(data) + compressor.flush()
    size = len(payload) + 25
    header = _HEADER.pack(31, 139, 8, 4, 0, 0, 255, 6) + b"BC" + struct.pack("<HH", 2, size)
    return header + payload + struct.pack("<II", zlib.crc32(data), len(data))


def compress_blocks(data: bytes, *, level: int = 6) -> bytes:
    """`data` as as many BGZF blocks as it needs (no EOF block)."""
    return b"".join(
        compress_block(data[i : i + MAX_BLOCK_DATA], level=level)
        for i in range(0, len(data), MAX_BLOCK_DATA)
    )


def _block(data: bytes | memoryview, payload: bytes | bytearray) -> bytes:
    size = len(payload) + 25
    header = _HEADER.pack(31, 139, 8, 4, 0, 0, 255, 6) + b"BC" + struct.pack("<HH", 2, size)
    return header + payload + struct.pack("<II", zlib.crc32(data), len(data))


class BgzfWriter:
    """A BGZF stream written to `sink` (what bgzip and htslib write: blocks of at most 65280
    bytes, then the EOF block on `close`), compressed with libdeflate (the `deflate` package),
    which at level 1 is faster than zlib's fastest level and compresses better than its level
    2. The sink is not closed."""

    def __init__(self, sink: BinaryIO, *, level: int = 1) -> None:
        self._sink = sink
        self._level = level
        self._pending = bytearray()
        self._written = 0  # compressed bytes written to the sink

    def _flush(self, data: bytes | memoryview) -> None:
        import deflate

        block = _block(data, deflate.deflate_compress(bytes(data), self._level))
        self._sink.write(block)
        self._written += len(block)

    def tell(self) -> int:
        """The virtual offset (SAMv1 4.1.1) the next byte written will have."""
        return (self._written << 16) | len(self._pending)

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Buffer `data`, writing every full block."""
        self._pending += data
        view = memoryview(self._pending)
        whole = len(view) - len(view) % MAX_BLOCK_DATA
        for start in range(0, whole, MAX_BLOCK_DATA):
            self._flush(view[start : start + MAX_BLOCK_DATA])
        view.release()
        del self._pending[:whole]
        return len(data)

    def close(self) -> None:
        """Write the last partial block and the EOF block."""
        if self._pending:
            self._flush(memoryview(self._pending))
            self._pending.clear()
        self._sink.write(EOF_BLOCK)
        self._written += len(EOF_BLOCK)


def block_size(header: bytes, offset: int) -> int:
    """The total size of the block whose first bytes are `header` (at least 18 bytes)."""
    if len(header) < 18:
        raise _damaged(offset, "truncated header")
    id1, id2, method, flags, _, _, _, extra_length = _HEADER.unpack_from(header)
    if (id1, id2, method) != (31, 139, 8) or not flags & 4:
        raise _damaged(offset, "not a BGZF block")
    extra = header[12 : 12 + extra_length]
    position = 0
    while position + 4 <= len(extra):
        si1, si2, length = extra[position], extra[position + 1], extra[position + 2 : position + 4]
        sub_length = int.from_bytes(length, "little")
        if si1 == 66 and si2 == 67 and sub_length == 2:
            return int.from_bytes(extra[position + 4 : position + 6], "little") + 1
        position += 4 + sub_length
    raise _damaged(offset, "no BC field")


def read_block(read_at: ReadAt, offset: int) -> tuple[bytes, int]:
    """The decompressed data of the block at `offset`, and the block's compressed size."""
    head = read_at(offset, 18 + 64)
    size = block_size(head, offset)
    raw = head[:size] if len(head) >= size else read_at(offset, size)
    if len(raw) < size:
        raise _damaged(offset, "truncated block")
    extra_length = struct.unpack_from("<H", raw, 10)[0]
    try:
        data = zlib.decompress(raw[12 + extra_length : size - 8], -15)
    except zlib.error as error:
        raise _damaged(offset, str(error)) from error
    crc, isize = struct.unpack_from("<II", raw, size - 8)
    if zlib.crc32(data) != crc or len(data) != isize:
        raise _damaged(offset, "checksum mismatch")
    return data, size


def slice_stream(read_at: ReadAt, *, start_vo: int, end_vo: int) -> Iterator[bytes]:
    """A BGZF stream holding exactly the decompressed bytes between two virtual offsets."""
    begin, within_begin = start_vo >> 16, start_vo & 0xFFFF
    end, within_end = end_vo >> 16, end_vo & 0xFFFF
    if end_vo <= start_vo:
        return
    if begin == end:
        data, _ = read_block(read_at, begin)
        yield compress_blocks(data[within_begin:within_end])
        return
    position = begin
    if within_begin:
        data, size = read_block(read_at, begin)
        if data[within_begin:]:
            yield compress_blocks(data[within_begin:])
        position = begin + size
    while position < end:
        chunk = read_at(position, min(PASS_THROUGH, end - position))
        if not chunk:
            break
        yield chunk
        position += len(chunk)
    if within_end:
        data, _ = read_block(read_at, end)
        yield compress_blocks(data[:within_end])


@dataclass(frozen=True, slots=True)
class HeaderInfo:
    """Where a file's header ends (a virtual offset) and the references it names."""

    end_offset: int
    reference_names: list[str] = field(default_factory=list)
    reference_lengths: list[int] = field(default_factory=list)


class _Blocks:
    """Decompressed data read block by block from the start of a file."""

    def __init__(self, read_at: ReadAt) -> None:
        self._read_at = read_at
        self.starts: list[tuple[int, int, int]] = []  # (compressed offset, data start, length)
        self.data = bytearray()
        self._next = 0

    def more(self) -> bool:
        data, size = read_block(self._read_at, self._next)
        if not data and size == len(EOF_BLOCK):
            return False
        self.starts.append((self._next, len(self.data), len(data)))
        self.data += data
        self._next += size
        return True

    def need(self, upto: int) -> None:
        while len(self.data) < upto:
            if not self.more():
                raise InvalidInputError(
                    "The file ends inside its header.", message_zh="文件在文件头内结束。"
                )

    def virtual(self, position: int) -> int:
        for coffset, start, length in self.starts:
            if start <= position < start + length:
                return (coffset << 16) | (position - start)
        return self._next << 16  # just past the last block read


def header_end(read_at: ReadAt, *, kind: Literal["bam", "vcf"]) -> HeaderInfo:
    """Where the header of a BAM or bgzipped VCF ends, and its references."""
    blocks = _Blocks(read_at)
    if kind == "bam":
        blocks.need(8)
        if bytes(blocks.data[:4]) != b"BAM\x01":
            raise InvalidInputError("Not a BAM file.", message_zh="不是 BAM 文件。")
        (text_length,) = struct.unpack_from("<i", blocks.data, 4)
        position = 8 + text_length
        blocks.need(position + 4)
        (count,) = struct.unpack_from("<i", blocks.data, position)
        position += 4
        names, lengths = [], []
        for _ in range(count):
            blocks.need(position + 4)
            (name_length,) = struct.unpack_from("<i", blocks.data, position)
            blocks.need(position + 8 + name_length)
            names.append(bytes(blocks.data[position + 4 : position + 3 + name_length]).decode())
            lengths.append(struct.unpack_from("<i", blocks.data, position + 4 + name_length)[0])
            position += 8 + name_length
        if position == len(blocks.data):
            blocks.more()  # the first record starts in the next block
        return HeaderInfo(blocks.virtual(position), names, lengths)
    names = []
    position = 0
    while True:
        newline = blocks.data.find(b"\n", position)
        while newline < 0:
            if not blocks.more():
                return HeaderInfo(blocks.virtual(len(blocks.data)), names)
            newline = blocks.data.find(b"\n", position)
        line = bytes(blocks.data[position:newline])
        if not line.startswith(b"#"):
            return HeaderInfo(blocks.virtual(position), names)
        if line.startswith(b"##contig=<"):
            for part in line[10:].rstrip(b">").split(b","):
                if part.startswith(b"ID="):
                    names.append(part[3:].decode())
        position = newline + 1
        if position == len(blocks.data) and not blocks.more():
            return HeaderInfo(blocks.virtual(position), names)
