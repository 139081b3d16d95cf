"""GA4GH Beacon v2: reading requests and writing responses (pure; no web or database code).

A request arrives as a POST body (`meta`, `query.requestParameters`, `filters`, `pagination`,
`requestedGranularity`) or as GET query parameters; either becomes a `BeaconRequest` (pydantic)
and then a checked `Query`: a `VariantQuery` (sequence, range or bracket; coordinates 0-based,
half-open, as Beacon v2 writes them) and a tuple of `Criterion` (HPO and disease terms, sex,
population, GB/T 3304 ethnic group). Anything malformed, unknown or too large raises
InvalidInputError with an English and a Chinese message, which the app turns into a
`beaconErrorResponse`.

Responses follow the framework schemas of Beacon v2.0 (../shared/specs/beacon-v2): the
informational endpoints (`/info`, `/service-info`, `/configuration`, `/map`, `/entry_types`,
`/filtering_terms`), the boolean, count and result-set responses of the entry types, and the
error response. Records follow the default model (genomicVariant, individual, biosample, run,
analysis, dataset, cohort).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from genecommons.assemblies import ASSEMBLIES, canonical, contig_length
from genecommons.catalog.vocabularies import (
    disease_term,
    ethnic_groups,
    hpo,
    hpo_is_descendant,
)
from genecommons.errors import InvalidInputError
from genecommons.variants.answers import Granularity
from genecommons.variants.normalize import Variant, normalize
from genecommons.variants.store import ALL, SiteCounts

API_VERSION = "v2.0.0"
SPECIFICATION = "Beacon v2.0.0"
GRANULARITY_ORDER = (Granularity.BOOLEAN, Granularity.COUNT, Granularity.RECORD)

# -- entry types ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EntryType:
    """One Beacon entry type and where it lives."""

    path: str  # the endpoint under /beacon, e.g. "g_variants"
    id: str  # its Beacon name, e.g. "genomicVariant"
    name: str
    term: tuple[str, str]  # ontology term for the type (id, label)
    model: str  # folder of its default schema in the Beacon v2 default model
    collection: bool = False  # datasets and cohorts are collections


ENTRY_TYPES: dict[str, EntryType] = {
    e.path: e
    for e in (
        EntryType(
            "g_variants",
            "genomicVariant",
            "Genomic Variants",
            ("ENSGLOSSARY:0000092", "Variant"),
            "genomicVariations",
        ),
        EntryType(
            "individuals", "individual", "Individual", ("NCIT:C25190", "Person"), "individuals"
        ),
        EntryType(
            "biosamples",
            "biosample",
            "Biological Sample",
            ("NCIT:C70699", "Biospecimen"),
            "biosamples",
        ),
        EntryType("runs", "run", "Sequencing run", ("NCIT:C148088", "Sequencing run"), "runs"),
        EntryType(
            "analyses",
            "analysis",
            "Bioinformatics analysis",
            ("edam:operation_2945", "Analysis"),
            "analyses",
        ),
        EntryType("datasets", "dataset", "Dataset", ("NCIT:C47824", "Data set"), "datasets", True),
        EntryType("cohorts", "cohort", "Cohort", ("NCIT:C61512", "Cohort"), "cohorts", True),
    )
}

# The cross-entry lookups this Beacon answers: (from, to), as /{from}/{id}/{to}.
CROSS_LOOKUPS: tuple[tuple[str, str], ...] = (
    ("datasets", "g_variants"),
    ("datasets", "individuals"),
    ("datasets", "biosamples"),
    ("cohorts", "individuals"),
    ("cohorts", "biosamples"),
    ("individuals", "g_variants"),
    ("individuals", "biosamples"),
    ("biosamples", "g_variants"),
    ("biosamples", "runs"),
    ("biosamples", "analyses"),
    ("g_variants", "individuals"),
    ("g_variants", "biosamples"),
    ("runs", "g_variants"),
    ("analyses", "g_variants"),
)


def schema_id(entry: EntryType) -> str:
    """The id of an entry type's default schema, e.g. "ga4gh-beacon-variant-v2.0.0"."""
    short = "variant" if entry.id == "genomicVariant" else entry.id
    return f"ga4gh-beacon-{short}-{API_VERSION}"


# -- request models ---------------------------------------------------------------------------

