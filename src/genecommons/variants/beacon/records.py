"""Beacon v2 records in the default model: genomicVariant, individual, biosample, run,
analysis, dataset and cohort."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from genecommons.catalog.vocabularies import ethnic_groups
from genecommons.variants.beacon.filters import SEX_TERMS
from genecommons.variants.beacon.variant_queries import variant_type
from genecommons.variants.normalize import Variant
from genecommons.variants.store import SiteCounts

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
