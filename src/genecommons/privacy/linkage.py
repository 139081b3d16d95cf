"""von Thenen et al. 2019's linkage attack on a Beacon (pure numpy).

The victim hides their informative SNPs: the attacker sees the victim's genotypes only at the
sites whose minor allele frequency in the attacker's reference panel is at least 5% (`COMMON`).
The attacker infers, from linkage disequilibrium with those, the chance that the victim carries
each hidden allele, asks the Beacon about the alleles whose answers best tell a member from a
non-member (confidently inferred and rare), and adds up the log-likelihood ratio of the answers.

- Inference (`carrier_chances`): the paper models the genome as a high-order Markov chain over
  consecutive SNPs trained on the reference panel. With a phased panel the standard form of
  that model is Li & Stephens' (2003) haplotype copying: a hidden Markov chain whose state is
  the panel haplotype a victim's haplotype copies, switching with the distance between sites,
  emitting the copied allele up to a small error. Its states carry arbitrarily long shared
  haplotypes (the identity by descent that makes a rare allele predictable), where a chain of
  fixed order over genotypes sees only its last k sites. A victim's genotypes are unphased: at
  a homozygous site both haplotypes carry the allele, so a copied haplotype must too; a
  heterozygous site says nothing about which. The chain runs over the victim's shown sites in
  windows (`copying_posteriors`, forward-backward, exact within a window); the chance a hidden
  allele is on the copied haplotype is the posterior weight of the panel haplotypes carrying it
  (interpolated between the flanking shown sites, `carrier_weights`); the copied haplotype
  standing for either of the victim's two, the chance the victim carries it is about twice
  that (`carrier_chances`), but twice a weight reads every weight from 1/2 up as certain,
  while a victim whose copied haplotype sits on a carrier all along (a weight near 1) carries
  the allele far more often than one at 0.6. The attacker therefore calibrates the weights
  themselves (`calibrate`) on people of its own panel, inferred from the rest of it, per
  number of copies of the allele in the panel the inference used.
- Answers (`answer_chances`): the attacker knows the Beacon's rule as a threshold in allele
  copies with known chances (`attack.Thresholds`: one copy answers the truth; hiding alleles
  under 5% is a fixed threshold of 5% of the alleles called; the defended guard draws its key's
  thresholds on [10, 40]), and models
  the other members' count by a gamma-Poisson belief from its panel. A yes from a member who
  carries the allele with chance p has probability p * P(X + 1 >= T) + (1 - p) * P(X >= T).
  This is how the attacker reads a withheld answer. The paper instead infers a withheld
  answer from the answer about a shown site in strong LD with it (`strongest_partners`;
  `von_thenen(from_partners=True)` measures that reading): against a Beacon that hides alleles
  under 5%, a hidden allele's LD partners are common alleles the Beacon holds whoever the
  victim is, so the partner's yes says little, while the rule says how likely the withheld
  answer is under each hypothesis.
- Queries (`choose_queries`): each victim's candidates ranked by the expected log-likelihood
  ratio under membership (the Kullback-Leibler divergence between the answer's distributions),
  which grows with the inferred chance and with rarity, as the paper's selection by confidence
  and low frequency does. The attacker never asks about an allele its panel does not hold: the
  chance of carrying it is 0, inferred from nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from genecommons.privacy.attack import EXACT, Ask, Curve, Rule, power_at, yes_chances

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Dosages = npt.NDArray[np.int8]
Haplotypes = npt.NDArray[np.uint8]  # sites x 2n panel haplotypes, 0 (reference) or 1

COMMON = 0.05  # the victim shows sites of minor allele frequency >= this, hides the rest
QUERIES = (1, 2, 5, 10, 20, 50)
SWITCH_PER_BP = 4e-4  # 4 Ne r: Ne = 10,000 and 1 cM per Mb, divided by the panel's haplotypes
MISMATCH = 1e-3  # chance a copied allele differs from the victim's (mutation, error)


def switch_chances(positions: Ints, haplotypes: int, *, per_bp: float = SWITCH_PER_BP) -> Floats:
    """Li & Stephens' chance of switching the copied haplotype between consecutive sites
    (the first site's is 1: its state is drawn afresh), 1 - exp(-4 Ne r d / H)."""
    distance = np.diff(np.asarray(positions, dtype=np.float64), prepend=-np.inf)
    return np.asarray(-np.expm1(-per_bp * distance / max(haplotypes, 1)), dtype=np.float64)


def copying_posteriors(
    panel: Haplotypes,
    genotypes: Dosages,
    switches: Floats,
    *,
    mismatch: float = MISMATCH,
    dtype: type[np.float32] | type[np.float64] = np.float64,
) -> npt.NDArray[np.float32 | np.float64]:
    """Forward-backward over a run of sites: P(victim v copies haplotype h at site s | the
    victim's genotypes at every site of the run), as an array (sites, victims, haplotypes).
    `panel` is sites x haplotypes, `genotypes` sites x victims, `switches` per site."""
    sites, haplotypes = panel.shape
    victims = genotypes.shape[1]
    # emission by (genotype 0/1/2, copied allele 0/1): a homozygous genotype needs the allele
    table = np.array([[1 - mismatch, mismatch], [1.0, 1.0], [mismatch, 1 - mismatch]], dtype=dtype)
    g = np.asarray(genotypes, dtype=np.intp)[:, :, None]
    a = np.asarray(panel, dtype=np.intp)[:, None, :]
    forward = np.zeros((sites, victims, haplotypes), dtype=dtype)
    state = np.full((victims, haplotypes), 1.0 / haplotypes, dtype=dtype)
    for s in range(sites):
        rho = dtype(switches[s] if s else 1.0)
        state = (1 - rho) * state + rho / haplotypes  # rows sum to 1
        state *= table[g[s], a[s]]
        state /= state.sum(axis=1, keepdims=True)
        forward[s] = state
    posterior = forward
    back = np.ones((victims, haplotypes), dtype=dtype)
    for s in range(sites - 2, -1, -1):
        # beta_s(h) = sum_h' T(h -> h') e_{s+1}(h') beta_{s+1}(h')
        weighted = back * table[g[s + 1], a[s + 1]]
        rho = dtype(switches[s + 1])
        back = (1 - rho) * weighted + rho * weighted.mean(axis=1, keepdims=True)
        back /= back.max(axis=1, keepdims=True)
        posterior[s] = forward[s] * back
        posterior[s] /= posterior[s].sum(axis=1, keepdims=True)
    return posterior


def carrier_weights(
    panel: Haplotypes,
    positions: Ints,
    shown: Dosages,
    common: npt.NDArray[np.bool_],
    targets: Ints,
    *,
    window: int = 400,
    margin: int = 100,
    batch: int = 64,
    per_bp: float = SWITCH_PER_BP,
    mismatch: float = MISMATCH,
) -> Floats:
    """The posterior weight, per victim (columns of `shown`, genotypes read at `common` sites
    only) and `targets` site (rows of the result), of the panel haplotypes carrying the site's
    alternate allele: the chance the haplotype the victim copies carries it, by haplotype
    copying on the panel (`panel`: all sites x haplotypes, `positions` in bp). The chain runs
    over windows of `window` shown sites with `margin` more on each side, `batch` victims at a
    time; a site before the first shown site or after the last takes its nearest one's."""
    marked = np.flatnonzero(common)
    targets = np.asarray(targets, dtype=np.int64)
    out = np.zeros((len(targets), shown.shape[1]))
    if len(marked) == 0 or len(targets) == 0:
        return out
    haplotypes = panel.shape[1]
    switches = switch_chances(positions[marked], haplotypes, per_bp=per_bp)
    # each target between shown sites `left` and `left + 1`, weighted by distance
    left = np.clip(np.searchsorted(marked, targets, side="right") - 1, 0, len(marked) - 1)
    right = np.minimum(left + 1, len(marked) - 1)
    span = (positions[marked[right]] - positions[marked[left]]).astype(np.float64)
    lam = np.where(
        span > 0, (positions[targets] - positions[marked[left]]) / np.where(span > 0, span, 1), 0.0
    )
    lam = np.clip(lam, 0.0, 1.0)
    # the panel haplotypes carrying each target (few: the targets are rare), target-major
    pair_target, pair_hap = np.nonzero(panel[targets])
    for start in range(0, len(marked), window):
        stop = min(start + window, len(marked))
        lo, hi = max(0, start - margin), min(len(marked), stop + margin)
        for first in range(0, shown.shape[1], batch):
            cols = slice(first, min(first + batch, shown.shape[1]))
            post = copying_posteriors(
                panel[marked[lo:hi]],
                shown[marked[lo:hi], cols],
                switches[lo:hi],
                mismatch=mismatch,
                dtype=np.float32,
            )
            for flank, weight in ((left, 1.0 - lam), (right, lam)):
                inside = (flank[pair_target] >= start) & (flank[pair_target] < stop)
                t, h = pair_target[inside], pair_hap[inside]
                if len(t) == 0:
                    continue
                # posterior weight on the haplotypes carrying each target, per victim
                mass = post[flank[t] - lo, :, h] * weight[t, None]  # pairs x victims
                groups = np.flatnonzero(np.diff(t, prepend=-1))
                out[t[groups], cols] += np.add.reduceat(mass, groups, axis=0)
    return out


def carrier_chances(
    panel: Haplotypes,
    positions: Ints,
    shown: Dosages,
    common: npt.NDArray[np.bool_],
    targets: Ints,
    *,
    window: int = 400,
    margin: int = 100,
) -> Floats:
    """The uncalibrated chance that each victim carries each target's alternate allele: twice
    `carrier_weights` (the copied haplotype stands for either of the victim's two), at most 1.
    Every weight from 1/2 up reads as certain here, which is why `infer` calibrates the weights
    themselves."""
    weights = carrier_weights(
        panel, positions, shown, common, targets, window=window, margin=margin
    )
    return np.asarray(np.clip(2.0 * weights, 0.0, 1.0), dtype=np.float64)


CALIBRATION_EDGES = (
    0.0,
    0.005,
    0.01,
    0.02,
    0.05,
    0.1,
    0.2,
    0.3,
    0.4,
    0.5,
    0.6,
    0.7,
    0.8,
    0.9,
    0.95,
    0.99,
    0.999,
)
COPY_CLASSES = (1, 2, 3, 5, 10)  # the panel's copies of an allele, classes from each of these


def monotone(rates: Floats, weights: Floats) -> Floats:
    """The non-decreasing sequence nearest `rates` in weighted least squares (isotonic
    regression, pooling adjacent violators): a bin out of order is pooled with its neighbours
    in proportion to their weights, so a bin of one or two people cannot lift the bins above it."""
    values: list[float] = []
    sizes: list[float] = []
    counts: list[int] = []
    for rate, weight in zip(np.asarray(rates, dtype=np.float64), weights, strict=True):
        values.append(float(rate))
        sizes.append(float(weight))
        counts.append(1)
        while len(values) > 1 and values[-2] > values[-1]:
            total = sizes[-2] + sizes[-1]
            pooled = (values[-2] * sizes[-2] + values[-1] * sizes[-1]) / total if total else 0.0
            values[-2:] = [pooled]
            sizes[-2:] = [total]
            counts[-2:] = [counts[-2] + counts[-1]]
    return np.repeat(np.asarray(values), counts)


def calibrate(
    weights: Floats,
    carried: npt.NDArray[np.bool_],
    copies: Ints,
    *,
    prior: float = 2.0,
) -> Callable[[Floats, Ints], Floats]:
    """A map from the posterior weights of `carrier_weights` to observed rates of carriers,
    fitted on people whose genotypes the attacker knows (held out of its own panel): per class
    of the allele's copies in the panel the weights were inferred from (`COPY_CLASSES`: an
    allele seen once may sit below where the victim's haplotype joins the carrier's) and bin of
    weights (`CALIBRATION_EDGES`, fine near 1, where a victim copies a carrier all along), the
    rate of carriers, shrunk towards the model's own chance (twice the weight, at most 1) by
    `prior` pseudo-counts and made non-decreasing in the weight (`monotone`); `weights` and
    `carried` are sites x people, `copies` per site. A weight of 0 stays 0."""
    edges = np.asarray(CALIBRATION_EDGES)
    classes = np.asarray(COPY_CLASSES)
    slots = len(edges)
    rates = np.zeros((len(classes), slots))
    for c in range(len(classes)):
        rows = np.searchsorted(classes, copies, side="right") - 1 == c
        x = np.asarray(weights, dtype=np.float64)[rows].ravel()
        y = np.asarray(carried, dtype=np.float64)[rows].ravel()
        where = np.searchsorted(edges, x, side="right") - 1
        hits = np.bincount(where, weights=y, minlength=slots)
        totals = np.bincount(where, minlength=slots).astype(np.float64)
        sums = np.bincount(where, weights=x, minlength=slots)
        middle = edges + np.diff(edges, append=1.0) / 2
        centre = np.minimum(2 * np.where(totals > 0, sums / np.maximum(totals, 1), middle), 1)
        rates[c] = monotone((hits + prior * centre) / (totals + prior), totals + prior)

    def apply(w: Floats, counts: Ints) -> Floats:
        w = np.asarray(w, dtype=np.float64)
        at = np.clip(np.searchsorted(edges, w, side="right") - 1, 0, slots - 1)
        c = np.clip(np.searchsorted(classes, counts, side="right") - 1, 0, len(classes) - 1)
        return np.asarray(np.where(w > 0, rates[c[:, None], at], 0.0), dtype=np.float64)

    return apply


@dataclass(frozen=True, slots=True)
class AnswerChances:
    """Per site, the chance the Beacon says yes: to a non-member (`outsider`), and to a member
    who carries 0 or 1 copy of the allele (`member[0]`, `member[1]`)."""

    outsider: Floats
    member: tuple[Floats, Floats]


def answer_chances(reference: Dosages, *, members: int, thresholds: Rule) -> AnswerChances:
    """The attacker's chances of a yes under a threshold rule with the thresholds' chances
    known (`attack.EXACT` answers the truth; per site for windows placed by public counts),
    with the count among the Beacon's other members believed as `attack.count_at_least` says."""
    chances = yes_chances(reference, members=members, thresholds=thresholds)
    return AnswerChances(chances.outsider, (chances.member[0], chances.member[1]))


def scored_answers(
    carried: Floats, sites: Ints, chances: AnswerChances, *, error: float = 1e-6
) -> tuple[Floats, Floats, Floats]:
    """For alleles of `sites` a victim carries with chance `carried`: the chance of a yes if the
    victim is a member, and the log-likelihood ratios (member against not) of a yes and a no.
    `error` keeps every answer possible under both hypotheses (a Beacon may err)."""
    member = carried * chances.member[1][sites] + (1 - carried) * chances.member[0][sites]
    p1 = np.clip(member, error, 1 - error)
    p0 = np.clip(chances.outsider[sites], error, 1 - error)
    return p1, np.log(p1 / p0), np.log((1 - p1) / (1 - p0))


def choose_queries(carried: Floats, targets: Ints, chances: AnswerChances, *, most: int) -> Ints:
    """Indices into `targets` of the `most` alleles to ask about, best first: the expected
    log-likelihood ratio of the answer under membership (the divergence between the answer's
    distributions), which rewards confident inference and rarity alike; alleles inferred with
    chance 0 (not in the attacker's panel) are never asked."""
    possible = np.flatnonzero(carried > 0)
    p1, yes, no = scored_answers(carried[possible], targets[possible], chances)
    gain = p1 * yes + (1 - p1) * no
    best = np.argsort(-gain, kind="stable")[:most]
    return np.asarray(possible[best], dtype=np.int64)


def strongest_partners(reference: Dosages, sites: Ints, pool: Ints, *, window: int = 50) -> Ints:
    """For each site, the site of `pool` within `window` sites whose dosages correlate most
    (r squared in the reference panel): where the paper infers a withheld answer from."""
    pool_sorted = np.sort(pool)
    partners = np.zeros(len(sites), dtype=np.int64)
    for i, site in enumerate(sites):
        at = np.searchsorted(pool_sorted, site)
        near = pool_sorted[max(0, at - window) : at + window]
        near = near[near != site]
        if len(near) == 0:
            partners[i] = site
            continue
        x = reference[site].astype(np.float64)
        ys = reference[near].astype(np.float64)
        xc, yc = x - x.mean(), ys - ys.mean(axis=1, keepdims=True)
        denominator = (xc**2).sum() * (yc**2).sum(axis=1)
        r2 = np.where(
            denominator > 0, (yc @ xc) ** 2 / np.where(denominator > 0, denominator, 1), 0
        )
        partners[i] = near[int(np.argmax(r2))]
    return partners


@dataclass(frozen=True, slots=True)
class Inference:
    """The von Thenen attack's outcome."""

    curve: Curve
    accuracy: float  # share of the alleles asked about that the victim carries
    answer_accuracy: float  # share of the answers asked about that were the truth
    confident_accuracy: float  # of hidden alleles inferred with chance >= 1/2, share carried
    confident: int  # how many (victim, allele) pairs were inferred with chance >= 1/2
    prior_accuracy: float  # the chance of carrying them by their frequency alone, 1 - (1 - f)^2


@dataclass(frozen=True, slots=True)
class Inferred:
    """What the attacker inferred: per hidden site of `targets` (rows) and victim (columns),
    the calibrated chance that the victim carries the alternate allele."""

    targets: Ints
    carried: Floats
    frequencies: Floats  # the attacker's allele frequencies (all sites)


def infer(
    victims: Dosages,
    *,
    reference: Dosages,
    haplotypes: Haplotypes,
    positions: Ints,
    seed: int,
    held_out: int = 40,
) -> Inferred:
    """Infer the hidden alleles of `victims` (sites x people; the attacker reads only the sites
    common in its panel: `reference` dosages and their phased `haplotypes`, sites in the order
    of `positions`), calibrated on `held_out` people of the panel inferred from the rest."""
    rng = np.random.default_rng(seed)
    f = reference.sum(axis=1, dtype=np.int64) / (2.0 * max(reference.shape[1], 1))
    common = (f >= COMMON) & (f <= 1 - COMMON)
    targets = np.flatnonzero((f > 0) & (f < COMMON))
    people = reference.shape[1]
    held = np.sort(rng.choice(people, size=min(held_out, people // 4), replace=False))
    rest = np.setdiff1d(np.arange(people), held)
    columns = np.ravel(np.stack([2 * rest, 2 * rest + 1], axis=1))
    sample = targets[:: max(1, len(targets) // 20_000)]
    own = np.where(common[:, None], reference[:, held], 0).astype(np.int8)
    fitted = carrier_weights(haplotypes[:, columns], positions, own, common, sample)
    # the copies in the panel each inference used: the rest of the panel for the held-out
    # people (an allele a held-out person carries has one copy fewer there), all of it for
    # the victims
    adjust = calibrate(
        fitted,
        reference[sample][:, held] > 0,
        reference[sample][:, rest].sum(axis=1, dtype=np.int64),
    )
    copies = reference.sum(axis=1, dtype=np.int64)
    shown = np.where(common[:, None], victims, 0).astype(np.int8)
    carried = adjust(
        carrier_weights(haplotypes, positions, shown, common, targets), copies[targets]
    )
    return Inferred(targets, carried, f)


def von_thenen(
    inferred: Inferred,
    *,
    victims: Dosages,
    members: int,
    reference: Dosages,
    beacon_size: int,
    ask: Ask,
    truth: Callable[[Ints], npt.NDArray[np.int8]],
    rule: Rule = EXACT,
    queries: Sequence[int] = QUERIES,
    name: str = "von Thenen",
    from_partners: bool = False,
) -> Inference:
    """The linkage attack on one Beacon: each victim (columns of `victims`, the first `members`
    of them members) asked about their most telling inferred alleles, the answers scored under
    the Beacon's `rule` (its thresholds in copies and their chances, as the attacker believes them) with the
    other members' counts from `reference`. `truth(sites)` is the Beacon's true answers.
    `from_partners`: the paper's reading of a withheld answer instead, every no taken for
    withheld and replaced by the answer about the shown site in strongest LD with the allele,
    scored as a true answer."""
    targets, carried, f = inferred.targets, inferred.carried, inferred.frequencies
    if from_partners:
        rule = EXACT
    chances = answer_chances(reference, members=beacon_size, thresholds=rule)
    shown = np.flatnonzero((f >= COMMON) & (f <= 1 - COMMON))
    most = max(queries)
    out = np.zeros((victims.shape[1], len(queries)))
    asked = right = answered_right = 0
    for v in range(victims.shape[1]):
        best = choose_queries(carried[:, v], targets, chances, most=most)
        sites = targets[best]
        answer = np.asarray(ask(v, sites), dtype=np.int8)
        if from_partners and (answer == 0).any():
            silent = np.flatnonzero(answer == 0)
            partners = strongest_partners(reference, sites[silent], shown)
            answer[silent] = np.asarray(ask(v, partners), dtype=np.int8)
        _, yes, no = scored_answers(carried[best, v], sites, chances)
        running = np.concatenate([[0.0], np.cumsum(np.where(answer > 0, yes, no))])
        out[v] = running[np.minimum(np.asarray(queries), len(sites))]
        asked += len(sites)
        right += int((victims[sites, v] > 0).sum())
        answered_right += int((answer == truth(sites)).sum())
    power = power_at(out[:members], out[members:])
    sure = carried >= 0.5
    holds = victims[targets] > 0
    prior = np.broadcast_to((1 - (1 - f[targets]) ** 2)[:, None], holds.shape)
    return Inference(
        Curve(name, tuple(queries), tuple(float(p) for p in power)),
        accuracy=right / asked if asked else 0.0,
        answer_accuracy=answered_right / asked if asked else 0.0,
        confident_accuracy=float(holds[sure].mean()) if sure.any() else 0.0,
        confident=int(sure.sum()),
        prior_accuracy=float(prior[sure].mean()) if sure.any() else 0.0,
    )
