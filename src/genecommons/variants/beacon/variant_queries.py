"""Checking a request's variant parameters into a `VariantQuery` (sequence, range or bracket;
coordinates 0-based, half-open, as Beacon v2 writes them) and matching stored variants against
it; canonical assembly and chromosome names."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from genecommons.assemblies import ASSEMBLIES, canonical, contig_length
from genecommons.errors import InvalidInputError
from genecommons.variants.beacon.requests import VariantParameters
from genecommons.variants.normalize import Variant, normalize

_ASSEMBLY_NAMES = {
    "grch38": "GRCh38",
    "hg38": "GRCh38",
    "grch37": "GRCh37",
    "hg19": "GRCh37",
    "grch37.p13": "GRCh37",
    "grch38.p14": "GRCh38",
    "t2t-chm13": "T2T-CHM13",
    "t2t-chm13v2.0": "T2T-CHM13",
    "chm13": "T2T-CHM13",
    "hs1": "T2T-CHM13",
}
_REFSEQ = re.compile(r"NC_0000(\d\d)\.\d{1,2}")
_CHROMOSOME = re.compile(r"(?:chr)?([1-9]|1[0-9]|2[0-2]|X|Y|M|MT)", re.IGNORECASE)
_ALLELE = re.compile(r"[ACGTN]+")

VARIANT_TYPES = {"SNP": "SNP", "SNV": "SNP", "MNP": "MNP", "INS": "INS", "DEL": "DEL"}
VARIANT_TYPES["INDEL"] = "INDEL"


@dataclass(frozen=True, slots=True)
class VariantQuery:
    """A checked genomic variant query. Coordinates are Beacon's: 0-based, end exclusive."""

    kind: Literal["sequence", "range", "bracket"]
    chrom: str  # canonical name: "22", "X", "MT"
    assembly: str | None
    start: tuple[int, int]
    end: tuple[int, int]
    reference: str | None = None
    alternate: str | None = None
    variant_type: str | None = None
    min_length: int | None = None
    max_length: int | None = None

    @property
    def window(self) -> tuple[int, int]:
        """The 1-based closed interval to look in."""
        if self.kind == "sequence":
            return self.start[0] + 1, self.start[0] + 1
        return self.start[0] + 1, self.end[1]

    def exact(self) -> Variant | None:
        """For a sequence query with both alleles spelled out, the one normalised variant."""
        if self.kind != "sequence" or not self.reference or not self.alternate:
            return None
        if "N" in self.reference or "N" in self.alternate:
            return None
        found = list(normalize(self.chrom, self.start[0] + 1, self.reference, [self.alternate]))
        return found[0][1] if found else None

    def matches(self, variant: Variant) -> bool:
        """Whether a stored (normalised) variant answers the query."""
        if self.kind == "sequence":
            wanted = self.exact()
            if wanted is not None:
                return (variant.pos, variant.ref, variant.alt) == (
                    wanted.pos,
                    wanted.ref,
                    wanted.alt,
                )
            if variant.pos != self.start[0] + 1:
                return False
        elif self.kind == "bracket":
            begin = variant.pos - 1
            if not (self.start[0] <= begin <= self.start[1] and self.end[0] <= variant.end):
                return False
            if variant.end > self.end[1]:
                return False
        elif variant.end < self.start[0] + 1 or variant.pos > self.end[0]:
            return False
        if self.reference and not _alleles_match(self.reference, variant.ref):
            return False
        if self.alternate and not _alleles_match(self.alternate, variant.alt):
            return False
        if self.variant_type and not _type_matches(self.variant_type, variant):
            return False
        length = max(len(variant.ref), len(variant.alt))
        if self.min_length is not None and length < self.min_length:
            return False
        return self.max_length is None or length <= self.max_length


def _alleles_match(pattern: str, allele: str) -> bool:
    return len(pattern) == len(allele) and all(
        p in ("N", a) for p, a in zip(pattern, allele, strict=True)
    )


