"""Use cases of the Beacon v2: find, per dataset, what answers a query; decide through the
policy decision point at which granularity each dataset answers the caller; let the variant
guard shape boolean and count answers; record every query in the audit log.

Granularity per dataset (docs/beacon.md):

- **record** when the caller holds a grant in force for the dataset (`READ_RECORDS` allowed by
  `policy.decision.decide`, jurisdiction rules included);
- **count** when the dataset's tier is open or registered and the decision point lets the
  caller read registered-tier aggregates (`READ_AGGREGATES` on the dataset seen at the
  registered tier: signed-in users of a verified institution);
- **boolean** for anyone on an open dataset (`READ_AGGREGATES` on the open tier);
- otherwise the dataset is left out of the answer.

The caller's `requestedGranularity` lowers it, never raises it. What a boolean or count answer
about variants reveals is decided by the `VariantGuard` (variants/answers.py), called once per
dataset and query; record granularity returns the exact records.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from genecommons import metrics
from genecommons.catalog import reads as catalog
from genecommons.catalog.vocabularies import duo, hpo
from genecommons.config import Settings
from genecommons.errors import InvalidInputError, NotFoundError
from genecommons.ledger.events import EventTag
from genecommons.variants import beacon
from genecommons.variants.answers import DatasetAnswer, Granularity
from genecommons.variants.beacon import (
    BeaconRequest,
    Criterion,
    EntryType,
    ResultSet,
    TermInfo,
    VariantQuery,
)
from genecommons.variants.beacon_context import (
    Beacon,
    Caller,
    DatasetView,
    Member,
    Scope,
    fill_members,
    visible_datasets,
)
from genecommons.variants.beacon_matches import (
    carriers_of,
    contig_of,
    find_variants,
    frequencies,
    group_view,
    listed_sites,
    listing_reach,
    subset_counts,
)
from genecommons.variants.normalize import Variant, parse_key
from genecommons.variants.store import ALL, SiteCounts, VariantStore

BY_PATH = beacon.ENTRY_TYPES


# -- answering --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Asked:
    """A checked request."""

    entry: EntryType
    request: BeaconRequest
    variants: VariantQuery | None
    criteria: tuple[Criterion, ...]
    scope: Scope | None
    # the sites found in each store (by its binding's context), for the other datasets the
    # same store serves
    read: dict[str, list[SiteCounts]] = field(default_factory=dict, compare=False, repr=False)


def check(settings: Settings, entry: str, request: BeaconRequest, scope: Scope | None) -> Asked:
    """The request, checked: its variant query and its filters (InvalidInputError if bad)."""
    if entry not in BY_PATH:
        raise NotFoundError(
            f"No Beacon entry type {entry!r}.", message_zh=f"不存在条目类型 {entry!r}。"
        )
    wanted = beacon.criteria(request.query.filters)
    variants = beacon.variant_query(
        request.query.requestParameters, max_range=settings.beacon_max_range
    )
    if scope is not None and scope.kind == "g_variants":
        if variants is not None:
            raise InvalidInputError(
                "A variant's own endpoint takes no variant parameters.",
                message_zh="单个变异的端点不接受变异参数。",
            )
    elif entry == "g_variants" and variants is None:
        listing_reach(settings, request)  # no parameters: the variants, a page at a time
    return Asked(BY_PATH[entry], request, variants, wanted, scope)


def _run_biosample(session: Session, scope: Scope) -> Scope:
    sample = catalog.run_sample(session, scope.id)
    return Scope("biosamples", sample or scope.id)


def _scoped_variant(scope: Scope) -> Variant:
    return parse_key(beacon.split_variant_id(scope.id)[1])


def _restrict(session: Session, views: list[DatasetView], asked: Asked) -> list[DatasetView]:
    """The datasets a scoped route speaks of."""
    scope = asked.scope
    if scope is None:
        return views
    if scope.kind == "g_variants":  # a variantInternalId names its dataset
        dataset, _ = beacon.split_variant_id(scope.id)
        return views if dataset is None else [v for v in views if v.accession == dataset]
    if scope.kind == "datasets":
        return [v for v in views if v.accession == scope.id]
    if scope.kind == "cohorts":
        study = catalog.study_id(session, scope.id)
        return [v for v in views if v.study_id == study]
    if scope.kind in ("individuals", "biosamples"):
        fill_members(session, views)
        key = "person" if scope.kind == "individuals" else "sample"
        return [
            v
            for v in views
            if any(
                (m.person.accession if key == "person" else m.sample) == scope.id
                for m in v.members or ()
            )
        ]
    if scope.kind in ("runs", "analyses"):
        return [
            v
            for v in views
            if any(r["id"] == scope.id for r in _catalog_records(session, v, scope.kind))
        ]
    return views


def _scoped_members(view: DatasetView, asked: Asked) -> list[Member]:
    """The dataset's members that the filters and the scope select."""
    members = view.members or []
    scope = asked.scope
    if scope is not None and scope.kind == "individuals":
        members = [m for m in members if m.person.accession == scope.id]
    elif scope is not None and scope.kind == "biosamples":
        members = [m for m in members if m.sample == scope.id]
    return [m for m in members if beacon.person_matches(m.person, asked.criteria)]


