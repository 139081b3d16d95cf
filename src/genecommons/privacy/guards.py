"""The Beacon's defended guards: the variant guard and its budget ledger, the people guard.

`DefendedGuard` is the `VariantGuard` the Beacon uses below record granularity. Boolean answers
(the open tier) follow the keyed threshold rule alone: they are safe by themselves, so an
attacker gains nothing from a fresh account or address per victim. Count answers (the registered
tier) follow the same rule and are also charged to a ledger: each variant an account, and the
address it calls from, is answered about costs the chance that one member decided that answer
(`ThresholdRule.exposure`, after Raisaro et al. 2017's per-participant risk), once per variant;
when either has spent `beacon_budget`, every further answer is withheld, and passing
`beacon_budget_warning` of it records `privacy:budget:low` for the early-warning rules. Against
sybils (one caller with many accounts and addresses) the same charges go to two pooled parties:
the caller's institution (`beacon_institution_budget`, every account of it together) and the
period (`beacon_dataset_budget`, every registered caller together, per `beacon_budget_window`
days); an answer is given only while none of its parties has spent its budget.

`DefendedPeople` is the `PeopleGuard`: counts of individuals and biosamples below record
granularity carry keyed, consistent noise and small cells are not disclosed (privacy/cells.py).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Float, String, bindparam, cast, insert, null, select, union_all, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from genecommons.clock import now
from genecommons.config import Settings
from genecommons.db import GroupCommit, Prepared
from genecommons.ledger.events import EventTag, record_event
from genecommons.policy.models import Subject, SubjectKind
from genecommons.privacy.beacon_guard import ThresholdRule, rule_answer, spent_answer
from genecommons.privacy.beacon_rules import cell_rule, size_rule, threshold_rule
from genecommons.privacy.cells import CellRule, people_answer
from genecommons.privacy.cohort_size import Scope, SizeRule, sized_answer
from genecommons.privacy.tables import privacy_budgets, privacy_charges
from genecommons.variants import store_service
from genecommons.variants.answers import DatasetAnswer, Granularity, exact_answer, exact_people
from genecommons.variants.store import SiteCounts

logger = logging.getLogger(__name__)


class DefendedPeople:
    """What a caller below record granularity is told of a dataset's people (a `PeopleGuard`)."""

    def __init__(self, settings: Settings, *, rule: CellRule | None = None) -> None:
        self.rule = rule or cell_rule(settings)

    def __call__(self, granularity: Granularity, records: Sequence[str]) -> DatasetAnswer:
        """The consistent-noise, small-cell-suppressed answer about `records`."""
        if granularity is Granularity.RECORD:
            return exact_people(granularity, records)
        return people_answer(self.rule, granularity, records)


MEMBERS_FRESH_SECONDS = 60.0  # how long a dataset's Beacon members are taken as read


class BeaconMembers:
    """The Beacon members of each dataset (its variant store's samples), read again after
    MEMBERS_FRESH_SECONDS so that a rebuilt store's size counts."""

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self.factory = factory
        self._read: dict[str, tuple[float, int | None]] = {}

    def __call__(self, dataset: str) -> int | None:
        """How many members `dataset`'s Beacon answers about (None: it has no variant store,
        so no variant to answer about: the Beacon asks the guard only about a store's)."""
        moment = time.monotonic()
        known = self._read.get(dataset)
        if known is not None and moment - known[0] < MEMBERS_FRESH_SECONDS:
            return known[1]
        with self.factory() as session:
            members = store_service.store_samples(session, dataset)
        self._read[dataset] = (moment, members)
        return members


def parties(subject: Subject, address: str) -> list[tuple[str, str]]:
    """Who is charged for an answer per caller: the account (signed-in callers) and the
    address, as (kind, id) pairs."""
    charged = [("address", address)]
    if subject.kind is not SubjectKind.ANONYMOUS:
        charged.insert(0, ("account", subject.id))
    return charged


def period_start(moment: datetime, days: int) -> str:
    """The first day (ISO date) of the period of `days` days holding `moment`: periods are
    counted from 1970-01-01, so every app of a node agrees on them."""
    day = (moment.date() - date(1970, 1, 1)).days
    return date.fromordinal(date(1970, 1, 1).toordinal() + day - day % days).isoformat()


Parties = Callable[[Subject, str], list[tuple[str, str]]]  # who is charged for an answer


