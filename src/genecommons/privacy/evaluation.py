"""The attack tool's use case: draw victims, run the attacks against Beacons, score answers.

Members are people of the dataset's cohort VCF; non-members are people of the reference panel
held out from the attacker's panel (the attacker's frequencies and LD come from the rest of the
panel, so that a non-member is never part of the attacker's own data) and never people whose
counts are the node's public reference (they would shift the windows the reference places).
The attacker who knows the defence knows the public reference too (`known_rule`). The count
tier's sybil attacker (`sybil_curves`) is that attacker with many accounts of one institution,
each at its own address, on a ledger of its own per victim, against the per-caller budgets and
the pooled ones.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
from sqlalchemy import delete
from sqlalchemy.orm import Session, sessionmaker

from genecommons.config import Settings
from genecommons.db import Base, make_engine, make_session_factory, write_transaction
from genecommons.errors import InvalidInputError, NotFoundError
from genecommons.policy.decision import require
from genecommons.policy.models import Action, Resource, Subject
from genecommons.privacy import attack, linkage
from genecommons.privacy.beacon_guard import ThresholdRule, is_spent
from genecommons.privacy.cohort_size import Scope, SizeRule
from genecommons.privacy.guards import DefendedGuard, parties
from genecommons.privacy.oracles import (
    Genotypes,
    HttpOracle,
    StoreOracle,
    read_dosages,
    read_haplotypes,
)
from genecommons.privacy.tables import privacy_budgets, privacy_charges
from genecommons.progress import SILENT, Progress
from genecommons.variants import store_service
from genecommons.variants.answers import (
    HIDE_RARE_BELOW,
    Granularity,
    VariantGuard,
    exact_answer,
    hide_rare_answer,
)
from genecommons.variants.normalize import Variant
from genecommons.variants.store import SiteCounts

logger = logging.getLogger(__name__)

# variant lists -> answers, for the account named
Exists = Callable[[Sequence[Variant], str], npt.NDArray[np.int8]]


@dataclass(frozen=True, slots=True)
class Victims:
    """The people attacked and the attacker's knowledge."""

    variants: tuple[Variant, ...]
    members: npt.NDArray[np.int8]  # sites x members attacked
    outsiders: npt.NDArray[np.int8]  # sites x non-members attacked
    reference: npt.NDArray[np.int8]  # sites x the attacker's panel
    frequencies: npt.NDArray[np.float64]  # the attacker's allele frequencies
    haplotypes: npt.NDArray[np.uint8] | None = None  # sites x 2 * the attacker's panel, phased
    positions: npt.NDArray[np.int64] | None = None  # of the sites, for the linkage attack


def draw_victims(
    cohort: Path,
    panel: Path,
    *,
    victims: int,
    seed: int,
    outsiders: int | None = None,
    public: Sequence[str] = (),
) -> Victims:
    """`victims` members from `cohort` and `outsiders` (as many, unless given) non-members
    from `panel`, never one of the `public` people (those whose counts are in the node's public
    reference); the rest of the panel, the public people with it, is the attacker's."""
    outsiders = victims if outsiders is None else outsiders
    members = read_dosages(cohort)
    reference = read_dosages(panel, sites=members.variants)
    in_public = np.isin(np.asarray(reference.people), np.asarray(list(public), dtype=str))
    unknown = sorted(set(public) - set(reference.people))
    if unknown:
        raise InvalidInputError(
            f"{len(unknown)} people of the public reference are not in the panel {panel} "
            f"(first: {unknown[0]}); give the panel the public counts were taken from.",
            message_zh=f"公共参考中有 {len(unknown)} 人不在参考面板 {panel} 中（首个：{unknown[0]}）；"
            "请给出公共计数所取自的面板。",
        )
    drawable = np.flatnonzero(~in_public)
    if len(drawable) < outsiders or len(reference.people) < outsiders + 10:
        raise InvalidInputError(
            f"The reference panel holds {len(reference.people)} people, {len(drawable)} of them "
            f"outside the public reference: too few for {outsiders} non-member victims plus an "
            "attacker's panel.",
            message_zh=f"参考面板只有 {len(reference.people)} 人（其中公共参考以外 {len(drawable)} 人），"
            f"不足以提供 {outsiders} 名非成员受试者和攻击者面板。",
        )
    if len(members.people) < victims:
        raise InvalidInputError(
            f"The cohort holds {len(members.people)} people, fewer than {victims} victims.",
            message_zh=f"队列只有 {len(members.people)} 人，少于 {victims} 名受试者。",
        )
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(len(members.people), size=victims, replace=False))
    if len(drawable) == len(reference.people):  # as drawn before public references existed
        order = rng.permutation(len(reference.people))
        held_out, attacker = np.sort(order[:outsiders]), np.sort(order[outsiders:])
    else:
        held_out = np.sort(rng.choice(drawable, size=outsiders, replace=False))
        attacker = np.setdiff1d(np.arange(len(reference.people)), held_out)
    own = reference.dosages[:, attacker]
    _, haplotypes = read_haplotypes(panel, sites=members.variants)
    return Victims(
        variants=members.variants,
        members=members.dosages[:, chosen],
        outsiders=reference.dosages[:, held_out],
        reference=own,
        frequencies=attack.frequencies(own),
        haplotypes=haplotypes[:, np.ravel(np.stack([2 * attacker, 2 * attacker + 1], axis=1))],
        positions=np.array([v.pos for v in members.variants], dtype=np.int64),
    )