SEX_TERMS: dict[str, tuple[str, str]] = {
    "female": ("NCIT:C16576", "female"),
    "male": ("NCIT:C20197", "male"),
    "other": ("NCIT:C45908", "intersex"),
    "unknown": ("NCIT:C17998", "unknown"),
}
SEX_BY_TERM = {term: sex for sex, (term, _label) in SEX_TERMS.items()}
FIELDS = ("sex", "population", "ethnic_group")
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
_POPULATION = re.compile(r"[A-Za-z0-9][A-Za-z0-9_:\-]{0,99}")
_TERM = re.compile(r"[A-Za-z][A-Za-z0-9._\-]{0,30}:[A-Za-z0-9._\-]{1,60}")
VARIANT_TYPES = {"SNP": "SNP", "SNV": "SNP", "MNP": "MNP", "INS": "INS", "DEL": "DEL"}
VARIANT_TYPES["INDEL"] = "INDEL"
MAX_FILTERS = 20


def _as_list(value: Any) -> Any:
    if isinstance(value, int | str):
        return [value]
    return value


def _as_filter(value: Any) -> Any:
    """Filters may be written as bare ids ("HP:0000365") or as `id=value` pairs."""
    if isinstance(value, str):
        name, equals, wanted = value.partition("=")
        return {"id": name, "operator": "=", "value": wanted} if equals else {"id": value}
    return value