def answer(
    beacon_app: Beacon,
    *,
    entry: str,
    request: BeaconRequest,
    caller: Caller,
    scope: Scope | None = None,
) -> dict[str, Any]:
    """The Beacon's response to one query, recorded in the audit log."""
    asked = check(beacon_app.settings, entry, request, scope)
    with beacon_app.factory() as session:
        if scope is not None and scope.kind == "runs" and entry == "g_variants":
            # a run's variants are those its biosample carries
            asked = dataclasses.replace(asked, scope=_run_biosample(session, scope))
        views = _restrict(
            session,
            visible_datasets(
                session,
                caller.subject,
                request.query.requestedGranularity,
                archived_here=beacon_app.archived_here,
            ),
            asked,
        )
        sets: list[ResultSet | None]
        if asked.entry.path == "g_variants":
            sets = [_variants(beacon_app, session, v, asked, caller) for v in views]
        elif asked.entry.path in ("individuals", "biosamples"):
            sets = [_people(beacon_app, session, v, asked, caller) for v in views]
        elif asked.entry.path in ("runs", "analyses"):
            sets = [_catalog(session, v, asked) for v in views]
        else:
            sets = list(_collections(session, views, asked))
    answered = [s for s in sets if s is not None]
    _record_query(beacon_app, caller, asked, answered)
    response = beacon.query_response(beacon_app.info, asked.entry, request, answered)
    granularity = response["meta"]["returnedGranularity"]
    metrics.BEACON_ANSWERS.labels(asked.entry.path, granularity).inc()
    return response


def _record_query(
    beacon_app: Beacon, caller: Caller, asked: Asked, sets: Sequence[ResultSet]
) -> None:
    """Every Beacon query is an audit event (the one place that writes it), queued before the
    answer is returned, in one transaction with the queries answered at the same time
    (ledger.events.GroupedQueue), and sequenced into the Merkle tree in batches: a query takes
    no lock on the log."""
    query = asked.request.query
    details = {
        "entry_type": asked.entry.id,
        "parameters": query.requestParameters.given(),
        "filters": beacon.filter_ids(query.filters),
        "requested_granularity": str(query.requestedGranularity),
        "scope": None if asked.scope is None else f"{asked.scope.kind}/{asked.scope.id}",
        "granularity": {s.dataset: str(s.granularity) for s in sets},
        "caller": caller.subject.id,
        "address": caller.address,
    }
    assert beacon_app.events is not None  # made with the Beacon
    held = beacon_app.held if beacon_app.held is not None else []
    beacon_app.events.record(
        tag=EventTag.BEACON_QUERY, actor=caller.subject.id, details=details, after=tuple(held)
    )
    held.clear()  # committed (a failed commit leaves them held, for the response's check)


# -- g_variants -------------------------------------------------------------------------------


