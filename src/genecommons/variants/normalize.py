"""Variant normalisation without a reference genome: one record per alternate allele, alleles
trimmed to their parsimonious form, so that a query matches however the submitter wrote the
variant.

What is done (after Tan, Abecasis & Kang 2015, "Unified representation of genetic variants"):

1. **Split**: a record with several ALT alleles becomes one biallelic variant per ALT; each
   remembers the index of its allele in the original record (for genotype lookup).
2. **Upper case**: alleles are compared in upper case.
3. **Right trim**: while both alleles are longer than one base and end in the same base, that
   base is dropped.
4. **Left trim**: while both alleles are longer than one base and start with the same base,
   that base is dropped and the position moves right.

What is not done, because it needs the reference sequence: **left alignment** of indels in
repeats (`CAG` -> `C` at 100 and `AGC` -> `A` at 101 in a `CAGCAG` run are the same deletion,
but stay two variants here) and checking REF against the genome. Submitters who want such
indels to match should normalise with `bcftools norm -f REF.fa` before submitting. Symbolic
alleles (`<DEL>`, `<NON_REF>` ...), breakends, the spanning deletion `*` and missing `.` are not
sequence variants and are skipped.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from genecommons.errors import InvalidInputError

BASES = re.compile(r"[ACGTN]+")
DIGITS = re.compile(r"[0-9]+")
# The largest position a variant may have: the 32-bit unsigned range of htsget and the BAM/CRAM
# index formats, longer than any assembled chromosome.
MAX_POSITION = 2**32 - 1


@dataclass(frozen=True, slots=True, order=True)
class Variant:
    """A biallelic sequence variant: 1-based position, REF and ALT in parsimonious form."""

    chrom: str
    pos: int
    ref: str
    alt: str

    @property
    def end(self) -> int:
        """The 1-based position of the last reference base the variant covers."""
        return self.pos + len(self.ref) - 1

    @property
    def key(self) -> str:
        """The gnomAD-style identifier `chrom-pos-ref-alt`."""
        return f"{self.chrom}-{self.pos}-{self.ref}-{self.alt}"


def is_sequence_allele(allele: str) -> bool:
    """Whether an ALT allele is a plain base sequence (not symbolic, breakend, `*` or `.`)."""
    return bool(BASES.fullmatch(allele.upper()))


def trim(pos: int, ref: str, alt: str) -> tuple[int, str, str]:
    """`ref` and `alt` with shared trailing, then leading, bases removed (position adjusted)."""
    ref, alt = ref.upper(), alt.upper()
    end = 0
    longest = min(len(ref), len(alt)) - 1
    while end < longest and ref[-1 - end] == alt[-1 - end]:
        end += 1
    if end:
        ref, alt = ref[:-end], alt[:-end]
    start = 0
    longest = min(len(ref), len(alt)) - 1
    while start < longest and ref[start] == alt[start]:
        start += 1
    return pos + start, ref[start:], alt[start:]


def normalize(chrom: str, pos: int, ref: str, alts: Sequence[str]) -> Iterator[tuple[int, Variant]]:
    """The biallelic, trimmed variants of one VCF record, each with its ALT index (1-based as
    in genotype calls). Raises InvalidInputError for a REF that is not a base sequence."""
    if pos < 1:
        raise InvalidInputError(
            f"{chrom}:{pos}: positions start at 1.", message_zh=f"{chrom}:{pos}：位置从 1 开始。"
        )
    if pos > MAX_POSITION:
        raise InvalidInputError(
            f"{chrom[:50]}:{pos}: the position is beyond {MAX_POSITION:,}, the end of the "
            "longest sequence a variant can be on.",
            message_zh=f"{chrom[:50]}:{pos}：位置超过 {MAX_POSITION:,}，即变异所在序列可能的最大长度。",
            details={"place": "position", "max": MAX_POSITION},
        )
    if not BASES.fullmatch(ref.upper()):
        raise InvalidInputError(
            f"{chrom}:{pos}: REF {ref[:50]!r} is not a sequence of A, C, G, T, N.",
            message_zh=f"{chrom}:{pos}：REF {ref[:50]!r} 不是由 A、C、G、T、N 组成的序列。",
        )
    for index, alt in enumerate(alts, start=1):
        if not is_sequence_allele(alt) or alt.upper() == ref.upper():
            continue
        start, trimmed_ref, trimmed_alt = trim(pos, ref, alt)
        yield index, Variant(chrom, start, trimmed_ref, trimmed_alt)


def parse_key(key: str) -> Variant:
    """A variant from its `chrom-pos-ref-alt` identifier, normalised."""
    parts = key.rsplit("-", 3)
    if len(parts) != 4 or not DIGITS.fullmatch(parts[1]):
        raise InvalidInputError(
            f"{key[:100]!r} is not a variant identifier: write CHROM-POS-REF-ALT, e.g. "
            "22-16050075-A-G.",
            message_zh=f"{key[:100]!r} 不是变异标识：请写成 CHROM-POS-REF-ALT，例如 22-16050075-A-G。",
        )
    chrom, pos, ref, alt = parts
    if len(pos.lstrip("0")) > len(str(MAX_POSITION)):  # int() of it would be slow, or refused
        raise InvalidInputError(
            f"{key[:100]!r}: the position {pos[:30]}{'…' if len(pos) > 30 else ''} is beyond "
            f"{MAX_POSITION:,}, the end of the longest sequence a variant can be on.",
            message_zh=f"{key[:100]!r}：位置 {pos[:30]}{'…' if len(pos) > 30 else ''} 超过 "
            f"{MAX_POSITION:,}，即变异所在序列可能的最大长度。",
            details={"place": "position", "max": MAX_POSITION},
        )
    if not is_sequence_allele(alt):
        raise InvalidInputError(
            f"ALT {alt[:50]!r} is not a sequence of A, C, G, T, N.",
            message_zh=f"ALT {alt[:50]!r} 不是由 A、C、G、T、N 组成的序列。",
        )
    found = list(normalize(chrom, int(pos), ref, [alt]))
    if not found:
        raise InvalidInputError(
            f"{key[:100]!r}: REF and ALT are the same allele.",
            message_zh=f"{key[:100]!r}：REF 与 ALT 相同。",
        )
    return found[0][1]