Coordinates = Annotated[
    list[Annotated[int, Field(ge=0, le=10**10)]],
    BeforeValidator(_as_list),
    Field(min_length=1, max_length=2),
]
Short = Annotated[str, Field(max_length=100)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class RequestMeta(BaseModel):
    """The `meta` of a request: the API version and schemas the client asks for (recorded)."""

    model_config = ConfigDict(extra="allow")

    apiVersion: Short = API_VERSION  # noqa: N815 - Beacon's field names
    requestedSchemas: list[dict[str, Any]] = Field(default_factory=list, max_length=10)  # noqa: N815


class Pagination(BaseModel):
    """Which results of a record-level answer to return."""

    model_config = ConfigDict(extra="ignore")

    skip: int = Field(default=0, ge=0, le=1_000_000)
    limit: int = Field(default=10, ge=0, le=1000)


class Filter(_Strict):
    """One Beacon filter: an ontology term (`id`) or an alphanumeric `id` `operator` `value`."""

    id: Annotated[str, Field(min_length=1, max_length=200)]
    operator: Literal["=", "!", "<", ">", "<=", ">="] | None = None
    value: Annotated[str, Field(max_length=200)] | None = None
    scope: Short | None = None
    includeDescendantTerms: bool = True  # noqa: N815
    similarity: Literal["exact", "high", "medium", "low"] = "exact"


class VariantParameters(_Strict):
    """`requestParameters` of a genomic variant query (Beacon v2 default model)."""

    referenceName: Short | None = None  # noqa: N815
    start: Coordinates | None = None
    end: Coordinates | None = None
    referenceBases: Annotated[str, Field(max_length=1000)] | None = None  # noqa: N815
    alternateBases: Annotated[str, Field(max_length=1000)] | None = None  # noqa: N815
    assemblyId: Short | None = None  # noqa: N815
    variantType: Short | None = None  # noqa: N815
    variantMinLength: Annotated[int, Field(ge=0, le=10**9)] | None = None  # noqa: N815
    variantMaxLength: Annotated[int, Field(ge=1, le=10**9)] | None = None  # noqa: N815
    geneId: Short | None = None  # noqa: N815
    aminoacidChange: Short | None = None  # noqa: N815
    genomicAlleleShortForm: Short | None = None  # noqa: N815
    mateName: Short | None = None  # noqa: N815
    schema_: str | None = Field(default=None, alias="$schema", max_length=500)

    def given(self) -> dict[str, Any]:
        """The parameters the client set, as it wrote them."""
        return self.model_dump(exclude_none=True, exclude={"schema_"})


class BeaconQuery(_Strict):
    """The `query` of a request."""

    requestParameters: VariantParameters = Field(default_factory=VariantParameters)  # noqa: N815
    filters: Annotated[
        list[Annotated[Filter, BeforeValidator(_as_filter)]], Field(max_length=MAX_FILTERS)
    ] = Field(default_factory=list)
    pagination: Pagination = Field(default_factory=Pagination)
    requestedGranularity: Granularity = Granularity.RECORD  # noqa: N815
    includeResultsetResponses: Literal["ALL", "HIT", "MISS", "NONE"] = "HIT"  # noqa: N815
    testMode: bool = False  # noqa: N815


class BeaconRequest(BaseModel):
    """A Beacon v2 request body."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    meta: RequestMeta = Field(default_factory=RequestMeta)
    query: BeaconQuery = Field(default_factory=BeaconQuery)
    schema_: str | None = Field(default=None, alias="$schema", max_length=500)


def _invalid(error: ValidationError, *, place: str) -> InvalidInputError:
    problems = [
        {"place": ".".join(str(p) for p in e["loc"]) or place, "message": e["msg"]}
        for e in error.errors()[:20]
    ]
    first = problems[0]
    return InvalidInputError(
        f"The Beacon request is malformed at {first['place']}: {first['message']}.",
        message_zh=f"Beacon 请求格式不正确（{first['place']}）：{first['message']}。",
        details=problems,
    )


def parse_body(document: Any) -> BeaconRequest:
    """A POST body, checked against the request model."""
    if document is None:
        return BeaconRequest()
    try:
        return BeaconRequest.model_validate(document)
    except ValidationError as error:
        raise _invalid(error, place="body") from error


GET_PARAMETERS = frozenset(VariantParameters.model_fields) - {"schema_"}
GET_OPTIONS = frozenset(
    {"filters", "skip", "limit", "requestedGranularity", "includeResultsetResponses", "testMode"}
)


def parse_query_string(items: Sequence[tuple[str, str]]) -> BeaconRequest:
    """GET query parameters: the variant parameters (`start=1,5` or repeated for brackets),
    `filters` (comma separated; `id=value` for alphanumeric filters), `skip`, `limit`,
    `requestedGranularity`, `includeResultsetResponses` and `testMode`."""
    values: dict[str, list[str]] = {}
    for name, value in items:
        if name not in GET_PARAMETERS | GET_OPTIONS:
            raise InvalidInputError(
                f"Unknown query parameter {name[:60]!r}; this Beacon reads "
                f"{', '.join(sorted(GET_PARAMETERS | GET_OPTIONS))}.",
                message_zh=f"未知的查询参数 {name[:60]!r}。",
                details={"place": name[:60]},
            )
        values.setdefault(name, []).extend(v for v in value.split(",") if v != "")
    parameters: dict[str, Any] = {}
    for name in GET_PARAMETERS & values.keys():
        given = values[name]
        parameters[name] = given if name in ("start", "end") else ",".join(given)
    query: dict[str, Any] = {"requestParameters": parameters, "filters": values.get("filters", [])}
    pagination = {k: values[k][0] for k in ("skip", "limit") if values.get(k)}
    if pagination:
        query["pagination"] = pagination
    for name in ("requestedGranularity", "includeResultsetResponses", "testMode"):
        if values.get(name):
            query[name] = values[name][0]
    return parse_body({"meta": {"apiVersion": API_VERSION}, "query": query})


# -- checked queries --------------------------------------------------------------------------


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


# -- filters ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TermCriterion:
    """An individual has (not excluded) this phenotypic feature or disease; HPO terms match
    their descendants too unless `descendants` is off."""

    term: str
    label: str
    descendants: bool = True


@dataclass(frozen=True, slots=True)
class FieldCriterion:
    """An individual's sex, population or ethnic group is (or, negated, is not) `value`."""

    field: str
    value: str
    negated: bool = False


Criterion = TermCriterion | FieldCriterion


def _unknown_filter(spec: Filter, hint: str, hint_zh: str) -> InvalidInputError:
    return InvalidInputError(
        f"Unknown filter {spec.id[:80]!r}: {hint} GET /beacon/filtering_terms lists them.",
        message_zh=f"未知的筛选条件 {spec.id[:80]!r}：{hint_zh}可用条件见 GET /beacon/filtering_terms。",
        details={"place": "query.filters", "value": spec.id[:80]},
    )


def criterion(spec: Filter) -> Criterion:
    """The checked criterion of one filter."""
    if spec.id in FIELDS:
        if spec.value is None or spec.operator not in (None, "=", "!"):
            raise _unknown_filter(
                spec,
                f"{spec.id} filters compare with = or ! against a value.",
                f"{spec.id} 筛选条件须用 = 或 ! 与一个值比较。",
            )
        value = spec.value.strip()
        if spec.id == "sex":
            value = value.lower()
            if value not in SEX_TERMS:
                raise _unknown_filter(
                    spec,
                    "sex is female, male, other or unknown.",
                    "性别须为 female、male、other 或 unknown。",
                )
        elif spec.id == "ethnic_group":
            term = ethnic_groups().lookup(value)
            if term is None:
                raise _unknown_filter(
                    spec,
                    f"{value[:40]!r} is not a GB/T 3304 ethnic group (code, e.g. 01, or name).",
                    f"{value[:40]!r} 不是 GB/T 3304 民族（代码如 01，或名称）。",
                )
            value = term.id
        elif not _POPULATION.fullmatch(value):
            raise _unknown_filter(
                spec, "a population is a code such as CHB.", "群体须为代码，如 CHB。"
            )
        return FieldCriterion(spec.id, value, negated=spec.operator == "!")
    if spec.id in SEX_BY_TERM:
        return FieldCriterion("sex", SEX_BY_TERM[spec.id])
    if spec.value is not None or not _TERM.fullmatch(spec.id):
        raise _unknown_filter(
            spec,
            "filters are HPO or disease terms (HP:0000365, MONDO:…, ICD10:…), NCIT sex terms, "
            "or sex, population and ethnic_group with a value.",
            "筛选条件为 HPO 或疾病术语、NCIT 性别术语，或带值的 sex、population、ethnic_group。",
        )
    if spec.id.upper().startswith("HP:"):
        found = hpo().lookup(spec.id)
        if found is None:
            raise _unknown_filter(spec, "no such HPO term.", "HPO 中没有该术语。")
        return TermCriterion(found.id, found.label, spec.includeDescendantTerms)
    disease = disease_term(spec.id)
    if disease is None:
        raise _unknown_filter(
            spec, "no such HPO, MONDO, ICD-10, OMIM or Orphanet term.", "不是已知的术语。"
        )
    return TermCriterion(disease.id, disease.label, descendants=False)


def criteria(filters: Sequence[Filter]) -> tuple[Criterion, ...]:
    """The checked criteria of a request's filters."""
    return tuple(criterion(f) for f in filters)


@dataclass(frozen=True, slots=True)
class Person:
    """What the filters ask of an individual."""

    accession: str
    sex: str | None
    population: str | None
    ethnic_group: str | None
    terms: frozenset[str]  # phenotypic features and diseases present (not excluded)


@functools.lru_cache(maxsize=100_000)
def _below(term: str, ancestor: str) -> bool:
    try:
        return hpo_is_descendant(term, ancestor)
    except InvalidInputError:
        return False  # a stored term the bundled HPO no longer knows


def person_matches(person: Person, wanted: Iterable[Criterion]) -> bool:
    """Whether an individual satisfies every criterion."""
    for item in wanted:
        if isinstance(item, FieldCriterion):
            value = getattr(person, item.field)
            if (value == item.value) == item.negated:
                return False
        elif item.term not in person.terms and not (
            item.descendants
            and item.term.startswith("HP:")
            and any(t.startswith("HP:") and _below(t, item.term) for t in person.terms)
        ):
            return False
    return True


def index_group(wanted: Sequence[Criterion]) -> str | None:
    """The sites-index group that answers these criteria directly (all, a population, a sex,
    or population:sex), or None when they need the individual genotypes."""
    if any(not isinstance(c, FieldCriterion) or c.negated for c in wanted):
        return None
    fields = {c.field: c.value for c in wanted if isinstance(c, FieldCriterion)}
    if len(fields) != len(wanted) or "ethnic_group" in fields:
        return None
    if not fields:
        return ALL
    if set(fields) == {"population", "sex"}:
        return f"{fields['population']}:{fields['sex']}"
    return next(iter(fields.values()))


def filter_ids(wanted: Sequence[Filter]) -> list[str]:
    """The filters as the request summary lists them (strings)."""
    return [f.id if f.value is None else f"{f.id}{f.operator or '='}{f.value}" for f in wanted]


# -- responses --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BeaconInfo:
    """Who this Beacon is (from the settings)."""

    id: str
    name: str
    organization: str
    environment: str
    version: str
    base_url: str  # e.g. "http://127.0.0.1:8000/beacon"


def _meta(info: BeaconInfo, entry: EntryType | None = None) -> dict[str, Any]:
    schemas = [] if entry is None else [{"entityType": entry.id, "schema": schema_id(entry)}]
    return {"beaconId": info.id, "apiVersion": API_VERSION, "returnedSchemas": schemas}


def info_response(info: BeaconInfo) -> dict[str, Any]:
    """`/` and `/info`."""
    return {
        "meta": _meta(info),
        "response": {
            "id": info.id,
            "name": info.name,
            "apiVersion": API_VERSION,
            "environment": {"production": "prod", "test": "test"}.get(info.environment, "dev"),
            "organization": {"id": info.id.rsplit(".", 1)[0], "name": info.organization},
            "description": "GA4GH Beacon v2 of a GeneCommons node: variants, individuals and "
            "biosamples, answered per dataset at the granularity the caller may see. "
            "GeneCommons 节点的 GA4GH Beacon v2。",
            "version": info.version,
            "welcomeUrl": info.base_url,
            "info": {
                "granularities": "open: boolean; registered: count; controlled with a grant: record"
            },
        },
    }


def service_info(info: BeaconInfo) -> dict[str, Any]:
    """`/service-info` (GA4GH service-info 1.0)."""
    return {
        "id": info.id,
        "name": info.name,
        "type": {"group": "org.ga4gh", "artifact": "beacon", "version": API_VERSION},
        "description": "GA4GH Beacon v2 of a GeneCommons node.",
        "organization": {"name": info.organization, "url": info.base_url},
        "environment": info.environment,
        "version": info.version,
    }


def _entry_definition(entry: EntryType, base_url: str) -> dict[str, Any]:
    definition: dict[str, Any] = {
        "id": entry.id,
        "name": entry.name,
        "ontologyTermForThisType": {"id": entry.term[0], "label": entry.term[1]},
        "partOfSpecification": SPECIFICATION,
        "defaultSchema": {
            "id": schema_id(entry),
            "name": f"Default schema for {entry.name.lower()}",
            "referenceToSchemaDefinition": "https://raw.githubusercontent.com/ga4gh-beacon/"
            f"beacon-v2/main/models/json/beacon-v2-default-model/{entry.model}/defaultSchema.json",
            "schemaVersion": API_VERSION,
        },
        "additionallySupportedSchemas": [],
        "nonFilteredQueriesAllowed": True,
    }
    if entry.collection:
        members = "individuals" if entry.path == "cohorts" else "g_variants"
        definition["aCollectionOf"] = [
            {"id": ENTRY_TYPES[members].id, "name": ENTRY_TYPES[members].name}
        ]
    return definition


def entry_types_response(info: BeaconInfo) -> dict[str, Any]:
    """`/entry_types`."""
    return {
        "meta": _meta(info),
        "response": {
            "entryTypes": {e.id: _entry_definition(e, info.base_url) for e in ENTRY_TYPES.values()}
        },
    }


def configuration_response(info: BeaconInfo) -> dict[str, Any]:
    """`/configuration`."""
    return {
        "meta": _meta(info),
        "response": {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "maturityAttributes": {
                "productionStatus": {"production": "PROD", "test": "TEST"}.get(
                    info.environment, "DEV"
                )
            },
            "securityAttributes": {
                "defaultGranularity": "boolean",
                "securityLevels": ["PUBLIC", "REGISTERED", "CONTROLLED"],
            },
            "entryTypes": {e.id: _entry_definition(e, info.base_url) for e in ENTRY_TYPES.values()},
        },
    }


def map_response(info: BeaconInfo) -> dict[str, Any]:
    """`/map`: every entry type's endpoints and the cross-entry lookups answered here."""
    sets: dict[str, Any] = {}
    for entry in ENTRY_TYPES.values():
        root = f"{info.base_url}/{entry.path}"
        lookups = {
            f"{ENTRY_TYPES[target].id}Lookup": {
                "returnedEntryType": ENTRY_TYPES[target].id,
                "url": f"{root}/{{id}}/{target}",
            }
            for source, target in CROSS_LOOKUPS
            if source == entry.path
        }
        sets[entry.id] = {
            "entryType": entry.id,
            "rootUrl": root,
            "singleEntryUrl": f"{root}/{{id}}",
            "endpoints": lookups,
        }
    return {
        "meta": _meta(info),
        "response": {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "endpointSets": sets,
        },
    }


@dataclass(frozen=True, slots=True)
class TermInfo:
    """A filtering term the Beacon offers."""

    id: str
    label: str
    kind: Literal["ontology", "alphanumeric"]
    scopes: tuple[str, ...]
    values: tuple[str, ...] = ()


def filtering_terms_response(info: BeaconInfo, terms: Sequence[TermInfo]) -> dict[str, Any]:
    """`/filtering_terms`."""
    listed = []
    for term in terms:
        item: dict[str, Any] = {
            "type": term.kind,
            "id": term.id,
            "label": term.label,
            "scopes": list(term.scopes),
        }
        if term.values:
            item["values"] = list(term.values)
        listed.append(item)
    return {
        "meta": _meta(info),
        "response": {
            "filteringTerms": listed,
            "resources": [
                {
                    "id": "hp",
                    "name": "Human Phenotype Ontology",
                    "url": "http://purl.obolibrary.org/obo/hp.owl",
                    "nameSpacePrefix": "HP",
                    "iriPrefix": "http://purl.obolibrary.org/obo/HP_",
                },
                {
                    "id": "ncit",
                    "name": "NCI Thesaurus",
                    "url": "http://purl.obolibrary.org/obo/ncit.owl",
                    "nameSpacePrefix": "NCIT",
                    "iriPrefix": "http://purl.obolibrary.org/obo/NCIT_",
                },
                {
                    "id": "gbt3304",
                    "name": "GB/T 3304-1991 Names of nationalities of China and their codes",
                    "nameSpacePrefix": "GBT3304",
                },
            ],
        },
    }


def error_response(
    info: BeaconInfo, *, status: int, message: str, message_zh: str
) -> dict[str, Any]:
    """A `beaconErrorResponse`: the code and the message in English and Chinese."""
    meta = _meta(info)
    meta["returnedGranularity"] = "boolean"
    meta["receivedRequestSummary"] = {
        "apiVersion": API_VERSION,
        "requestedSchemas": [],
        "pagination": {"skip": 0, "limit": 0},
        "requestedGranularity": "boolean",
    }
    return {
        "meta": meta,
        "error": {"errorCode": status, "errorMessage": f"{message} / {message_zh}"},
    }


@dataclass(frozen=True, slots=True)
class ResultSet:
    """One dataset's answer: at boolean granularity `count` and `results` are not shown; at
    count granularity `results` are not."""

    dataset: str
    granularity: Granularity
    exists: bool
    count: int | None = None
    results: tuple[dict[str, Any], ...] = ()
    note: str | None = None
    note_zh: str | None = None


def received_summary(request: BeaconRequest, entry: EntryType) -> dict[str, Any]:
    """What the Beacon understood of the request (`meta.receivedRequestSummary`)."""
    query = request.query
    summary: dict[str, Any] = {
        "apiVersion": request.meta.apiVersion,
        "requestedSchemas": request.meta.requestedSchemas,
        "pagination": {"skip": query.pagination.skip, "limit": query.pagination.limit},
        "requestedGranularity": str(query.requestedGranularity),
        "filters": filter_ids(query.filters),
        "includeResultsetResponses": query.includeResultsetResponses,
        "testMode": query.testMode,
    }
    parameters = query.requestParameters.given()
    if parameters:
        # requestParameters are keyed by entry type in the summary (framework schema)
        summary["requestParameters"] = {"g_variant": parameters}
    return summary


def returned_granularity(requested: Granularity, sets: Sequence[ResultSet]) -> Granularity:
    """The response's granularity: the most any dataset was answered at, at most as requested."""
    if not sets:
        return requested  # nothing to tell, at whatever granularity was asked
    most = max(GRANULARITY_ORDER.index(s.granularity) for s in sets)
    return GRANULARITY_ORDER[min(most, GRANULARITY_ORDER.index(requested))]


def query_response(
    info: BeaconInfo,
    entry: EntryType,
    request: BeaconRequest,
    sets: Sequence[ResultSet],
) -> dict[str, Any]:
    """The answer to an entry-type query: a boolean, count or result-set response (a
    collections response for datasets and cohorts at record granularity)."""
    granularity = returned_granularity(request.query.requestedGranularity, sets)
    meta = _meta(info, entry)
    meta["returnedGranularity"] = str(granularity)
    meta["receivedRequestSummary"] = received_summary(request, entry)
    meta["testMode"] = request.query.testMode
    exists = any(s.exists for s in sets)
    if granularity is Granularity.BOOLEAN:
        return {"meta": meta, "responseSummary": {"exists": exists}}
    counted = [s for s in sets if s.count is not None]
    total = sum(s.count or 0 for s in counted)
    summary = {"exists": exists, "numTotalResults": total}
    if granularity is Granularity.COUNT:
        return {
            "meta": meta,
            "responseSummary": summary,
            "response": {"resultSets": [_result_set(s, records=False) for s in counted]},
        }
    if entry.collection:
        collections = [r for s in sets for r in s.results]
        return {
            "meta": meta,
            "responseSummary": summary,
            "response": {"collections": collections},
        }
    wanted = request.query.includeResultsetResponses
    shown = [
        s
        for s in counted
        if wanted == "ALL" or (wanted == "HIT" and s.exists) or (wanted == "MISS" and not s.exists)
    ]
    return {
        "meta": meta,
        "responseSummary": summary,
        "response": {"resultSets": [_result_set(s, records=True) for s in shown]},
    }


def _result_set(answer: ResultSet, *, records: bool) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": answer.dataset,
        "setType": "dataset",
        "exists": answer.exists,
        "resultsCount": answer.count or 0,
        "results": list(answer.results) if records else [],
        "info": {"returnedGranularity": str(answer.granularity)},
    }
    if answer.note:
        item["info"]["note"] = answer.note
        item["info"]["note_zh"] = answer.note_zh or answer.note
    return item


