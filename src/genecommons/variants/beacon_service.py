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
import functools
import itertools
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from genecommons import metrics
from genecommons.access.workflow import dataset_resource
from genecommons.catalog import reads as catalog
from genecommons.catalog.vocabularies import duo, hpo
from genecommons.config import Settings
from genecommons.db import prepared
from genecommons.errors import InvalidInputError, NotFoundError
from genecommons.ledger.events import EventTag, GroupedQueue
from genecommons.policy.decision import decide
from genecommons.policy.models import Action, Resource, Subject
from genecommons.variants import beacon, store_service
from genecommons.variants.answers import DatasetAnswer, Granularity, PeopleGuard, VariantGuard
from genecommons.variants.beacon import (
    GRANULARITY_ORDER,
    BeaconInfo,
    BeaconRequest,
    Carrier,
    Criterion,
    EntryType,
    Person,
    ResultSet,
    TermInfo,
    VariantQuery,
)
from genecommons.variants.counts import count_block
from genecommons.variants.normalize import Variant, parse_key
from genecommons.variants.store import ALL, SiteCounts, VariantStore
from genecommons.variants.store_service import store_path
from genecommons.variants.upkeep import MANIFEST

BY_PATH = beacon.ENTRY_TYPES


class StoreCache:
    """Opened variant stores, shared by the requests of one app (a store is read only). A
    store is opened through its binding (store_service.open_store) and kept while its
    manifest is the same file: a rebuilt store is a new directory, opened and checked anew. A
    dataset rebuilt out of a shared store gets a store of its own name, which ends the cached
    one's use for it (a bound dataset never moves into a shared store)."""

    def __init__(self) -> None:
        # dataset -> the store's name, its manifest's stamp, the store, and the paths checked
        # at each use: the dataset's own store (None: the store is its own) and the manifest
        self._stores: dict[str, tuple[tuple[int, int], VariantStore, str | None, str]] = {}
        self._lock = threading.Lock()

    def get(self, session: Session, settings: Settings, dataset: str) -> VariantStore | None:
        """The store of `dataset` as the catalog binds it, or None when it has none."""
        with self._lock:
            cached = self._stores.get(dataset)
        if cached is not None:
            stamp, store, own, manifest = cached
            if (own is None or not os.path.exists(own)) and _stamp(manifest) == stamp:
                return store
        binding = store_service.binding_of(session, dataset)
        if binding is None:
            return None
        manifest = str(store_path(settings, binding.dataset) / MANIFEST)
        found = _stamp(manifest)
        store = store_service.open_bound(settings, binding)
        if found is not None:
            own = None if binding.dataset == dataset else str(store_path(settings, dataset))
            with self._lock:
                self._stores[dataset] = (found, store, own, manifest)
        return store


def _stamp(manifest: str) -> tuple[int, int] | None:
    """What tells the store manifest at `manifest` from another (None: no store)."""
    try:
        found = os.stat(manifest)
    except FileNotFoundError:
        return None
    return (found.st_ino, found.st_mtime_ns)


@dataclass(frozen=True, slots=True)
class Caller:
    """Who asks, and from where."""

    subject: Subject
    address: str


@dataclass(slots=True)
class DatasetView:
    """A dataset as the Beacon answers it to one caller."""

    id: int
    accession: str
    alias: str
    title: str
    tier: str
    study_id: int
    granularity: Granularity
    row: Any
    assembly: str | None = None
    members: list[Member] | None = None


@dataclass(frozen=True, slots=True)
class Member:
    """A sample of a dataset and its individual."""

    sample_id: int
    sample: str  # accession
    sample_alias: str
    person: Person
    individual_id: int
    study_id: int


@dataclass(frozen=True, slots=True)
class Scope:
    """What a single-entry or cross-entry route narrows the query to: /{kind}/{id}/..."""

    kind: str
    id: str