@dataclass(frozen=True, slots=True)
class Figures:
    """Everything the tool measured, for the table, the plot and the JSON."""

    beacon_size: int
    victims: int
    outsiders: int = 0  # non-member victims (as many as members unless told)
    curves: dict[str, list[attack.Curve]] = field(default_factory=dict)  # per Beacon
    inference: dict[str, dict[str, float]] = field(default_factory=dict)  # per Beacon
    correctness: dict[str, attack.Correctness] = field(default_factory=dict)
    queries_made: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> str:
        """The figures as JSON."""
        return json.dumps(
            {
                "beacon_size": self.beacon_size,
                "victims": self.victims,
                "outsiders": self.outsiders or self.victims,
                "curves": {b: [asdict(c) for c in curves] for b, curves in self.curves.items()},
                "von_thenen": self.inference,
                "correctness": {b: asdict(c) for b, c in self.correctness.items()},
                "queries_made": self.queries_made,
            },
            indent=1,
        )


def asker(victims: Victims, exists: Exists, *, fresh_accounts: bool) -> attack.Ask:
    """An attack.Ask over `exists`: one account for every victim, or a fresh one each."""

    def ask(victim: int, sites: npt.NDArray[np.int64]) -> npt.NDArray[np.int8]:
        account = f"attacker-{victim}@example.org" if fresh_accounts else "attacker@example.org"
        return exists([victims.variants[int(s)] for s in sites], account)

    return ask


