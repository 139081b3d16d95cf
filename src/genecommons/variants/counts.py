"""Allele counts by group (population, sex, or any labelling of the samples) from a block of
genotype calls, as gnomAD tabulates them: AC, AN, AF, homozygotes and hemizygotes.

Genotypes follow VCF Zarr (`call_genotype`): an integer array of shape (variants, samples,
ploidy) holding allele indexes, -1 for a missing allele and -2 for padding (a haploid call in a
diploid array). One block is counted at once, with matrix products against a one-hot matrix of
the groups, so a whole chromosome is counted block by block in bounded memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

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
    # per-sample quantities are summed over the (few) allele slots one slot at a time: a
    # reduction along a last axis of length 2 costs numpy over ten times more
    slots = [calls[..., p] for p in range(calls.shape[2])]
    ploidy = _slot_sum(s != PADDING for s in slots)  # alleles the call has, missing or not
    called = _slot_sum(s >= 0 for s in slots)
    complete = called == ploidy  # calls without a missing allele
    carried = [_slot_sum(s == allele for s in slots) for allele in range(n_alleles)]
    rows = [
        *carried,
        *((c == 2) & (ploidy == 2) for c in carried),
        *((c == 1) & (ploidy == 1) & complete for c in carried),
        called,
    ]
    # products against the one-hot groups, one quantity at a time (memory stays one block's);
    # BLAS multiplies floating point only, and float32 holds every integer below 2**24 exactly
    # (counts are at most 2 x samples)
    exact = np.float32 if 2 * calls.shape[1] * calls.shape[2] < 2**24 else np.float64
    weights = members.astype(exact)
    summed = np.stack([np.rint(row.astype(exact) @ weights).astype(np.int64) for row in rows])
    ac = np.ascontiguousarray(summed[:n_alleles].transpose(1, 0, 2))
    hom = np.ascontiguousarray(summed[n_alleles : 2 * n_alleles].transpose(1, 0, 2))
    hemi = np.ascontiguousarray(summed[2 * n_alleles : 3 * n_alleles].transpose(1, 0, 2))
    an = summed[-1]
    return GroupCounts(tuple(groups), ac, an, hom, hemi)


def _slot_sum(flags: Iterable[npt.NDArray[np.bool_]]) -> npt.NDArray[np.int8]:
    """The sum, per call, of one flag per allele slot."""
    total: npt.NDArray[np.int8] | None = None
    for flag in flags:
        total = flag.astype(np.int8) if total is None else total + flag.view(np.int8)
    if total is None:
        raise ValueError("genotypes need at least one allele slot per call")
    return total
