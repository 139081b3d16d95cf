"""Beacon v2 response documents (framework schemas of Beacon v2.0): the informational
endpoints (`/info`, `/service-info`, `/configuration`, `/map`, `/entry_types`,
`/filtering_terms`), the boolean, count and result-set responses of the entry types, and the
error response."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from genecommons.variants.answers import Granularity
from genecommons.variants.beacon.entry_types import (
    API_VERSION,
    CROSS_LOOKUPS,
    ENTRY_TYPES,
    SPECIFICATION,
    EntryType,
    schema_id,
)
from genecommons.variants.beacon.filters import filter_ids
from genecommons.variants.beacon.requests import BeaconRequest

GRANULARITY_ORDER = (Granularity.BOOLEAN, Granularity.COUNT, Granularity.RECORD)


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
        told: dict[str, Any] = {"meta": meta, "responseSummary": {"exists": exists}}
        notes = [  # why a dataset withheld its answer (a boolean response has no result sets)
            {"dataset": s.dataset, "note": s.note, "note_zh": s.note_zh or s.note}
            for s in sets
            if s.note
        ]
        if notes:
            told["info"] = {"notes": notes}
        return told
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