def evaluate(
    victims: Victims,
    beacons: dict[str, Exists],
    *,
    beacon_size: int,
    seed: int,
    truth: Exists,
    rules: dict[str, attack.Rule] | None = None,
    counts: Callable[[Sequence[Variant]], tuple[npt.NDArray[np.int64], ...]] | None = None,
    queries: Sequence[int] = attack.QUERY_COUNTS,
    correctness_sites: int = 20_000,
    progress: Progress = SILENT,
) -> Figures:
    """Run SB and rarest-first (one account, and a fresh account per victim), von Thenen, and
    (for the Beacons in `rules`, with the thresholds' chances the attacker knows) an attacker who
    knows the defence, against every Beacon; score each Beacon's answers when the true counts
    are known."""
    figures = Figures(
        beacon_size=beacon_size,
        victims=victims.members.shape[1],
        outsiders=victims.outsiders.shape[1],
    )
    truth_ask = asker(victims, truth, fresh_accounts=False)
    people = np.concatenate([victims.members, victims.outsiders], axis=1)
    inferred = linked(victims, people, seed=seed)
    for name, exists in beacons.items():
        # SB and rarest-first by one or fresh accounts, von Thenen twice, the rule-aware
        # attacker, the answers' correctness
        steps = 6 + bool(rules and name in rules) + (counts is not None)
        with progress.stage(f"attacking the {name} Beacon", total=steps, unit="attacks") as step:
            curves = []
            for fresh in (False, True):
                for rarest in (False, True):
                    label = ("rarest-first" if rarest else "SB") + (
                        ", fresh account per victim" if fresh else ", one account"
                    )
                    logger.info("%s: %s", name, label)
                    curves.append(
                        attack.run_attack(
                            label,
                            members=victims.members,
                            outsiders=victims.outsiders,
                            f=victims.frequencies,
                            beacon_size=beacon_size,
                            ask=asker(victims, exists, fresh_accounts=fresh),
                            rarest_first=rarest,
                            seed=seed,
                            queries=queries,
                        )
                    )
                    step.advance()
            found, partners = (
                linkage.von_thenen(
                    inferred,
                    victims=people,
                    members=victims.members.shape[1],
                    reference=victims.reference,
                    beacon_size=beacon_size,
                    ask=asker(victims, exists, fresh_accounts=True),
                    truth=lambda sites: truth_ask(0, sites),
                    rule=(rules or {}).get(name, attack.EXACT),
                    # the paper's reading of a withheld answer: the shown site's in strongest LD
                    name="von Thenen, withheld answers from LD partners"
                    if from_ld
                    else "von Thenen",
                    from_partners=from_ld,
                )
                for from_ld in (False, True)
            )
            step.advance(2)
            curves += [found.curve, partners.curve]
            if rules and name in rules:
                curves.append(
                    attack.run_rule_aware_attack(
                        "knows the rule, fresh account per victim",
                        members=victims.members,
                        outsiders=victims.outsiders,
                        reference=victims.reference,
                        beacon_size=beacon_size,
                        ask=asker(victims, exists, fresh_accounts=True),
                        thresholds=rules[name],
                        queries=queries,
                    )
                )
                step.advance()
            figures.curves[name] = curves
            figures.inference[name] = {
                "allele_accuracy": found.accuracy,
                "answer_accuracy": found.answer_accuracy,
                "confident_accuracy": found.confident_accuracy,
                "confident": found.confident,
                "prior_accuracy": found.prior_accuracy,
                "power_at_5_queries": found.curve.power[found.curve.queries.index(5)],
                "power_max": max(found.curve.power),
            }
            if counts is not None:
                figures.correctness[name] = score(victims, exists, counts, correctness_sites, seed)
                step.advance()
    return figures


def linked(victims: Victims, people: npt.NDArray[np.int8], *, seed: int) -> linkage.Inferred:
    """The linkage attacker's inference of the victims' hidden alleles (once for every Beacon),
    from its phased panel."""
    if victims.haplotypes is None or victims.positions is None:
        raise InvalidInputError(
            "The linkage attack needs the attacker's panel phased, with the sites' positions.",
            message_zh="连锁攻击需要攻击者的已定相参考面板及位点位置。",
        )
    logger.info("von Thenen: inferring hidden alleles")
    return linkage.infer(
        people,
        reference=victims.reference,
        haplotypes=victims.haplotypes,
        positions=victims.positions,
        seed=seed,
    )


def score(
    victims: Victims,
    exists: Exists,
    counts: Callable[[Sequence[Variant]], tuple[npt.NDArray[np.int64], ...]],
    sites: int,
    seed: int,
) -> attack.Correctness:
    """Answers about a sample of the dataset's sites, and about as many alleles it does not
    hold (another alternate base at the same site), against the true counts."""
    rng = np.random.default_rng(seed)
    chosen = rng.choice(
        len(victims.variants), size=min(sites, len(victims.variants)), replace=False
    )
    held = [victims.variants[int(i)] for i in chosen]
    absent = []
    for v in held:
        other = next(b for b in "ACGT" if b not in (v.ref, v.alt))
        absent.append(Variant(v.chrom, v.pos, v.ref, other))
    asked = held + absent
    ac, an = counts(asked)
    answers = exists(asked, "correctness@example.org")
    return attack.correctness(ac, np.maximum(an, 1), answers)


