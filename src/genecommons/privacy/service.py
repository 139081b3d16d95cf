"""Use cases of privacy: the defended Beacon guard and its ledger, the Beacon's key.

`DefendedGuard` is the `VariantGuard` the Beacon uses below record granularity. Boolean answers
(the open tier) follow the keyed threshold rule alone: they are safe by themselves, so an
attacker gains nothing from a fresh account or address per victim. Count answers (the registered
tier) follow the same rule and are also charged to a ledger: each variant an account, and the
address it calls from, is answered about costs the chance that one member decided that answer
(`ThresholdRule.exposure`, after Raisaro et al. 2017's per-participant risk), once per variant;
when either has spent `beacon_budget`, every further answer is withheld, and passing
`beacon_budget_warning` of it records `privacy:budget:low` for the early-warning rules.

`DefendedPeople` is the `PeopleGuard`: counts of individuals and biosamples below record
granularity carry keyed, consistent noise and small cells are not disclosed (privacy/cells.py).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import logging
import os
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final, Literal

from sqlalchemy import Float, String, bindparam, cast, insert, null, select, union_all, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from genecommons.access.workflow import dataset_resource, missing_dataset
from genecommons.clock import now
from genecommons.config import Settings
from genecommons.db import GroupCommit, Prepared, write_transaction
from genecommons.errors import ConfigurationError, NotFoundError
from genecommons.ledger.events import EventTag, record_event
from genecommons.policy.decision import decide, require, require_visible, visible
from genecommons.policy.models import Action, Resource, Subject, SubjectKind
from genecommons.privacy.beacon_guard import (
    PublicCounts,
    ThresholdRule,
    rule_answer,
    spent_answer,
)
from genecommons.privacy.cells import CellRule, people_answer
from genecommons.privacy.dp import FrequencyRow, exact_rows, noisy_counts, shown_rows
from genecommons.privacy.fit import ReferenceFit, reference_fit
from genecommons.privacy.tables import privacy_budgets, privacy_charges, privacy_releases
from genecommons.secrets import (
    NodeKeys,
    create_sealed_file,
    node_keys,
    read_sealed_file,
    seal_file_in_place,
)
from genecommons.variants import store_service
from genecommons.variants.answers import DatasetAnswer, Granularity, exact_answer, exact_people
from genecommons.variants.manifest import SHARED
from genecommons.variants.normalize import Variant, parse_key
from genecommons.variants.reference import ReferenceCounts
from genecommons.variants.service import open_reference
from genecommons.variants.store import SiteCounts, VariantStore
from genecommons.variants.store_service import store_path

logger = logging.getLogger(__name__)

KEY_BYTES = 32


BEACON_KEY_PURPOSE = "beacon-threshold-key"


def beacon_key(settings: Settings, *, create: bool = False) -> bytes:
    """The key of the threshold PRF, kept sealed by the node key store (made when `create` and
    none exists; workers starting together agree on one key). A plaintext file of an earlier
    version is read as is until `seal_beacon_key`."""
    path = settings.beacon_key_file
    if create and not path.exists():
        create_sealed_file(
            path,
            node_keys(settings, create=True),
            purpose=BEACON_KEY_PURPOSE,
            make=lambda: secrets.token_bytes(KEY_BYTES),
        )
    if not path.exists():
        raise ConfigurationError(
            f"The Beacon's threshold key {path} is missing; run `genecommons init`.",
            message_zh=f"缺少 Beacon 阈值密钥 {path}；请运行 `genecommons init`。",
        )
    key = read_sealed_file(path, lambda: node_keys(settings), purpose=BEACON_KEY_PURPOSE)
    if len(key) < KEY_BYTES:
        raise ConfigurationError(
            f"The Beacon's threshold key {path} is shorter than {KEY_BYTES} bytes; remove it "
            "and run `genecommons init` to make a new one.",
            message_zh=f"Beacon 阈值密钥 {path} 短于 {KEY_BYTES} 字节；请删除后运行 `genecommons init` 重新生成。",
        )
    return key


def seal_beacon_key(settings: Settings, keys: NodeKeys) -> bool:
    """Seal a threshold key an earlier version wrote in plaintext (its value, and so the
    Beacon's windows, unchanged); whether there was one to seal."""
    return seal_file_in_place(settings.beacon_key_file, keys, purpose=BEACON_KEY_PURPOSE)


NODE: Final = "node"  # threshold_rule's reference: the node's, where it suits


def threshold_rule(
    settings: Settings,
    key: bytes | None = None,
    *,
    reference: PublicCounts | Literal["node"] | None = NODE,
) -> ThresholdRule:
    """The rule the settings configure (with the node's key unless one is given). Windows are
    placed by the node's public reference for the datasets it was checked to suit
    (`check_reference`), or by `reference`, for every dataset, when one is given."""
    placed: frozenset[str] | None = None
    counts: PublicCounts | None
    if isinstance(reference, str):  # NODE
        node = open_reference(settings)
        placed = suited_datasets(settings, node) if node is not None else None
        counts = node
    else:
        counts = reference
    return ThresholdRule(
        key=key if key is not None else beacon_key(settings),  # made by `genecommons init`
        low=settings.beacon_threshold_min,
        high=settings.beacon_threshold_max,
        alpha=settings.beacon_threshold_alpha,
        beta=settings.beacon_threshold_beta,
        reference=counts,
        window_size=settings.beacon_threshold_window,
        placed=placed,
    )


def fit_path(settings: Settings, dataset: str) -> Path:
    """Where the check of the public reference against `dataset` is recorded."""
    return settings.data_dir / "privacy" / "reference-fit" / f"{dataset}.json"


def _store_identities(settings: Settings, dataset: str) -> set[str]:
    """The ids of the stores on disk that may be `dataset`'s: a rebuilt store has a new id
    (never reused); a dataset rebuilt out of a store it shared has a store of its own name."""
    own = store_service.store_id_at(store_path(settings, dataset))
    if own is not None:
        return {own}
    shared = (
        store_service.store_id_at(path)
        for path in store_service.stores_root(settings).glob(f"*{SHARED}*")
        if dataset in path.name.split(SHARED)
    )
    return {found for found in shared if found}


def _rule_settings(settings: Settings) -> dict[str, float]:
    return {
        "low": settings.beacon_threshold_min,
        "high": settings.beacon_threshold_max,
        "alpha": settings.beacon_threshold_alpha,
        "beta": settings.beacon_threshold_beta,
        "window": settings.beacon_threshold_window,
    }


def suited_datasets(settings: Settings, reference: ReferenceCounts) -> frozenset[str]:
    """The datasets the node's public reference was checked to suit, for this reference, this
    store and these rule settings (a check of anything else no longer counts)."""
    folder = settings.data_dir / "privacy" / "reference-fit"
    suited = set()
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else ():
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            current = (
                record["reference_sha256"] == reference.source.sha256
                and record["rule"] == _rule_settings(settings)
                and record["store"] in _store_identities(settings, record["dataset"])
            )
        except (OSError, ValueError, KeyError, TypeError):
            logger.warning("ignoring an unreadable reference check %s", path)
            continue
        if current and record["suits"]:
            suited.add(str(record["dataset"]))
    return frozenset(suited)


def datasets_with_stores(factory: sessionmaker[Session], settings: Settings) -> list[str]:
    """The catalog's datasets that have a variant store, by accession."""
    with factory() as session:
        return _datasets_with_stores(session, settings)


def check_reference(
    factory: sessionmaker[Session], settings: Settings, *, subject: Subject, dataset: str
) -> ReferenceFit:
    """Check whether the node's public reference suits `dataset` (windows placed by it must at
    least halve what the dataset's alleles expose: privacy/fit.py), record the result, which
    decides whether the Beacon places the dataset's windows by the reference from its next
    start, and audit it. Reads every exact count of the dataset: the decision point must allow
    record-level access."""
    require(subject, Action.READ_RECORDS, Resource("dataset", dataset))
    reference = open_reference(settings)
    if reference is None:
        raise ConfigurationError(
            "No public reference is loaded; run `genecommons variants load-reference VCF` first.",
            message_zh="尚未载入公共参考；请先运行 `genecommons variants load-reference VCF`。",
        )
    with factory() as session:
        store = store_service.open_store(session, settings, dataset)
    if store is None:
        raise NotFoundError(
            f"Dataset {dataset} has no variant store; submit its analysis VCF first.",
            message_zh=f"数据集 {dataset} 没有变异库；请先提交其分析 VCF。",
        )
    fit = reference_fit(threshold_rule(settings, reference=reference), store.all_sites())
    record = {
        "dataset": dataset,
        "reference_sha256": reference.source.sha256,
        "reference": reference.source.file,
        "store": store.binding.store_id,
        "rule": _rule_settings(settings),
        "suits": fit.suits,
        "ratio": fit.ratio,
        **{k: getattr(fit, k) for k in ("sites", "listed", "placed", "unplaced")},
        "checked_at": now().isoformat(),
    }
    target = fit_path(settings, dataset)
    target.parent.mkdir(parents=True, exist_ok=True)
    aside = target.with_name(f".{target.name}.{secrets.token_hex(8)}")
    with write_transaction(factory) as session:
        record_event(
            session,
            tag=EventTag.REFERENCE_CHECKED,
            actor=subject.id,
            subject=dataset,
            details={k: record[k] for k in ("reference_sha256", "suits", "ratio", "sites")},
        )
        session.flush()
        # the event is flushed first: one that cannot be written leaves the old record (a
        # commit failing after the replace would leave the new record without its event)
        try:
            aside.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
            os.replace(aside, target)
        finally:
            aside.unlink(missing_ok=True)
    return fit


def cell_rule(settings: Settings, key: bytes | None = None) -> CellRule:
    """The noise and smallest count of people the settings configure (its key derived from the
    node's Beacon key unless one is given)."""
    base = key if key is not None else beacon_key(settings)
    return CellRule(
        key=hmac.new(base, b"genecommons people cells", hashlib.sha256).digest(),
        minimum=settings.beacon_people_min_cell,
        scale=settings.beacon_people_noise,
    )


class DefendedPeople:
    """What a caller below record granularity is told of a dataset's people (a `PeopleGuard`)."""

    def __init__(self, settings: Settings, *, rule: CellRule | None = None) -> None:
        self.rule = rule or cell_rule(settings)

    def __call__(self, granularity: Granularity, records: Sequence[str]) -> DatasetAnswer:
        """The consistent-noise, small-cell-suppressed answer about `records`."""
        if granularity is Granularity.RECORD:
            return exact_people(granularity, records)
        return people_answer(self.rule, granularity, records)


def parties(subject: Subject, address: str) -> list[tuple[str, str]]:
    """Who is charged for an answer: the account (signed-in callers) and the address, as
    (kind, id) pairs."""
    charged = [("address", address)]
    if subject.kind is not SubjectKind.ANONYMOUS:
        charged.insert(0, ("account", subject.id))
    return charged


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
        writes: GroupCommit | None = None,
    ) -> None:
        self.factory = factory
        self.settings = settings
        self.rule = rule or threshold_rule(settings)
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
        if granularity is Granularity.BOOLEAN:
            return rule_answer(self.rule, dataset=dataset, granularity=granularity, matches=matches)
        # common and absent alleles cost nothing (no member decides them): no writes for them
        exposures = {m.variant.key: e for m in matches if (e := self.rule.exposure(m, dataset)) > 0}
        charge = Charge(subject.id, tuple(parties(subject, address)), dataset, exposures)
        decided = self._read(charge)
        if decided is None:
            decided = self.writes.submit(self._charge_group, charge)
            if decided:  # committed: each of its variants is charged to each party now
                self._remember((p, dataset, k) for p in charge.names for k in exposures)
        if not decided:
            return spent_answer(granularity)
        return rule_answer(self.rule, dataset=dataset, granularity=granularity, matches=matches)

    def _remember(self, facts: Iterable[tuple[str, str, str]]) -> None:
        if len(self._known) > KNOWN_LIMIT:
            self._known = set()
        self._known.update(facts)

    def _read(self, charge: Charge) -> bool | None:
        """Decide `charge` by one read of the ledger: False when a party has spent its budget,
        True when nothing of it is new to any party, None when something is to be charged.
        Whether to answer depends only on what was spent before, never on this query's
        truth."""
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
        limit = self.settings.beacon_budget
        charged = []
        for party, spent, variant in statement.rows(params):
            if variant is None:
                if float(spent) >= limit:
                    return False
            else:
                charged.append((str(party), dataset, str(variant)))
        if not charge.exposures:
            return True
        seen = set(charged)
        if all((p, dataset, v) in seen for p in names for v in unknown):
            self._remember(seen)
            return True
        self._remember(seen)
        return None

    def _charge_group(self, session: Session, charges: Sequence[Charge]) -> list[bool]:
        """Charge each of `charges` in turn, in the caller's write transaction: each party for
        the variants new to it; False for a charge when one of its parties has spent its
        budget (then nothing of it is charged or answered). Passing `beacon_budget_warning` of
        the budget records `privacy:budget:low`, once per party and dataset."""
        limit = self.settings.beacon_budget
        warning = self.settings.beacon_budget_warning * limit
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
            if any(budgets[key].spent >= limit for key in keys):
                results.append(False)
                continue
            for (kind, party_id), key in zip(charge.parties, keys, strict=True):
                party = key[0]
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
            results.append(True)
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
    """What `party` ("account:<id>" or "address:<ip>") has spent on `dataset`."""
    with factory() as session:
        spent = session.execute(
            select(privacy_budgets.c.spent).where(
                privacy_budgets.c.party == party, privacy_budgets.c.dataset == dataset
            )
        ).scalar()
    return float(spent or 0.0)


