"""A dataset's genome-wide budget against membership detection from its open frequencies.

Homer et al. 2008 and Sankararaman et al. 2009 detect a person in a pool from the pool's allele
frequencies at many variants. Their likelihood-ratio test is, for small effects, a weighted sum
over variants, and its power at false-positive rate alpha is 1 - Phi(z_{1-alpha} - sqrt(C)),
where C is the sum over released variants of each variant's noncentrality (what it tells about
one person). For a variant of frequency p in a pool of N people whose allele count carries
discrete Laplace noise of scale b, read in k groups holding the person:

    c = p(1 - p) / (N p(1 - p) + b^2 / (2k))

(the attacker knows p exactly; by Stam's inequality the Laplace noise carries no more Fisher
information than a Gaussian of variance b^2, and each of the k groups is one more reading).
Exact frequencies cost 1/N per variant: about 0.13 N variants detect a person with power 0.10
at 5% false positives; the noise makes common variants cost up to ten times less, and rare ones
almost nothing.

SecureGenome (Sankararaman et al. 2009) releases only variants that keep C under the bound
(z_{1-alpha} - z_{1-power})^2. The open route does the same as tables are asked for: each
release is charged the most that any of its groups tells (N its AN / 2: a person's population x
sex cell is a small pool, read by an attacker who knows their ancestry and sex), computed from
the released noisy table (post-processing: it tells nothing new), and the dataset stops
releasing new tables once the next one would pass the bound.

The bound is on these tests (linear in the genotypes, variants independent), not on every
conceivable attack: it is not a differential-privacy guarantee. A genome-wide epsilon that
bounds every test (power <= e^epsilon x alpha: epsilon <= ln 2 for 0.10 at 5%) would need
noise of thousands of allele copies per table over 100,000 variants.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from statistics import NormalDist

from genecommons.privacy.dp import GROUPS_PER_PERSON, sensitivity

ALL = "all"


def bound(power: float, false_positive_rate: float) -> float:
    """The total noncentrality C at which the test that flags `false_positive_rate` of
    non-members flags `power` of members."""
    normal = NormalDist()
    gap = normal.inv_cdf(1 - false_positive_rate) - normal.inv_cdf(1 - power)
    return max(gap, 0.0) ** 2


def power(total: float, false_positive_rate: float) -> float:
    """The power of the test at `false_positive_rate` after noncentrality `total`."""
    normal = NormalDist()
    return 1 - normal.cdf(normal.inv_cdf(1 - false_positive_rate) - math.sqrt(total))


def cost(frequency: float, people: int, scale: float, readings: int = 1) -> float:
    """The noncentrality of one variant of `frequency` in a pool of `people`, its count noisy
    at discrete Laplace `scale` (0: exact), read in `readings` groups."""
    p = min(max(frequency, 0.0), 1.0)
    pq = p * (1 - p)
    denominator = people * pq + scale**2 / (2 * max(readings, 1))
    return pq / denominator if denominator > 0 else 0.0


def table_cost(noisy: Mapping[str, Mapping[str, int]], *, epsilon: float) -> float:
    """What a released noisy table (group -> AC, AN, ...) costs: the most any of its groups
    tells, a group of AN / 2 people read in as many groups as a person is in (a person's
    population x sex cell is a small pool: the attacker who knows their ancestry and sex reads
    it). Each from its own noisy cell: AF = (AC + 1/2) / (AN + 1), AC clipped to [0, AN], so
    that noise pushing AC past either end still charges the variant."""
    groups = list(noisy)
    if not groups:
        return 0.0
    scale = sensitivity(groups) / epsilon
    readings = min(len(groups), GROUPS_PER_PERSON)
    most = 0.0
    for cell in noisy.values():
        an = max(int(cell["an"]), 2)
        frequency = (min(max(int(cell["ac"]), 0), an) + 0.5) / (an + 1)
        most = max(most, cost(frequency, an // 2, scale, readings=readings))
    return most


def epsilon_for(variants: int, *, limit: float, groups: int, ceiling: float) -> float:
    """The per-variant epsilon at which `variants` variants of frequency 1/2 (the costliest)
    fit in `limit` whatever the pool's size (at most `ceiling`)."""
    readings = min(groups, GROUPS_PER_PERSON)
    scale = math.sqrt(variants * 0.5 * readings / limit)
    return min(ceiling, sensitivity(["group"] * groups) / scale)
