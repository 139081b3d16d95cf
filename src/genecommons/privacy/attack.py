"""Membership attacks on a Beacon, to measure what its answers reveal (pure numpy).

- Shringarpure & Bustamante 2015 (SB): the attacker holds a victim's genome, asks the Beacon
  about alleles the victim carries, and adds up the log-likelihood ratio of the answers under
  "the victim is one of the N members" against "the victim is not":
  a yes adds log((1 - d * D'(f)) / (1 - D(f))), a no adds log(d * D'(f) / D(f)), with
  D(f) = (1 - f)^(2N) the chance that none of N others carries an allele of frequency f,
  D'(f) = (1 - f)^(2N - 2) the same for the N - 1 others, and d the Beacon's error rate.
  SB ask in random order; Raisaro et al. 2017 ask the victim's rarest alleles first.
- von Thenen et al. 2019's linkage attack, on victims who hide their rare alleles, is in
  privacy/linkage.py.

The attacker's allele frequencies come from a reference panel; answers from an `Ask` callback
(an HTTP Beacon or a guard over a store), so the same code measures any Beacon. Power is the
share of members flagged when the flagging threshold lets 5% of non-members through, with its
95% bootstrap interval (`curve_of`). The attacker who knows the defence (`rule_aware_ratios`)
knows its thresholds and their chances (`Thresholds`), not its key. The sybil attacker of the
count tier is that attacker asking through many accounts (privacy/evaluation.py `sybil_asker`):
its answers withheld for spent budgets are `REFUSED` and add nothing to its test.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from genecommons.privacy import belief

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Dosages = npt.NDArray[np.int8]
# answers to the Beacon about sites (indices), for the victim with this index:
# 1 exists, 0 does not or withheld, REFUSED when every budget the attacker holds is spent
Ask = Callable[[int, Ints], npt.NDArray[np.int8]]
REFUSED = -1  # an answer withheld for a spent budget: it says nothing, and adds nothing

QUERY_COUNTS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
FALSE_POSITIVE_RATE = 0.05


@dataclass(frozen=True, slots=True)
class Curve:
    """Power at the false-positive rate after each number of queries."""

    name: str
    queries: tuple[int, ...]
    power: tuple[float, ...]
    extra: dict[str, float] = field(default_factory=dict)
    # the 95% bootstrap interval of each power (victims resampled), when measured
    low: tuple[float, ...] = ()
    high: tuple[float, ...] = ()


def frequencies(panel: Dosages) -> Floats:
    """Alternate allele frequency of each site (rows) in a panel of dosages (sites x people)."""
    called = panel.shape[1] * 2
    return np.asarray(panel.sum(axis=1, dtype=np.int64) / max(called, 1), dtype=np.float64)


def log_ratios(f: Floats, members: int, error: float = 1e-6) -> tuple[Floats, Floats]:
    """The SB log-likelihood ratio (member against not) that a yes and a no add, per allele
    of frequency `f` (clipped away from 0 and 1) in a Beacon of `members` people."""
    f = np.clip(f, 1e-6, 1 - 1e-6)
    log_none = 2 * members * np.log1p(-f)  # log D(f)
    log_none_but_one = (2 * members - 2) * np.log1p(-f)  # log D'(f)
    yes = np.log1p(-error * np.exp(log_none_but_one)) - np.log(-np.expm1(log_none))
    no = np.log(error) + log_none_but_one - log_none
    return np.asarray(yes), np.asarray(no)


def query_order(
    dosages: npt.NDArray[np.int8], f: Floats, *, rarest_first: bool, rng: np.random.Generator
) -> Ints:
    """The sites a victim (dosages per site) is asked about, in order: the alleles they carry,
    at random (SB) or rarest first by the attacker's frequencies (Raisaro et al.)."""
    carried = np.flatnonzero(dosages > 0)
    carried = carried[rng.permutation(len(carried))]
    if rarest_first:
        carried = carried[np.argsort(f[carried], kind="stable")]
    return np.asarray(carried, dtype=np.int64)