# -- allele frequencies ----------------------------------------------------------------------

EXACT_NOTE = "Exact counts: an access grant in force covers this dataset."
EXACT_NOTE_ZH = "精确计数：有效的访问授权涵盖该数据集。"
NOISY_NOTE = (
    "Counts carry differential-privacy noise (epsilon {epsilon} per variant, drawn once and "
    "kept) and cells under {k} are shown as '< {k}'; an absent allele looks like a rare one."
)
NOISY_NOTE_ZH = (
    "计数含差分隐私噪声（每个变异 epsilon {epsilon}，只抽取一次并保存），小于 {k} 的单元显示为"
    "“< {k}”；不存在的等位基因与罕见等位基因显示相同。"
)


@dataclass(frozen=True, slots=True)
class DatasetFrequencies:
    """A variant's table in one dataset, as the caller may see it."""

    dataset: str
    variant: str
    exact: bool
    epsilon: float | None
    rows: list[FrequencyRow]
    note: str
    note_zh: str


def _datasets_with_stores(session: Session, settings: Settings) -> list[str]:
    return sorted(store_service.all_bindings(session))


def _site(store: VariantStore, variant: Variant) -> SiteCounts | None:
    """The variant in the store, under either chromosome spelling (22 or chr22)."""
    found = store.lookup(variant)
    if found is None:
        other = (
            variant.chrom.removeprefix("chr")
            if variant.chrom.startswith("chr")
            else f"chr{variant.chrom}"
        )
        found = store.lookup(replace(variant, chrom=other))
    return found


