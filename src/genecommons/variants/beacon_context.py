"""What a Beacon query runs with: the node (its settings, sessions, guards and opened variant
stores), the caller, and the datasets the caller may learn of, each at its granularity and
with its members. The rules of granularity are set out in variants/beacon_service.py."""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from genecommons.access.jurisdiction.verdicts import ArchivedHere
from genecommons.access.workflow import dataset_resource
from genecommons.catalog import reads as catalog
from genecommons.config import Settings
from genecommons.db import prepared
from genecommons.ledger.events import GroupedQueue
from genecommons.policy.decision import decide
from genecommons.policy.models import Action, Resource, Subject
from genecommons.variants import store_service
from genecommons.variants.answers import Granularity, PeopleGuard, VariantGuard
from genecommons.variants.beacon import GRANULARITY_ORDER, BeaconInfo, Person
from genecommons.variants.store import VariantStore
from genecommons.variants.store_service import store_path
from genecommons.variants.upkeep import MANIFEST


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
    # whether this node's archive holds a dataset's backup copy (the jurisdiction rules ask)
    archived_here: ArchivedHere
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
    """The most a caller may learn of a dataset through the Beacon (see beacon_service),
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
    session: Session, subject: Subject, requested: Granularity, *, archived_here: ArchivedHere
) -> list[DatasetView]:
    """The datasets the caller may learn something of, each with its granularity
    (`archived_here`: whether this node's archive holds a dataset's backup copy)."""
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
            resource = dataset_resource(
                session, subject, row.accession, archived_here=archived_here
            )
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


def fill_members(session: Session, views: Sequence[DatasetView]) -> None:
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