@dataclass(slots=True)
class Beacon:
    """What the routes hand the use cases: the app's settings, sessions, guard and stores."""

    factory: sessionmaker[Session]
    settings: Settings
    guard: VariantGuard
    people: PeopleGuard
    stores: StoreCache = field(default_factory=StoreCache)
    # the app's queue of Beacon query events, shared by its requests (None: one of its own)
    events: GroupedQueue | None = None
    # events the request holds back (its token's use), committed with the query's event
    held: list[bytes] | None = None
    # where this node is reached (None: the configured issuer URL)
    base_url: str | None = None

    def __post_init__(self) -> None:
        if self.events is None:
            self.events = GroupedQueue(self.factory)

    @property
    def info(self) -> BeaconInfo:
        """Who this Beacon says it is."""
        return beacon_info(self.settings, base_url=self.base_url)


def beacon_info(settings: Settings, *, base_url: str | None = None) -> BeaconInfo:
    """Who the Beacon of these settings says it is, reached at `base_url` (None: the
    configured issuer URL)."""
    from genecommons import __version__

    return BeaconInfo(
        id=settings.beacon_id,
        name=settings.beacon_name,
        organization=settings.beacon_organization,
        environment=settings.environment,
        version=__version__,
        base_url=f"{(base_url or settings.issuer_url).rstrip('/')}/beacon",
    )


# -- granularity ------------------------------------------------------------------------------


def granularity(subject: Subject, resource: Resource, *, public: bool) -> Granularity | None:
    """The most a caller may learn of a dataset through the Beacon (see the module docstring),
    or None when it may learn nothing."""
    if decide(subject, Action.READ_RECORDS, resource).allowed:
        return Granularity.RECORD
    if not decide(
        subject, Action.READ_METADATA, Resource("dataset", resource.accession, public)
    ).allowed:
        return None
    if resource.tier in ("open", "registered"):
        registered = dataclasses.replace(resource, tier="registered")
        if decide(subject, Action.READ_AGGREGATES, registered).allowed:
            return Granularity.COUNT
    if resource.tier == "open" and decide(subject, Action.READ_AGGREGATES, resource).allowed:
        return Granularity.BOOLEAN
    return None


def _lower(a: Granularity, b: Granularity) -> Granularity:
    return GRANULARITY_ORDER[min(GRANULARITY_ORDER.index(a), GRANULARITY_ORDER.index(b))]


# built once: every Beacon query reads the catalog's datasets afresh with them
_DATASETS, _ASSEMBLIES = catalog.beacon_dataset_statements()


def visible_datasets(
    session: Session, subject: Subject, requested: Granularity
) -> list[DatasetView]:
    """The datasets the caller may learn something of, each with its granularity."""
    # read on every query, without the ORM (the session is left unused unless needed)
    engine = session.get_bind()
    assert isinstance(engine, Engine)
    rows = prepared(engine, _DATASETS).rows({})
    assemblies: dict[int, str] = {}
    for dataset_id, assembly in prepared(engine, _ASSEMBLIES).rows({}):
        if assembly:
            assemblies.setdefault(int(dataset_id), str(assembly))
    views = []
    for row in rows:
        if row.accession in subject.grants:
            # the jurisdiction rules decide on record-level data for grant holders only
            resource = dataset_resource(session, subject, row.accession)
        else:
            resource = Resource("dataset", accession=row.accession, tier=row.access_tier)
        found = granularity(subject, resource, public=bool(row.study_public))
        if found is None:
            continue
        views.append(
            DatasetView(
                id=row.id,
                accession=row.accession,
                alias=row.alias,
                title=row.title or row.alias,
                tier=row.access_tier,
                study_id=row.study_id,
                granularity=_lower(found, requested),
                row=row,
                assembly=assemblies.get(row.id),
            )
        )
    return views


# -- members of a dataset ---------------------------------------------------------------------


def _members(session: Session, views: Sequence[DatasetView]) -> None:
    """Fill each view's samples and individuals (with the terms the filters look at)."""
    wanted = [v for v in views if v.members is None]
    if not wanted:
        return
    rows, terms = catalog.dataset_members(session, [v.id for v in wanted])
    by_dataset: dict[int, list[Member]] = {v.id: [] for v in wanted}
    for r in rows:
        person = Person(
            accession=r.individual,
            sex=r.sex,
            population=r.population,
            ethnic_group=r.ethnic_group,
            terms=frozenset(terms.get(int(r.individual_id), ())),
        )
        by_dataset[int(r.dataset_id)].append(
            Member(r.sample_id, r.sample, r.sample_alias, person, r.individual_id, r.study_id)
        )
    for view in wanted:
        view.members = by_dataset[view.id]


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
        _listing_reach(settings, request)  # no parameters: the variants, a page at a time
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
        _members(session, views)
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
            visible_datasets(session, caller.subject, request.query.requestedGranularity),
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