# -- records ----------------------------------------------------------------------------------

ZYGOSITY = {
    "heterozygous": ("GENO:GENO_0000458", "0/1"),
    "homozygous": ("GENO:GENO_0000136", "1/1"),
    "hemizygous": ("GENO:GENO_0000134", "1"),
}


@dataclass(frozen=True, slots=True)
class Carrier:
    """A sample that carries a variant, with its individual and zygosity."""

    biosample: str
    individual: str
    zygosity: str  # heterozygous | homozygous | hemizygous


# a genomicVariant's variantInternalId: the dataset's accession, then the variant's key
_INTERNAL_ID_RE = re.compile(r"^(GCD[0-9]{8}):(.+)$")


def split_variant_id(value: str) -> tuple[str | None, str]:
    """The dataset a `/g_variants/{id}` id names (None for a plain CHROM-POS-REF-ALT key) and
    the variant's key: the id is a key, or a variantInternalId (`GCD…:chr22-…`)."""
    found = _INTERNAL_ID_RE.match(value)
    return (found.group(1), found.group(2)) if found else (None, value)


def variant_record(
    site: SiteCounts,
    *,
    dataset: str,
    assembly: str | None,
    base_url: str,
    carriers: Sequence[Carrier] | None = None,
) -> dict[str, Any]:
    """A genomicVariant record: the variant (legacy form with a VRS location), its allele
    frequencies by group in the dataset and, when given, the samples that carry it."""
    variant = site.variant
    sequence = f"{assembly or 'assembly'}:{variant.chrom}".replace(" ", "_")
    record: dict[str, Any] = {
        "variantInternalId": f"{dataset}:{variant.key}",
        "variation": {
            "variantType": variant_type(variant),
            "referenceBases": variant.ref,
            "alternateBases": variant.alt,
            "location": {
                "type": "SequenceLocation",
                "sequence_id": sequence,
                "interval": {
                    "type": "SequenceInterval",
                    "start": {"type": "Number", "value": variant.pos - 1},
                    "end": {"type": "Number", "value": variant.end},
                },
            },
        },
        "identifiers": {"genomicHGVSId": _hgvs(variant)},
        "frequencyInPopulations": [
            {
                "source": f"GeneCommons dataset {dataset}",
                "sourceReference": f"{base_url}/datasets/{dataset}",
                "frequencies": [
                    {
                        "population": group,
                        "alleleFrequency": cell["ac"] / cell["an"],
                        "alleleCount": cell["ac"],
                        "alleleNumber": cell["an"],
                        "alleleCountHomozygous": cell["hom"],
                        "alleleCountHemizygous": cell["hemi"],
                    }
                    for group, cell in site.counts.items()
                    if cell["an"]
                ],
            }
        ],
    }
    if not record["frequencyInPopulations"][0]["frequencies"]:
        del record["frequencyInPopulations"]
    if carriers is not None:
        record["caseLevelData"] = [
            {
                "biosampleId": c.biosample,
                "individualId": c.individual,
                "zygosity": {"id": ZYGOSITY[c.zygosity][0], "label": ZYGOSITY[c.zygosity][1]},
            }
            for c in carriers
        ]
    return record