def _absent(store: VariantStore, variant: Variant) -> dict[str, dict[str, int]]:
    """The table of an allele the dataset does not hold: no copies, the allele numbers of the
    nearest site it does (so that it reads like a rare allele)."""
    chrom = variant.chrom
    near = None
    for name in (chrom, chrom.removeprefix("chr"), f"chr{chrom.removeprefix('chr')}"):
        near = next(
            store.overlapping(name, max(1, variant.pos - 100_000), variant.pos, limit=1), None
        )
        near = near or next(
            store.overlapping(name, variant.pos, variant.pos + 100_000, limit=1), None
        )
        if near:
            break
    return {
        g: {"ac": 0, "an": near.counts[g]["an"] if near else 0, "hom": 0, "hemi": 0}
        for g in store.groups
    }


def _release(
    session: Session, dataset: str, key: str, counts: Mapping[str, dict[str, int]], epsilon: float
) -> tuple[dict[str, dict[str, int]], float]:
    """The stored noisy table of the variant, drawn now if it has none yet."""
    query = select(privacy_releases.c.counts, privacy_releases.c.epsilon).where(
        privacy_releases.c.dataset == dataset, privacy_releases.c.variant == key
    )
    found = session.execute(query).first()
    if found is None:
        noisy = noisy_counts(counts, epsilon=epsilon)
        try:
            with session.begin_nested():
                session.execute(
                    insert(privacy_releases).values(
                        dataset=dataset,
                        variant=key,
                        epsilon=epsilon,
                        counts=noisy,
                        released_at=now(),
                    )
                )
        except IntegrityError:
            pass  # drawn by a concurrent request: that draw stands
        found = session.execute(query).one()
    return dict(found.counts), float(found.epsilon)


