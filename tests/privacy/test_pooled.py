"""Membership detection from released allele frequencies (Homer et al. 2008, Sankararaman et
al. 2009) on a small synthetic cohort (fixed seed): powerful against exact frequencies and the
open route's per-variant noisy tables, at most 0.10 at 5% false positives once the dataset's
detection budget (privacy/detection.py) limits what is released."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from genecommons.privacy import detection, pooled

POOL, PANEL, OUTSIDERS, SITES = 400, 400, 400, 8000
CHECKPOINTS = (1000, 2000, 5000, SITES)


def cohort(
    seed: int = 1,
) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.int8], npt.NDArray[np.int8], list[pooled.Table]]:
    """The pool, the non-members, the attacker's panel, and the pool's counts tables (one
    population, two sexes: the open route's six groups, sensitivity 24)."""
    rng = np.random.default_rng(seed)
    f = rng.uniform(0.02, 0.5, size=SITES)
    people = rng.binomial(2, f[:, None], size=(SITES, POOL + PANEL + OUTSIDERS)).astype(np.int8)
    pool = people[:, :POOL]
    female = rng.random(POOL) < 0.5
    everyone = np.ones(POOL, dtype=bool)
    tables = pooled.tables(
        pool,
        [everyone, everyone, female, ~female, female, ~female],
        ["all", "X", "F", "M", "X:F", "X:M"],
    )
    return pool, people[:, POOL + PANEL :], people[:, POOL : POOL + PANEL], tables


def attack(kind: pooled.Release) -> pooled.Power:
    pool, outsiders, panel, tables = cohort()
    released = pooled.release(
        kind,
        tables,
        epsilon=1.0,
        min_cell=10,
        limit=detection.bound(0.10, 0.05),
    )
    return pooled.measure(
        released,
        members=pool,
        outsiders=outsiders,
        references={"all": panel.sum(axis=1) / (2 * panel.shape[1])},
        counts=CHECKPOINTS,
        name=kind,
    )


def test_both_tests_detect_members_from_exact_frequencies() -> None:
    power = attack(pooled.Release.EXACT)
    assert power.likelihood_ratio[-1] > 0.8 and power.homer[-1] > 0.8
    assert power.likelihood_ratio[0] < power.likelihood_ratio[-1]  # more variants, more power


def test_per_variant_noise_alone_does_not_stop_them() -> None:
    """The open route without a budget: epsilon 1 per variant, as served before."""
    power = attack(pooled.Release.NOISY)
    assert power.released[-1] > 0.9 * SITES  # nearly every table shown
    assert max(power.homer[-1], power.likelihood_ratio[-1]) >= 0.25  # five times the 5%
    assert power.homer[-1] > power.homer[0]


def test_the_detection_budget_holds_both_tests_at_or_under_ten_percent() -> None:
    power = attack(pooled.Release.BUDGETED)
    assert all(p <= 0.10 for p in power.homer + power.likelihood_ratio)
    assert 0 < power.released[-1] < SITES // 10  # tables were released, then withheld
    assert power.charged[-1] <= detection.bound(0.10, 0.05)


@given(power=st.floats(0.051, 0.99), fpr=st.floats(0.001, 0.05))
def test_the_bound_is_the_power_it_was_made_for(power: float, fpr: float) -> None:
    assert detection.power(detection.bound(power, fpr), fpr) == pytest.approx(power, abs=1e-9)


@given(p=st.floats(0.001, 0.999), people=st.integers(1, 100_000), scale=st.floats(0, 1000))
def test_a_variant_costs_at_most_what_exact_frequencies_do(
    p: float, people: int, scale: float
) -> None:
    exact = detection.cost(p, people, 0.0)
    assert exact == pytest.approx(1 / people)
    assert 0 <= detection.cost(p, people, scale, readings=4) <= exact * (1 + 1e-12)


def slow_homer(person: list[int], pool: list[float], reference: list[float]) -> float:
    return sum(
        abs(x / 2 - r) - abs(x / 2 - m) for x, m, r in zip(person, pool, reference, strict=True)
    )


def slow_ratio(person: list[int], pool: list[float], reference: list[float]) -> float:
    def clip(v: float) -> float:
        return min(max(v, pooled.CLIP), 1 - pooled.CLIP)

    return sum(
        x * math.log(clip(m) / clip(r)) + (2 - x) * math.log((1 - clip(m)) / (1 - clip(r)))
        for x, m, r in zip(person, pool, reference, strict=True)
    )


@given(
    data=st.lists(
        st.tuples(st.integers(0, 2), st.floats(0, 1), st.floats(0, 1)), min_size=1, max_size=40
    )
)
def test_the_statistics_equal_slow_references(data: list[tuple[int, float, float]]) -> None:
    person = np.array([[x] for x, _, _ in data], dtype=np.int8)
    pool = np.array([m for _, m, _ in data])
    reference = np.array([r for _, _, r in data])
    xs, ms, rs = [x for x, _, _ in data], list(pool), list(reference)
    d = pooled.homer(person, pool, reference, [len(data)])
    lr = pooled.likelihood_ratio(person, pool, reference, [len(data)])
    assert d[0, 0] == pytest.approx(slow_homer(xs, ms, rs), abs=1e-9)
    assert lr[0, 0] == pytest.approx(slow_ratio(xs, ms, rs), rel=1e-9, abs=1e-9)


def test_an_unreleased_variant_tells_nothing() -> None:
    person = np.array([[2], [0]], dtype=np.int8)
    reference = np.array([0.3, 0.4])
    withheld = np.array([np.nan, np.nan])
    assert pooled.homer(person, withheld, reference, [2])[0, 0] == 0
    assert pooled.likelihood_ratio(person, withheld, reference, [2])[0, 0] == 0
