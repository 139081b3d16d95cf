"""The open tier's frequency mechanism: its sensitivity against a brute-force reference, its
noise against the discrete Laplace distribution, OpenDP's accounting, small-cell suppression."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from genecommons.privacy import dp

Person = tuple[str, str, int, bool]  # population, sex, copies, haploid


def slow_table(people: list[Person]) -> dict[str, dict[str, int]]:
    """Group counts the long way: every group a person belongs to, every field."""
    groups: dict[str, dict[str, int]] = {}
    for population, sex, copies, haploid in people:
        for group in ("all", population, sex, f"{population}:{sex}"):
            cell = groups.setdefault(group, {"ac": 0, "an": 0, "hom": 0, "hemi": 0})
            cell["ac"] += copies
            cell["an"] += 1 if haploid else 2
            cell["hom"] += int(copies == 2 and not haploid)
            cell["hemi"] += int(copies == 1 and haploid)
    return groups


people_strategy = st.lists(
    st.tuples(
        st.sampled_from(["CHB", "JPT"]),
        st.sampled_from(["female", "male"]),
        st.integers(0, 2),
        st.booleans(),
    ).map(lambda p: (p[0], p[1], min(p[2], 1) if p[3] else p[2], p[3])),
    min_size=2,
    max_size=12,
)


@given(people=people_strategy)
def test_one_person_moves_a_table_by_at_most_its_sensitivity(people: list[Person]) -> None:
    table = slow_table(people)
    groups = sorted(table)
    for i in range(len(people)):
        without = slow_table(people[:i] + people[i + 1 :])
        distance = sum(
            abs(table[g][f] - without.get(g, {}).get(f, 0)) for g in groups for f in dp.FIELDS
        )
        assert distance <= dp.sensitivity(groups)


def test_opendp_accounts_the_configured_epsilon() -> None:
    groups = ["all", "CHB", "female", "CHB:female", "JPT", "male"]
    assert dp.sensitivity(groups) == 24
    assert dp.privacy_cost(groups, 1.0) == pytest.approx(1.0)
    assert dp.privacy_cost(["all"], 0.5) == pytest.approx(0.5)


def discrete_laplace(k: int, scale: float) -> float:
    r = math.exp(-1 / scale)
    return (1 - r) / (1 + r) * r ** abs(k)


def test_noise_follows_the_discrete_laplace_distribution() -> None:
    epsilon, counts = 3.0, {"all": {"ac": 50, "an": 4000, "hom": 10, "hemi": 0}}
    scale = dp.sensitivity(["all"]) / epsilon  # 2
    noise: Counter[int] = Counter()
    draws = 4000
    for _ in range(draws):
        noisy = dp.noisy_counts(counts, epsilon=epsilon)["all"]
        for f in dp.FIELDS:
            noise[noisy[f] - counts["all"][f]] += 1
    total = draws * len(dp.FIELDS)
    support = range(-40, 41)
    distance = 0.5 * sum(abs(noise[k] / total - discrete_laplace(k, scale)) for k in support)
    assert distance < 0.04  # expected about 0.01 at this sample size
    values = np.repeat(list(noise), list(noise.values()))
    r = math.exp(-1 / scale)
    assert values.var() == pytest.approx(2 * r / (1 - r) ** 2, rel=0.1)


@given(
    noisy=st.dictionaries(
        st.sampled_from(["all", "CHB", "male"]),
        st.fixed_dictionaries({f: st.integers(-50, 500) for f in dp.FIELDS}),
        min_size=1,
    ),
    k=st.integers(1, 20),
)
def test_small_cells_are_suppressed_on_the_noisy_value(
    noisy: dict[str, dict[str, int]], k: int
) -> None:
    for row in dp.shown_rows(noisy, min_cell=k):
        for value in (row.ac, row.hom, row.hemi):
            assert value == f"< {k}" or (isinstance(value, int) and value >= k)
        assert row.an >= 0
        assert row.af is None or 0 <= row.af <= 1
        assert (row.af is None) == (isinstance(row.ac, str) or row.an == 0)
