"""Format checks of data files, on a sequential stream (a pipe) or a path.

The first problem found raises FormatError with its place (line, record or byte offset). Run as
`python -m genecommons.archive.formats --format vcf [--assembly GRCh38]`, it checks standard
input and prints one JSON line: the summary, or {"error": …} with exit code 3. The ingest runs
it that way, beside the encryption, so that the check uses the other CPU core.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import threading
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import BinaryIO

from genecommons.assemblies import contig_length
from genecommons.errors import InvalidInputError

READ = 4 * 1024 * 1024
DEFAULT_MAX_DECOMPRESSED = 1 << 40  # 1 TiB
MAX_RATIO = 1000  # decompressed / compressed, checked after the first 64 MiB
RATIO_GRACE = 64 * 1024 * 1024
GZIP_MAGIC = b"\x1f\x8b"
EOF_BLOCK = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")
BGZF_EXTRA = b"BC"


class FormatError(InvalidInputError):
    """The file's content is not valid for its declared format; the message says where.
    Correct the file (or its declared format) and upload it again."""


@dataclass(frozen=True, slots=True)
class FormatSummary:
    """What the check found."""

    format: str
    compressed: str  # none | gzip | bgzf
    records: int
    contigs: list[str] = field(default_factory=list)
    note: str = ""


def _error(
    name: str, fmt: str, rule: str, en: str, zh: str, **where: int | str | None
) -> FormatError:
    place = {k: v for k, v in where.items() if v is not None}
    at = ", ".join(f"{k} {v}" for k, v in place.items())
    return FormatError(
        f"{name or 'the file'} ({fmt.upper()}): {en}" + (f" [{at}]" if at else ""),
        message_zh=f"{name or '文件'}（{fmt.upper()}）：{zh}" + (f"［{at}］" if at else ""),
        details={"format": fmt, "rule": rule, **place},
    )


def sniff(head: bytes) -> tuple[str, str]:
    """(what the content looks like, its compression) from its first bytes."""
    if head.startswith(GZIP_MAGIC):
        compression = "bgzf" if len(head) >= 14 and head[12:14] == BGZF_EXTRA else "gzip"
        try:
            inner = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head, 4096)
        except zlib.error:
            return "unknown", compression
        return sniff(inner)[0], compression
    if head.startswith(b"BAM\x01"):
        return "bam", "none"
    if head.startswith(b"BCF\x02"):
        return "bcf", "none"
    if head.startswith(b"CRAM"):
        return "cram", "none"
    if head.startswith(b"##fileformat=VCF"):
        return "vcf", "none"
    if head.startswith(b"@"):
        return "fastq", "none"
    if head.startswith(b"%PDF"):
        return "pdf", "none"
    return "unknown", "none"


class _Source:
    """A stream with its first bytes kept for sniffing."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.head = stream.read(65536)

    def chunks(self) -> Iterator[bytes]:
        if self.head:
            yield self.head
        while chunk := self.stream.read(READ):
            yield chunk


def _inflate(
    chunks: Iterator[bytes], *, name: str, fmt: str, max_decompressed: int
) -> Iterator[bytes]:
    """Decompress a (multi-member) gzip stream, refusing bombs."""
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    compressed = produced = 0
    started = False  # whether the current member has received any bytes
    for chunk in chunks:
        compressed += len(chunk)
        data = chunk
        while data:
            started = True
            try:
                out = decompressor.decompress(data, READ)
            except zlib.error as error:
                raise _error(
                    name,
                    fmt,
                    "gzip.corrupt",
                    f"the gzip data is corrupt ({error}).",
                    "gzip 数据已损坏。",
                    offset=compressed,
                ) from error
            produced += len(out)
            if produced > max_decompressed or (
                produced > RATIO_GRACE and produced > MAX_RATIO * compressed
            ):
                raise _error(
                    name,
                    fmt,
                    "gzip.bomb",
                    f"decompresses to more than {produced} bytes from {compressed} "
                    "(a decompression bomb); compress the real data normally.",
                    "解压后体积异常膨胀（疑似解压炸弹）。",
                    offset=compressed,
                )
            if out:
                yield out
            data = decompressor.unconsumed_tail
            if decompressor.eof:
                rest = decompressor.unused_data
                decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
                started = False
                data = rest
    if started and not decompressor.eof:
        raise _error(
            name,
            fmt,
            "gzip.truncated",
            "the gzip stream ends before its last member does (the file is truncated).",
            "gzip 数据提前结束（文件被截断）。",
            offset=compressed,
        )