@functools.lru_cache(maxsize=256)
def _chromosomes(contigs: tuple[str, ...]) -> dict[str, str]:
    """Canonical chromosome name -> the store's contig name (other contigs left out)."""
    found: dict[str, str] = {}
    for name in contigs:
        try:
            found.setdefault(beacon.canonical_chromosome(name), name)
        except InvalidInputError:
            continue  # an unplaced, alternate or decoy contig: not queryable by chromosome
    return found


def _contig(store: VariantStore, chrom: str) -> str | None:
    try:
        return _chromosomes(store.contigs).get(beacon.canonical_chromosome(chrom))
    except InvalidInputError:
        return None


def find_variants(store: VariantStore, query: VariantQuery, *, limit: int) -> list[SiteCounts]:
    """The stored variants that answer `query` (InvalidInputError past `limit` of them)."""
    contig = _contig(store, query.chrom)
    if contig is None:
        return []
    exact = query.exact()
    if exact is not None:
        found = store.lookup(dataclasses.replace(exact, chrom=contig))
        return [found] if found is not None else []
    low, high = query.window
    candidates = list(store.overlapping(contig, low, high, limit=limit + 1))
    if len(candidates) > limit:
        raise InvalidInputError(
            f"More than {limit:,} variants lie in {query.chrom}:{low:,}-{high:,} in one "
            "dataset; narrow the range.",
            message_zh=f"{query.chrom}:{low:,}-{high:,} 在单个数据集中有超过 {limit:,} 个变异，请缩小范围。",
            details={"place": "requestParameters"},
        )
    return [c for c in candidates if query.matches(c.variant)]


@dataclass(frozen=True, slots=True)
class Subset:
    """Sites counted among some members only, from the genotype store."""

    counts: list[SiteCounts]  # each site's counts among the members, as group "all"
    calls: np.ndarray[Any, Any]  # (sites, members, ploidy)
    alleles: list[int]  # each site's allele index in its record
    columns: list[int]  # the members' columns in the genotype store


def _subset_counts(
    store: VariantStore, sites: Sequence[SiteCounts], members: Sequence[Member]
) -> Subset:
    """The counts of `sites` among `members` only, from their genotypes."""
    column = {s: i for i, s in enumerate(store.sample_ids)}
    chosen = sorted({column[n] for m in members for n in (m.sample, m.sample_alias) if n in column})
    located = store.alleles([s.variant for s in sites])
    calls = store.genotypes([record for record, _ in located])[:, chosen, :]
    counted: list[SiteCounts] = []
    ones = np.ones((len(chosen), 1), dtype=np.int32)
    for index, (site, (_, allele)) in enumerate(zip(sites, located, strict=True)):
        block = count_block(
            calls[index : index + 1], n_alleles=allele + 1, members=ones, groups=(ALL,)
        )
        cell = {
            "ac": int(block.ac[0, allele, 0]),
            "an": int(block.an[0, 0]),
            "hom": int(block.hom[0, allele, 0]),
            "hemi": int(block.hemi[0, allele, 0]),
        }
        counted.append(SiteCounts(site.variant, {ALL: cell}))
    return Subset(counted, calls, [a for _, a in located], chosen)


def _group_view(site: SiteCounts, group: str) -> SiteCounts:
    """The site as seen within one group of the index: the group's counts stand as "all"
    (without a filter, the site with every group)."""
    if group == ALL:
        return site
    cell = site.counts.get(group, {"ac": 0, "an": 0, "hom": 0, "hemi": 0})
    return SiteCounts(site.variant, {ALL: cell, **({group: cell} if group != ALL else {})})


