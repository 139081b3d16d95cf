"""Fixtures of the privacy tests: a small coalescent simulation with real linkage disequilibrium,
and public allele counts held in memory."""

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


class PublicTable(dict[str, tuple[int, int]]):
    """Public allele counts (AC, AN) by variant key, held in memory: a `PublicCounts` for tests
    of the rule itself (variants/reference.py's store is tested with its files)."""

    def __init__(self, alleles: int, counts: dict[str, tuple[int, int]]) -> None:
        super().__init__(counts)
        self.alleles = alleles


@pytest.fixture(scope="session")
def public_table() -> type[PublicTable]:
    """The in-memory public counts' class."""
    return PublicTable


@pytest.fixture(scope="session")
def simulated_region() -> Simulated:
    """600 people of the demo's out-of-Africa model, 1.5 Mb of chr22 (the demo's simulation, fixed
    seed): a region with realistic LD and many rare alleles; biallelic sites only."""
    from genecommons.demo.simulate import default_region, simulate

    sim = simulate(
        individuals=600,
        reference_individuals=0,
        region=default_region(1_500_000),
        seed_sequence=np.random.SeedSequence(5),
    )
    alleles = sim.ts.genotype_matrix()[:, sim.cohort_nodes]
    positions = sim.ts.tables.sites.position.astype(np.int64)
    keep = (alleles.max(axis=1) <= 1) & np.concatenate([[True], np.diff(positions) > 0])
    return Simulated(alleles[keep].astype(np.uint8), positions[keep])