def _dataset_matches(
    beacon_app: Beacon, session: Session, view: DatasetView, asked: Asked
) -> tuple[VariantStore, list[SiteCounts]] | None:
    store = beacon_app.stores.get(session, beacon_app.settings, view.accession)
    if store is None:
        return None
    query = asked.variants
    if query is not None and query.assembly and view.assembly and query.assembly != view.assembly:
        return store, []
    if query is None:
        if asked.scope is None or asked.scope.kind != "g_variants":
            return store, listed_sites(store, asked.request, settings=beacon_app.settings)
        variant = _scoped_variant(asked.scope)
        contig = contig_of(store, variant.chrom)
        found = store.lookup(dataclasses.replace(variant, chrom=contig)) if contig else None
        return store, [found] if found else []
    # the datasets released from one shared store ask it the same question: read once a query
    sites = asked.read.get(store.binding.context)
    if sites is None:
        sites = find_variants(store, query, limit=beacon_app.settings.beacon_max_variants)
        asked.read[store.binding.context] = sites
    return store, list(sites)


def _variants(
    beacon_app: Beacon, session: Session, view: DatasetView, asked: Asked, caller: Caller
) -> ResultSet | None:
    found = _dataset_matches(beacon_app, session, view, asked)
    if found is None:
        return ResultSet(view.accession, view.granularity, exists=False, count=_count_of(view, 0))
    store, matches = found
    group = beacon.index_group(asked.criteria)
    scoped = asked.scope is not None and asked.scope.kind in ("individuals", "biosamples")
    record = view.granularity is Granularity.RECORD
    members: list[Member] = []
    if matches and (record or group is None or scoped):
        fill_members(session, [view])
        members = _scoped_members(view, asked)
    if matches and (group is None or scoped):
        seen = subset_counts(store, matches, members).counts  # from the genotypes
    else:
        seen = [group_view(m, group or ALL) for m in matches]  # from the sites index
    if not record:
        told = beacon_app.guard(
            subject=caller.subject,
            address=caller.address,
            dataset=view.accession,
            granularity=view.granularity,
            matches=seen,
        )
        return _told(view, told)
    present = [i for i, s in enumerate(seen) if s.counts[ALL]["ac"] > 0]
    page = asked.request.query.pagination
    shown = present[page.skip : page.skip + page.limit]
    genotypes = subset_counts(store, [matches[i] for i in shown], members)  # the page only
    by_name = {n: m for m in members for n in (m.sample, m.sample_alias)}
    results = tuple(
        beacon.variant_record(
            frequencies(matches[i], seen[i], group),
            dataset=view.accession,
            assembly=view.assembly,
            base_url=beacon_app.info.base_url,
            carriers=carriers_of(store, genotypes, j, by_name),
        )
        for j, i in enumerate(shown)
    )
    return ResultSet(
        view.accession, view.granularity, exists=bool(present), count=len(present), results=results
    )


def _count_of(view: DatasetView, value: int) -> int | None:
    return None if view.granularity is Granularity.BOOLEAN else value


def _told(view: DatasetView, told: DatasetAnswer) -> ResultSet:
    count = None if view.granularity is Granularity.BOOLEAN else (told.count or 0)
    return ResultSet(
        view.accession,
        view.granularity,
        exists=told.exists,
        count=count,
        note=told.note,
        note_zh=told.note_zh,
    )


# -- individuals and biosamples ---------------------------------------------------------------