def plot(figures: Figures, path: Path) -> None:
    """Power at 5% false positives against queries, one panel per attack, a line per Beacon."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(c.name for cs in figures.curves.values() for c in cs))
    columns = min(3, len(names))
    rows = -(-len(names) // columns)
    fig, axes = plt.subplots(
        rows, columns, figsize=(4.2 * columns, 3.4 * rows), sharey=True, squeeze=False
    )
    for ax in axes.flat[len(names) :]:
        ax.set_visible(False)
    for ax, name in zip(axes.flat, names, strict=False):
        for beacon, curves in figures.curves.items():
            curve = next((c for c in curves if c.name == name), None)
            if curve is None:  # an attack run against some Beacons only (the sybils)
                continue
            (line,) = ax.plot(curve.queries, curve.power, marker="o", label=beacon)
            if curve.low:
                ax.fill_between(
                    curve.queries, curve.low, curve.high, color=line.get_color(), alpha=0.15
                )
        ax.axhline(0.1, color="grey", linestyle=":", linewidth=1)
        ax.axhline(0.05, color="grey", linestyle="--", linewidth=0.8)
        ax.set_xscale("log")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("queries per victim")
        ax.set_ylim(-0.02, 1.02)
    for ax in axes[:, 0]:
        ax.set_ylabel("power at 5% false-positive rate")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(
        f"Beacon membership attacks, {figures.beacon_size} members, "
        f"{figures.victims} + {figures.outsiders or figures.victims} victims"
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


SYBIL_INSTITUTION = "GCI-SYBIL"  # the attacker's verified institution


def sybil_identities(sybils: int) -> list[tuple[Subject, str]]:
    """The sybil attacker's `sybils` accounts, all of its one verified institution, each with
    its own network address (TEST-NET-2)."""
    if not 1 <= sybils <= 250:
        raise InvalidInputError(
            f"{sybils} sybil accounts: give 1 to 250.",
            message_zh=f"女巫账号数 {sybils}：请给 1 至 250。",
        )
    return [
        (
            Subject.user(
                f"sybil-{i}@attacker.example.org",
                roles=frozenset({"researcher"}),
                institution=SYBIL_INSTITUTION,
                institution_verified=True,
            ),
            f"198.51.100.{i}",
        )
        for i in range(sybils)
    ]


def scratch_ledgers(
    settings: Settings, rule: ThresholdRule, *, pooled: bool
) -> Callable[[], DefendedGuard]:
    """Guards with the node's rule and budgets over a ledger of their own (an in-memory
    database, emptied for each new guard, never the node's): charged per caller (account and
    address) only, or `pooled` as the Beacon charges (its institution and the period too)."""
    engine = make_engine("sqlite://")
    Base.metadata.create_all(engine)
    factory = make_session_factory(engine)

    def fresh() -> DefendedGuard:
        with write_transaction(factory) as session:
            session.execute(delete(privacy_charges))
            session.execute(delete(privacy_budgets))
        return DefendedGuard(factory, settings, rule=rule, charged=None if pooled else parties)

    return fresh


def sybil_asker(
    variants: Sequence[Variant],
    site_of: Callable[[Variant], SiteCounts | None],
    ledgers: Callable[[], VariantGuard],
    *,
    sybils: int,
    dataset: str,
) -> attack.Ask:
    """An attack.Ask of the count tier's sybil attacker: for each victim, a fresh attacker (a
    ledger of its own) asks each site through its first account whose budgets are not spent,
    moving to the next account (and address) when told a budget is spent, until every one is
    (the rest `attack.REFUSED`); the answers of all accounts are pooled in one test."""
    identities = sybil_identities(sybils)

    def ask(victim: int, sites: npt.NDArray[np.int64]) -> npt.NDArray[np.int8]:
        del victim  # every victim gets a fresh attacker: its own ledger
        guard = ledgers()
        out = np.full(len(sites), attack.REFUSED, dtype=np.int8)
        current = 0
        for i, s in enumerate(sites):
            found = site_of(variants[int(s)])
            while current < len(identities):
                subject, address = identities[current]
                told = guard(
                    subject=subject,
                    address=address,
                    dataset=dataset,
                    granularity=Granularity.COUNT,
                    matches=[found] if found else [],
                )
                if not is_spent(told):
                    out[i] = told.exists
                    break
                current += 1
            if current == len(identities):
                break
        return out

    return ask


def sybil_curves(
    victims: Victims,
    site_of: Callable[[Variant], SiteCounts | None],
    settings: Settings,
    rule: ThresholdRule,
    known: attack.Rule,
    *,
    sybils: int,
    beacon_size: int,
    dataset: str,
    queries: Sequence[int] = attack.QUERY_COUNTS,
    progress: Progress = SILENT,
) -> dict[str, list[attack.Curve]]:
    """The sybil attacker (`sybils` accounts and addresses of one institution, knowing the
    rule) against the count tier, by Beacon: "count, per-caller budgets" (each account and
    address its own budget) and "count, pooled budgets" (as served: the institution's and the
    period's budgets too). `site_of`: the dataset's counts of a variant."""
    out: dict[str, list[attack.Curve]] = {}
    for pooled in (False, True):
        beacon = "count, pooled budgets" if pooled else "count, per-caller budgets"
        with progress.stage(f"attacking the {beacon} Beacon with {sybils} sybils"):
            out[beacon] = [
                attack.run_rule_aware_attack(
                    f"{sybils} sybils of one institution, knows the rule",
                    members=victims.members,
                    outsiders=victims.outsiders,
                    reference=victims.reference,
                    beacon_size=beacon_size,
                    ask=sybil_asker(
                        victims.variants,
                        site_of,
                        scratch_ledgers(settings, rule, pooled=pooled),
                        sybils=sybils,
                        dataset=dataset,
                    ),
                    thresholds=known,
                    queries=queries,
                )
            ]
    return out


def http_exists(oracle: HttpOracle) -> Exists:
    """`oracle`'s answers as an Exists."""
    return lambda vs, account: oracle.exists(vs, account=account)


def genotypes_summary(genotypes: Genotypes) -> str:
    """One line about a genotype matrix (for logs)."""
    return f"{len(genotypes.variants):,} sites x {len(genotypes.people):,} people"


def hide_cut(samples: int) -> int:
    """The copies an allele needs to be shown by the hide-rare Beacon of `samples` people
    (diploid: 2 alleles each)."""
    return max(1, math.ceil(HIDE_RARE_BELOW * 2 * samples - 1e-9))


def known_rule(
    rule: ThresholdRule,
    variants: Sequence[Variant],
    *,
    alleles: int,
    dataset: str | None = None,
    sizes: SizeRule | None = None,
) -> attack.Rule:
    """What an attacker who knows the defence but not its key knows of it about `variants`, in
    `dataset` of `alleles` called alleles: the thresholds and their chances, per site when the
    node's public reference (which is public) places the dataset's windows; with `sizes`, the
    scope of a small dataset (privacy/cohort_size.py): a threshold of 1 copy for the alleles
    answered, one above every count for the others."""
    scope = Scope.FULL
    if sizes is not None:
        scope = sizes.scope(alleles // 2, placed=dataset is not None and rule.places(dataset))
    if scope is not Scope.FULL:
        never = alleles + 1
        reference = rule.reference
        if scope is Scope.NONE or reference is None:
            return attack.Thresholds((never,), (1.0,))
        said = np.zeros(len(variants), dtype=np.int64)
        for i, variant in enumerate(variants):
            found = reference.get(variant.key)
            said[i] = found is not None and sizes is not None and sizes.certain(*found, alleles - 2)
        scoped = (attack.Thresholds((never,), (1.0,)), attack.Thresholds((1,), (1.0,)))
        return attack.SiteThresholds(scoped, said)
    if not rule.places(dataset):
        return attack.Thresholds(tuple(range(rule.low, rule.high + 1)), rule.pmf)
    index: dict[tuple[int, ...], int] = {}
    rules: list[attack.Thresholds] = []
    of_site = np.zeros(len(variants), dtype=np.int64)
    for i, variant in enumerate(variants):
        values, chances = rule.thresholds(variant.key, alleles, dataset)
        if values not in index:
            index[values] = len(rules)
            rules.append(attack.Thresholds(values, chances))
        of_site[i] = index[values]
    return attack.SiteThresholds(tuple(rules), of_site)


def demo_public_people(demo: Path) -> tuple[str, ...]:
    """The demo's panel people whose counts are its public reference (truth.json), if any."""
    path = demo / "truth.json"
    if not path.exists():
        return ()
    truth = json.loads(path.read_text(encoding="utf-8"))
    public = truth.get("public_frequencies") or {}
    return tuple(str(name) for name in public.get("samples", ()))


def attack_beacon(
    settings: Settings,
    factory: sessionmaker[Session],
    *,
    subject: Subject,
    cohort: Path,
    panel: Path,
    dataset: str,
    urls: Mapping[str, str] | None = None,
    token: str | None = None,
    victims: int = 100,
    outsiders: int | None = None,
    seed: int = 1,
    queries: Sequence[int] = attack.QUERY_COUNTS,
    correctness_sites: int = 20_000,
    public: Sequence[str] = (),
    sybils: int = 0,
    progress: Progress = SILENT,
) -> Figures:
    """Attack the dataset's store undefended (the exact answer) and through the defended guard,
    in process, and the Beacon v2 servers of `urls` (name -> base URL) when given; with
    `sybils`, the count tier's sybil attacker too (`sybil_curves`). Reading the store and the
    genotypes is record-level access: the decision point must allow it. `public`: the panel's
    people whose counts are in the node's public reference (never non-members)."""
    require(subject, Action.READ_RECORDS, Resource("dataset", dataset))
    with progress.stage("drawing victims and outsiders"):
        drawn = draw_victims(
            cohort, panel, victims=victims, outsiders=outsiders, seed=seed, public=public
        )
    with factory() as session:
        variant_store = store_service.open_store(session, settings, dataset)
    if variant_store is None:
        raise NotFoundError(
            f"Dataset {dataset} has no variant store; submit its analysis VCF first.",
            message_zh=f"数据集 {dataset} 没有变异库；请先提交其分析 VCF。",
        )
    exact = StoreOracle(variant_store, exact_answer, dataset=dataset)
    guard = DefendedGuard(factory, settings)
    defended = StoreOracle(variant_store, guard, dataset=dataset)
    hidden = StoreOracle(variant_store, hide_rare_answer, dataset=dataset)
    beacons: dict[str, Exists] = {
        "undefended": lambda vs, account: exact.exists(vs, account=account),
        "hide-rare": lambda vs, account: hidden.exists(vs, account=account),
        "defended": lambda vs, account: defended.exists(vs, account=account),
    }
    oracles: dict[str, StoreOracle | HttpOracle] = {
        "undefended": exact,
        "hide-rare": hidden,
        "defended": defended,
    }
    served = {name: HttpOracle(url, token=token) for name, url in (urls or {}).items()}
    for name, http in served.items():
        beacons[name] = http_exists(http)
        oracles[name] = http
    # the attacker knows the rule's chances (and the public reference), not its key
    defence = known_rule(
        guard.rule,
        drawn.variants,
        alleles=2 * variant_store.samples,
        dataset=dataset,
        sizes=guard.sizes,
    )
    try:
        figures = evaluate(
            drawn,
            beacons,
            beacon_size=variant_store.samples,
            seed=seed,
            truth=lambda vs, account: exact.exists(vs, account="truth"),
            rules={
                "undefended": attack.EXACT,  # the exact answer: a threshold of one copy
                # alleles under 5% hidden: a threshold of 5% of the alleles called
                "hide-rare": attack.Thresholds((hide_cut(variant_store.samples),), (1.0,)),
                "defended": defence,
                **dict.fromkeys(served, defence),  # the attacker assumes the node's rule
            },
            counts=exact.counts,
            queries=queries,
            correctness_sites=correctness_sites,
            progress=progress,
        )
    finally:
        for http in served.values():
            http.close()
    figures.queries_made.update({name: o.asked for name, o in oracles.items()})
    if sybils:
        figures.curves.update(
            sybil_curves(
                drawn,
                exact.site,
                settings,
                guard.rule,
                defence,
                sybils=sybils,
                beacon_size=variant_store.samples,
                dataset=dataset,
                queries=queries,
                progress=progress,
            )
        )
    return figures