ALPHABET = bytes(range(256)).translate(None, b"ACGTNacgtnRYKMSWBDHVrykmswbdhv.-")


def _check_fastq(lines_source: Iterator[bytes], *, name: str) -> int:
    """Check FASTQ records; the number of records."""
    carry = b""
    line_number = 0
    records = 0
    record: list[bytes] = []
    for chunk in lines_source:
        lines = (carry + chunk).split(b"\n")
        carry = lines.pop()
        for line in lines:
            line_number += 1
            record.append(line.rstrip(b"\r"))
            if len(record) == 4:
                records += 1
                _fastq_record(record, line_number - 3, records, name)
                record = []
    if carry:
        line_number += 1
        record.append(carry.rstrip(b"\r"))
        if len(record) == 4:
            records += 1
            _fastq_record(record, line_number - 3, records, name)
            record = []
    if record:
        raise _error(
            name,
            "fastq",
            "fastq.truncated",
            f"the last record has {len(record)} of its 4 lines (the file is truncated).",
            "最后一条记录不完整（文件被截断）。",
            line=line_number,
            record=records + 1,
        )
    if records == 0:
        raise _error(name, "fastq", "fastq.empty", "no records.", "没有记录。")
    return records


def _fastq_record(lines: list[bytes], first: int, number: int, name: str) -> None:
    header, sequence, plus, quality = lines
    if not header.startswith(b"@"):
        raise _error(
            name,
            "fastq",
            "fastq.header",
            "a record must start with '@'.",
            "记录必须以 '@' 开头。",
            line=first,
            record=number,
        )
    if not plus.startswith(b"+"):
        raise _error(
            name,
            "fastq",
            "fastq.separator",
            "the third line of a record must start with '+'.",
            "记录的第三行必须以 '+' 开头。",
            line=first + 2,
            record=number,
        )
    if len(sequence) != len(quality):
        raise _error(
            name,
            "fastq",
            "fastq.lengths",
            f"the sequence has {len(sequence)} bases but the quality {len(quality)} values.",
            f"序列有 {len(sequence)} 个碱基，而质量值有 {len(quality)} 个。",
            line=first + 3,
            record=number,
        )
    if sequence.translate(None, b"ACGTNacgtnRYKMSWBDHVrykmswbdhv.-"):
        raise _error(
            name,
            "fastq",
            "fastq.alphabet",
            "the sequence holds characters that are not bases.",
            "序列中含有非碱基字符。",
            line=first + 1,
            record=number,
        )
    if quality and (min(quality) < 33 or max(quality) > 126):
        raise _error(
            name,
            "fastq",
            "fastq.quality",
            "quality characters must be Phred+33 ('!' to '~').",
            "质量字符须为 Phred+33（'!' 到 '~'）。",
            line=first + 3,
            record=number,
        )


class _Pipe:
    """A /dev/fd path that yields `chunks` to htslib, fed by a thread (no file on disk).

    `bytes` and `tail` (the last 28 bytes) tell what went in. `close` never blocks, whatever
    htslib still holds open: the feeder stops at its next chunk and the rest is drained.
    """

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._read_fd, write_fd = os.pipe()
        self.path = f"/dev/fd/{self._read_fd}"
        self.bytes = 0
        self.tail = b""
        self._errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._feed, args=(chunks, write_fd), daemon=True)
        self._thread.start()

    def _feed(self, chunks: Iterator[bytes], write_fd: int) -> None:
        try:
            with os.fdopen(write_fd, "wb") as sink:
                for chunk in chunks:
                    if self._stop.is_set():
                        return
                    sink.write(chunk)
                    self.bytes += len(chunk)
                    self.tail = (self.tail + chunk)[-28:]
        except BrokenPipeError:
            pass  # htslib stopped reading at an error
        except BaseException as error:  # reported after htslib returns
            self._errors.append(error)

    def close(self) -> None:
        """Stop feeding, drain what is in flight, and raise what the feeder met."""
        self._stop.set()
        with contextlib.suppress(OSError):
            while os.read(self._read_fd, 1 << 20):
                pass
            os.close(self._read_fd)
        self._thread.join()
        if self._errors:
            raise self._errors[0]


