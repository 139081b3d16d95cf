"""The metadata model: one submission standard for human genetic data.

After EGA, GSA-Human and INSDC. Each entity is a pydantic model whose fields are the columns of
its sheet in a submission (see docs/submission.md). References between entities are written as
the target's alias (within the same submission or study) or as its accession. Types, required
fields and enumerations are checked here; vocabularies, references and cross-record rules are
checked in `rules.py`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from genecommons.catalog.identifiers import Treatment

ACCESSION_RE = re.compile(r"^GC[A-Z]\d{8}$")
ALIAS_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}$"
LIST_SEPARATOR = ";"

_TRUE = {"true", "yes", "y", "1", "是", "对", "t"}
_FALSE = {"false", "no", "n", "0", "否", "不", "f"}
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _empty_to_none(value: Any) -> Any:
    if isinstance(value, str) and not value.strip():
        return None
    return value


def _split_list(value: Any) -> Any:
    value = _empty_to_none(value)
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(LIST_SEPARATOR) if part.strip()]
    return value


def _bool(value: Any) -> Any:
    value = _empty_to_none(value)
    if isinstance(value, str):
        folded = value.strip().lower()
        if folded in _TRUE:
            return True
        if folded in _FALSE:
            return False
    return value


def _text(value: Any) -> Any:
    value = _empty_to_none(value)
    if isinstance(value, str):
        if _CONTROL.search(value):
            raise ValueError("control characters are not allowed in text")
        return value.strip()
    return value


Alias = Annotated[str, StringConstraints(pattern=ALIAS_PATTERN, strip_whitespace=True)]
Ref = Annotated[str, StringConstraints(pattern=ALIAS_PATTERN, strip_whitespace=True)]
RefList = Annotated[list[Ref], BeforeValidator(_split_list)]
CodeList = Annotated[list[str], BeforeValidator(_split_list)]
Text = Annotated[str, BeforeValidator(_text), StringConstraints(min_length=1, max_length=500)]
LongText = Annotated[str, BeforeValidator(_text), StringConstraints(min_length=1, max_length=20000)]
Flag = Annotated[bool, BeforeValidator(_bool)]
Code = Annotated[str, BeforeValidator(_text), StringConstraints(min_length=1, max_length=100)]
Hex32 = Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{32}$", to_lower=True)]
Hex64 = Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{64}$", to_lower=True)]


_Blank = BeforeValidator(_empty_to_none)
OptText = Annotated[Text | None, _Blank]
OptLongText = Annotated[LongText | None, _Blank]
OptCode = Annotated[Code | None, _Blank]
OptRef = Annotated[Ref | None, _Blank]
OptDate = Annotated[date | None, _Blank]
OptFloat = Annotated[float | None, _Blank]
OptYears = Annotated[Annotated[float, Field(ge=0, le=130)] | None, _Blank]
OptCount = Annotated[Annotated[int, Field(ge=0)] | None, _Blank]


class InstitutionKind(StrEnum):
    """What kind of body an institution is."""

    UNIVERSITY = "university"
    HOSPITAL = "hospital"
    RESEARCH_INSTITUTE = "research_institute"
    BIOBANK = "biobank"
    COMPANY = "company"
    GOVERNMENT = "government"
    OTHER = "other"


class StudyType(StrEnum):
    """The design of a study."""

    CASE_CONTROL = "case_control"
    COHORT = "cohort"
    POPULATION = "population"
    FAMILY = "family"
    CLINICAL = "clinical"
    CANCER = "cancer"
    OTHER = "other"


class Sex(StrEnum):
    """Sex as Phenopackets v2 records it."""

    FEMALE = "female"
    MALE = "male"
    OTHER = "other"
    UNKNOWN = "unknown"


class PhenotypeKind(StrEnum):
    """What a phenotype row records."""

    FEATURE = "feature"
    DISEASE = "disease"
    MEASUREMENT = "measurement"


class HgrCategory(StrEnum):
    """The activities the HGR Regulation licenses or requires to be filed."""

    COLLECTION = "collection"
    PRESERVATION = "preservation"
    INTERNATIONAL_COOPERATION = "international_cooperation"
    PROVISION_ABROAD = "provision_abroad"
    SECURITY_REVIEW = "security_review"  # passed before some provisions abroad (Art. 28)


class HgrRecordType(StrEnum):
    """An administrative approval (licence) or a filing."""

    APPROVAL = "approval"
    FILING = "filing"


class LibraryStrategy(StrEnum):
    """The assay behind an experiment."""

    WGS = "WGS"
    WES = "WES"
    RNA_SEQ = "RNA-Seq"
    PANEL = "panel"
    ARRAY = "array"
    OTHER = "other"


class Platform(StrEnum):
    """The technology platform of an experiment (INSDC names)."""

    ILLUMINA = "ILLUMINA"
    DNBSEQ = "DNBSEQ"
    OXFORD_NANOPORE = "OXFORD_NANOPORE"
    PACBIO_SMRT = "PACBIO_SMRT"
    ION_TORRENT = "ION_TORRENT"
    ELEMENT = "ELEMENT"
    ILLUMINA_ARRAY = "ILLUMINA_ARRAY"
    AFFYMETRIX_ARRAY = "AFFYMETRIX_ARRAY"
    OTHER = "OTHER"


class LibraryLayout(StrEnum):
    """Single-end, paired-end, or not applicable (arrays)."""

    SINGLE = "single"
    PAIRED = "paired"
    NONE = "none"


class FileFormat(StrEnum):
    """The formats the archive accepts."""

    FASTQ = "fastq"
    BAM = "bam"
    CRAM = "cram"
    VCF = "vcf"
    BCF = "bcf"
    IDAT = "idat"
    TSV = "tsv"
    OTHER = "other"


class AnalysisType(StrEnum):
    """What an analysis produced."""

    JOINT_GENOTYPING = "joint_genotyping"
    VARIANT_CALLING = "variant_calling"
    ALIGNMENT = "alignment"
    EXPRESSION = "expression"
    OTHER = "other"


class Assembly(StrEnum):
    """Reference genome assemblies."""

    GRCH37 = "GRCh37"
    GRCH38 = "GRCh38"
    T2T_CHM13 = "T2T-CHM13"


class AccessTier(StrEnum):
    """Access tiers of a dataset (DESIGN.md, "Access tiers")."""

    OPEN = "open"
    REGISTERED = "registered"
    CONTROLLED = "controlled"


class Record(BaseModel):
    """Fields common to every submitted record."""

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        use_enum_values=True,
        coerce_numbers_to_str=True,  # YAML/JSON `province: 430000` is the code "430000"
    )

    alias: Alias = Field(description="Your identifier for this record, unique in its study")


class Institution(Record):
    """A university, hospital, institute, biobank or company that takes part in studies."""

    name_en: Text = Field(description="English name")
    name_zh: OptText = Field(default=None, description="Chinese name (中文名称)")
    country: Code = Field(description="ISO 3166-1 country, e.g. CN")
    province: OptCode = Field(
        default=None, description="GB/T 2260 province (code or name); required in China"
    )
    city: OptText = None
    kind: InstitutionKind = InstitutionKind.OTHER


class Study(Record):
    """A research project that collects individuals and produces data."""

    title: Text
    title_zh: OptText = None
    description: OptLongText = None
    institution: Ref = Field(description="The institution that runs the study")
    study_type: StudyType = StudyType.OTHER
    participants_planned: Annotated[Annotated[int, Field(ge=0, le=100_000_000)] | None, _Blank] = (
        None
    )
    hgr_information: Flag = Field(
        default=True,
        description="Holds human genetic resource information (gene or genome data), "
        "not only clinical, imaging, protein or metabolic data",
    )
    important_pedigree: Flag = False
    specific_region_population: Flag = False
    collection_licence: OptCode = Field(
        default=None,
        description="HGR collection licence number; required for more than 3,000 persons, "
        "an important pedigree or a specific-region population",
    )
    public: Flag = Field(default=True, description="Whether study metadata is public")


class Individual(Record):
    """A person who gave samples or data, under a pseudonymous accession."""

    study: Ref
    sex: Sex
    birth_year: Annotated[Annotated[int, Field(ge=1880, le=2100)] | None, _Blank] = None
    age: OptYears = Field(default=None, description="Age in years at collection")
    ethnic_group: OptCode = Field(
        default=None, description="GB/T 3304 code or name, or foreign / unknown"
    )
    population: OptCode = Field(
        default=None,
        description="Genetic ancestry group: a 1000 Genomes / HGDP population code (CHB, JPT "
        "...) or a HANCESTRO term; allele frequencies are tabulated by it",
    )
    country: OptCode = Field(default=None, description="ISO 3166-1 nationality")
    province: OptCode = Field(default=None, description="GB/T 2260 province of origin")
    father: OptRef = None
    mother: OptRef = None
    consent: OptRef = None


class Phenotype(BaseModel):
    """One phenotypic feature, disease or measurement of an individual (a sheet row)."""

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        use_enum_values=True,
        coerce_numbers_to_str=True,  # YAML/JSON `province: 430000` is the code "430000"
    )

    individual: Ref
    kind: PhenotypeKind = PhenotypeKind.FEATURE
    term: Code = Field(description="HP:…, MONDO:…, ICD10:…, OMIM:… or a LOINC code")
    label: OptText = None
    excluded: Flag = False
    onset_age: OptYears = None
    value: OptFloat = None
    unit: OptCode = None


class Consent(Record):
    """The informed consent under which data was given, as GA4GH DUO codes."""

    study: Ref
    version: Code
    permission: Code = Field(description="DUO permission: GRU, HMB, DS, POA or NRES")
    modifiers: CodeList = Field(default_factory=list, description="DUO modifiers, ;-separated")
    diseases: CodeList = Field(
        default_factory=list, description="Diseases a DS consent is restricted to"
    )
    abroad_allowed: Flag = Field(
        default=False, description="Whether provision to foreign parties is allowed"
    )
    signed_from: OptDate = None


class EthicsApproval(Record):
    """An ethics committee's approval of a study."""

    study: Ref
    committee: Text
    institution: OptRef = None
    number: Code
    approved_on: date
    valid_until: OptDate = None