def pooled_parties(settings: Settings) -> Parties:
    """Who is charged for an answer against sybils: the caller's parties, its institution
    (when it has one), and the current period of the dataset (every caller together)."""

    def charged(subject: Subject, address: str) -> list[tuple[str, str]]:
        found = parties(subject, address)
        if subject.kind is not SubjectKind.ANONYMOUS and subject.institution:
            found.append(("institution", subject.institution))
        found.append(("period", period_start(now(), settings.beacon_budget_window)))
        return found

    return charged


def budget_limit(settings: Settings, party: str) -> float:
    """The budget of `party` ("kind:id") on a dataset."""
    kind = party.partition(":")[0]
    if kind == "institution":
        return settings.beacon_institution_budget
    if kind == "period":
        return settings.beacon_dataset_budget
    return settings.beacon_budget


@dataclass(frozen=True, slots=True)
class Charge:
    """What one count answer is to be charged: each party for the exposure of each variant
    new to it."""

    actor: str
    parties: tuple[tuple[str, str], ...]  # (kind, id)
    dataset: str
    exposures: Mapping[str, float]  # variant key -> exposure, > 0

    @property
    def names(self) -> list[str]:
        """The parties as the ledger names them ("kind:id")."""
        return [f"{kind}:{party_id}" for kind, party_id in self.parties]


KNOWN_LIMIT = 1_000_000  # charged (party, dataset, variant) an app remembers; past it, it forgets


