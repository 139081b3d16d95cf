"""Whether a public reference suits a dataset: a reference of the dataset's own population cuts
what its alleles expose; one that holds its rare alleles as common makes it worse."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from genecommons.privacy.beacon_guard import PublicCounts, ThresholdRule
from genecommons.privacy.fit import reference_fit
from genecommons.variants.normalize import Variant
from genecommons.variants.store import SiteCounts

KEY = bytes(range(32))
Tables = Callable[[int, dict[str, tuple[int, int]]], PublicCounts]


def dataset(seed: int = 1, sites: int = 4000) -> tuple[list[SiteCounts], np.ndarray]:
    """A 2,000-person dataset's allele counts at sites of log-uniform frequency."""
    rng = np.random.default_rng(seed)
    f = 10 ** rng.uniform(-4, -1, size=sites)
    ac = rng.binomial(4000, f)
    found = [
        SiteCounts(Variant("chr22", 100 + i, "A", "G"), {"all": {"ac": int(c), "an": 4000}})
        for i, c in enumerate(ac)
    ]
    return found, f


def test_a_reference_of_the_same_population_suits(public_table: Tables) -> None:
    found, f = dataset()
    rng = np.random.default_rng(2)
    public = rng.binomial(1000, f)  # 500 people of the same population
    table = public_table(
        1000, {s.variant.key: (int(c), 1000) for s, c in zip(found, public, strict=True)}
    )
    fit = reference_fit(ThresholdRule(KEY, 10, 40, reference=table), found)
    assert fit.sites == sum(s.counts["all"]["ac"] > 0 for s in found)
    assert fit.listed == fit.sites
    assert fit.ratio < 0.5 and fit.suits
    assert fit.exposed_placed < fit.exposed_unplaced


def test_a_reference_that_holds_rare_alleles_as_common_does_not(public_table: Tables) -> None:
    found, f = dataset()
    rng = np.random.default_rng(3)
    # another population: its frequencies unrelated to the dataset's
    public = rng.binomial(1000, rng.permutation(f))
    table = public_table(
        1000, {s.variant.key: (int(c), 1000) for s, c in zip(found, public, strict=True)}
    )
    fit = reference_fit(ThresholdRule(KEY, 10, 40, reference=table), found)
    assert fit.ratio > 1 and not fit.suits


def test_an_empty_reference_places_every_window_high(public_table: Tables) -> None:
    found, _ = dataset()
    fit = reference_fit(ThresholdRule(KEY, 10, 40, reference=public_table(1000, {})), found)
    assert fit.listed == 0
    # windows 38-40 for every allele: only counts 37-40 can be decided by one member
    decided = sum(36 <= s.counts["all"]["ac"] <= 41 for s in found)
    assert fit.exposed_placed <= decided
    with pytest.raises(ValueError, match="no public reference"):
        reference_fit(ThresholdRule(KEY, 10, 40), found)