def _people(
    beacon_app: Beacon, session: Session, view: DatasetView, asked: Asked, caller: Caller
) -> ResultSet | None:
    fill_members(session, [view])
    members = _scoped_members(view, asked)
    if asked.variants is not None or (asked.scope is not None and asked.scope.kind == "g_variants"):
        found = _dataset_matches(beacon_app, session, view, asked)
        if found is None or not found[1] or not members:
            members = []
        else:
            store, matches = found
            subset = subset_counts(store, matches, members)
            if view.granularity is not Granularity.RECORD:
                # who carries a variant is record-level: below it, the guard says whether
                # any selected individual does, and no count is given
                told = beacon_app.guard(
                    subject=caller.subject,
                    address=caller.address,
                    dataset=view.accession,
                    granularity=Granularity.BOOLEAN,
                    matches=subset.counts,
                )
                return ResultSet(
                    view.accession,
                    Granularity.BOOLEAN,
                    exists=told.exists,
                    note="Carriers are counted at record granularity only.",
                    note_zh="携带者人数仅在记录级别提供。",
                )
            by_name = {n: m for m in members for n in (m.sample, m.sample_alias)}
            carrying = {
                carrier.biosample
                for i in range(len(matches))
                for carrier in carriers_of(store, subset, i, by_name)
            }
            members = [m for m in members if m.sample in carrying]
    if asked.entry.path == "individuals":
        keys = list(dict.fromkeys(m.person.accession for m in members))
    else:
        keys = list(dict.fromkeys(m.sample for m in members))
    if view.granularity is not Granularity.RECORD:
        return _told(view, beacon_app.people(view.granularity, keys))
    page = asked.request.query.pagination
    shown = keys[page.skip : page.skip + page.limit]
    if asked.entry.path == "individuals":
        results = _individual_records(session, shown)
    else:
        results = _biosample_records(session, shown)
    return ResultSet(
        view.accession, view.granularity, exists=bool(keys), count=len(keys), results=tuple(results)
    )


def _individual_records(session: Session, accessions: Sequence[str]) -> list[dict[str, Any]]:
    rows = catalog.individuals_with_phenopackets(session, accessions)
    by_accession = {r.accession: r for r in rows}
    return [
        beacon.individual_record(dict(by_accession[a]._mapping), by_accession[a].document)
        for a in accessions
    ]


def _biosample_records(session: Session, accessions: Sequence[str]) -> list[dict[str, Any]]:
    rows = catalog.samples_with_individuals(session, accessions)
    by_accession = {r.accession: r for r in rows}
    return [beacon.biosample_record(dict(by_accession[a]._mapping)) for a in accessions]


# -- runs and analyses ------------------------------------------------------------------------


def _catalog_records(session: Session, view: DatasetView, kind: str) -> list[dict[str, Any]]:
    """The runs or analyses a dataset releases, as Beacon records."""
    if kind == "runs":
        rows = catalog.dataset_runs(session, view.id)
        return [
            beacon.run_record(
                {
                    **r._mapping,
                    "library_layout": (r.experiment or {}).get("library_layout"),
                    "submitted_on": r.created_at.date().isoformat(),
                }
            )
            for r in rows
        ]
    rows, counts = catalog.dataset_analyses(session, view.id)
    return [
        beacon.analysis_record(
            {
                **r._mapping,
                "submitted_on": r.created_at.date().isoformat(),
                "samples": counts.get(r.id, 0),
            }
        )
        for r in rows
    ]


def _catalog(session: Session, view: DatasetView, asked: Asked) -> ResultSet:
    records = _catalog_records(session, view, asked.entry.path)
    scope = asked.scope
    if scope is not None and scope.kind == asked.entry.path:
        records = [r for r in records if r["id"] == scope.id]
    elif scope is not None and scope.kind == "biosamples":
        records = (
            [r for r in records if r.get("biosampleId") == scope.id]
            if asked.entry.path == "runs"
            else records
        )
    if asked.criteria or asked.variants is not None:
        raise InvalidInputError(
            f"{asked.entry.path} are not filtered by variants or phenotypes here; query "
            "individuals or biosamples instead.",
            message_zh=f"{asked.entry.path} 不支持按变异或表型筛选；请查询 individuals 或 biosamples。",
            details={"place": "query"},
        )
    if view.granularity is not Granularity.RECORD:
        return ResultSet(
            view.accession,
            view.granularity,
            exists=bool(records),
            count=_count_of(view, len(records)),
        )
    page = asked.request.query.pagination
    return ResultSet(
        view.accession,
        view.granularity,
        exists=bool(records),
        count=len(records),
        results=tuple(records[page.skip : page.skip + page.limit]),
    )


# -- datasets and cohorts ---------------------------------------------------------------------