class DefendedGuard:
    """The Beacon's guard below record granularity (a `VariantGuard`).

    A count answer first reads the ledger (both parties' budgets, and whether its variants are
    charged to them, in one statement): a query that costs nothing new is decided by that read
    and writes nothing. Otherwise its charge goes through a group commit (`db.GroupCommit`):
    the charges that arrive together are done in one write transaction, one after the other,
    each against the budgets as the charges before it left them, so that whether an answer is
    given depends only on what was spent before it, across threads and worker processes alike
    (the database is the authority: on SQLite the transaction holds the write lock, on
    PostgreSQL the budget rows are locked). The guard remembers which variants were charged to
    whom, facts that never change, only to skip reading them again."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        settings: Settings,
        *,
        rule: ThresholdRule | None = None,
        sizes: SizeRule | None = None,
        writes: GroupCommit | None = None,
        charged: Parties | None = None,
    ) -> None:
        self.factory = factory
        self.settings = settings
        self.rule = rule or threshold_rule(settings)
        # who each answer is charged to: pooled against sybils unless told (the attack tool
        # measures the per-caller ledger too)
        self.charged = charged or pooled_parties(settings)
        self.sizes = sizes or size_rule(settings)
        self.members = BeaconMembers(factory)
        self.writes = writes or GroupCommit(factory)  # the app's, shared with its other writes
        self._known: set[tuple[str, str, str]] = set()
        self._ledger: dict[tuple[int, int], Prepared] = {}

    def __call__(
        self,
        *,
        subject: Subject,
        address: str,
        dataset: str,
        granularity: Granularity,
        matches: Sequence[SiteCounts],
    ) -> DatasetAnswer:
        """The answer for `dataset`: exact at record granularity (a grant in force), the rule's
        at boolean, the rule's within the budgets at count."""
        if granularity is Granularity.RECORD:
            return exact_answer(
                subject=subject,
                address=address,
                dataset=dataset,
                granularity=granularity,
                matches=matches,
            )
        members = self.members(dataset)
        placed = self.rule.places(dataset)
        if members is not None and self.sizes.scope(members, placed=placed) is not Scope.FULL:
            # a small dataset: stateless answers whose exposure is at most the rule's miss
            return sized_answer(
                self.rule,
                self.sizes,
                dataset=dataset,
                members=members,
                granularity=granularity,
                matches=matches,
            )
        if granularity is Granularity.BOOLEAN:
            return rule_answer(self.rule, dataset=dataset, granularity=granularity, matches=matches)
        # common and absent alleles cost nothing (no member decides them): no writes for them
        exposures = {m.variant.key: e for m in matches if (e := self.rule.exposure(m, dataset)) > 0}
        charge = Charge(subject.id, tuple(self.charged(subject, address)), dataset, exposures)
        refused = self._read(charge)
        if refused is None:
            refused = self.writes.submit(self._charge_group, charge)
            if not refused:  # committed: each of its variants is charged to each party now
                self._remember((p, dataset, k) for p in charge.names for k in exposures)
        if refused:
            return spent_answer(granularity, refused)
        return rule_answer(self.rule, dataset=dataset, granularity=granularity, matches=matches)

    def _remember(self, facts: Iterable[tuple[str, str, str]]) -> None:
        if len(self._known) > KNOWN_LIMIT:
            self._known = set()
        self._known.update(facts)

    def _read(self, charge: Charge) -> str | None:
        """Decide `charge` by one read of the ledger: the kind of a party that has spent its
        budget (then the answer is withheld), "" when nothing of it is new to any party (then
        it is answered), None when something is to be charged. Whether to answer depends only
        on what was spent before, never on this query's truth."""
        names, dataset, known = charge.names, charge.dataset, self._known
        unknown = [v for v in charge.exposures if any((p, dataset, v) not in known for p in names)]
        shape = (len(names), len(unknown))
        statement = self._ledger.get(shape)
        if statement is None:
            statement = Prepared(self.factory.kw["bind"], _ledger_statement(*shape))
            self._ledger[shape] = statement
        params: dict[str, object] = {"dataset": dataset}
        params.update((f"p{i}", p) for i, p in enumerate(names))
        params.update((f"v{i}", v) for i, v in enumerate(unknown))
        charged = []
        for party, spent, variant in statement.rows(params):
            if variant is None:
                if float(spent) >= budget_limit(self.settings, str(party)):
                    return str(party).partition(":")[0]
            else:
                charged.append((str(party), dataset, str(variant)))
        if not charge.exposures:
            return ""
        seen = set(charged)
        self._remember(seen)
        if all((p, dataset, v) in seen for p in names for v in unknown):
            return ""
        return None

    def _charge_group(self, session: Session, charges: Sequence[Charge]) -> list[str]:
        """Charge each of `charges` in turn, in the caller's write transaction: each party for
        the variants new to it; for a charge, the kind of a party of it that has spent its
        budget (then nothing of it is charged or answered), or "" when charged. Passing
        `beacon_budget_warning` of its budget records `privacy:budget:low`, once per party and
        dataset."""
        moment = now()
        wanted: dict[str, tuple[set[str], set[str]]] = {}
        for charge in charges:
            names, variants = wanted.setdefault(charge.dataset, (set(), set()))
            names.update(charge.names)
            variants.update(charge.exposures)
        budgets: dict[tuple[str, str], Budget] = {}
        charged: set[tuple[str, str, str]] = set()
        for dataset, (names, variants) in wanted.items():
            budgets.update(_locked_budgets(session, dataset, sorted(names)))
            if variants:
                found = session.execute(
                    _CHARGED,
                    {"parties": sorted(names), "dataset": dataset, "variants": sorted(variants)},
                )
                charged.update((str(p), dataset, str(v)) for p, v in found)
        rows: list[dict[str, object]] = []
        changed: dict[tuple[str, str], Budget] = {}
        results = []
        for charge in charges:
            dataset = charge.dataset
            keys = [(name, dataset) for name in charge.names]
            limits = [budget_limit(self.settings, name) for name in charge.names]
            spent_by = [
                kind
                for (kind, _), key, limit in zip(charge.parties, keys, limits, strict=True)
                if budgets[key].spent >= limit
            ]
            if spent_by:
                results.append(spent_by[0])
                continue
            for (kind, party_id), key, limit in zip(charge.parties, keys, limits, strict=True):
                party = key[0]
                warning = self.settings.beacon_budget_warning * limit
                new = {
                    k: e for k, e in charge.exposures.items() if (party, dataset, k) not in charged
                }
                if not new:
                    continue
                rows.extend(
                    {
                        "party": party,
                        "dataset": dataset,
                        "variant": k,
                        "exposure": e,
                        "charged_at": moment,
                    }
                    for k, e in new.items()
                )
                charged.update((party, dataset, k) for k in new)
                row = budgets[key]
                spent = row.spent + sum(new.values())
                warn = not row.warned and spent >= warning
                budgets[key] = changed[key] = Budget(row.id, spent, row.warned or warn)
                if warn:
                    record_event(
                        session,
                        tag=EventTag.PRIVACY_BUDGET_LOW,
                        actor=charge.actor,
                        subject=dataset,
                        details={
                            kind: party_id,
                            "dataset": dataset,
                            "spent": spent,
                            "limit": limit,
                        },
                    )
                    logger.info(
                        "%s passed %.0f%% of its budget on %s", party, 100 * spent / limit, dataset
                    )
            results.append("")
        if rows:
            session.execute(insert(privacy_charges), rows)
        if changed:
            session.execute(
                _SPEND,
                [
                    {"budget_id": b.id, "spent": b.spent, "warned": b.warned, "now": moment}
                    for b in changed.values()
                ],
            )
        return results


