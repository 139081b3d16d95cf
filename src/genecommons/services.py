"""What a node's process holds while it runs, built once: by `create_app` for the HTTP API, by
`runtime.runtime()` for the CLI.

Routes take it with `deps.ServicesDep` and commands from `runtime.runtime()`, never from
attributes set on the app one by one. Building it reads no secret and writes no file beyond
what opening the database does, except the app's defended Beacon guards, which read the node's
Beacon key at start-up (the CLI's, on first use). No secret is ever made here: a node without
one answers that `genecommons init` is needed.

Capabilities that sit below an implementation they need declare its interface and get the
implementation from here: the archive's deliveries ask `RecipientCopies`
(`archive/recipient_copies.py`), which fingerprint implements; the Beacon asks `VariantGuard` and
`PeopleGuard` (`variants/answers.py`), which privacy implements; the catalog's submission asks a
`DataFileSink` (`catalog/service.py`), which the archive and the variant stores implement
together (`SubmissionFiles`); the jurisdiction rules ask `ArchivedHere`
(`access/jurisdiction/verdicts.py`), which the archive answers (`archive/holdings.py`).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Generic, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from genecommons.access.jurisdiction.verdicts import ArchivedHere
from genecommons.access.keys import KeyStore
from genecommons.access.oidc import Provider
from genecommons.access.oidc_service import provider as oidc_provider
from genecommons.access.passport_service import key_store, trusted_issuers
from genecommons.access.passports import TrustedIssuers
from genecommons.archive.holdings import archived_here
from genecommons.archive.ingestion import BundleArchiver
from genecommons.archive.keys_and_store import object_store
from genecommons.archive.recipient_copies import RecipientCopies
from genecommons.archive.store import ObjectStore
from genecommons.audit.service import signing_key
from genecommons.config import Settings
from genecommons.db import GroupCommit, make_session_factory, node_engine
from genecommons.fingerprint.service import RecipientCopyService
from genecommons.ledger.events import GroupedQueue
from genecommons.policy.models import Subject
from genecommons.privacy.guards import DefendedGuard, DefendedPeople
from genecommons.progress import SILENT, Progress
from genecommons.variants.answers import PeopleGuard, VariantGuard, exact_answer, exact_people
from genecommons.variants.beacon_context import StoreCache
from genecommons.variants.service import VariantStoreSink


@dataclass(frozen=True)
class Services:
    """The settings and the long-lived objects one process serves with (the keys read from
    their files on first use, then kept)."""

    settings: Settings
    engine: Engine
    factory: sessionmaker[Session]
    # the high-rate writes, each its own transaction (Beacon query events, token uses, budget
    # charges): group-committed together, one writing thread at a time
    writes: GroupCommit
    events: GroupedQueue
    objects: ObjectStore
    visa_keys: KeyStore
    oidc: Provider | None  # None when OIDC sign-in is off
    recipient_copies: RecipientCopies
    variant_guard: VariantGuard  # what boolean and count Beacon answers reveal of variants
    people_guard: PeopleGuard  # ... and of individuals and biosamples
    variant_stores: StoreCache
    # whether this node's archive holds a dataset's backup copy (the jurisdiction rules ask)
    archived_here: ArchivedHere

    @cached_property
    def trusted_issuers(self) -> TrustedIssuers:
        """The issuers whose visas this node takes: itself and those configured."""
        return trusted_issuers(self.settings, self.visa_keys)

    @cached_property
    def tree_head_key(self) -> Ed25519PrivateKey:
        """The key that signs the audit log's tree heads."""
        return signing_key(self.settings)

    def submission_files(self, subject: Subject, *, progress: Progress = SILENT) -> SubmissionFiles:
        """Where a submission's data files go for `subject`: into the encrypted archive, and
        each VCF on into the variant stores of the datasets that declare it."""
        stores = VariantStoreSink(self.settings, subject, progress=progress)
        archive = BundleArchiver(self.settings, subject, progress=progress, after=stores)
        return SubmissionFiles(archive, stores)


@dataclass(frozen=True)
class SubmissionFiles:
    """The catalog's `DataFileSink` for a submission: the archive, then the variant stores (what
    they built is read after the commit)."""

    archive: BundleArchiver
    variant_stores: VariantStoreSink

    def attach(
        self, session: Session, files: Mapping[str, str], paths: Mapping[str, Path]
    ) -> list[str]:
        """Archive `paths` as the catalog files `files` inside `session` (see `DataFileSink`)."""
        return self.archive.attach(session, files, paths)

    def discard(self) -> None:
        """Remove what `attach` stored (its transaction did not commit)."""
        self.archive.discard()


G = TypeVar("G", bound=Callable[..., Any])


class Deferred(Generic[G]):
    """A guard built on its first call, for a process that may never ask it (the CLI's: a
    command such as `backup restore` runs on a node whose Beacon key is not there yet)."""

    def __init__(self, build: Callable[[], G]) -> None:
        self._build = build
        self._built: G | None = None
        self._lock = threading.Lock()

    @property
    def built(self) -> G:
        """The guard (built now if it was not yet)."""
        with self._lock:
            if self._built is None:
                self._built = self._build()
            return self._built

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """What the guard answers."""
        return self.built(*args, **kwargs)


def build_services(settings: Settings, *, defer_guards: bool = False) -> Services:
    """The services `settings` configure, on the node's database. The defended Beacon guards
    read the node's Beacon key when built: now (the app: a node without it does not start), or
    on their first use when `defer_guards` (the CLI)."""
    engine = node_engine(settings)
    factory = make_session_factory(engine)
    writes = GroupCommit(factory)
    variant_guard: VariantGuard = exact_answer
    people_guard: PeopleGuard = exact_people
    if settings.beacon_guard != "exact":
        variants = functools.partial(DefendedGuard, factory, settings, writes=writes)
        people = functools.partial(DefendedPeople, settings)
        variant_guard = Deferred(variants) if defer_guards else variants()
        people_guard = Deferred(people) if defer_guards else people()
    return Services(
        settings=settings,
        engine=engine,
        factory=factory,
        writes=writes,
        events=GroupedQueue(factory, writes=writes),
        objects=object_store(settings),
        visa_keys=key_store(settings),
        oidc=oidc_provider(settings),
        recipient_copies=RecipientCopyService(),
        variant_guard=variant_guard,
        people_guard=people_guard,
        variant_stores=StoreCache(),
        archived_here=archived_here,
    )
