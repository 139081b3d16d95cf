"""The gamma-Poisson belief about a cohort count from a panel count, against the closed form."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from genecommons.privacy import attack, belief


def closed_form(k: int, count: int, panel_alleles: float, cohort_alleles: float) -> float:
    """The negative binomial pmf of shape count + 1/2 and success chance 1 / (1 + n / m)."""
    r = count + 0.5
    q = (cohort_alleles / panel_alleles) / (1 + cohort_alleles / panel_alleles)
    if q == 0:
        return 1.0 if k == 0 else 0.0  # no alleles in the cohort: no copies
    log = math.lgamma(k + r) - math.lgamma(k + 1) - math.lgamma(r)
    return math.exp(log + r * math.log1p(-q) + (k * math.log(q) if k else 0.0))


@given(
    count=st.integers(0, 300),
    panel=st.integers(1, 5000),
    cohort=st.integers(0, 20_000),
    high=st.integers(0, 60),
)
def test_count_chances_are_the_negative_binomial(
    count: int, panel: int, cohort: int, high: int
) -> None:
    chances = belief.count_chances(
        [count], panel_alleles=2 * panel, cohort_alleles=cohort, high=high
    )[:, 0]
    expected = [closed_form(k, count, 2 * panel, cohort) for k in range(high + 1)]
    # below 1e-250 the two sides underflow differently; such chances never matter
    assert chances == pytest.approx(expected, rel=1e-8, abs=1e-250)
    at_least = belief.count_at_least(
        [count], panel_alleles=2 * panel, cohort_alleles=cohort, high=high
    )[:, 0]
    assert at_least[0] == pytest.approx(1.0)
    assert np.all(np.diff(at_least) <= 1e-15)  # a tail shrinks
    assert at_least[1:] == pytest.approx(1 - np.cumsum(expected), abs=1e-9)


def test_the_belief_scales_with_the_cohort_and_sums_to_one() -> None:
    # 10 copies in 1,000 alleles: about 40 expected among 4,000
    chances = belief.count_chances([10], panel_alleles=1000, cohort_alleles=4000, high=400)[:, 0]
    assert chances.sum() == pytest.approx(1.0, abs=1e-9)
    assert float(np.arange(401) @ chances) == pytest.approx(10.5 * 4, rel=1e-6)
    # an allele the panel never saw is most likely absent from the cohort too
    unseen = belief.count_chances([0], panel_alleles=1000, cohort_alleles=4000, high=5)[:, 0]
    assert unseen[0] == unseen.max()


def test_the_attackers_belief_from_dosages_is_the_same_function() -> None:
    reference = np.zeros((3, 50), dtype=np.int8)
    reference[0, :3] = 1
    reference[1, :10] = 2
    from_dosages = attack.count_at_least(reference, beacon_alleles=1998.0, high=40)
    from_counts = belief.count_at_least(
        [3, 20, 0], panel_alleles=100, cohort_alleles=1998.0, high=40
    )
    assert from_dosages == pytest.approx(from_counts)


def test_impossible_beliefs_are_refused() -> None:
    with pytest.raises(ValueError, match="panel alleles"):
        belief.count_chances([1], panel_alleles=0, cohort_alleles=10, high=5)
    with pytest.raises(ValueError, match="counts"):
        belief.count_chances([-1], panel_alleles=10, cohort_alleles=10, high=5)