def statistics(
    orders: Sequence[Ints],
    answers: Sequence[npt.NDArray[np.int8]],
    f: Floats,
    *,
    members: int,
    queries: Sequence[int] = QUERY_COUNTS,
) -> Floats:
    """The SB statistic of each victim (rows) after each number of queries (columns); a victim
    with fewer alleles than asked keeps the statistic of all of them."""
    yes, no = log_ratios(f, members)
    out = np.zeros((len(orders), len(queries)))
    for v, (order, answer) in enumerate(zip(orders, answers, strict=True)):
        scores = np.where(answer[: len(order)] > 0, yes[order], no[order])
        running = np.concatenate([[0.0], np.cumsum(scores)])
        out[v] = running[np.minimum(np.asarray(queries), len(order))]
    return out


def power_at(
    member_scores: Floats, outsider_scores: Floats, rate: float = FALSE_POSITIVE_RATE
) -> Floats:
    """Per column: the power of the (randomised) test that flags exactly `rate` of the
    non-members: scores above the cut are flagged, scores at it with the chance that makes the
    false-positive rate `rate` (so that ties, as when every answer is the same, give `rate`)."""
    powers = np.zeros(member_scores.shape[1])
    for q in range(member_scores.shape[1]):
        outsiders, members = outsider_scores[:, q], member_scores[:, q]
        cut = np.quantile(outsiders, 1 - rate, method="higher")
        at_cut = np.isclose(outsiders, cut)
        above = (outsiders > cut) & ~at_cut
        chance = (rate - above.mean()) / at_cut.mean()
        member_at = np.isclose(members, cut)
        powers[q] = np.mean((members > cut) & ~member_at) + chance * member_at.mean()
    return powers


def run_attack(
    name: str,
    *,
    members: Dosages,
    outsiders: Dosages,
    f: Floats,
    beacon_size: int,
    ask: Ask,
    rarest_first: bool,
    seed: int,
    queries: Sequence[int] = QUERY_COUNTS,
) -> Curve:
    """SB (random order) or Raisaro (rarest first) against `ask`; victims are the columns of
    `members` then of `outsiders` (ask gets the victim's index in that order)."""
    rng = np.random.default_rng(seed)
    victims = np.concatenate([members, outsiders], axis=1)
    most = max(queries)
    orders, answers = [], []
    for v in range(victims.shape[1]):
        order = query_order(victims[:, v], f, rarest_first=rarest_first, rng=rng)[:most]
        orders.append(order)
        answers.append(np.asarray(ask(v, order), dtype=np.int8))
    scores = statistics(orders, answers, f, members=beacon_size, queries=queries)
    n = members.shape[1]
    return curve_of(name, scores[:n], scores[n:], queries)


def curve_of(
    name: str,
    member_scores: Floats,
    outsider_scores: Floats,
    queries: Sequence[int],
    *,
    resamples: int = 1000,
    seed: int = 0,
) -> Curve:
    """The power at each number of queries (columns of the scores), with its 95% percentile
    bootstrap interval: members and non-members resampled with replacement, the 5% cut chosen
    again on each resample of the non-members."""
    power = power_at(member_scores, outsider_scores)
    rng = np.random.default_rng(seed)
    n, m = len(member_scores), len(outsider_scores)
    draws = np.zeros((resamples, len(power)))
    for r in range(resamples):
        draws[r] = power_at(
            member_scores[rng.integers(0, n, size=n)], outsider_scores[rng.integers(0, m, size=m)]
        )
    low, high = np.quantile(draws, [0.025, 0.975], axis=0)
    return Curve(
        name,
        tuple(queries),
        tuple(float(p) for p in power),
        low=tuple(float(x) for x in low),
        high=tuple(float(x) for x in high),
    )


