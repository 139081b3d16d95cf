"""The demo cohort's metadata: people, and the submission sheets (one TSV per entity).

Every value is drawn from a seeded generator and every date from a fixed calendar, so the same
seed gives byte-identical sheets.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from genecommons.catalog.models import (
    ENTITIES,
    LIST_SEPARATOR,
    PHENOTYPES_SHEET,
    Phenotype,
)
from genecommons.demo.simulate import POPULATIONS
from genecommons.demo.traits import Traits

STUDY = "DEMO-STUDY"
CENTER = "BGC"
CONSENT = "DEMO-CONSENT-V1"
ETHICS = "ETH-BGC-2020-017"
HGR_COLLECT = "HGR-COLLECT"
HGR_PRESERVE = "HGR-PRESERVE"
ANALYSIS = "DEMO-JG1"
DATASET = "DEMO-DS"
OPEN_DATASET = "DEMO-BEACON"  # the same genotypes, open for discovery (boolean Beacon)
COHORT_VCF = "cohort.vcf.gz"
COLLECTION_LICENCE = "2020CJ1234"
DUO_PERMISSION = "HMB"
DUO_MODIFIERS = ("NPU", "IRB")
DAC = "GeneCommons Demo DAC"
POLICY = "Demo data access agreement v1"

# the fixed calendar of the study (nothing depends on the clock)
ETHICS_APPROVED = date(2020, 9, 15)
ETHICS_VALID_UNTIL = date(2025, 9, 14)
COLLECTION_ISSUED = date(2020, 12, 10)
PRESERVATION_ISSUED = date(2021, 1, 20)
CONSENT_FROM = date(2021, 1, 1)
COLLECTION_FIRST = date(2021, 3, 1)
COLLECTION_LAST = date(2023, 12, 29)
SEQUENCED_BY = date(2024, 3, 29)

# alias, English name, Chinese name, province (GB/T 2260), city, kind
INSTITUTIONS: tuple[tuple[str, str, str, str, str, str], ...] = (
    (
        CENTER,
        "GeneCommons Demo Genome Center",
        "基因共享示范基因组中心",
        "110000",
        "Beijing",
        "research_institute",
    ),
    ("BJH", "Beijing Demo General Hospital", "北京示范综合医院", "110000", "Beijing", "hospital"),
    (
        "SHH",
        "Shanghai Demo People's Hospital",
        "上海示范人民医院",
        "310000",
        "Shanghai",
        "hospital",
    ),
    (
        "GZH",
        "Guangzhou Demo University Hospital",
        "广州示范大学附属医院",
        "440000",
        "Guangzhou",
        "hospital",
    ),
    ("CDH", "Chengdu Demo West Hospital", "成都示范华西医院", "510000", "Chengdu", "hospital"),
)

# where Han participants come from (GB/T 2260), their weight, and the hospital that collects
PROVINCES: tuple[tuple[str, float, str], ...] = (
    ("110000", 0.25, "BJH"),  # Beijing
    ("130000", 0.08, "BJH"),  # Hebei
    ("370000", 0.10, "BJH"),  # Shandong
    ("410000", 0.08, "BJH"),  # Henan
    ("310000", 0.08, "SHH"),  # Shanghai
    ("320000", 0.08, "SHH"),  # Jiangsu
    ("330000", 0.06, "SHH"),  # Zhejiang
    ("440000", 0.10, "GZH"),  # Guangdong
    ("430000", 0.05, "GZH"),  # Hunan
    ("510000", 0.07, "CDH"),  # Sichuan
    ("420000", 0.05, "CDH"),  # Hubei
)
FOREIGN_HOSPITALS = ("BJH", "SHH")

HEIGHT_TERM = ("LOINC:8302-2", "Body height", "cm")
T2D_DISEASE = ("ICD10:E11.9", "Type 2 diabetes mellitus without complications")
T2D_FEATURE = ("HP:0005978", "Type II diabetes mellitus")
OBESITY = ("HP:0001513", "Obesity")
HYPERTENSION = ("HP:0000822", "Hypertension")
HYPERCHOLESTEROLEMIA = ("HP:0003124", "Hypercholesterolemia")


@dataclass(frozen=True, slots=True)
class People:
    """Who the cohort's individuals are, in cohort order."""

    individuals: tuple[str, ...]  # aliases DEMO00001 ...
    samples: tuple[str, ...]  # aliases DEMO00001-S1 ...
    populations: tuple[str, ...]
    sexes: tuple[str, ...]
    ages: np.ndarray  # whole years at collection
    birth_years: np.ndarray
    countries: tuple[str, ...]
    provinces: tuple[str | None, ...]
    hospitals: tuple[str, ...]
    collected: tuple[date, ...]
    sequenced: tuple[date, ...]


