"""What a public count says about an allele's count in a cohort (pure numpy).

A reference panel (public, or an attacker's own) that holds an allele `c` times among its `m`
alleles says, of the allele's count X among a cohort's `n` alleles from the same population:
the allele's rate has a Gamma(c + 1/2) posterior (Jeffreys' prior on a Poisson rate), so X is
gamma-Poisson, i.e. negative binomial with shape c + 1/2 and success chance 1 / (1 + n / m).
The defended Beacon places each variant's threshold window where this belief, from the node's
public reference, puts little weight (privacy/beacon_guard.py); the attacks (privacy/attack.py)
hold the same belief from their panels. Both sides use this one function.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]


def count_chances(
    panel_counts: npt.ArrayLike,
    *,
    panel_alleles: npt.ArrayLike,
    cohort_alleles: float,
    high: int,
) -> Floats:
    """P(X = k) for k = 0 .. high (rows), per allele (columns): the belief about the allele's
    count X among `cohort_alleles` alleles, from its count among `panel_alleles` of a panel."""
    counts = np.atleast_1d(np.asarray(panel_counts, dtype=np.float64))
    alleles = np.broadcast_to(np.asarray(panel_alleles, dtype=np.float64), counts.shape)
    if high < 0 or cohort_alleles < 0 or (alleles <= 0).any() or (counts < 0).any():
        raise ValueError("need counts >= 0, panel alleles > 0, cohort alleles >= 0, high >= 0")
    shape = counts + 0.5
    theta = cohort_alleles / alleles
    q = theta / (1 + theta)
    out = np.zeros((high + 1, len(counts)))
    pmf = np.exp(shape * np.log1p(-q))
    for k in range(high + 1):
        out[k] = pmf
        pmf = pmf * (k + shape) / (k + 1) * q
    return out


def count_at_least(
    panel_counts: npt.ArrayLike,
    *,
    panel_alleles: npt.ArrayLike,
    cohort_alleles: float,
    high: int,
) -> Floats:
    """P(X >= k) for k = 0 .. high + 1 (rows), per allele, under `count_chances`' belief."""
    pmf = count_chances(
        panel_counts, panel_alleles=panel_alleles, cohort_alleles=cohort_alleles, high=high
    )
    below = np.vstack([np.zeros((1, pmf.shape[1])), np.cumsum(pmf, axis=0)])
    return np.asarray(np.clip(1.0 - below, 0.0, 1.0))