@dataclass(frozen=True, slots=True)
class Thresholds:
    """What an attacker who knows the defence's rule but not its key knows: the thresholds a
    variant may have (allele copies) and the chance of each. The undefended Beacon is the
    threshold 1 with chance 1."""

    values: tuple[int, ...]
    chances: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.values or len(self.values) != len(self.chances):
            raise ValueError("need as many chances as thresholds, and at least one")
        if min(self.values) < 1 or min(self.chances) < 0 or abs(sum(self.chances) - 1) > 1e-9:
            raise ValueError("thresholds start at 1 and their chances are a distribution")

    @classmethod
    def uniform(cls, low: int, high: int) -> Thresholds:
        """Every threshold of [low, high] equally likely."""
        return cls(tuple(range(low, high + 1)), (1 / (high - low + 1),) * (high - low + 1))


EXACT = Thresholds((1,), (1.0,))


@dataclass(frozen=True, slots=True)
class SiteThresholds:
    """Thresholds that differ from site to site (the defence's windows placed by public
    counts): site i has the thresholds `rules[of_site[i]]`."""

    rules: tuple[Thresholds, ...]
    of_site: Ints

    def __post_init__(self) -> None:
        known = len(self.of_site) == 0 or (
            int(self.of_site.min()) >= 0 and int(self.of_site.max()) < len(self.rules)
        )
        if not self.rules or not known:
            raise ValueError("every site needs one of the rules")


Rule = Thresholds | SiteThresholds


def count_at_least(reference: Dosages, *, beacon_alleles: float, high: int) -> Floats:
    """The attacker's belief about an allele's count X among `beacon_alleles` alleles of the
    Beacon, per site: P(X >= k) for k = 0 .. high + 1 (rows), from the panel's counts
    (privacy/belief.py: gamma-Poisson, the belief the defence places its windows by)."""
    return belief.count_at_least(
        reference.sum(axis=1, dtype=np.int64),
        panel_alleles=2.0 * reference.shape[1],
        cohort_alleles=beacon_alleles,
        high=high,
    )


@dataclass(frozen=True, slots=True)
class YesChances:
    """Per site, the chance the Beacon says yes as the attacker believes it: about a
    non-member (`outsider`), and about a member carrying 0, 1 or 2 copies (`member[g]`)."""

    outsider: Floats
    member: tuple[Floats, Floats, Floats]


def yes_chances(reference: Dosages, *, members: int, thresholds: Rule) -> YesChances:
    """The attacker's chances of a yes under a threshold rule whose thresholds' chances it
    knows (per site, for `SiteThresholds`), with the count among the Beacon's other members
    believed as `count_at_least` says; a yes means AC >= T, T drawn independently of AC."""
    sites = reference.shape[0]
    rules, of_site = (
        ((thresholds,), np.zeros(sites, dtype=np.int64))
        if isinstance(thresholds, Thresholds)
        else (thresholds.rules, thresholds.of_site)
    )
    if len(of_site) != sites:
        raise ValueError(f"{len(of_site)} sites have thresholds, the panel has {sites}")
    high = max(max(r.values) for r in rules)
    everyone = count_at_least(reference, beacon_alleles=2.0 * members, high=high)
    others = count_at_least(reference, beacon_alleles=2.0 * members - 2, high=high)
    outsider = np.zeros(sites)
    member = tuple(np.zeros(sites) for _ in range(3))
    for r, rule in enumerate(rules):
        at = np.flatnonzero(of_site == r)
        if not len(at):
            continue
        values = np.asarray(rule.values, dtype=np.int64)
        chances = np.asarray(rule.chances, dtype=np.float64)
        outsider[at] = chances @ everyone[values][:, at]
        for g in (0, 1, 2):  # AC = g + X, so AC >= t when X >= t - g
            member[g][at] = chances @ others[np.maximum(values - g, 0)][:, at]
    return YesChances(outsider, (member[0], member[1], member[2]))