def _hgvs(variant: Variant) -> str:
    prefix = f"{variant.chrom}:g.{variant.pos}"
    kind = variant_type(variant)
    if kind == "SNP":
        return f"{prefix}{variant.ref}>{variant.alt}"
    if kind == "DEL":
        return f"{variant.chrom}:g.{variant.pos + 1}_{variant.end}del"
    if kind == "INS":
        return f"{prefix}_{variant.pos + 1}ins{variant.alt[1:]}"
    return f"{prefix}_{variant.end}delins{variant.alt}"


def _term(pair: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not pair or not pair.get("id"):
        return None
    term = {"id": str(pair["id"])}
    if pair.get("label"):
        term["label"] = str(pair["label"])
    return term


def individual_record(row: Mapping[str, Any], packet: Mapping[str, Any] | None) -> dict[str, Any]:
    """An individual record from a catalog row (accession, sex, population, ethnic group,
    country) and its Phenopacket."""
    sex_id, sex_label = SEX_TERMS.get(str(row.get("sex") or "unknown"), SEX_TERMS["unknown"])
    record: dict[str, Any] = {"id": row["accession"], "sex": {"id": sex_id, "label": sex_label}}
    ethnic = row.get("ethnic_group")
    if ethnic and str(ethnic).isdigit():
        term = ethnic_groups().lookup(str(ethnic))
        record["ethnicity"] = {
            "id": f"GBT3304:{ethnic}",
            "label": term.label if term else str(ethnic),
        }
    if row.get("country"):
        record["geographicOrigin"] = {"id": f"ISO3166:{row['country']}", "label": row["country"]}
    if row.get("population"):
        record["info"] = {"population": row["population"]}
    packet = packet or {}
    features = []
    for feature in packet.get("phenotypicFeatures", []):
        kind = _term(feature.get("type"))
        if kind:
            features.append({"featureType": kind, "excluded": bool(feature.get("excluded"))})
    if features:
        record["phenotypicFeatures"] = features
    diseases = [
        {"diseaseCode": code}
        for d in packet.get("diseases", [])
        if (code := _term(d.get("term"))) and not d.get("excluded")
    ]
    if diseases:
        record["diseases"] = diseases
    measures = []
    for measurement in packet.get("measurements", []):
        assay = _term(measurement.get("assay"))
        quantity = (measurement.get("value") or {}).get("quantity") or {}
        unit = _term(quantity.get("unit"))
        if assay and unit and isinstance(quantity.get("value"), int | float):
            measures.append(
                {"assayCode": assay, "measurementValue": {"unit": unit, "value": quantity["value"]}}
            )
    if measures:
        record["measures"] = measures
    return record


TISSUES = {
    "blood": ("UBERON:0000178", "blood"),
    "saliva": ("UBERON:0001836", "saliva"),
    "buccal": ("UBERON:0006956", "buccal mucosa"),
    "tumour": ("NCIT:C18009", "tumor tissue"),
    "tumor": ("NCIT:C18009", "tumor tissue"),
    "skin": ("UBERON:0002097", "skin of body"),
}


def biosample_record(row: Mapping[str, Any]) -> dict[str, Any]:
    """A biosample record from a catalog sample (accession, individual, tissue, date)."""
    tissue = str(row.get("tissue") or "")
    origin = TISSUES.get(tissue.strip().lower(), ("NCIT:C17998", tissue or "unknown"))
    record: dict[str, Any] = {
        "id": row["accession"],
        "individualId": row["individual"],
        # the catalog does not record case or control: every sample is a reference sample
        "biosampleStatus": {"id": "EFO:0009654", "label": "reference sample"},
        "sampleOriginType": {"id": origin[0], "label": origin[1]},
        "info": {"alias": row.get("alias"), "tissue": tissue},
    }
    if row.get("collection_date"):
        record["collectionDate"] = str(row["collection_date"])
    return record


def run_record(row: Mapping[str, Any]) -> dict[str, Any]:
    """A run record (the run's date, or the day it was submitted when none was given)."""
    layout = {"paired": "PAIRED", "single": "SINGLE"}.get(str(row.get("library_layout")))
    record: dict[str, Any] = {
        "id": row["accession"],
        "biosampleId": row["biosample"],
        "individualId": row["individual"],
        "runDate": str(row.get("run_date") or row["submitted_on"]),
        "libraryStrategy": str(row.get("library_strategy") or ""),
        "platform": str(row.get("platform") or ""),
        "info": {"runDateGiven": bool(row.get("run_date"))},
    }
    if layout:
        record["libraryLayout"] = layout
    return record


def analysis_record(row: Mapping[str, Any]) -> dict[str, Any]:
    """An analysis record (dated the day it was submitted; the catalog keeps no run date)."""
    return {
        "id": row["accession"],
        "analysisDate": str(row["submitted_on"]),
        "pipelineName": str(row.get("analysis_type") or "unknown"),
        "info": {
            "referenceAssembly": row.get("reference_assembly"),
            "samples": row.get("samples", 0),
        },
    }


def dataset_record(row: Mapping[str, Any]) -> dict[str, Any]:
    """A dataset record with its data use conditions (DUO)."""
    record: dict[str, Any] = {
        "id": row["accession"],
        "name": row["title"],
        "createDateTime": str(row["created_at"]),
        "updateDateTime": str(row["updated_at"]),
        "info": {"accessTier": row["access_tier"], "alias": row["alias"]},
    }
    if row.get("description"):
        record["description"] = row["description"]
    duo = [c for c in row.get("duo_codes", []) if str(c).startswith("DUO:")]
    if duo:
        record["dataUseConditions"] = {
            "duoDataUse": [{"id": code, "version": "2021-02-23"} for code in duo]
        }
    return record


def cohort_record(row: Mapping[str, Any]) -> dict[str, Any]:
    """A cohort record: a study and its individuals."""
    return {
        "id": row["accession"],
        "name": row["title"],
        "cohortType": "study-defined",
        "cohortSize": int(row.get("size", 0)),
        "cohortDesign": {"id": "NCIT:C15208", "label": str(row.get("study_type") or "study")},
    }
