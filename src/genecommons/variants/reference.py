"""Public reference allele counts (gnomAD, ChinaMAP, or any panel of people outside the cohort),
keyed by the variant store's normalised key `CHROM-POS-REF-ALT`.

`build_reference` reads a VCF or BCF (plain or bgzipped) into an SQLite file: one row per
normalised variant with its AC and AN. A record's counts come from its INFO AC (Number=A) and AN
when it carries both, as a sites-only VCF does; otherwise they are counted from the GT calls of
all its samples (missing alleles are not counted in AN, as in the variant store). When
`samples` is given, the calls of those samples alone are counted, whatever INFO says.

Records are split and trimmed by `normalize`, so the keys are those of the variant store.
Non-sequence ALTs (`*`, `.`, `<DEL>` and other symbolic alleles, breakends) and an ALT equal to
REF are skipped, as the store skips them. Two records that normalise to the same variant (a
split multi-allelic record beside a biallelic one, say) are merged: their AC are added and the
larger AN is kept, AC capped at that AN (the records count the same chromosomes, each carrier
in one of them).

`ReferenceCounts` answers point lookups from a built file: `get(key)` gives (AC, AN), or None
for a variant the reference does not list, which counts as 0 of `alleles` (the largest AN).

A reference is built in a hidden file beside its destination and renamed over it only when
complete: a file that fails half way leaves nothing, and the previous reference stays.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from genecommons import clock
from genecommons.errors import ConfigurationError, InvalidInputError
from genecommons.variants.normalize import is_sequence_allele, normalize

FORMAT = "genecommons-reference/1"
SCHEMA = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE reference (key TEXT PRIMARY KEY, ac INTEGER NOT NULL, an INTEGER NOT NULL)"
    " WITHOUT ROWID;"
)
_BATCH = 50_000  # keys merged in memory before they are written
# VCF 4.3 contig names (section 1.4.7), at most 255 characters
_CONTIG = re.compile(r"[0-9A-Za-z!#$%&+./:;?@^_|~-][0-9A-Za-z!#$%&*+./:;=?@^_|~-]{0,254}")
# ALT alleles that are not sequences but are well formed: symbolic, breakend, `*`, `.`
_SYMBOLIC = re.compile(
    r"\*|\.|<[0-9A-Za-z!#$%&*+./:;=?@^_|~-]{1,100}>"
    r"|[ACGTNacgtn]*[\[\]][0-9A-Za-z!#$%&*+./:;=?@^_|~<>-]{1,300}[\[\]][ACGTNacgtn]*"
    r"|\.[ACGTNacgtn]+|[ACGTNacgtn]+\."
)


class PublicCounts(Protocol):
    """Public allele counts by normalised variant key (what the Beacon's defence reads)."""

    alleles: int

    def get(self, key: str) -> tuple[int, int] | None:
        """(AC, AN) of the variant `key`, or None when the reference does not list it."""


@dataclass(frozen=True, slots=True)
class ReferenceSource:
    """Where a built reference came from."""

    file: str  # the source file's name
    sha256: str
    sites: int  # normalised variants listed
    alleles: int  # the largest AN
    loaded_at: str  # ISO 8601, UTC
    counted_from: str  # "info" (AC/AN), "genotypes" (GT calls) or "info+genotypes"
    samples: int  # samples whose calls were counted (0 when all counts came from INFO)


@dataclass(frozen=True, slots=True)
class ReferenceSummary:
    """What a build produced."""

    path: Path
    source: ReferenceSource
    records: int  # VCF records read


def _bad(
    vcf: Path, where: str, what: str, what_zh: str, fix: str, fix_zh: str
) -> InvalidInputError:
    return InvalidInputError(
        f"{vcf.name}, {where}: {what}. {fix}",
        message_zh=f"{vcf.name}，{_zh_where(where)}：{what_zh}。{fix_zh}",
        details={"file": vcf.name, "where": where},
    )


def _zh_where(where: str) -> str:
    if where == "header":
        return "文件头"
    if where == "end of file":
        return "文件末尾"
    if where.startswith("record "):
        number, _, locus = where.removeprefix("record ").partition(" ")
        return f"第 {number} 条记录 {locus}".rstrip()
    if where.startswith("after record "):
        number, _, locus = where.removeprefix("after record ").partition(" ")
        return f"第 {number} 条记录 {locus} 之后".rstrip()
    return where


def _shown(text: str) -> str:
    return repr(text[:40] + ("…" if len(text) > 40 else ""))


def sha256_of(path: Path) -> str:
    """SHA-256 (hex) of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _open_vcf(vcf: Path) -> Any:
    import pysam

    if not vcf.is_file():
        raise InvalidInputError(
            f"{vcf}: no such file. Give the path of a VCF or BCF (plain or bgzipped).",
            message_zh=f"{vcf}：文件不存在。请给出 VCF 或 BCF 文件（未压缩或 bgzip 压缩）的路径。",
            details={"file": vcf.name},
        )
    if vcf.stat().st_size == 0:
        raise _bad(
            vcf,
            "header",
            "the file is empty",
            "文件为空",
            "Give a VCF or BCF with a header and at least one record.",
            "请提供带文件头且至少有一条记录的 VCF 或 BCF。",
        )
    with vcf.open("rb") as head:
        start = head.read(18)
    if start[:2] == b"\x1f\x8b" and start[12:14] != b"BC":
        raise _bad(
            vcf,
            "header",
            "the file is compressed with gzip, not bgzip",
            "文件用 gzip 而非 bgzip 压缩",
            "Recompress it: `gunzip -c FILE | bgzip > FILE.vcf.gz` (or give it uncompressed).",
            "请重新压缩：`gunzip -c 文件 | bgzip > 文件.vcf.gz`（或提供未压缩的文件）。",
        )
    quiet = pysam.set_verbosity(0)  # htslib says on stderr that an index is absent: none needed
    try:
        return pysam.VariantFile(str(vcf), "r")
    except (OSError, ValueError, NotImplementedError) as error:
        raise _bad(
            vcf,
            "header",
            f"not a readable VCF or BCF ({error})",
            "不是可读取的 VCF 或 BCF（或文件被截断）",
            "Give a complete VCF (header lines starting with ##fileformat=VCF) or BCF, plain or "
            "bgzipped: `bcftools view -h` should print its header, and `gzip -t` should pass "
            "for a compressed file.",
            "请提供完整的 VCF（以 ##fileformat=VCF 开头）或 BCF，可未压缩或 bgzip 压缩："
            "`bcftools view -h` 应能显示其文件头，压缩文件应能通过 `gzip -t` 检查。",
        ) from error
    finally:
        pysam.set_verbosity(quiet)


def _integers(value: Any) -> tuple[int | None, ...]:
    """An INFO value as integers (None for a missing value `.`); ValueError if it is not."""
    values = value if isinstance(value, tuple) else (value,)
    out: list[int | None] = []
    for item in values:
        if item is None or item == ".":
            out.append(None)
        elif isinstance(item, bool | float):
            raise ValueError(item)
        else:
            out.append(int(item))
    return tuple(out)


class _Reader:
    """The records of one VCF that have ALT alleles, each with the (AC, AN) of its ALTs,
    checked."""

    def __init__(self, vcf: Path, handle: Any, samples: Sequence[str] | None) -> None:
        self.vcf = vcf
        self.handle = handle
        names = list(handle.header.samples)
        self.by_genotypes = samples is not None
        if samples is not None:
            unknown = sorted(set(samples) - set(names))
            if unknown:
                shown = ", ".join(_shown(s) for s in unknown[:5])
                more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
                raise _bad(
                    vcf,
                    "header",
                    f"{len(unknown)} sample name(s) are not in the VCF: {shown}{more}",
                    f"{len(unknown)} 个样本名不在该 VCF 中：{shown}",
                    "List only samples of the VCF's header (`bcftools query -l` prints them), "
                    "one a line.",
                    "请只列出 VCF 文件头中的样本（`bcftools query -l` 可列出），每行一个。",
                )
            if not samples:
                raise _bad(
                    vcf,
                    "header",
                    "the list of samples to count is empty",
                    "要计数的样本列表为空",
                    "List at least one sample, or give no list to count them all.",
                    "请至少列出一个样本，或不给列表以统计全部样本。",
                )
            handle.subset_samples(list(dict.fromkeys(samples)))
        self.samples = len(set(samples)) if samples is not None else len(names)
        self.records = 0
        self.from_info = 0
        self.from_genotypes = 0
        self.where = "header"

    def __iter__(self) -> Iterator[tuple[str, int, str, list[str], list[tuple[int, int]]]]:
        """(CHROM, POS, REF, ALTs, (AC, AN) of each ALT) of each record with an ALT."""
        vcf = self.vcf
        iterator = iter(self.handle)
        while True:
            try:
                record = next(iterator)
            except StopIteration:
                return
            except (OSError, ValueError, UnicodeDecodeError) as error:
                raise self._unreadable(error) from error
            self.records += 1
            self.where = f"record {self.records}"
            try:
                chrom, pos, ref = record.chrom, record.pos, record.ref or ""
                alts = list(record.alts or ())
            except (ValueError, UnicodeDecodeError) as error:
                raise self._unreadable(error, at=self.where) from error
            self._check_chrom(chrom)
            self.where = f"record {self.records} ({chrom}:{pos})"
            for alt in alts:
                if not is_sequence_allele(alt) and not _SYMBOLIC.fullmatch(alt):
                    raise _bad(
                        vcf,
                        self.where,
                        f"ALT {_shown(alt)} is neither a base sequence nor a symbolic allele",
                        f"ALT {_shown(alt)} 既不是碱基序列也不是符号等位基因",
                        "ALT alleles are A, C, G, T, N sequences, <ID>, *, or breakends "
                        "(VCF 4.3, section 1.6.1); correct or remove the record.",
                        "ALT 应为 A、C、G、T、N 序列、<ID>、* 或断点（VCF 4.3 第 1.6.1 节）；"
                        "请更正或删除该记录。",
                    )
            if not alts:
                continue
            yield chrom, pos, ref, alts, self._counts(record, len(alts))

    def _unreadable(self, error: BaseException, *, at: str | None = None) -> InvalidInputError:
        where = at or ("header" if self.records == 0 else f"after {self.where}")
        return _bad(
            self.vcf,
            where,
            f"reading stopped ({error})",
            "文件无法继续读取",
            "It may be truncated or damaged, hold text that is not UTF-8, or not be a VCF: "
            "check that `bcftools view` reads it to the end (for a .gz file, `gzip -t`), then "
            "give the complete file.",
            "文件可能被截断、损坏、含非 UTF-8 文本或不是 VCF：请确认 `bcftools view` 能读到结尾（.gz 文件可用 "
            "`gzip -t` 检查），然后提供完整文件。",
        )

    def _check_chrom(self, chrom: str) -> None:
        if not _CONTIG.fullmatch(chrom):
            raise _bad(
                self.vcf,
                self.where,
                f"CHROM {_shown(chrom)} is not a valid contig name",
                f"CHROM {_shown(chrom)} 不是有效的染色体（contig）名",
                "Contig names are at most 255 characters without spaces, commas, quotes or "
                "brackets (VCF 4.3, section 1.4.7), e.g. chr22 or 22.",
                "contig 名最多 255 个字符，不含空白、逗号、引号或括号（VCF 4.3 第 1.4.7 节），"
                "例如 chr22 或 22。",
            )

    def _counts(self, record: Any, n_alts: int) -> list[tuple[int, int]]:
        info = record.info
        has_ac, has_an = "AC" in info, "AN" in info
        if not self.by_genotypes and has_ac and not has_an:
            raise _bad(
                self.vcf,
                self.where,
                "INFO has AC but no AN",
                "INFO 有 AC 但没有 AN",
                "Give AN (the number of called alleles) with every AC, or the genotypes to "
                "count them from (`bcftools +fill-tags -- -t AN,AC` adds both).",
                "请在每个 AC 旁给出 AN（已判定等位基因数），或提供可计数的基因型"
                "（`bcftools +fill-tags -- -t AN,AC` 可同时补上）。",
            )
        if not self.by_genotypes and has_ac and has_an:
            self.from_info += 1
            return self._from_info(info["AC"], info["AN"], n_alts)
        if self.samples == 0:
            raise _bad(
                self.vcf,
                self.where,
                "the record has no INFO AC and AN and the file has no samples to count",
                "该记录没有 INFO AC 与 AN，文件也没有可计数的样本",
                "Give a sites VCF with AC (Number=A) and AN in INFO on every record, or a VCF "
                "with genotypes (GT).",
                "请提供每条记录 INFO 中都有 AC（Number=A）与 AN 的位点 VCF，或带基因型（GT）的 VCF。",
            )
        self.from_genotypes += 1
        return self._from_genotypes(record, n_alts)

    def _from_info(self, ac_value: Any, an_value: Any, n_alts: int) -> list[tuple[int, int]]:
        try:
            counts = _integers(ac_value)
            (an,) = _integers(an_value)
        except (TypeError, ValueError):
            raise _bad(
                self.vcf,
                self.where,
                f"INFO AC={ac_value!r:.60} / AN={an_value!r:.60} are not integers "
                "(one AN, one AC per ALT)",
                "INFO 的 AC / AN 不是整数（一个 AN，每个 ALT 一个 AC）",
                "Write AC as one integer per ALT allele and AN as one integer.",
                "AC 应为每个 ALT 一个整数，AN 应为一个整数。",
            ) from None
        if len(counts) != n_alts:
            raise _bad(
                self.vcf,
                self.where,
                f"INFO AC has {len(counts)} value(s) for {n_alts} ALT allele(s)",
                f"INFO AC 有 {len(counts)} 个值，而 ALT 有 {n_alts} 个",
                "AC is Number=A: one count per ALT allele, in ALT's order.",
                "AC 为 Number=A：按 ALT 顺序每个等位基因一个计数。",
            )
        if an is None or any(c is None for c in counts):
            raise _bad(
                self.vcf,
                self.where,
                "INFO AC or AN is missing ('.')",
                "INFO AC 或 AN 缺失（'.'）",
                "Give every count, or remove the record.",
                "请给出全部计数，或删除该记录。",
            )
        checked = [c for c in counts if c is not None]
        if an < 0 or any(c < 0 for c in checked) or sum(checked) > an:
            raise _bad(
                self.vcf,
                self.where,
                f"INFO AC={','.join(map(str, checked))} and AN={an} are impossible (negative, "
                "or more ALT alleles than alleles called)",
                f"INFO AC={','.join(map(str, checked))} 与 AN={an} 不可能成立（为负，或 ALT "
                "等位基因多于已判定的等位基因）",
                "AN counts all called alleles, so 0 <= AC and the sum of AC <= AN; correct the "
                "counts (`bcftools +fill-tags -- -t AN,AC` recounts them from GT).",
                "AN 为全部已判定等位基因数，须满足 0 <= AC 且 AC 之和 <= AN；请更正计数"
                "（`bcftools +fill-tags -- -t AN,AC` 可由 GT 重新计数）。",
            )
        return [(c, an) for c in checked]

    def _from_genotypes(self, record: Any, n_alts: int) -> list[tuple[int, int]]:
        counts = [0] * (n_alts + 1)
        an = 0
        try:
            for call in record.samples.values():
                for allele in call["GT"] or ():
                    if allele is not None:
                        counts[allele] += 1
                        an += 1
        except (KeyError, IndexError, TypeError, ValueError):
            raise _bad(
                self.vcf,
                self.where,
                "the genotypes (GT) cannot be counted: a call is absent or names an allele "
                "the record does not have",
                "无法统计基因型（GT）：有调用缺失或引用了记录中不存在的等位基因",
                "Give GT for every sample with allele indexes 0..number of ALT alleles, or a "
                "sites VCF with INFO AC and AN.",
                "请为每个样本给出等位基因编号在 0 至 ALT 个数之间的 GT，或提供带 INFO AC 与 AN "
                "的位点 VCF。",
            ) from None
        return [(counts[i], an) for i in range(1, n_alts + 1)]


def build_reference(
    vcf: Path,
    target: Path,
    *,
    samples: Sequence[str] | None = None,
    before_replace: Callable[[ReferenceSummary], None] | None = None,
) -> ReferenceSummary:
    """Build the public reference counts of `vcf` at `target`, replacing any reference there
    only when the whole file was read; `samples` counts the GT calls of those samples only.
    `before_replace(summary)` runs when the new file is complete, before it replaces the old
    one; if it raises, nothing is replaced."""
    sha256 = sha256_of(vcf) if vcf.is_file() else ""
    handle = _open_vcf(vcf)
    target.parent.mkdir(parents=True, exist_ok=True)
    building = target.parent / f".{target.name}.building-{uuid.uuid4().hex}"
    try:
        try:
            reader = _Reader(vcf, handle, samples)
            sites, alleles = _write(building, reader)
        finally:
            _close(handle)
        if sites == 0:
            raise _bad(
                vcf,
                "end of file",
                f"no sequence variants in {reader.records} record(s)",
                f"{reader.records} 条记录中没有序列变异",
                "Give a VCF with at least one record whose ALT is a base sequence.",
                "请提供至少有一条 ALT 为碱基序列的记录的 VCF。",
            )
        if reader.from_info and reader.from_genotypes:
            counted_from = "info+genotypes"
        else:
            counted_from = "info" if reader.from_info else "genotypes"
        source = ReferenceSource(
            file=vcf.name,
            sha256=sha256,
            sites=sites,
            alleles=alleles,
            loaded_at=clock.now().isoformat(timespec="seconds"),
            counted_from=counted_from,
            samples=reader.samples if reader.from_genotypes else 0,
        )
        _write_meta(building, source, reader.records)
        summary = ReferenceSummary(target, source, reader.records)
        if before_replace is not None:
            before_replace(summary)
        os.replace(building, target)
    except BaseException:
        building.unlink(missing_ok=True)
        raise
    _sync_directory(target.parent)
    return summary


def _close(handle: Any) -> None:
    # htslib fails to close a damaged file; the read already failed and said why
    with contextlib.suppress(OSError):
        handle.close()


def read_sample_names(path: Path) -> list[str]:
    """Sample names from a text file, one a line (blank lines and lines starting with # are
    ignored)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or type(error).__name__
        raise InvalidInputError(
            f"{path}: the list of samples cannot be read ({reason}). Give a UTF-8 text file "
            "with one sample name a line.",
            message_zh=f"{path}：无法读取样本列表（{reason}）。请提供每行一个样本名的 UTF-8 文本文件。",
            details={"file": path.name},
        ) from error
    names = [line.strip() for line in text.splitlines()]
    return [name for name in names if name and not name.startswith("#")]


def _write(building: Path, reader: _Reader) -> tuple[int, int]:
    """Write the counts of `reader` into a new SQLite file; (sites, largest AN)."""
    connection = sqlite3.connect(building)
    try:
        connection.execute("PRAGMA journal_mode=OFF")
        connection.execute("PRAGMA synchronous=OFF")
        connection.executescript(SCHEMA)
        pending: dict[str, tuple[int, int]] = {}
        alleles = 0
        for chrom, pos, ref, alts, counts in reader:
            alleles = max(alleles, counts[0][1])
            try:
                variants = list(normalize(chrom, pos, ref, alts))
            except InvalidInputError as error:
                prefix = f"{chrom}:{pos}: "  # normalize names the locus, as `where` does
                message, message_zh = error.message, error.message_zh
                raise InvalidInputError(
                    f"{reader.vcf.name}, {reader.where}: {message.removeprefix(prefix)} "
                    "Correct or remove the record.",
                    message_zh=f"{reader.vcf.name}，{_zh_where(reader.where)}："
                    f"{message_zh.removeprefix(f'{chrom}:{pos}：')}请更正或删除该记录。",
                    details={"file": reader.vcf.name, "where": reader.where},
                ) from error
            for index, variant in variants:
                _merge(pending, variant.key, *counts[index - 1])
            if len(pending) >= _BATCH:
                _flush(connection, pending)
        _flush(connection, pending)
        connection.commit()
        (sites,) = connection.execute("SELECT count(*) FROM reference").fetchone()
    finally:
        connection.close()
    return int(sites), alleles


def _merge(pending: dict[str, tuple[int, int]], key: str, ac: int, an: int) -> None:
    if key in pending:
        known_ac, known_an = pending[key]
        an = max(an, known_an)
        ac = min(ac + known_ac, an)
    pending[key] = (ac, an)


def _flush(connection: sqlite3.Connection, pending: dict[str, tuple[int, int]]) -> None:
    # a key met again after an earlier batch was written is merged the same way
    connection.executemany(
        "INSERT INTO reference (key, ac, an) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET "
        "an = max(an, excluded.an), ac = min(ac + excluded.ac, max(an, excluded.an))",
        ((key, ac, an) for key, (ac, an) in pending.items()),
    )
    pending.clear()


def _write_meta(building: Path, source: ReferenceSource, records: int) -> None:
    meta = {
        "format": FORMAT,
        "source": source.file,
        "sha256": source.sha256,
        "sites": str(source.sites),
        "alleles": str(source.alleles),
        "loaded_at": source.loaded_at,
        "counted_from": source.counted_from,
        "samples": str(source.samples),
        "records": str(records),
    }
    connection = sqlite3.connect(building)
    try:
        connection.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
        connection.commit()
    finally:
        connection.close()
    with building.open("rb") as handle:
        os.fsync(handle.fileno())


def _sync_directory(folder: Path) -> None:
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


class ReferenceCounts:
    """Point lookups in a built reference (read only; safe to share between threads)."""

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise ConfigurationError(
                f"No public reference at {path}: build it with `genecommons variants "
                "load-reference VCF`, or point GENECOMMONS_BEACON_REFERENCE at one.",
                message_zh=f"{path} 处没有公共参考计数：请用 `genecommons variants load-reference "
                "VCF` 建立，或将 GENECOMMONS_BEACON_REFERENCE 指向已有文件。",
            )
        self.path = path
        # immutable: a reference is never changed in place, only replaced by a new file
        self._uri = f"{path.resolve().as_uri()}?mode=ro&immutable=1"
        self._local = threading.local()
        try:
            meta = dict(self._connect().execute("SELECT key, value FROM meta").fetchall())
            self._connect().execute("SELECT ac, an FROM reference LIMIT 1").fetchall()
            if meta.get("format") != FORMAT:
                raise KeyError("format")
            self.source = ReferenceSource(
                file=meta["source"],
                sha256=meta["sha256"],
                sites=int(meta["sites"]),
                alleles=int(meta["alleles"]),
                loaded_at=meta["loaded_at"],
                counted_from=meta["counted_from"],
                samples=int(meta["samples"]),
            )
        except (sqlite3.Error, KeyError, ValueError) as error:
            raise ConfigurationError(
                f"{path} is not a GeneCommons public reference ({error}): rebuild it with "
                "`genecommons variants load-reference VCF`, or point "
                "GENECOMMONS_BEACON_REFERENCE at a reference file.",
                message_zh=f"{path} 不是 GeneCommons 公共参考计数文件：请用 `genecommons variants "
                "load-reference VCF` 重建，或将 GENECOMMONS_BEACON_REFERENCE 指向参考计数文件。",
            ) from error
        self.alleles: int = self.source.alleles

    @classmethod
    def open(cls, path: Path) -> ReferenceCounts:
        """The reference built at `path` (ConfigurationError when there is none)."""
        return cls(path)

    def _connect(self) -> sqlite3.Connection:
        # one connection per thread, kept (opening one costs far more than a lookup), and none
        # carried into a forked worker process
        local = self._local
        connection: sqlite3.Connection | None = getattr(local, "connection", None)
        if connection is None or local.pid != os.getpid():
            connection = sqlite3.connect(self._uri, uri=True, check_same_thread=False)
            local.connection, local.pid = connection, os.getpid()
        return connection

    def get(self, key: str) -> tuple[int, int] | None:
        """(AC, AN) of the normalised variant `key` (CHROM-POS-REF-ALT), or None when the
        reference does not list it."""
        row = (
            self._connect().execute("SELECT ac, an FROM reference WHERE key = ?", (key,)).fetchone()
        )
        return (row[0], row[1]) if row else None

    def __getstate__(self) -> dict[str, Any]:
        # pickled (to a worker process) without this process's connections
        return {"path": self.path, "uri": self._uri, "source": self.source}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.path, self._uri, self.source = state["path"], state["uri"], state["source"]
        self.alleles = self.source.alleles
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"ReferenceCounts({str(self.path)!r}, sites={self.source.sites}, alleles={self.alleles})"