def rule_aware_ratios(
    reference: Dosages, *, members: int, thresholds: Rule
) -> tuple[Floats, Floats, Floats]:
    """The log-likelihood ratios (member against not) of a yes and a no, and the chance of a
    yes for a member, for an attacker who knows the defence's rule (the thresholds' chances,
    per site when they differ) but not its key, per copies carried (rows 0 and 1: 1 and 2
    copies) and site, under `yes_chances`' belief."""
    chances = yes_chances(reference, members=members, thresholds=thresholds)
    sites = reference.shape[0]
    yes, no, said = (np.zeros((2, sites)) for _ in range(3))
    p0 = np.clip(chances.outsider, 1e-12, 1 - 1e-12)
    for g in (1, 2):
        p1 = np.clip(chances.member[g], 1e-12, 1 - 1e-12)
        yes[g - 1] = np.log(p1 / p0)
        no[g - 1] = np.log((1 - p1) / (1 - p0))
        said[g - 1] = p1
    return yes, no, said


def run_rule_aware_attack(
    name: str,
    *,
    members: Dosages,
    outsiders: Dosages,
    reference: Dosages,
    beacon_size: int,
    ask: Ask,
    thresholds: Rule,
    queries: Sequence[int] = QUERY_COUNTS,
) -> Curve:
    """The likelihood-ratio test of an attacker who knows the rule: each victim's alleles asked
    most informative first (expected log-likelihood ratio under membership), each answer scored
    by `rule_aware_ratios` (a `REFUSED` one by nothing); `extra["answered"]`: the share of the
    answers asked for that were not refused."""
    yes, no, said = rule_aware_ratios(reference, members=beacon_size, thresholds=thresholds)
    victims = np.concatenate([members, outsiders], axis=1)
    most = max(queries)
    out = np.zeros((victims.shape[1], len(queries)))
    asked = refused = 0
    for v in range(victims.shape[1]):
        carried = np.flatnonzero(victims[:, v] > 0)
        g = np.minimum(victims[carried, v], 2).astype(np.int64) - 1
        p1 = said[g, carried]
        gain = p1 * yes[g, carried] + (1 - p1) * no[g, carried]  # KL(member || not)
        order = np.argsort(-gain, kind="stable")[:most]
        sites, copies = carried[order], g[order]
        answer = np.asarray(ask(v, sites), dtype=np.int8)
        scores = np.where(answer > 0, yes[copies, sites], no[copies, sites])
        scores = np.where(answer == REFUSED, 0.0, scores)
        asked, refused = asked + len(answer), refused + int(np.sum(answer == REFUSED))
        running = np.concatenate([[0.0], np.cumsum(scores)])
        out[v] = running[np.minimum(np.asarray(queries), len(sites))]
    n = members.shape[1]
    curve = curve_of(name, out[:n], out[n:], queries)
    curve.extra["answered"] = 1 - refused / max(asked, 1)
    return curve


@dataclass(frozen=True, slots=True)
class Correctness:
    """How right a Beacon's answers are."""

    common_correct: float  # share of alleles of frequency >= 1% answered "exists"
    common_asked: int
    absent_present: int  # absent alleles said to exist (must be 0)
    absent_asked: int
    frequent_correct: float = 1.0  # share of alleles of frequency >= 5% answered "exists"
    frequent_asked: int = 0


def correctness(
    counts: Ints, numbers: Ints, answers: npt.NDArray[np.int8], *, common: float = 0.01
) -> Correctness:
    """Score answers against the dataset's allele counts (AC) and allele numbers (AN)."""
    frequency = counts / np.maximum(numbers, 1)
    is_common = frequency >= common
    is_frequent = frequency >= FREQUENT
    absent = counts == 0
    return Correctness(
        common_correct=float(answers[is_common].mean()) if is_common.any() else 1.0,
        common_asked=int(is_common.sum()),
        absent_present=int(answers[absent].sum()),
        absent_asked=int(absent.sum()),
        frequent_correct=float(answers[is_frequent].mean()) if is_frequent.any() else 1.0,
        frequent_asked=int(is_frequent.sum()),
    )


FREQUENT = 0.05  # the second utility figure: alleles of frequency >= 5%
