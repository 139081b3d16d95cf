"""The Beacon v2 entry types this Beacon serves, the cross-entry lookups between them, and
the API version it speaks."""

from __future__ import annotations

from dataclasses import dataclass

API_VERSION = "v2.0.0"
SPECIFICATION = "Beacon v2.0.0"


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
