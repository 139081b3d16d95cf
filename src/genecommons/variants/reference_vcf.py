"""Reading the VCF or BCF of a public reference (variants/reference.py builds it): the records
that have ALT alleles, each with the (AC, AN) of its ALTs from INFO or from the GT calls,
checked, with errors that name the file, the record and how to fix it."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from genecommons.errors import InvalidInputError
from genecommons.variants.normalize import is_sequence_allele

# VCF 4.3 contig names (section 1.4.7), at most 255 characters
_CONTIG = re.compile(r"[0-9A-Za-z!#$%&+./:;?@^_|~-][0-9A-Za-z!#$%&*+./:;=?@^_|~-]{0,254}")
# ALT alleles that are not sequences but are well formed: symbolic, breakend, `*`, `.`
_SYMBOLIC = re.compile(
    r"\*|\.|<[0-9A-Za-z!#$%&*+./:;=?@^_|~-]{1,100}>"
    r"|[ACGTNacgtn]*[\[\]][0-9A-Za-z!#$%&*+./:;=?@^_|~<>-]{1,300}[\[\]][ACGTNacgtn]*"
    r"|\.[ACGTNacgtn]+|[ACGTNacgtn]+\."
)


def vcf_error(
    vcf: Path, where: str, what: str, what_zh: str, fix: str, fix_zh: str
) -> InvalidInputError:
    return InvalidInputError(
        f"{vcf.name}, {where}: {what}. {fix}",
        message_zh=f"{vcf.name}，{zh_where(where)}：{what_zh}。{fix_zh}",
        details={"file": vcf.name, "where": where},
    )


def zh_where(where: str) -> str:
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


def open_vcf(vcf: Path) -> Any:
    import pysam

    if not vcf.is_file():
        raise InvalidInputError(
            f"{vcf}: no such file. Give the path of a VCF or BCF (plain or bgzipped).",
            message_zh=f"{vcf}：文件不存在。请给出 VCF 或 BCF 文件（未压缩或 bgzip 压缩）的路径。",
            details={"file": vcf.name},
        )
    if vcf.stat().st_size == 0:
        raise vcf_error(
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
        raise vcf_error(
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
        raise vcf_error(
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


class RecordReader:
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
                raise vcf_error(
                    vcf,
                    "header",
                    f"{len(unknown)} sample name(s) are not in the VCF: {shown}{more}",
                    f"{len(unknown)} 个样本名不在该 VCF 中：{shown}",
                    "List only samples of the VCF's header (`bcftools query -l` prints them), "
                    "one a line.",
                    "请只列出 VCF 文件头中的样本（`bcftools query -l` 可列出），每行一个。",
                )
            if not samples:
                raise vcf_error(
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
                    raise vcf_error(
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
        return vcf_error(
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
            raise vcf_error(
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
            raise vcf_error(
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
            raise vcf_error(
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
            raise vcf_error(
                self.vcf,
                self.where,
                f"INFO AC={ac_value!r:.60} / AN={an_value!r:.60} are not integers "
                "(one AN, one AC per ALT)",
                "INFO 的 AC / AN 不是整数（一个 AN，每个 ALT 一个 AC）",
                "Write AC as one integer per ALT allele and AN as one integer.",
                "AC 应为每个 ALT 一个整数，AN 应为一个整数。",
            ) from None
        if len(counts) != n_alts:
            raise vcf_error(
                self.vcf,
                self.where,
                f"INFO AC has {len(counts)} value(s) for {n_alts} ALT allele(s)",
                f"INFO AC 有 {len(counts)} 个值，而 ALT 有 {n_alts} 个",
                "AC is Number=A: one count per ALT allele, in ALT's order.",
                "AC 为 Number=A：按 ALT 顺序每个等位基因一个计数。",
            )
        if an is None or any(c is None for c in counts):
            raise vcf_error(
                self.vcf,
                self.where,
                "INFO AC or AN is missing ('.')",
                "INFO AC 或 AN 缺失（'.'）",
                "Give every count, or remove the record.",
                "请给出全部计数，或删除该记录。",
            )
        checked = [c for c in counts if c is not None]
        if an < 0 or any(c < 0 for c in checked) or sum(checked) > an:
            raise vcf_error(
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
            raise vcf_error(
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
