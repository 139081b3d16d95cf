"""The genetic simulation behind the demo cohort: stdpopsim's human out-of-Africa model in msprime.

Recombination is uniform (the chromosome's mean rate) so nothing is downloaded; mutations use the
Jukes-Cantor model, so alleles are nucleotides. Coordinates are GRCh38, on chr22's q arm.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

SPECIES = "HomSap"
MODEL_ID = "OutOfAfrica_4J17"
ASSEMBLY = "GRCh38"
CHROM = "chr22"
CHROM_LENGTH = 50_818_468  # GRCh38 chr22
Q_ARM_START = 15_000_000  # GRCh38 chr22 cytobands: q11.1 begins at 15.0 Mb (0-based)

# population, share of the cohort, nationality (ISO 3166-1)
POPULATIONS: tuple[tuple[str, float, str], ...] = (
    ("CHB", 0.70, "CN"),
    ("JPT", 0.10, "JP"),
    ("CEU", 0.10, "GB"),
    ("YRI", 0.10, "NG"),
)


@dataclass(frozen=True, slots=True)
class Region:
    """A GRCh38 interval, 0-based half-open like tskit (VCF POS = start + position + 1)."""

    chrom: str
    start: int
    end: int

    @property
    def length(self) -> int:
        """Its length in base pairs."""
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class Simulation:
    """A simulated tree sequence and who is who in it.

    `cohort_nodes` / `panel_nodes` list the sample nodes of each group's individuals in output
    order (two per individual, consecutive); `cohort_populations` / `panel_populations` name the
    population of each individual in the same order.
    """

    ts: Any  # tskit.TreeSequence
    region: Region
    model_id: str
    model_description: str
    mutation_rate: float
    recombination_rate: float
    generation_time: float
    cohort_nodes: np.ndarray
    panel_nodes: np.ndarray
    cohort_populations: tuple[str, ...]
    panel_populations: tuple[str, ...]


def split_counts(total: int, shares: Sequence[float]) -> list[int]:
    """Split `total` by `shares` into whole numbers summing to `total` (largest remainder)."""
    raw = [total * share / sum(shares) for share in shares]
    counts = [int(value) for value in raw]
    order = sorted(range(len(shares)), key=lambda i: (-(raw[i] - counts[i]), i))
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return counts


def default_region(sequence_length: int | None = None) -> Region:
    """chr22's q arm, or its first `sequence_length` bases."""
    end = (
        CHROM_LENGTH
        if sequence_length is None
        else min(CHROM_LENGTH, Q_ARM_START + sequence_length)
    )
    return Region(CHROM, Q_ARM_START, end)


def msprime_seed(seed_sequence: np.random.SeedSequence) -> int:
    """A seed in msprime's range [1, 2**32 - 1] drawn from `seed_sequence`."""
    value = int(seed_sequence.generate_state(1, dtype=np.uint32)[0])
    return value % (2**32 - 1) + 1


def simulate(
    *,
    individuals: int,
    reference_individuals: int,
    region: Region,
    seed_sequence: np.random.SeedSequence,
) -> Simulation:
    """Simulate cohort and reference-panel genomes together, so they share their sites."""
    import msprime  # heavy (stdpopsim loads its species catalog): only when simulating
    import stdpopsim

    species = stdpopsim.get_species(SPECIES)
    model = species.get_demographic_model(MODEL_ID)
    chromosome = species.genome.get_chromosome(region.chrom)
    mutation_rate = float(model.mutation_rate or chromosome.mutation_rate)
    recombination_rate = float(chromosome.recombination_rate)
    names = [name for name, _, _ in POPULATIONS]
    shares = [share for _, share, _ in POPULATIONS]
    cohort_counts = split_counts(individuals, shares)
    panel_counts = split_counts(reference_individuals, shares)
    ancestry_seed, mutation_seed, shuffle_seed = seed_sequence.spawn(3)
    sample_sets = [
        msprime.SampleSet(c + p, population=name, ploidy=2)
        for name, c, p in zip(names, cohort_counts, panel_counts, strict=True)
        if c + p
    ]
    logger.info(
        "simulating %d + %d individuals over %s:%d-%d",
        individuals,
        reference_individuals,
        region.chrom,
        region.start,
        region.end,
    )
    ts = msprime.sim_ancestry(
        samples=sample_sets,
        demography=model.model,
        sequence_length=region.length,
        recombination_rate=recombination_rate,
        random_seed=msprime_seed(ancestry_seed),
    )
    ts = msprime.sim_mutations(
        ts, rate=mutation_rate, model=msprime.JC69(), random_seed=msprime_seed(mutation_seed)
    )
    # individuals come out grouped by sample set: the first c of each population join the cohort
    cohort: list[tuple[int, str]] = []
    panel: list[tuple[int, str]] = []
    next_individual = 0
    for name, c, p in zip(names, cohort_counts, panel_counts, strict=True):
        ids = range(next_individual, next_individual + c + p)
        cohort.extend((i, name) for i in ids[:c])
        panel.extend((i, name) for i in ids[c:])
        next_individual += c + p
    rng = np.random.default_rng(shuffle_seed)
    cohort = [cohort[i] for i in rng.permutation(len(cohort))]
    panel = [panel[i] for i in rng.permutation(len(panel))]

    def nodes(group: list[tuple[int, str]]) -> np.ndarray:
        if not group:
            return np.zeros(0, dtype=np.int32)
        return np.concatenate([ts.individual(i).nodes for i, _ in group]).astype(np.int32)

    return Simulation(
        ts=ts,
        region=region,
        model_id=MODEL_ID,
        model_description=str(model.description),
        mutation_rate=mutation_rate,
        recombination_rate=recombination_rate,
        generation_time=float(model.generation_time),
        cohort_nodes=nodes(cohort),
        panel_nodes=nodes(panel),
        cohort_populations=tuple(name for _, name in cohort),
        panel_populations=tuple(name for _, name in panel),
    )