def individual_alias(number: int) -> str:
    """The alias of the `number`-th (1-based) cohort individual."""
    return f"DEMO{number:05d}"


def sample_alias(individual: str) -> str:
    """The alias of an individual's blood sample."""
    return f"{individual}-S1"


def panel_alias(number: int) -> str:
    """The VCF sample name of the `number`-th (1-based) reference-panel individual."""
    return f"REF{number:05d}"


def draw_people(populations: Sequence[str], rng: np.random.Generator) -> People:
    """Sex, age, origin, hospital and dates for each cohort individual."""
    n = len(populations)
    country_of = {name: country for name, _, country in POPULATIONS}
    sexes = tuple(str(s) for s in rng.choice(np.array(["female", "male"]), size=n))
    ages = rng.integers(18, 81, size=n)
    window = (COLLECTION_LAST - COLLECTION_FIRST).days
    offsets = rng.integers(0, window + 1, size=n)
    collected = tuple(COLLECTION_FIRST + timedelta(days=int(d)) for d in offsets)
    # birthday before or after the collection date in its year
    birth_years = np.array([c.year for c in collected]) - ages - rng.integers(0, 2, size=n)
    codes = [code for code, _, _ in PROVINCES]
    weights = np.array([weight for _, weight, _ in PROVINCES])
    hospital_of = {code: hospital for code, _, hospital in PROVINCES}
    province_draw = rng.choice(len(codes), size=n, p=weights / weights.sum())
    foreign_draw = rng.choice(len(FOREIGN_HOSPITALS), size=n)
    turnaround = rng.integers(14, 91, size=n)
    provinces: list[str | None] = []
    hospitals: list[str] = []
    for i, population in enumerate(populations):
        if country_of[population] == "CN":
            code = codes[int(province_draw[i])]
            provinces.append(code)
            hospitals.append(hospital_of[code])
        else:
            provinces.append(None)
            hospitals.append(FOREIGN_HOSPITALS[int(foreign_draw[i])])
    individuals = tuple(individual_alias(i + 1) for i in range(n))
    return People(
        individuals=individuals,
        samples=tuple(sample_alias(a) for a in individuals),
        populations=tuple(populations),
        sexes=sexes,
        ages=ages,
        birth_years=birth_years,
        countries=tuple(country_of[p] for p in populations),
        provinces=tuple(provinces),
        hospitals=tuple(hospitals),
        collected=collected,
        sequenced=tuple(
            min(c + timedelta(days=int(t)), SEQUENCED_BY)
            for c, t in zip(collected, turnaround, strict=True)
        ),
    )


