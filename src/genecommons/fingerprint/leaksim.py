"""The leak simulation `genecommons trace simulate` runs: does tracing meet its goal?

On a genotype matrix from the demo's msprime simulation, every one of `recipients` recipients
gets a fingerprinted copy. Each trial then draws up to `max_colluders` colluders, who

1. combine their copies by majority (ties broken at random) or by averaging dosages,
2. keep a random `subset` share of the samples (or of the sites), in a shuffled order,
3. run the correlation attack of Ji et al.: with the linkage model of the full original data (the
   strongest public reference an attacker could hold), every cell whose value is unlikely given
   its neighbours, q(v | g[j-1], g[j+1]) < `attack_threshold`, is replaced by the likeliest value,
4. and flip `flips` of the remaining cells to another dosage at random;

tracing then scores all recipients. A trial is a success when at least one colluder is named, a
false alarm when any innocent recipient is. The utility figures come from `utility_copies` full
copies: the share of cells changed, the largest allele-frequency deviation, and the Spearman
correlation of GWAS -log10 p-values (a planted quantitative trait, linear regression per site
with MAF >= 1 %) between the copy and the original.

Vectorised numpy throughout; this module is pure (no web framework, no database).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from genecommons.fingerprint.codes import (
    Dosages,
    Plan,
    Scheme,
    apply,
    code_matrix,
    conditional_counts,
    make_plan,
    neighbour_context,
    utility,
)
from genecommons.fingerprint.trace import DEFAULT_ALPHA, Leak, accuse, dense_observations

logger = logging.getLogger(__name__)

STRATEGIES = ("majority", "average")
GWAS_MIN_MAF = 0.01
Progress = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class SimulationSettings:
    """What a leak simulation does."""

    recipients: int = 100
    max_colluders: int = 5
    trials: int = 1000
    subset: float = 0.10
    subset_of: str = "samples"  # or "sites"
    flips: float = 0.01
    attack_threshold: float = 0.25
    alpha: float = DEFAULT_ALPHA
    utility_copies: int = 10
    seed: int = 1


@dataclass(frozen=True, slots=True)
class Outcome:
    """Results of one (colluders, strategy) group of trials."""

    colluders: int
    strategy: str
    trials: int
    caught: int  # trials naming at least one colluder
    false_alarms: int  # trials naming at least one innocent
    min_colluder_z: float  # the weakest best-colluder z seen
    max_innocent_z: float  # the strongest innocent z seen


@dataclass(frozen=True, slots=True)
class SimulationReport:
    """All the figures of a simulation."""

    settings: SimulationSettings
    scheme: Scheme
    samples: int
    sites: int
    positions: int
    outcomes: tuple[Outcome, ...]
    changed_share_max: float
    changed_share_mean: float
    max_af_deviation: float
    gwas_spearman_min: float
    attack_marks_reverted: float  # share of the leak's marked cells the attack changed
    attack_clean_changed: float  # share of the leak's unmarked cells the attack changed
    seconds: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def trials(self) -> int:
        """Trials run."""
        return sum(o.trials for o in self.outcomes)

    @property
    def caught_rate(self) -> float:
        """Share of trials naming at least one colluder."""
        return sum(o.caught for o in self.outcomes) / max(1, self.trials)

    @property
    def false_alarm_rate(self) -> float:
        """Share of trials naming an innocent."""
        return sum(o.false_alarms for o in self.outcomes) / max(1, self.trials)


def demo_dosages(
    *, individuals: int, length: int, seed: int
) -> tuple[Dosages, npt.NDArray[np.float64]]:
    """A biallelic dosage matrix (sites x individuals) of the demo simulation, and a planted
    quantitative trait (10 causal common variants, heritability 0.5)."""
    from genecommons.demo.simulate import default_region, simulate

    simulation = simulate(
        individuals=individuals,
        reference_individuals=0,
        region=default_region(length),
        seed_sequence=np.random.SeedSequence(seed),
    )
    haplotypes = simulation.ts.genotype_matrix(samples=simulation.cohort_nodes)
    biallelic = haplotypes.max(axis=1) == 1
    haplotypes = haplotypes[biallelic]
    dosages = (haplotypes[:, 0::2] + haplotypes[:, 1::2]).astype(np.int8)
    rng = np.random.default_rng(seed)
    frequency = dosages.mean(axis=1) / 2
    common = np.flatnonzero(np.minimum(frequency, 1 - frequency) >= 0.05)
    causal = rng.choice(common, size=min(10, len(common)), replace=False)
    genetic = rng.normal(size=len(causal)) @ dosages[causal].astype(np.float64)
    genetic = (genetic - genetic.mean()) / (genetic.std() or 1.0)
    trait = math.sqrt(0.5) * genetic + math.sqrt(0.5) * rng.normal(size=individuals)
    return dosages, trait


def gwas_statistics(dosages: Dosages, trait: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """|t| of the per-site linear regression of the trait on dosage: a monotone function of
    -log10 p at a fixed sample size, so its ranks are those of the p-values."""
    x = dosages.astype(np.float64)
    x -= x.mean(axis=1, keepdims=True)
    y = trait - trait.mean()
    sxx = np.einsum("ij,ij->i", x, x)
    r: npt.NDArray[np.float64] = (x @ y) / np.sqrt(np.maximum(sxx, 1e-12) * float(y @ y))
    n = dosages.shape[1]
    t: npt.NDArray[np.float64] = np.abs(r) * np.sqrt((n - 2) / np.maximum(1 - r**2, 1e-12))
    return t


def spearman(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> float:
    """Spearman's rank correlation (ties get average ranks)."""

    def ranks(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        order = np.argsort(values, kind="stable")
        sorted_values = values[order]
        first = np.r_[True, sorted_values[1:] != sorted_values[:-1]]
        group = np.cumsum(first) - 1
        starts = np.flatnonzero(first)
        ends = np.r_[starts[1:], len(values)]
        average = (starts + ends - 1) / 2.0
        out = np.empty(len(values))
        out[order] = average[group]
        return out

    ra, rb = ranks(a), ranks(b)
    return float(np.corrcoef(ra, rb)[0, 1])


def attack_table(counts: npt.NDArray[np.int64], threshold: float) -> npt.NDArray[np.int8]:
    """For each (site, context, value): the value the correlation attack writes instead, or -1
    where it keeps the value (q(v | context) >= threshold, or the context never seen)."""
    totals = counts.sum(axis=2, keepdims=True)
    likeliest = np.broadcast_to(counts.argmax(axis=2)[..., None], counts.shape)
    suspicious = (totals > 0) & (counts < threshold * totals)
    return np.where(suspicious, likeliest, -1).astype(np.int8).reshape(-1)


def correlation_attack(
    values: npt.NDArray[np.float64], table: npt.NDArray[np.int8]
) -> npt.NDArray[np.float64]:
    """Ji et al.'s attack on a leak whose rows are consecutive sites: each cell whose rounded
    value v has q(v | g[j-1], g[j+1]) below the attacker's threshold becomes the likeliest value
    given its neighbours (`table` from `attack_table`)."""
    rounded = np.where(np.isfinite(values), np.clip(np.rint(values), 0, 2), -1).astype(np.int8)
    rows = np.arange(values.shape[0], dtype=np.int64)[:, None] * 48
    index = rows + neighbour_context(rounded) * 3 + np.clip(rounded, 0, 2)
    replacement = table[index]
    return np.where((rounded >= 0) & (replacement >= 0), replacement, values)


def _combine(
    plan: Plan,
    codes: npt.NDArray[np.bool_],
    colluders: npt.NDArray[np.int64],
    strategy: str,
    rng: np.random.Generator,
) -> npt.NDArray[np.float64]:
    """Per position, the share of the colluders' copies that the leak follows (0..1)."""
    ones = codes[colluders].sum(axis=0)
    c = len(colluders)
    if strategy == "average":
        average: npt.NDArray[np.float64] = ones / c
        return average
    share: npt.NDArray[np.float64] = (ones > c / 2).astype(np.float64)
    tie = 2 * ones == c
    share[tie] = rng.random(int(tie.sum())) < 0.5
    return share


def run_simulation(
    dosages: Dosages,
    trait: npt.NDArray[np.float64],
    *,
    settings: SimulationSettings | None = None,
    scheme: Scheme | None = None,
    secret: bytes = b"genecommons leak simulation",
    progress: Progress | None = None,
) -> SimulationReport:
    """Fingerprint, leak, attack and trace `settings.trials` times; the figures."""
    import time

    settings = settings or SimulationSettings()
    scheme = scheme or Scheme()
    started = time.perf_counter()
    dataset = "GCDSIM"
    recipients = [f"recipient-{k + 1:03d}@example.org" for k in range(settings.recipients)]
    plan = make_plan(dosages, secret=secret, dataset=dataset, scheme=scheme)
    codes = code_matrix(plan, secret=secret, dataset=dataset, recipients=recipients)
    sites, samples = dosages.shape

    # utility of full copies
    original_stats = gwas_statistics(dosages, trait)
    frequency = dosages.mean(axis=1) / 2
    gwas_sites = np.minimum(frequency, 1 - frequency) >= GWAS_MIN_MAF
    shares, deviations, correlations = [], [], []
    for k in range(min(settings.utility_copies, settings.recipients)):
        copy = apply(dosages, plan, codes[k])
        cost = utility(dosages, copy)
        shares.append(cost.changed_share)
        deviations.append(cost.max_af_deviation)
        stats = gwas_statistics(copy, trait)
        correlations.append(spearman(original_stats[gwas_sites], stats[gwas_sites]))

    table = attack_table(conditional_counts(dosages), settings.attack_threshold)
    rng = np.random.default_rng(settings.seed)
    groups: dict[tuple[int, str], list[int]] = {}
    weakest: dict[tuple[int, str], float] = {}
    strongest: dict[tuple[int, str], float] = {}
    reverted, clean_changed = [], []
    for trial in range(settings.trials):
        c = 1 + trial % settings.max_colluders
        strategy = STRATEGIES[(trial // settings.max_colluders) % len(STRATEGIES)]
        colluders = rng.choice(settings.recipients, size=c, replace=False)
        follow = _combine(plan, codes, colluders, strategy, rng)
        if settings.subset_of == "sites":
            kept_sites = np.sort(
                rng.choice(sites, size=max(1, round(settings.subset * sites)), replace=False)
            )
            kept_samples = np.arange(samples)
        else:
            kept_sites = np.arange(sites)
            kept_samples = rng.choice(
                samples, size=max(1, round(settings.subset * samples)), replace=False
            )
        leak = _leak(dosages, plan, follow, kept_sites, kept_samples)
        marked = leak != dosages[np.ix_(kept_sites, kept_samples)]
        if settings.subset_of == "samples":  # the attack needs adjacent sites
            attacked = correlation_attack(leak, table)
            changed = attacked != leak
            reverted.append(float(changed[marked].mean()) if marked.any() else 0.0)
            clean_changed.append(float(changed[~marked].mean()))
            leak = attacked
        flip = rng.random(leak.shape) < settings.flips
        leak[flip] = (np.rint(leak[flip]) + rng.integers(1, 3, size=int(flip.sum()))) % 3
        # reorder: the tracer aligns by identifiers; shuffling rows and columns here and
        # undoing it through the identifiers is what `align` does for a real file
        verdict = accuse(
            dense_observations(plan, Leak(leak, kept_sites, kept_samples)),
            plan.bias,
            codes,
            recipients,
            alpha=settings.alpha,
        )
        guilty = {recipients[i] for i in colluders}
        named = {s.recipient for s in verdict.named}
        best = max(s.z for s in verdict.scores if s.recipient in guilty)
        worst = max((s.z for s in verdict.scores if s.recipient not in guilty), default=0.0)
        key = (c, strategy)
        tally = groups.setdefault(key, [0, 0, 0])
        tally[0] += 1
        tally[1] += bool(named & guilty)
        tally[2] += bool(named - guilty)
        weakest[key] = min(weakest.get(key, math.inf), best)
        strongest[key] = max(strongest.get(key, -math.inf), worst)
        if progress is not None:
            progress(trial + 1)
    outcomes = tuple(
        Outcome(c, strategy, t[0], t[1], t[2], weakest[(c, strategy)], strongest[(c, strategy)])
        for (c, strategy), t in sorted(groups.items())
    )
    return SimulationReport(
        settings=settings,
        scheme=scheme,
        samples=samples,
        sites=sites,
        positions=len(plan),
        outcomes=outcomes,
        changed_share_max=max(shares, default=0.0),
        changed_share_mean=float(np.mean(shares)) if shares else 0.0,
        max_af_deviation=max(deviations, default=0.0),
        gwas_spearman_min=min(correlations, default=1.0),
        attack_marks_reverted=float(np.mean(reverted)) if reverted else 0.0,
        attack_clean_changed=float(np.mean(clean_changed)) if clean_changed else 0.0,
        seconds=time.perf_counter() - started,
    )


def _leak(
    dosages: Dosages,
    plan: Plan,
    follow: npt.NDArray[np.float64],
    kept_sites: npt.NDArray[np.int64],
    kept_samples: npt.NDArray[np.int64],
) -> npt.NDArray[np.float64]:
    """The colluders' combined copy, restricted to the kept sites and samples."""
    site_row = np.full(dosages.shape[0], -1)
    site_row[kept_sites] = np.arange(len(kept_sites))
    sample_col = np.full(dosages.shape[1], -1)
    sample_col[kept_samples] = np.arange(len(kept_samples))
    leak = dosages[np.ix_(kept_sites, kept_samples)].astype(np.float64)
    rows = site_row[plan.site]
    for cols, start, sign in (
        (sample_col[plan.up], plan.up_from, 1.0),
        (sample_col[plan.down], plan.down_from, -1.0),
    ):
        here = (rows >= 0) & (cols >= 0)
        leak[rows[here], cols[here]] = start[here] + sign * follow[here]
    return leak
