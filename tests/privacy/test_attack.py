"""The Beacon attacks on a small simulated cohort (fixed seeds): undefended they detect
members, against the defended rule they do not; the statistic equals a slow reference."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from genecommons.privacy import attack
from genecommons.privacy.beacon_guard import ThresholdRule
from genecommons.variants.normalize import Variant
from genecommons.variants.store import SiteCounts

MEMBERS, PANEL, VICTIMS, SITES = 300, 300, 60, 6000


def cohort(
    seed: int = 7,
) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.int8], npt.NDArray[np.float64]]:
    """Members and a panel drawn from the same frequencies, many of them rare."""
    rng = np.random.default_rng(seed)
    f = 10 ** rng.uniform(-4, -0.3, size=SITES)  # log-uniform: rich in rare alleles
    people = rng.binomial(2, f[:, None], size=(SITES, MEMBERS + PANEL)).astype(np.int8)
    # and, as in real genomes, about ten variants private to each person
    private = np.zeros((10 * (MEMBERS + PANEL), MEMBERS + PANEL), dtype=np.int8)
    private[np.arange(len(private)), rng.integers(0, MEMBERS + PANEL, size=len(private))] = 1
    people = np.concatenate([people, private])
    f = np.concatenate([f, np.full(len(private), 1 / (2 * (MEMBERS + PANEL)))])
    return people[:, :MEMBERS], people[:, MEMBERS:], f


def slow_statistic(answers: list[int], f: list[float], n: int, error: float = 1e-6) -> float:
    total = 0.0
    for x, p in zip(answers, f, strict=True):
        p = min(max(p, 1e-6), 1 - 1e-6)
        d, d1 = (1 - p) ** (2 * n), (1 - p) ** (2 * n - 2)
        total += math.log((1 - error * d1) / (1 - d)) if x else math.log(error * d1 / d)
    return total


@given(
    data=st.lists(st.tuples(st.integers(0, 1), st.floats(1e-4, 0.5)), min_size=1, max_size=30),
    n=st.integers(5, 500),
)
def test_statistic_equals_the_slow_reference(data: list[tuple[int, float]], n: int) -> None:
    answers = np.array([a for a, _ in data], dtype=np.int8)
    f = np.array([p for _, p in data])
    order = np.arange(len(data))
    fast = attack.statistics([order], [answers], f, members=n, queries=[len(data)])
    assert fast[0, 0] == pytest.approx(
        slow_statistic([a for a, _ in data], list(f), n), rel=1e-6, abs=1e-6
    )


def attack_both(ask: attack.Ask, *, rarest: bool) -> attack.Curve:
    members, panel, _ = cohort()
    outsiders, reference = panel[:, :VICTIMS], panel[:, VICTIMS:]
    return attack.run_attack(
        "t",
        members=members[:, :VICTIMS],
        outsiders=outsiders,
        f=attack.frequencies(reference),
        beacon_size=MEMBERS,
        ask=ask,
        rarest_first=rarest,
        seed=3,
        queries=(5, 50, 500, 5000),
    )


def oracles() -> tuple[attack.Ask, attack.Ask]:
    members, _, _ = cohort()
    ac = members.sum(axis=1, dtype=np.int64)
    rule = ThresholdRule(key=bytes(range(32)), low=10, high=40)
    sites = [
        SiteCounts(
            Variant("chr22", i + 1, "A", "G"),
            {"all": {"ac": int(c), "an": 2 * MEMBERS, "hom": 0, "hemi": 0}},
        )
        for i, c in enumerate(ac)
    ]
    defended = np.array([rule.disclosed("GCD1", s) for s in sites], dtype=np.int8)
    exact = (ac > 0).astype(np.int8)
    return (lambda _v, s: exact[s]), (lambda _v, s: defended[s])


def test_undefended_beacon_falls_and_the_defended_one_holds() -> None:
    exact, defended = oracles()
    rarest = attack_both(exact, rarest=True)
    assert rarest.power[0] >= 0.9  # rarest first: a handful of queries
    assert attack_both(exact, rarest=False).power[-1] >= 0.9
    for rarest_first in (False, True):
        assert max(attack_both(defended, rarest=rarest_first).power) <= 0.2


def test_correctness_counts_common_alleles_and_absent_ones() -> None:
    counts = np.array([0, 0, 5, 40, 100])
    numbers = np.full(5, 4000)
    right = attack.correctness(counts, numbers, np.array([0, 1, 0, 1, 1], dtype=np.int8))
    assert (right.common_correct, right.common_asked) == (1.0, 2)
    assert (right.absent_present, right.absent_asked) == (1, 2)