def cell(value: Any) -> str:
    """A value as a sheet cell: blank for None, ;-joined lists, ISO dates, lower-case booleans."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return LIST_SEPARATOR.join(cell(v) for v in value)
    if isinstance(value, float):
        return f"{value:.10g}"
    return str(value)


def write_sheet(path: Path, columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> int:
    """Write one UTF-8 TSV sheet with a header row; returns the number of rows."""
    count = 0
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            unknown = set(row) - set(columns)
            if unknown:
                raise ValueError(f"{path.name}: no such columns {sorted(unknown)}")
            writer.writerow([cell(row.get(column)) for column in columns])
            count += 1
    return count


def columns(sheet: str) -> list[str]:
    """The columns of a sheet: the fields of its model, in order."""
    model = Phenotype if sheet == PHENOTYPES_SHEET else ENTITIES[sheet].model
    return list(model.model_fields)


def study_rows(individuals: int) -> dict[str, list[dict[str, Any]]]:
    """The sheets that describe the study itself (everything before individuals)."""
    return {
        "institutions": [
            {
                "alias": alias,
                "name_en": en,
                "name_zh": zh,
                "country": "CN",
                "province": province,
                "city": city,
                "kind": kind,
            }
            for alias, en, zh, province, city, kind in INSTITUTIONS
        ],
        "studies": [
            {
                "alias": STUDY,
                "title": "GeneCommons demo cohort: height and type 2 diabetes (synthetic)",
                "title_zh": "基因共享示范队列：身高与2型糖尿病（合成数据）",
                "description": "A synthetic cohort simulated with msprime under stdpopsim's "
                "OutOfAfrica_4J17 model; no real person's data. Whole-genome sequencing of blood "
                "samples collected at four hospitals, joint-genotyped on GRCh38.",
                "institution": CENTER,
                "study_type": "cohort",
                "participants_planned": individuals,
                "hgr_information": True,
                "important_pedigree": False,
                "specific_region_population": False,
                "collection_licence": COLLECTION_LICENCE,
                "public": True,
            }
        ],
        "consents": [
            {
                "alias": CONSENT,
                "study": STUDY,
                "version": "1.0",
                "permission": DUO_PERMISSION,
                "modifiers": list(DUO_MODIFIERS),
                "diseases": [],
                "abroad_allowed": False,
                "signed_from": CONSENT_FROM,
            }
        ],
        "ethics_approvals": [
            {
                "alias": ETHICS,
                "study": STUDY,
                "committee": "Ethics Committee of the GeneCommons Demo Genome Center",
                "institution": CENTER,
                "number": "BGC-IRB-2020-017",
                "approved_on": ETHICS_APPROVED,
                "valid_until": ETHICS_VALID_UNTIL,
            }
        ],
        "hgr_records": [
            {
                "alias": HGR_COLLECT,
                "study": STUDY,
                "category": "collection",
                "record_type": "approval",
                "number": COLLECTION_LICENCE,
                "scope": f"Collection of peripheral blood from {individuals} participants",
                "issued_on": COLLECTION_ISSUED,
                "valid_until": None,
            },
            {
                "alias": HGR_PRESERVE,
                "study": STUDY,
                "category": "preservation",
                "record_type": "approval",
                "number": "2021BC0045",
                "scope": "Preservation of blood samples and derived DNA at the genome center",
                "issued_on": PRESERVATION_ISSUED,
                "valid_until": None,
            },
        ],
    }


def individual_rows(people: People) -> Iterable[dict[str, Any]]:
    """The individuals sheet."""
    for i, alias in enumerate(people.individuals):
        han = people.countries[i] == "CN"
        yield {
            "alias": alias,
            "study": STUDY,
            "sex": people.sexes[i],
            "birth_year": int(people.birth_years[i]),
            "age": int(people.ages[i]),
            "ethnic_group": "01" if han else "foreign",
            "population": people.populations[i],
            "country": people.countries[i],
            "province": people.provinces[i],
            "consent": CONSENT,
        }


def phenotype_rows(
    people: People,
    traits: Traits,
    rng: np.random.Generator,
) -> list[dict[str, Any]]:
    """The phenotypes sheet: height for all, T2D status for all, and common comorbid features."""
    n = len(people.individuals)
    obesity_draw = rng.random(size=n)
    hypertension_draw = rng.random(size=n)
    cholesterol_draw = rng.random(size=n)
    onset_draw = rng.random(size=n)
    rows: list[dict[str, Any]] = []
    for i, alias in enumerate(people.individuals):
        age = int(people.ages[i])
        case = bool(traits.t2d_case[i])
        rows.append(
            {
                "individual": alias,
                "kind": "measurement",
                "term": HEIGHT_TERM[0],
                "label": HEIGHT_TERM[1],
                "excluded": False,
                "value": float(traits.height_cm[i]),
                "unit": HEIGHT_TERM[2],
            }
        )
        onset = float(round(min(age, 30) + onset_draw[i] * (age - min(age, 30)))) if case else None
        rows.append(
            {
                "individual": alias,
                "kind": "disease",
                "term": T2D_DISEASE[0],
                "label": T2D_DISEASE[1],
                "excluded": not case,
                "onset_age": onset,
            }
        )
        if case:
            rows.append(
                {
                    "individual": alias,
                    "kind": "feature",
                    "term": T2D_FEATURE[0],
                    "label": T2D_FEATURE[1],
                    "excluded": False,
                    "onset_age": onset,
                }
            )
        if obesity_draw[i] < (0.30 if case else 0.10):
            rows.append(
                {
                    "individual": alias,
                    "kind": "feature",
                    "term": OBESITY[0],
                    "label": OBESITY[1],
                    "excluded": False,
                }
            )
        if hypertension_draw[i] < 0.05 + 0.35 * (age - 18) / 62 + (0.15 if case else 0.0):
            rows.append(
                {
                    "individual": alias,
                    "kind": "feature",
                    "term": HYPERTENSION[0],
                    "label": HYPERTENSION[1],
                    "excluded": False,
                }
            )
        if cholesterol_draw[i] < 0.08:
            rows.append(
                {
                    "individual": alias,
                    "kind": "feature",
                    "term": HYPERCHOLESTEROLEMIA[0],
                    "label": HYPERCHOLESTEROLEMIA[1],
                    "excluded": False,
                }
            )
    return rows


def sequencing_rows(people: People) -> dict[str, Iterable[dict[str, Any]]]:
    """The samples, experiments and runs sheets (one of each per individual)."""
    hgr = [HGR_COLLECT, HGR_PRESERVE]
    n = len(people.individuals)
    return {
        "samples": (
            {
                "alias": people.samples[i],
                "individual": people.individuals[i],
                "tissue": "peripheral blood",
                "collection_date": people.collected[i],
                "collection_institution": people.hospitals[i],
                "organism": "Homo sapiens",
                "ethics_approval": ETHICS,
                "hgr_records": hgr,
            }
            for i in range(n)
        ),
        "experiments": (
            {
                "alias": f"{people.individuals[i]}-X1",
                "sample": people.samples[i],
                "library_strategy": "WGS",
                "platform": "DNBSEQ",
                "instrument": "DNBSEQ-T7",
                "library_layout": "paired",
                "library_name": f"LIB-{people.individuals[i]}-1",
            }
            for i in range(n)
        ),
        "runs": (
            {
                "alias": f"{people.individuals[i]}-R1",
                "experiment": f"{people.individuals[i]}-X1",
                "run_date": people.sequenced[i],
            }
            for i in range(n)
        ),
    }


def release_rows(
    people: People,
    *,
    md5: str,
    sha256: str,
    size: int,
    model_id: str,
) -> dict[str, list[dict[str, Any]]]:
    """The analyses, files and datasets sheets."""
    return {
        "analyses": [
            {
                "alias": ANALYSIS,
                "study": STUDY,
                "analysis_type": "joint_genotyping",
                "reference_assembly": "GRCh38",
                "samples": list(people.samples),
                "description": f"Joint genotype calls on chr22 (msprime, {model_id}).",
            }
        ],
        "files": [
            {
                "alias": COHORT_VCF,
                "run": None,
                "analysis": ANALYSIS,
                "format": "vcf",
                "md5": md5,
                "sha256": sha256,
                "size": size,
            }
        ],
        "datasets": [
            {
                "alias": DATASET,
                "study": STUDY,
                "title": "GeneCommons demo cohort genotypes and phenotypes",
                "description": "Controlled-access genotypes of the synthetic demo cohort.",
                "access_tier": "controlled",
                "duo_codes": [DUO_PERMISSION, *DUO_MODIFIERS],
                "dac": DAC,
                "policy": POLICY,
                "runs": [],
                "analyses": [ANALYSIS],
            },
            {
                "alias": OPEN_DATASET,
                "study": STUDY,
                "title": "GeneCommons demo cohort variant discovery",
                "description": "The demo cohort's variants, open for discovery: anyone may ask "
                "the Beacon whether a variant is present; counts go to registered users.",
                "access_tier": "open",
                "duo_codes": [DUO_PERMISSION, *DUO_MODIFIERS],
                "dac": DAC,
                "policy": POLICY,
                "runs": [],
                "analyses": [ANALYSIS],
            },
        ],
    }