def variant_type(variant: Variant) -> str:
    """SNP, MNP, INS, DEL or INDEL (a complex substitution) of a normalised variant."""
    ref, alt = len(variant.ref), len(variant.alt)
    if ref == alt:
        return "SNP" if ref == 1 else "MNP"
    if ref == 1 and variant.alt.startswith(variant.ref):
        return "INS"
    if alt == 1 and variant.ref.startswith(variant.alt):
        return "DEL"
    return "INDEL"


def _type_matches(wanted: str, variant: Variant) -> bool:
    found = variant_type(variant)
    return found == wanted or (wanted == "INDEL" and found in ("INS", "DEL"))


def canonical_assembly(value: str) -> str:
    """The assembly's canonical name (GRCh38, GRCh37, T2T-CHM13); InvalidInputError if
    unknown."""
    found = _ASSEMBLY_NAMES.get(value.strip().lower())
    if found is None:
        known = ", ".join(ASSEMBLIES)
        raise InvalidInputError(
            f"Unknown assemblyId {value[:60]!r}: this Beacon holds {known} (also written hg38, "
            "hg19, hs1).",
            message_zh=f"未知的 assemblyId {value[:60]!r}：本 Beacon 支持 {known}。",
            details={"place": "requestParameters.assemblyId", "value": value[:60]},
        )
    return found


def canonical_chromosome(value: str) -> str:
    """ "22", "X", "MT" for "chr22", "22", "NC_000022.11", "chrM" ...; InvalidInputError
    otherwise."""
    text = value.strip()
    refseq = _REFSEQ.fullmatch(text)
    if refseq:
        number = int(refseq.group(1))
        text = {23: "X", 24: "Y"}.get(number, str(number))
    elif text == "NC_012920.1":
        text = "MT"
    if not _CHROMOSOME.fullmatch(text):
        raise InvalidInputError(
            f"referenceName {value[:60]!r} is not a human chromosome: write 1-22, X, Y or MT "
            "(with or without 'chr'), or a RefSeq accession such as NC_000022.11.",
            message_zh=f"referenceName {value[:60]!r} 不是人类染色体：请写 1-22、X、Y 或 MT"
            "（可带 chr 前缀），或 RefSeq 登录号如 NC_000022.11。",
            details={"place": "requestParameters.referenceName", "value": value[:60]},
        )
    return canonical(text).upper()


def _bases(value: str | None, place: str) -> str | None:
    if value is None or (place == "referenceBases" and value in ("", "N")):
        return None
    upper = value.upper()
    if not _ALLELE.fullmatch(upper):
        raise InvalidInputError(
            f"{place} {value[:60]!r} is not a sequence of A, C, G, T or N.",
            message_zh=f"{place} {value[:60]!r} 不是由 A、C、G、T、N 组成的序列。",
            details={"place": f"requestParameters.{place}", "value": value[:60]},
        )
    return upper


def _coordinates_error(message: str, message_zh: str, value: Any) -> InvalidInputError:
    return InvalidInputError(
        message, message_zh=message_zh, details={"place": "requestParameters", "value": value}
    )


UNSUPPORTED = ("geneId", "aminoacidChange", "genomicAlleleShortForm", "mateName")


