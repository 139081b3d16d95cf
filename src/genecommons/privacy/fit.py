"""Whether a public reference suits a dataset: what windows placed by it expose, against the
rule without it.

A window placed by a public reference (privacy/beacon_guard.py) protects members only if the
reference predicts the dataset's counts: a reference of another ancestry holds alleles as
common that the dataset holds rarely (and the reverse), and their windows then sit on the
dataset's counts instead of away from them. The check sums, over the dataset's alleles,
`ThresholdRule.exposure` (the chance that one member decides the answer) under both rules: the
expected number of answers one member carrying every allele could decide, an aggregate of the
whole dataset that says nothing about any one person.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from genecommons.privacy.beacon_guard import ThresholdRule
from genecommons.variants.store import SiteCounts

# the windows must at least halve what the rule without the reference exposes
GOOD_FIT = 0.5


@dataclass(frozen=True, slots=True)
class ReferenceFit:
    """What the dataset's alleles expose under each rule."""

    sites: int  # alleles of the dataset held at least once
    listed: int  # of them, listed by the reference
    placed: float  # summed exposure with windows placed by the reference
    unplaced: float  # summed exposure of the rule without it ([low, high] for every variant)
    exposed_placed: int  # alleles some member can decide, with the windows
    exposed_unplaced: int  # the same without

    @property
    def ratio(self) -> float:
        """Exposure with the windows over exposure without (below 1: the reference helps)."""
        return self.placed / self.unplaced if self.unplaced else float("inf")

    @property
    def suits(self) -> bool:
        """Whether the windows cut the exposure at least by `GOOD_FIT`."""
        return self.ratio <= GOOD_FIT


def reference_fit(placed: ThresholdRule, sites: Iterable[SiteCounts]) -> ReferenceFit:
    """Sum the exposure of `sites` (a dataset's alleles) under `placed` (a rule with a
    reference) and under the same rule without it."""
    if placed.reference is None:
        raise ValueError("the rule has no public reference to check")
    reference = placed.reference
    unplaced = replace(placed, reference=None, placed=None)
    held = listed = exposed_placed = exposed_unplaced = 0
    with_windows = without = 0.0
    for site in sites:
        if site.counts.get("all", {}).get("ac", 0) <= 0:
            continue
        held += 1
        listed += reference.get(site.variant.key) is not None
        a, b = placed.exposure(site), unplaced.exposure(site)
        with_windows += a
        without += b
        exposed_placed += a > 0
        exposed_unplaced += b > 0
    return ReferenceFit(held, listed, with_windows, without, exposed_placed, exposed_unplaced)