@functools.lru_cache(maxsize=64)
def _ledger_statement(parties: int, variants: int) -> Any:
    """The parties' budget rows of a dataset, as (party, spent, NULL), and which of some
    variants are charged to them, as (party, NULL, variant): one statement, one snapshot."""
    names: list[Any] = [bindparam(f"p{i}") for i in range(parties)]
    budgets = select(
        privacy_budgets.c.party,
        privacy_budgets.c.spent,
        cast(null(), String).label("variant"),
    ).where(privacy_budgets.c.dataset == bindparam("dataset"), privacy_budgets.c.party.in_(names))
    if not variants:
        return budgets
    charges = select(
        privacy_charges.c.party, cast(null(), Float).label("spent"), privacy_charges.c.variant
    ).where(
        privacy_charges.c.dataset == bindparam("dataset"),
        privacy_charges.c.party.in_(names),
        privacy_charges.c.variant.in_([bindparam(f"v{i}") for i in range(variants)]),
    )
    return union_all(budgets, charges)


def _locked_budgets(
    session: Session, dataset: str, names: Sequence[str]
) -> dict[tuple[str, str], Budget]:
    """The parties' budget rows of `dataset`, made (at zero) where missing, locked for this
    transaction (in the order of their names, as every group of charges locks them)."""
    found = {
        (str(row.party), dataset): Budget(int(row.id), float(row.spent), bool(row.warned))
        for row in session.execute(_LOCKED_BUDGETS, {"parties": list(names), "dataset": dataset})
    }
    for name in names:
        if (name, dataset) not in found:
            found[(name, dataset)] = _budget(session, name, dataset, lock=True)
    return found


# built once: count answers run them
_BUDGET = select(privacy_budgets.c.id, privacy_budgets.c.spent, privacy_budgets.c.warned).where(
    privacy_budgets.c.party == bindparam("party"), privacy_budgets.c.dataset == bindparam("dataset")
)
_LOCKED_BUDGET = _BUDGET.with_for_update()
_LOCKED_BUDGETS = (
    select(
        privacy_budgets.c.id,
        privacy_budgets.c.party,
        privacy_budgets.c.spent,
        privacy_budgets.c.warned,
    )
    .where(
        privacy_budgets.c.dataset == bindparam("dataset"),
        privacy_budgets.c.party.in_(bindparam("parties", expanding=True)),
    )
    .order_by(privacy_budgets.c.party)
    .with_for_update()
)
_CHARGED = select(privacy_charges.c.party, privacy_charges.c.variant).where(
    privacy_charges.c.dataset == bindparam("dataset"),
    privacy_charges.c.party.in_(bindparam("parties", expanding=True)),
    privacy_charges.c.variant.in_(bindparam("variants", expanding=True)),
)
_SPEND = (
    update(privacy_budgets)
    .where(privacy_budgets.c.id == bindparam("budget_id"))
    .values(spent=bindparam("spent"), warned=bindparam("warned"), updated_at=bindparam("now"))
)


def _budget(session: Session, party: str, dataset: str, *, lock: bool) -> Budget:
    """The party's budget row for `dataset`; when `lock`, made (at zero) if missing and locked
    for this transaction (otherwise read as is, a missing row reading as nothing spent)."""
    key = {"party": party, "dataset": dataset}
    if not lock:
        found = session.execute(_BUDGET, key).first()
        if found is None:
            return Budget(0, 0.0, False)
        return Budget(int(found.id), float(found.spent), bool(found.warned))
    found = session.execute(_LOCKED_BUDGET, key).first()
    if found is None:
        try:
            with session.begin_nested():
                session.execute(
                    insert(privacy_budgets).values(
                        party=party, dataset=dataset, spent=0.0, warned=False, updated_at=now()
                    )
                )
        except IntegrityError:
            pass  # made by a concurrent first answer
        found = session.execute(_LOCKED_BUDGET, key).one()
    return Budget(int(found.id), float(found.spent), bool(found.warned))


@dataclass(frozen=True, slots=True)
class Budget:
    """A party's budget row, as read."""

    id: int
    spent: float
    warned: bool


def budget_spent(factory: sessionmaker[Session], *, party: str, dataset: str) -> float:
    """What `party` ("account:<id>", "address:<ip>", "institution:<accession>" or
    "period:<first day>") has spent on `dataset`."""
    with factory() as session:
        spent = session.execute(
            select(privacy_budgets.c.spent).where(
                privacy_budgets.c.party == party, privacy_budgets.c.dataset == dataset
            )
        ).scalar()
    return float(spent or 0.0)