def variant_query(parameters: VariantParameters, *, max_range: int) -> VariantQuery | None:
    """The checked variant query of `parameters`, or None when they ask for no variant."""
    given = parameters.given()
    for name in UNSUPPORTED:
        if name in given:
            raise InvalidInputError(
                f"{name} queries are not supported by this Beacon: query by referenceName, "
                "start, end and bases.",
                message_zh=f"本 Beacon 不支持 {name} 查询：请按 referenceName、start、end 与碱基查询。",
                details={"place": f"requestParameters.{name}"},
            )
    if not given:
        return None
    if parameters.referenceName is None or parameters.start is None:
        raise _coordinates_error(
            "A variant query needs referenceName and start (0-based), plus alternateBases "
            "(a sequence query) or end (a range or bracket query).",
            "变异查询需要 referenceName 与 start（从 0 开始），并给出 alternateBases（序列查询）"
            "或 end（区间或括号查询）。",
            given,
        )
    chrom = canonical_chromosome(parameters.referenceName)
    assembly = canonical_assembly(parameters.assemblyId) if parameters.assemblyId else None
    start, end = tuple(parameters.start), tuple(parameters.end or ())
    reference = _bases(parameters.referenceBases, "referenceBases")
    alternate = _bases(parameters.alternateBases, "alternateBases")
    kind: Literal["sequence", "range", "bracket"]
    if not end:
        if len(start) != 1 or alternate is None:
            raise _coordinates_error(
                "A sequence query gives one start and alternateBases; give end too for a "
                "range query.",
                "序列查询需给出一个 start 与 alternateBases；区间查询还需给出 end。",
                given,
            )
        kind, start2, end2 = "sequence", (start[0], start[0]), (start[0] + 1, start[0] + 1)
    elif len(start) == 1 and len(end) == 1:
        kind, start2, end2 = "range", (start[0], start[0]), (end[0], end[0])
        if end[0] <= start[0]:
            raise _coordinates_error(
                f"end ({end[0]}) must be greater than start ({start[0]}): coordinates are "
                "0-based and end is exclusive.",
                f"end（{end[0]}）必须大于 start（{start[0]}）：坐标从 0 开始，end 不含。",
                given,
            )
    elif len(start) == 2 and len(end) == 2:
        kind, start2, end2 = "bracket", (start[0], start[1]), (end[0], end[1])
        if start[0] > start[1] or end[0] > end[1] or start[0] >= end[1]:
            raise _coordinates_error(
                "A bracket query gives start [min, max] and end [min, max] with min <= max and "
                "the start bracket before the end bracket.",
                "括号查询需给出 start [最小, 最大] 与 end [最小, 最大]，且最小值不大于最大值、"
                "起点区间位于终点区间之前。",
                given,
            )
    else:
        raise _coordinates_error(
            "Give one start and one end (a range query) or two of each (a bracket query).",
            "请给出一个 start 与一个 end（区间查询），或各两个（括号查询）。",
            given,
        )
    if end2[1] - start2[0] > max_range:
        raise _coordinates_error(
            f"The range spans {end2[1] - start2[0]:,} bases; this Beacon answers ranges of up "
            f"to {max_range:,} bases: split the query.",
            f"查询区间长度为 {end2[1] - start2[0]:,} 个碱基，超过上限 {max_range:,}：请拆分查询。",
            given,
        )
    for name in (assembly,) if assembly else tuple(ASSEMBLIES):
        length = contig_length(name, chrom)
        if length is not None and end2[1] <= length + 1:
            break
    else:
        raise _coordinates_error(
            f"The coordinates {start2[0]:,}-{end2[1]:,} lie beyond the end of chromosome "
            f"{chrom} ({assembly or 'in every assembly'}).",
            f"坐标 {start2[0]:,}-{end2[1]:,} 超出 {chrom} 号染色体的末端。",
            given,
        )
    kind_type = None
    if parameters.variantType is not None:
        kind_type = VARIANT_TYPES.get(parameters.variantType.upper())
        if kind_type is None:
            raise InvalidInputError(
                f"variantType {parameters.variantType[:40]!r} is not one this Beacon holds: "
                f"use {', '.join(VARIANT_TYPES)} (structural variants are not stored).",
                message_zh=f"variantType {parameters.variantType[:40]!r} 不受支持：请使用 "
                f"{', '.join(VARIANT_TYPES)}（本库不含结构变异）。",
                details={"place": "requestParameters.variantType"},
            )
    return VariantQuery(
        kind=kind,
        chrom=chrom,
        assembly=assembly,
        start=start2,
        end=end2,
        reference=reference,
        alternate=alternate,
        variant_type=kind_type,
        min_length=parameters.variantMinLength,
        max_length=parameters.variantMaxLength,
    )