def _check_alignments(
    chunks: Iterator[bytes], *, fmt: str, name: str
) -> tuple[int, list[str], str]:
    pipe = _Pipe(chunks)
    records = 0
    note = ""
    position = -1
    import pysam  # htslib: loaded when a file is checked, not with the app

    save = pysam.set_verbosity(0)
    try:
        try:
            alignments = pysam.AlignmentFile(
                pipe.path, "rb" if fmt == "bam" else "rc", check_sq=False
            )
        except (OSError, ValueError) as error:
            raise _error(
                name,
                fmt,
                f"{fmt}.header",
                f"the header cannot be read ({error}).",
                "文件头无法读取。",
            ) from error
        contigs = list(alignments.references)
        try:
            for _ in alignments.fetch(until_eof=True):
                records += 1
            if fmt == "bam":
                position = alignments.tell() >> 16
        except (OSError, ValueError) as error:
            if fmt == "cram" and "reference" in str(error).lower():
                note = "CRAM records need the reference to decode; container structure checked"
            else:
                raise _damaged_record(name, fmt, records, error) from error
        finally:
            # after a read error htslib's close fails too ("Illegal seek" on a pipe); the
            # error already raised is the one that tells what is wrong
            with contextlib.suppress(OSError):
                alignments.close()
    finally:
        pysam.set_verbosity(save)
        pipe.close()
    if fmt == "bam":
        if pipe.tail != EOF_BLOCK:
            raise _error(
                name,
                fmt,
                "bam.eof",
                "the BGZF end-of-file block is missing: the file is truncated.",
                "缺少 BGZF 文件结束块：文件被截断。",
                offset=pipe.bytes,
            )
        if position < pipe.bytes - len(EOF_BLOCK):
            raise _damaged_record(name, fmt, records, f"reading stopped at byte {position}")
    return records, contigs, note


def _damaged_record(name: str, fmt: str, records: int, error: object) -> FormatError:
    return _error(
        name,
        fmt,
        f"{fmt}.record",
        f"record {records + 1} cannot be read ({error}); the file is damaged.",
        f"第 {records + 1} 条记录无法读取，文件已损坏。",
        record=records + 1,
    )


def _check_variants(
    chunks: Iterator[bytes], *, fmt: str, name: str, assembly: str | None
) -> tuple[int, list[str]]:
    pipe = _Pipe(chunks)
    records = 0
    seen: list[str] = []
    import pysam

    save = pysam.set_verbosity(0)
    try:
        with pysam.VariantFile(pipe.path) as variants:
            order = {c: i for i, c in enumerate(variants.header.contigs)}
            last: tuple[int, int] | None = None
            last_text = ""
            try:
                for record in variants:
                    records += 1
                    contig = record.chrom
                    if contig not in order:
                        order[contig] = len(order)
                    if not seen or seen[-1] != contig:
                        if contig in seen:
                            raise _error(
                                name,
                                fmt,
                                "vcf.sorted",
                                f"records are not sorted: {contig} appears again after "
                                f"{seen[-1]}. Sort the file (bcftools sort).",
                                f"记录未排序：{contig} 在 {seen[-1]} 之后再次出现。请排序（bcftools sort）。",
                                record=records,
                            )
                        seen.append(contig)
                        _check_contig(name, fmt, assembly, contig, record.pos, records)
                    key = (order[contig], record.pos)
                    if last is not None and key < last:
                        raise _error(
                            name,
                            fmt,
                            "vcf.sorted",
                            f"records are not sorted: {contig}:{record.pos} comes after "
                            f"{last_text}. Sort the file (bcftools sort).",
                            f"记录未排序：{contig}:{record.pos} 位于 {last_text} 之后。"
                            "请排序（bcftools sort）。",
                            record=records,
                        )
                    if assembly and record.stop > (contig_length(assembly, contig) or 0):
                        _check_contig(name, fmt, assembly, contig, record.stop, records)
                    last, last_text = key, f"{contig}:{record.pos}"
            except (OSError, ValueError) as error:
                raise _error(
                    name,
                    fmt,
                    "vcf.record",
                    f"record {records + 1} cannot be parsed ({error}).",
                    f"第 {records + 1} 条记录无法解析。",
                    record=records + 1,
                ) from error
    except FormatError:
        raise
    except (OSError, ValueError) as error:
        raise _error(
            name, fmt, "vcf.header", f"the header cannot be read ({error}).", "文件头无法读取。"
        ) from error
    finally:
        pysam.set_verbosity(save)
        pipe.close()
    return records, seen


