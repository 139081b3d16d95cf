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

The modules, in the order a request meets them: `entry_types`, `requests`, `variant_queries`,
`filters`, `responses`, `records`. This package publishes the names its callers use.
"""

from genecommons.variants.beacon.entry_types import (
    API_VERSION,
    CROSS_LOOKUPS,
    ENTRY_TYPES,
    EntryType,
)
from genecommons.variants.beacon.filters import (
    SEX_TERMS,
    Criterion,
    FieldCriterion,
    Person,
    TermCriterion,
    criteria,
    filter_ids,
    index_group,
    person_matches,
)
from genecommons.variants.beacon.records import (
    Carrier,
    analysis_record,
    biosample_record,
    cohort_record,
    dataset_record,
    individual_record,
    run_record,
    split_variant_id,
    variant_record,
)
from genecommons.variants.beacon.requests import (
    GET_OPTIONS,
    GET_PARAMETERS,
    BeaconRequest,
    Filter,
    VariantParameters,
    parse_body,
    parse_query_string,
)
from genecommons.variants.beacon.responses import (
    GRANULARITY_ORDER,
    BeaconInfo,
    ResultSet,
    TermInfo,
    configuration_response,
    entry_types_response,
    error_response,
    filtering_terms_response,
    info_response,
    map_response,
    query_response,
    service_info,
)
from genecommons.variants.beacon.variant_queries import (
    VariantQuery,
    canonical_assembly,
    canonical_chromosome,
    variant_query,
    variant_type,
)

__all__ = [
    "API_VERSION",
    "CROSS_LOOKUPS",
    "ENTRY_TYPES",
    "GET_OPTIONS",
    "GET_PARAMETERS",
    "GRANULARITY_ORDER",
    "SEX_TERMS",
    "BeaconInfo",
    "BeaconRequest",
    "Carrier",
    "Criterion",
    "EntryType",
    "FieldCriterion",
    "Filter",
    "Person",
    "ResultSet",
    "TermCriterion",
    "TermInfo",
    "VariantParameters",
    "VariantQuery",
    "analysis_record",
    "biosample_record",
    "canonical_assembly",
    "canonical_chromosome",
    "cohort_record",
    "configuration_response",
    "criteria",
    "dataset_record",
    "entry_types_response",
    "error_response",
    "filter_ids",
    "filtering_terms_response",
    "index_group",
    "individual_record",
    "info_response",
    "map_response",
    "parse_body",
    "parse_query_string",
    "person_matches",
    "query_response",
    "run_record",
    "service_info",
    "split_variant_id",
    "variant_query",
    "variant_record",
    "variant_type",
]