def _carriers(
    store: VariantStore, subset: Subset, index: int, by_name: Mapping[str, Member]
) -> list[Carrier]:
    """The members that carry site `index` of `subset`, with their zygosity."""
    carriers = []
    allele = subset.alleles[index]
    for position, column in enumerate(subset.columns):
        genotype = subset.calls[index, position]
        present = genotype[genotype >= -1]  # without the padding of a haploid call
        copies = int((present == allele).sum())
        member = by_name.get(store.sample_ids[column])
        if not copies or member is None:
            continue
        zygosity = (
            "hemizygous"
            if len(present) == 1
            else "homozygous"
            if copies == len(present)
            else "heterozygous"
        )
        carriers.append(Carrier(member.sample, member.person.accession, zygosity))
    return carriers


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
            return store, _listed_sites(store, asked.request, settings=beacon_app.settings)
        variant = _scoped_variant(asked.scope)
        contig = _contig(store, variant.chrom)
        found = store.lookup(dataclasses.replace(variant, chrom=contig)) if contig else None
        return store, [found] if found else []
    # the datasets released from one shared store ask it the same question: read once a query
    sites = asked.read.get(store.binding.context)
    if sites is None:
        sites = find_variants(store, query, limit=beacon_app.settings.beacon_max_variants)
        asked.read[store.binding.context] = sites
    return store, list(sites)


def _listing_reach(settings: Settings, request: BeaconRequest) -> int:
    """How many of a dataset's variants a query without variant parameters looks at: as far as
    its page reaches, within the most one query may match (`beacon_max_variants`)."""
    page = request.query.pagination
    reach = page.skip + max(page.limit, 1)
    if reach > settings.beacon_max_variants:
        raise InvalidInputError(
            f"A g_variants query without variant parameters pages through the first "
            f"{settings.beacon_max_variants:,} variants of each dataset; skip + limit is {reach:,}. "
            "Ask with referenceName and start to reach further.",
            message_zh=f"不带变异参数的 g_variants 查询只能翻阅每个数据集的前 "
            f"{settings.beacon_max_variants:,} 个变异；请用 referenceName 与 start 查询更远的变异。",
            details={"place": "pagination"},
        )
    return reach


def _listed_sites(
    store: VariantStore, request: BeaconRequest, *, settings: Settings
) -> list[SiteCounts]:
    """The variants a query without variant parameters asks about: the dataset's, in the order
    they were indexed, as far as the page reaches (each answered through the same guard as any
    query's matches)."""
    reach = _listing_reach(settings, request)
    # the generator, dropped here, closes its connection at once (CPython frees it on the spot)
    return list(itertools.islice(store.all_sites(batch=reach), reach))


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
        _members(session, [view])
        members = _scoped_members(view, asked)
    if matches and (group is None or scoped):
        seen = _subset_counts(store, matches, members).counts  # from the genotypes
    else:
        seen = [_group_view(m, group or ALL) for m in matches]  # from the sites index
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
    genotypes = _subset_counts(store, [matches[i] for i in shown], members)  # the page only
    by_name = {n: m for m in members for n in (m.sample, m.sample_alias)}
    results = tuple(
        beacon.variant_record(
            _frequencies(matches[i], seen[i], group),
            dataset=view.accession,
            assembly=view.assembly,
            base_url=beacon_app.info.base_url,
            carriers=_carriers(store, genotypes, j, by_name),
        )
        for j, i in enumerate(shown)
    )
    return ResultSet(
        view.accession, view.granularity, exists=bool(present), count=len(present), results=results
    )


def _frequencies(site: SiteCounts, seen: SiteCounts, group: str | None) -> SiteCounts:
    """The frequencies a record shows: every group of the index without filters, else the
    filtered samples' counts."""
    if group == ALL:
        return site
    label = "selected" if group is None else group
    return SiteCounts(site.variant, {label: seen.counts[ALL]})


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
    _members(session, [view])
    members = _scoped_members(view, asked)
    if asked.variants is not None or (asked.scope is not None and asked.scope.kind == "g_variants"):
        found = _dataset_matches(beacon_app, session, view, asked)
        if found is None or not found[1] or not members:
            members = []
        else:
            store, matches = found
            subset = _subset_counts(store, matches, members)
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
                for carrier in _carriers(store, subset, i, by_name)
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
        views = visible_datasets(session, caller.subject, Granularity.RECORD)
        _members(session, views)
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