class HgrRecord(Record):
    """An approval or filing under China's Regulation on Human Genetic Resources."""

    study: Ref
    category: HgrCategory
    record_type: HgrRecordType
    number: Code
    scope: OptLongText = None
    issued_on: date
    valid_until: OptDate = None


class Sample(Record):
    """A biological sample taken from an individual."""

    individual: Ref
    tissue: Text
    collection_date: date
    collection_institution: Ref
    organism: Text = "Homo sapiens"
    consent: OptRef = Field(default=None, description="Defaults to the individual's")
    ethics_approval: OptRef = None
    hgr_records: RefList = Field(default_factory=list)


class Experiment(Record):
    """A library made from a sample and the assay run on it."""

    sample: Ref
    library_strategy: LibraryStrategy
    platform: Platform
    instrument: OptText = None
    library_layout: LibraryLayout = LibraryLayout.PAIRED
    library_name: OptText = None


class Run(Record):
    """One run of an experiment on an instrument; its files are listed in `files`."""

    experiment: Ref
    run_date: OptDate = None


class Analysis(Record):
    """A derived result, e.g. a joint-called VCF, with its reference assembly."""

    study: Ref
    analysis_type: AnalysisType
    reference_assembly: Assembly
    samples: RefList = Field(default_factory=list)
    description: OptLongText = None