def variant_frequencies(
    factory: sessionmaker[Session],
    settings: Settings,
    *,
    subject: Subject,
    key: str,
    dataset: str | None = None,
) -> list[DatasetFrequencies]:
    """The table of the variant `chrom-pos-ref-alt` in each dataset the caller may see (or in
    `dataset`): exact with a grant in force (audited), noisy and suppressed on the aggregate
    tiers. Datasets the caller may not see, or may see no aggregates of, are left out, or
    refused when named (a dataset of a private study as if it did not exist)."""
    variant = parse_key(key)
    tables = []
    with write_transaction(factory) as session:
        accessions = [dataset] if dataset else _datasets_with_stores(session, settings)
        for accession in accessions:
            resource = dataset_resource(session, subject, accession)
            if not visible(subject, resource):
                if dataset:
                    require_visible(
                        subject,
                        Action.READ_AGGREGATES,
                        resource,
                        missing=missing_dataset(accession),
                    )
                continue
            records = decide(subject, Action.READ_RECORDS, resource)
            aggregates = (
                records if records.allowed else decide(subject, Action.READ_AGGREGATES, resource)
            )
            if not aggregates.allowed:
                if dataset:
                    require(subject, Action.READ_AGGREGATES, resource)
                continue
            store = store_service.open_store(session, settings, accession)
            if store is None:
                raise NotFoundError(
                    f"Dataset {accession} has no variant store yet.",
                    message_zh=f"数据集 {accession} 尚无变异库。",
                )
            found = _site(store, variant)
            if records.allowed:
                record_event(
                    session,
                    tag=EventTag.VARIANT_COUNTS_READ,
                    actor=subject.id,
                    subject=accession,
                    details={"variant": variant.key, "found": found is not None},
                )
                tables.append(
                    DatasetFrequencies(
                        accession,
                        variant.key,
                        exact=True,
                        epsilon=None,
                        rows=exact_rows(found.counts) if found else [],
                        note=EXACT_NOTE,
                        note_zh=EXACT_NOTE_ZH,
                    )
                )
                continue
            counts = found.counts if found else _absent(store, variant)
            noisy, epsilon = _release(
                session, accession, variant.key, counts, settings.frequency_epsilon
            )
            k = settings.frequency_min_cell
            tables.append(
                DatasetFrequencies(
                    accession,
                    variant.key,
                    exact=False,
                    epsilon=epsilon,
                    rows=shown_rows(noisy, min_cell=k),
                    note=NOISY_NOTE.format(epsilon=epsilon, k=k),
                    note_zh=NOISY_NOTE_ZH.format(epsilon=epsilon, k=k),
                )
            )
    return tables
