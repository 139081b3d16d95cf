"""Fixtures of the privacy tests: a small coalescent simulation with real linkage disequilibrium."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pytest


@dataclass(frozen=True, slots=True)
class Simulated:
    """Phased haplotypes (sites x 2 * people, 0/1) and site positions of a simulated region."""

    haplotypes: npt.NDArray[np.uint8]
    positions: npt.NDArray[np.int64]

    def dosages(self, people: npt.NDArray[np.int64]) -> npt.NDArray[np.int8]:
        """The alternate-allele dosages of `people` (sites x people)."""
        h = self.haplotypes
        return (h[:, 2 * people] + h[:, 2 * people + 1]).astype(np.int8)

    def haps(self, people: npt.NDArray[np.int64]) -> npt.NDArray[np.uint8]:
        """The two haplotypes of each of `people`, side by side."""
        return self.haplotypes[:, np.ravel(np.stack([2 * people, 2 * people + 1], axis=1))]


@pytest.fixture(scope="session")
def simulated_region() -> Simulated:
    """600 people of one population (Ne 10,000), 400 kb at 1 cM/Mb: a region with LD blocks
    and many rare alleles, as the demo cohort has (fixed seeds)."""
    import msprime

    ts = msprime.sim_ancestry(
        samples=600,
        population_size=10_000,
        sequence_length=400_000,
        recombination_rate=1e-8,
        random_seed=11,
    )
    ts = msprime.sim_mutations(ts, rate=1.2e-8, random_seed=12, model=msprime.BinaryMutationModel())
    haplotypes = np.minimum(ts.genotype_matrix(), 1).astype(np.uint8)
    positions = ts.tables.sites.position.astype(np.int64)
    keep = np.concatenate([[True], np.diff(positions) > 0])  # one site per base
    return Simulated(haplotypes[keep], positions[keep])