class DataFile(Record):
    """A data file of a run or an analysis, with its declared checksums.

    Its alias is the file's name (its path inside the submission folder, if it is there).
    """

    run: OptRef = None
    analysis: OptRef = None
    format: FileFormat
    md5: Hex32
    sha256: Hex64
    size: OptCount = None


class Dataset(Record):
    """The unit of access: runs and analyses released together under one policy."""

    study: Ref
    title: Text
    description: OptLongText = None
    access_tier: AccessTier
    duo_codes: CodeList = Field(default_factory=list)
    dac: OptText = Field(default=None, description="The data access committee")
    policy: OptText = Field(default=None, description="Data access policy and version")
    runs: RefList = Field(default_factory=list)
    analyses: RefList = Field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Reference:
    """A field of an entity that names another record."""

    field: str
    target: str
    many: bool = False


@dataclass(frozen=True, slots=True)
class EntitySpec:
    """How an entity appears in a submission and the catalog."""

    name: str  # the sheet name and API collection name
    model: type[Record]
    prefix: str  # accession prefix
    label_en: str
    label_zh: str
    references: tuple[Reference, ...] = ()
    # the reference whose study this record belongs to (None: the record names `study` itself,
    # or, for institutions and studies, has no study)
    parent: str | None = None


ENTITIES: dict[str, EntitySpec] = {
    spec.name: spec
    for spec in (
        EntitySpec("institutions", Institution, "GCO", "institution", "机构"),
        EntitySpec(
            "studies",
            Study,
            "GCS",
            "study",
            "研究",
            (Reference("institution", "institutions"),),
        ),
        EntitySpec(
            "consents", Consent, "GCC", "consent", "知情同意", (Reference("study", "studies"),)
        ),
        EntitySpec(
            "ethics_approvals",
            EthicsApproval,
            "GCE",
            "ethics approval",
            "伦理批件",
            (Reference("study", "studies"), Reference("institution", "institutions")),
        ),
        EntitySpec(
            "hgr_records",
            HgrRecord,
            "GCH",
            "HGR approval or filing",
            "人类遗传资源审批/备案",
            (Reference("study", "studies"),),
        ),
        EntitySpec(
            "individuals",
            Individual,
            "GCI",
            "individual",
            "个体",
            (
                Reference("study", "studies"),
                Reference("father", "individuals"),
                Reference("mother", "individuals"),
                Reference("consent", "consents"),
            ),
        ),
        EntitySpec(
            "samples",
            Sample,
            "GCN",
            "sample",
            "样本",
            (
                Reference("individual", "individuals"),
                Reference("collection_institution", "institutions"),
                Reference("consent", "consents"),
                Reference("ethics_approval", "ethics_approvals"),
                Reference("hgr_records", "hgr_records", many=True),
            ),
            parent="individual",
        ),
        EntitySpec(
            "experiments",
            Experiment,
            "GCX",
            "experiment",
            "实验",
            (Reference("sample", "samples"),),
            parent="sample",
        ),
        EntitySpec(
            "runs",
            Run,
            "GCR",
            "run",
            "测序运行",
            (Reference("experiment", "experiments"),),
            parent="experiment",
        ),
        EntitySpec(
            "analyses",
            Analysis,
            "GCZ",
            "analysis",
            "分析",
            (Reference("study", "studies"), Reference("samples", "samples", many=True)),
        ),
        EntitySpec(
            "files",
            DataFile,
            "GCF",
            "file",
            "文件",
            (Reference("run", "runs"), Reference("analysis", "analyses")),
            parent="run|analysis",
        ),
        EntitySpec(
            "datasets",
            Dataset,
            "GCD",
            "dataset",
            "数据集",
            (
                Reference("study", "studies"),
                Reference("runs", "runs", many=True),
                Reference("analyses", "analyses", many=True),
            ),
        ),
    )
}

