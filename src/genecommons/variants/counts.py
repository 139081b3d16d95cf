"""Allele counts by group (population, sex, or any labelling of the samples) from a block of
genotype calls, as gnomAD tabulates them: AC, AN, AF, homozygotes and hemizygotes.

Genotypes follow VCF Zarr (`call_genotype`): an integer array of shape (variants, samples,
ploidy) holding allele indexes, -1 for a missing allele and -2 for padding (a haploid call in a
diploid array). One block is counted at once, with matrix products against a one-hot matrix of
the groups, so a whole chromosome is counted block by block in bounded memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

MISSING = -1
PADDING = -2


@dataclass(frozen=True, slots=True)
class GroupCounts:
    """Counts of one block: `ac`, `hom`, `hemi` are (variants, alleles, groups), with allele 0
    the reference; `an` is (variants, groups)."""

    groups: tuple[str, ...]
    ac: npt.NDArray[np.int64]
    an: npt.NDArray[np.int64]
    hom: npt.NDArray[np.int64]
    hemi: npt.NDArray[np.int64]

    def af(self) -> npt.NDArray[np.float64]:
        """Allele frequencies AC / AN (NaN where no allele was called)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.ac / self.an[:, None, :]


def membership(labels: Sequence[str | None], groups: Sequence[str]) -> npt.NDArray[np.int32]:
    """The one-hot (samples, groups) matrix: sample i belongs to group j when labels[i] is j.
    Samples whose label is None or not among `groups` count in no group."""
    column = {group: j for j, group in enumerate(groups)}
    matrix = np.zeros((len(labels), len(groups)), dtype=np.int32)
    for i, label in enumerate(labels):
        if label is not None and label in column:
            matrix[i, column[label]] = 1
    return matrix


def count_block(
    genotypes: npt.NDArray[np.integer],
    *,
    n_alleles: int,
    members: npt.NDArray[np.int32],
    groups: Sequence[str],
) -> GroupCounts:
    """Counts of every allele (0 .. n_alleles-1) of a block of calls, by group."""
    if genotypes.ndim != 3 or genotypes.shape[1] != members.shape[0]:
        raise ValueError("genotypes must be (variants, samples, ploidy) over the members' samples")
    calls = np.asarray(genotypes)
    present = calls != PADDING
    ploidy = present.sum(axis=2, dtype=np.int32)  # alleles the call has, missing or not
    called = (calls >= 0).sum(axis=2, dtype=np.int32)
    complete = called == ploidy  # calls without a missing allele
    variants = calls.shape[0]
    n_groups = members.shape[1]
    # BLAS multiplies floating point only; counts stay far below 2**53, so they are exact
    weights = members.astype(np.float64)

    def by_group(per_sample: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
        return np.rint(per_sample.astype(np.float64) @ weights).astype(np.int64)

    ac = np.zeros((variants, n_alleles, n_groups), dtype=np.int64)
    hom = np.zeros_like(ac)
    hemi = np.zeros_like(ac)
    for allele in range(n_alleles):
        carried = (calls == allele).sum(axis=2, dtype=np.int32)
        ac[:, allele, :] = by_group(carried)
        hom[:, allele, :] = by_group((carried == 2) & (ploidy == 2))
        hemi[:, allele, :] = by_group((carried == 1) & (ploidy == 1) & complete)
    an = by_group(called)
    return GroupCounts(tuple(groups), ac, an, hom, hemi)