def _collections(session: Session, views: list[DatasetView], asked: Asked) -> list[ResultSet]:
    if asked.criteria or asked.variants is not None:
        raise InvalidInputError(
            f"{asked.entry.path} are listed, not filtered: query g_variants, individuals or "
            f"biosamples of a dataset (/beacon/datasets/{{id}}/g_variants).",
            message_zh=f"{asked.entry.path} 仅可列出，不支持筛选。",
            details={"place": "query"},
        )
    if (
        asked.scope is not None
        and asked.scope.kind == asked.entry.path
        and asked.entry.path == "datasets"
    ):
        views = [v for v in views if v.accession == asked.scope.id]
    records: list[dict[str, Any]]
    if asked.entry.path == "datasets":
        records = [beacon.dataset_record(_dataset_row(v)) for v in views]
    else:
        records = _cohorts(session, views)
        if asked.scope is not None and asked.scope.kind == "cohorts":
            records = [r for r in records if r["id"] == asked.scope.id]
    page = asked.request.query.pagination
    requested = asked.request.query.requestedGranularity
    return (
        [
            ResultSet(
                "collections",
                requested,
                exists=bool(records),
                count=len(records),
                results=tuple(records[page.skip : page.skip + page.limit]),
            )
        ]
        if views
        else []
    )


def _dataset_row(view: DatasetView) -> dict[str, Any]:
    doc = view.row.doc or {}
    codes = []
    for code in doc.get("duo_codes", []):
        term = duo().lookup(str(code))
        if term is not None:
            codes.append(term.id)
    return {
        "accession": view.accession,
        "alias": view.alias,
        "title": view.title,
        "description": doc.get("description"),
        "access_tier": view.tier,
        "created_at": view.row.created_at.isoformat(),
        "updated_at": view.row.updated_at.isoformat(),
        "duo_codes": codes,
    }


def _cohorts(session: Session, views: Sequence[DatasetView]) -> list[dict[str, Any]]:
    rows, sizes = catalog.studies_with_sizes(session, sorted({v.study_id for v in views}))
    return [
        beacon.cohort_record(
            {
                "accession": r.accession,
                "title": r.title,
                "study_type": r.study_type,
                "size": sizes.get(r.id, 0),
            }
        )
        for r in rows
    ]


# -- filtering terms --------------------------------------------------------------------------


def filtering_terms(beacon_app: Beacon, *, caller: Caller) -> dict[str, Any]:
    """The filters this Beacon reads, with the values the caller's datasets hold."""
    with beacon_app.factory() as session:
        views = visible_datasets(
            session, caller.subject, Granularity.RECORD, archived_here=beacon_app.archived_here
        )
        fill_members(session, views)
    people = {m.person.accession: m.person for v in views for m in v.members or ()}
    populations = sorted({p.population for p in people.values() if p.population})
    ethnic = sorted({p.ethnic_group for p in people.values() if p.ethnic_group})
    phenotypes = sorted({t for p in people.values() for t in p.terms})
    scopes = ("individual", "biosample", "genomicVariant")
    terms = [
        TermInfo(term, f"sex: {label}", "ontology", scopes)
        for term, label in (beacon.SEX_TERMS["female"], beacon.SEX_TERMS["male"])
    ]
    terms.append(
        TermInfo(
            "sex",
            "sex (female, male, other, unknown)",
            "alphanumeric",
            scopes,
            ("female", "male", "other", "unknown"),
        )
    )
    terms.append(
        TermInfo(
            "population",
            "genetic ancestry group (1000 Genomes code)",
            "alphanumeric",
            scopes,
            tuple(populations),
        )
    )
    terms.append(
        TermInfo(
            "ethnic_group", "ethnic group (GB/T 3304 code)", "alphanumeric", scopes, tuple(ethnic)
        )
    )
    vocabulary = hpo()
    for term in phenotypes:
        found = vocabulary.lookup(term) if term.startswith("HP:") else None
        terms.append(TermInfo(term, found.label if found else term, "ontology", scopes))
    return beacon.filtering_terms_response(beacon_app.info, terms)