def _check_contig(
    name: str, fmt: str, assembly: str | None, contig: str, position: int, record: int
) -> None:
    if not assembly:
        return
    length = contig_length(assembly, contig)
    if length is None:
        raise _error(
            name,
            fmt,
            "vcf.contig",
            f"contig {contig!r} is not a contig of {assembly}.",
            f"染色体 {contig!r} 不属于 {assembly}。",
            record=record,
        )
    if position > length:
        raise _error(
            name,
            fmt,
            "vcf.position",
            f"position {position} is beyond the end of {contig} in {assembly} ({length}).",
            f"位置 {position} 超出 {assembly} 中 {contig} 的长度（{length}）。",
            record=record,
        )


def check_stream(
    stream: BinaryIO,
    *,
    declared_format: str,
    assembly: str | None = None,
    name: str = "",
    max_decompressed: int | None = None,
) -> FormatSummary:
    """Check a stream read once from start to end; FormatError at the first problem."""
    fmt = declared_format.lower()
    limit = max_decompressed or DEFAULT_MAX_DECOMPRESSED
    source = _Source(stream)
    looks, compression = sniff(source.head)
    if fmt in {"fastq", "bam", "cram", "vcf", "bcf"} and looks != fmt:
        raise _error(
            name,
            fmt,
            "format.content",
            f"the content looks like {looks.upper()}, not the declared {fmt.upper()}.",
            f"内容看起来是 {looks.upper()}，而不是声明的 {fmt.upper()}。",
            offset=0,
        )
    if fmt == "fastq":
        chunks = source.chunks()
        if compression != "none":
            chunks = _inflate(chunks, name=name, fmt=fmt, max_decompressed=limit)
        records = _check_fastq(chunks, name=name)
        return FormatSummary(fmt, compression, records)
    if fmt in ("bam", "cram"):
        records, contigs, note = _check_alignments(source.chunks(), fmt=fmt, name=name)
        return FormatSummary(fmt, "bgzf" if fmt == "bam" else "none", records, contigs, note)
    if fmt in ("vcf", "bcf"):
        chunks = source.chunks()
        if compression == "gzip":  # plain gzip: htslib reads it, bombs are stopped here
            chunks = _inflate(chunks, name=name, fmt=fmt, max_decompressed=limit)
        records, contigs = _check_variants(chunks, fmt=fmt, name=name, assembly=assembly)
        return FormatSummary(fmt, compression, records, contigs)
    return FormatSummary(fmt, compression, 0, note="no content check for this format")


def check_file(path: Path, *, declared_format: str, assembly: str | None = None) -> FormatSummary:
    """Check the file at `path`."""
    with path.open("rb") as stream:
        return check_stream(
            stream, declared_format=declared_format, assembly=assembly, name=path.name
        )


def make_index(path: Path, *, fmt: str, out_dir: Path) -> Path:
    """Build the index of a bgzipped VCF (TBI, or CSI for long contigs) or of a BAM (BAI) in
    `out_dir`; the file itself is not touched."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / f"{path.name}.{os.getpid()}.{threading.get_ident()}"
    import pysam

    if fmt == "bam":
        target = stem.with_name(stem.name + ".bai")
        pysam.index(str(path), str(target))
        return target
    if fmt == "vcf":
        target = stem.with_name(stem.name + ".tbi")
        try:
            pysam.tabix_index(
                str(path), preset="vcf", keep_original=True, force=True, index=str(target)
            )
        except OSError:
            target = stem.with_name(stem.name + ".csi")
            pysam.tabix_index(
                str(path), preset="vcf", keep_original=True, force=True, csi=True, index=str(target)
            )
        return target
    raise InvalidInputError(
        f"No index is made for {fmt} files.", message_zh=f"不为 {fmt} 文件建立索引。"
    )


def main(argv: list[str] | None = None) -> int:
    """Check standard input; print one JSON line; 0 when valid, 3 when not."""
    parser = argparse.ArgumentParser(description="Check a data file read from standard input.")
    parser.add_argument("--format", required=True)
    parser.add_argument("--assembly")
    parser.add_argument("--name", default="")
    parser.add_argument("--max-decompressed", type=int)
    args = parser.parse_args(argv)
    try:
        summary = check_stream(
            sys.stdin.buffer,
            declared_format=args.format,
            assembly=args.assembly,
            name=args.name,
            max_decompressed=args.max_decompressed,
        )
    except InvalidInputError as error:
        print(json.dumps({"error": error.to_dict()}, ensure_ascii=False), flush=True)
        return 3
    print(json.dumps(asdict(summary), ensure_ascii=False), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