# Order in which entities are validated and stored: every reference points backwards.
ENTITY_ORDER: tuple[str, ...] = tuple(ENTITIES)
PHENOTYPES_SHEET = "phenotypes"
PHENOPACKETS_KEY = "phenopackets"
SHEETS: tuple[str, ...] = (*ENTITY_ORDER, PHENOTYPES_SHEET)
# the columns declared to hold direct identifiers, and their treatments (docs/submission.md)
IDENTIFIER_COLUMNS_SHEET = "identifier_columns"
# every sheet a submission may hold: the records' and the declarations'
READABLE_SHEETS: tuple[str, ...] = (*SHEETS, IDENTIFIER_COLUMNS_SHEET)


class IdentifierColumn(BaseModel):
    """A column declared to hold direct identifiers, and what is done to them before storing."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, use_enum_values=True)

    sheet: Code
    column: Code
    treatment: Treatment = Field(description="drop, mask, generalise or pseudonym")


def sheet_model(sheet: str) -> type[BaseModel]:
    """The model of a sheet's rows."""
    if sheet == PHENOTYPES_SHEET:
        return Phenotype
    if sheet == IDENTIFIER_COLUMNS_SHEET:
        return IdentifierColumn
    return ENTITIES[sheet].model


def is_accession(value: str) -> bool:
    """Whether `value` has the form of a GeneCommons accession (GC + letter + 8 digits)."""
    return value[:2] == "GC" and ACCESSION_RE.match(value) is not None


def format_accession(prefix: str, number: int) -> str:
    """The accession with `prefix` (e.g. GCI) and serial `number`."""
    if not 0 < number < 10**8:
        raise ValueError(f"accession number out of range: {number}")
    return f"{prefix}{number:08d}"


def entity_for_accession(accession: str) -> EntitySpec | None:
    """The entity an accession belongs to, by its prefix."""
    for spec in ENTITIES.values():
        if accession.startswith(spec.prefix) and is_accession(accession):
            return spec
    return None


def study_scoped(spec: EntitySpec) -> bool:
    """Whether records of `spec` are namespaced by a study (all but institutions and studies)."""
    return spec.name not in ("institutions", "studies")
