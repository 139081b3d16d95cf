"""Building a GA4GH Phenopacket v2 for an individual whose phenotypes came as sheet rows.

Pure besides the clock: `created` defaults to now.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from genecommons import clock
from genecommons.catalog.iso_durations import years_to_duration
from genecommons.catalog.models import Phenotype, PhenotypeKind
from genecommons.catalog.phenopacket_terms import SEX_FROM_PACKET, disease_lookup, hpo_lookup
from genecommons.catalog.vocabularies import hpo

__all__ = ["SCHEMA_VERSION", "phenopacket_from_rows"]

SCHEMA_VERSION = "2.0"
_SEX_TO_PACKET = {sex.value: name for name, sex in SEX_FROM_PACKET.items()}

# Resources (metaData.resources) for the prefixes that `phenopacket_from_rows` writes.
_RESOURCES: Mapping[str, Mapping[str, str]] = {
    "HP": {
        "id": "hp",
        "name": "human phenotype ontology",
        "url": "http://purl.obolibrary.org/obo/hp.owl",
        "namespacePrefix": "HP",
        "iriPrefix": "http://purl.obolibrary.org/obo/HP_",
    },
    "ICD10": {
        "id": "icd10",
        "name": "International Statistical Classification of Diseases and Related Health "
        "Problems 10th Revision",
        "url": "https://icd.who.int/browse10/2019/en",
        "version": "2019",
        "namespacePrefix": "ICD10",
        "iriPrefix": "https://icd.who.int/browse10/2019/en#/",
    },
    "MONDO": {
        "id": "mondo",
        "name": "Mondo Disease Ontology",
        "url": "http://purl.obolibrary.org/obo/mondo.obo",
        "namespacePrefix": "MONDO",
        "iriPrefix": "http://purl.obolibrary.org/obo/MONDO_",
    },
    "OMIM": {
        "id": "omim",
        "name": "Online Mendelian Inheritance in Man",
        "url": "https://www.omim.org",
        "namespacePrefix": "OMIM",
        "iriPrefix": "https://omim.org/entry/",
    },
    "ORPHA": {
        "id": "ordo",
        "name": "Orphanet Rare Disease Ontology",
        "url": "http://www.orphadata.org/data/ORDO/ordo_orphanet.owl",
        "namespacePrefix": "ORPHA",
        "iriPrefix": "http://www.orpha.net/ORDO/Orphanet_",
    },
    "LOINC": {
        "id": "loinc",
        "name": "Logical Observation Identifiers Names and Codes",
        "url": "https://loinc.org",
        "namespacePrefix": "LOINC",
        "iriPrefix": "https://loinc.org/",
    },
    "UCUM": {
        "id": "ucum",
        "name": "Unified Code for Units of Measure",
        "url": "https://ucum.org",
        "namespacePrefix": "UCUM",
        "iriPrefix": "https://ucum.org/ucum#",
    },
}


def _prefix(curie: str) -> str:
    return curie.split(":", 1)[0] if ":" in curie else ""


def _onset(years: float | None) -> dict[str, Any]:
    if years is None:
        return {}
    return {"age": {"iso8601duration": years_to_duration(years)}}


def _assay_id(code: str) -> str:
    if ":" in code:
        return code
    return f"LOINC:{code}" if re.fullmatch(r"\d{1,7}-\d", code) else code


def _unit(unit: str | None) -> dict[str, str]:
    code = (unit or "1").removeprefix("UCUM:")
    return {"id": f"UCUM:{code}", "label": code}


@functools.lru_cache(maxsize=16)
def _timestamp(moment: datetime) -> str:
    """A moment as the document's UTC timestamp (the individuals of a submission share one)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def phenopacket_from_rows(
    *,
    packet_id: str,
    subject_id: str,
    sex: str,
    age_years: float | None,
    rows: Sequence[Phenotype],
    created_by: str,
    created: datetime | None = None,
) -> dict[str, Any]:
    """A Phenopacket v2 document (camelCase JSON) for one individual's phenotype sheet rows.

    Features become phenotypicFeatures (the HPO label filled in when the row has none), diseases
    become diseases, measurements become measurements (the assay code, e.g. LOINC:8302-2, and a
    quantity in UCUM units). `sex` is a `Sex` value; `created` defaults to now (UTC). The rows are
    expected to have passed validation; the result is valid under the protobuf schema.
    """
    features: list[dict[str, Any]] = []
    diseases: list[dict[str, Any]] = []
    measurements: list[dict[str, Any]] = []
    prefixes: set[str] = set()
    for row in rows:
        kind = PhenotypeKind(row.kind)
        if kind is PhenotypeKind.FEATURE:
            term = hpo_lookup(row.term)
            term_id = row.term if term is None else term.id
            label = row.label or (term.label if term is not None else term_id)
            feature: dict[str, Any] = {"type": {"id": term_id, "label": label}}
            if row.excluded:
                feature["excluded"] = True
            if row.onset_age is not None:
                feature["onset"] = _onset(row.onset_age)
            features.append(feature)
            prefixes.add(_prefix(term_id))
        elif kind is PhenotypeKind.DISEASE:
            term = disease_lookup(row.term)
            term_id = row.term if term is None else term.id
            label = row.label or (term.label if term is not None else term_id)
            disease: dict[str, Any] = {"term": {"id": term_id, "label": label}}
            if row.excluded:
                disease["excluded"] = True
            if row.onset_age is not None:
                disease["onset"] = _onset(row.onset_age)
            diseases.append(disease)
            prefixes.add(_prefix(term_id))
        else:
            assay = _assay_id(row.term)
            measurement: dict[str, Any] = {"assay": {"id": assay, "label": row.label or assay}}
            if row.value is not None:
                unit = _unit(row.unit)
                measurement["value"] = {"quantity": {"unit": unit, "value": row.value}}
                prefixes.add("UCUM")
            if row.onset_age is not None:
                measurement["timeObserved"] = _onset(row.onset_age)
            measurements.append(measurement)
            prefixes.add(_prefix(assay))
    subject: dict[str, Any] = {"id": subject_id}
    packet_sex = _SEX_TO_PACKET.get(str(sex), "UNKNOWN_SEX")
    if packet_sex != "UNKNOWN_SEX":  # the enum's default, which the canonical form leaves out
        subject["sex"] = packet_sex
    if age_years is not None:
        subject["timeAtLastEncounter"] = _onset(age_years)
    resources = []
    for prefix in sorted(prefixes):
        resource = _RESOURCES.get(prefix)
        if resource is None:
            continue
        entry = dict(resource)
        if prefix == "HP":
            entry["version"] = str(getattr(hpo(), "version", ""))
        resources.append(entry)
    document: dict[str, Any] = {
        "id": packet_id,
        "subject": subject,
        "phenotypicFeatures": features,
        "measurements": measurements,
        "diseases": diseases,
        "metaData": {
            "created": _timestamp(created or clock.now()),
            "createdBy": created_by,
            **({"resources": resources} if resources else {}),
            "phenopacketSchemaVersion": SCHEMA_VERSION,
        },
    }
    # Written directly in the canonical form protobuf's MessageToDict gives (no empty lists);
    # the tests check that parsing and re-serialising it changes nothing. A protobuf round
    # trip here would cost 0.4 ms an individual, most of a large submission's commit time.
    return {key: value for key, value in document.items() if value != []}
