"""Counts of people below record granularity: keyed consistent noise and small-cell suppression."""

from __future__ import annotations

import math
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genecommons.privacy.cells import CellRule, discrete_laplace_quantile, people_answer
from genecommons.variants.answers import Granularity

KEY = b"k" * 32
accessions = st.lists(st.text("GCI0123456789", min_size=4, max_size=12), max_size=40)


def cdf(k: int, scale: float) -> float:
    """P(X <= k) of the discrete Laplace distribution, summed term by term."""
    r = math.exp(-1 / scale)
    norm = (1 - r) / (1 + r)
    return sum(norm * r ** abs(j) for j in range(-400, k + 1))


@given(u=st.floats(1e-9, 1 - 1e-9), scale=st.floats(0.3, 6))
@settings(max_examples=300, deadline=None)
def test_the_quantile_is_the_first_integer_whose_cdf_reaches_u(u: float, scale: float) -> None:
    k = discrete_laplace_quantile(u, scale)
    assert cdf(k, scale) >= u - 1e-12
    assert cdf(k - 1, scale) < u + 1e-12


def test_noise_read_off_uniform_cell_keys_has_the_discrete_laplace_distribution() -> None:
    scale, n = 2.0, 20_000
    drawn = Counter(discrete_laplace_quantile((i + 0.5) / n, scale) for i in range(n))
    r = math.exp(-1 / scale)
    for k in range(-4, 5):
        expected = (1 - r) / (1 + r) * r ** abs(k)
        assert drawn[k] / n == pytest.approx(expected, abs=2e-3)
    assert sum(k * c for k, c in drawn.items()) / n == pytest.approx(0, abs=0.01)


@pytest.mark.parametrize("u", [0.0, 1.0, -0.5, 2.0])
def test_a_quantile_outside_the_open_interval_is_refused(u: float) -> None:
    with pytest.raises(ValueError, match="0 < u < 1"):
        discrete_laplace_quantile(u, 2.0)


@given(records=accessions, order=st.randoms())
def test_the_same_people_get_the_same_count_however_they_are_listed(
    records: list[str], order: object
) -> None:
    rule = CellRule(key=KEY, minimum=1)
    shuffled = list(records) + list(records[:3])  # duplicates count once
    order.shuffle(shuffled)  # type: ignore[attr-defined]
    assert rule.released(shuffled) == rule.released(records)
    assert rule.released(records) >= 0
    assert (rule.released(records) == 0) if not records else True


def test_nobody_is_answered_zero_and_never_exists() -> None:
    rule = CellRule(key=KEY, minimum=1)
    assert rule.released([]) == 0
    answer = people_answer(rule, Granularity.COUNT, [])
    assert (answer.exists, answer.count, answer.withheld) == (False, 0, True)


def test_sets_differing_by_one_person_get_independent_looking_noise() -> None:
    rule = CellRule(key=KEY, minimum=1, scale=2.0)
    pairs = []
    for j in range(2_000):
        base = [f"GCI{j:05d}{i:03d}" for i in range(20)]
        pairs.append((rule.noise(rule.cell_key(base)), rule.noise(rule.cell_key([*base, "GCX"]))))
    r = math.exp(-1 / 2.0)
    collision = sum(((1 - r) / (1 + r) * r ** abs(k)) ** 2 for k in range(-60, 61))
    same = sum(a == b for a, b in pairs) / len(pairs)
    assert same == pytest.approx(collision, abs=0.03)  # as for two independent draws
    differences = Counter(b - a for a, b in pairs)
    assert differences[0] / len(pairs) < 0.2  # the difference of answers is not the truth's


def test_another_key_gives_other_noise() -> None:
    people = [f"GCI{i:08d}" for i in range(30)]
    counts = {CellRule(key=bytes([b]) * 32).released(people) for b in range(40)}
    assert len(counts) > 3


def test_small_cells_are_withheld_alike_and_larger_ones_shown_with_a_note() -> None:
    rule = CellRule(key=KEY, minimum=10, scale=1.0)
    for size in range(0, 40):
        people = [f"GCI{i:08d}" for i in range(size)]
        shown = rule.released(people)
        counted = people_answer(rule, Granularity.COUNT, people)
        told = people_answer(rule, Granularity.BOOLEAN, people)
        assert told.count is None
        assert told.exists is counted.exists is (shown >= 10)
        if shown >= 10:
            assert counted.count == shown and not counted.withheld
            assert abs(shown - size) <= 12  # noise at scale 1 this large has odds < 1e-5
        else:
            assert counted.count == 0 and counted.withheld
            assert counted.note is not None and "Not disclosed" in counted.note
            assert counted.note_zh is not None and "未披露" in counted.note_zh


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"key": b"short"}, "16 bytes"),
        ({"key": KEY, "minimum": 0}, "at least 1"),
        ({"key": KEY, "scale": 0.0}, "positive"),
    ],
)
def test_a_bad_rule_is_refused(kwargs: dict[str, object], says: str) -> None:
    with pytest.raises(ValueError, match=says):
        CellRule(**kwargs)  # type: ignore[arg-type]
