"""The linkage attack (von Thenen et al. 2019): haplotype copying equals a brute-force sum over
paths; on simulated LD it infers hidden alleles far better than their frequency says, a weight
near 1 more surely than doubling says, and its calibrated chances say how often the victims
carry the alleles; the calibration is the isotonic fit; it finds the members of a small
undefended Beacon and of one hiding rare alleles; it never infers an allele its panel lacks."""

from __future__ import annotations

import itertools

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genecommons.privacy import linkage
from genecommons.privacy.attack import EXACT, Thresholds

from .conftest import Simulated


def brute_force(
    panel: npt.NDArray[np.uint8], genotypes: npt.NDArray[np.int8], switches: list[float]
) -> npt.NDArray[np.float64]:
    """P(copying h at site s | genotypes), summing the joint chance over every path."""
    sites, haps = panel.shape
    victims = genotypes.shape[1]
    out = np.zeros((sites, victims, haps))
    for v in range(victims):
        total = 0.0
        for path in itertools.product(range(haps), repeat=sites):
            p = 1.0 / haps
            for s, h in enumerate(path):
                if s:
                    p *= (1 - switches[s]) * (path[s - 1] == h) + switches[s] / haps
                g, a = int(genotypes[s, v]), int(panel[s, h])
                p *= 1.0 if g == 1 else (1 - linkage.MISMATCH if a == g // 2 else linkage.MISMATCH)
            total += p
            for s, h in enumerate(path):
                out[s, v, h] += p
        out[:, v] /= total
    return out


@settings(max_examples=60, deadline=None)
@given(data=st.data(), sites=st.integers(1, 4), haps=st.integers(1, 3), victims=st.integers(1, 2))
def test_copying_posteriors_equal_the_brute_force_sum(
    data: st.DataObject, sites: int, haps: int, victims: int
) -> None:
    panel = np.array(
        data.draw(
            st.lists(
                st.lists(st.integers(0, 1), min_size=haps, max_size=haps),
                min_size=sites,
                max_size=sites,
            )
        ),
        dtype=np.uint8,
    )
    genotypes = np.array(
        data.draw(
            st.lists(
                st.lists(st.integers(0, 2), min_size=victims, max_size=victims),
                min_size=sites,
                max_size=sites,
            )
        ),
        dtype=np.int8,
    )
    switches = [
        1.0,
        *data.draw(st.lists(st.floats(0.0001, 0.99), min_size=sites - 1, max_size=sites - 1)),
    ]
    fast = linkage.copying_posteriors(panel, genotypes, np.array(switches))
    np.testing.assert_allclose(fast, brute_force(panel, genotypes, switches), atol=1e-9)


def split(region: Simulated, seed: int = 3) -> tuple[npt.NDArray[np.int64], ...]:
    order = np.random.default_rng(seed).permutation(region.haplotypes.shape[1] // 2)
    return order[:65], order[65:130], order[130:]  # members, non-members, the attacker's panel


def test_inference_beats_the_allele_frequency_prior(simulated_region: Simulated) -> None:
    _, victims, panel = split(simulated_region)
    haps = simulated_region.haps(panel)
    f = haps.mean(axis=1)
    common = (f >= linkage.COMMON) & (f <= 1 - linkage.COMMON)
    hidden = np.flatnonzero((f > 0) & (f < linkage.COMMON))
    truth = simulated_region.dosages(victims)
    shown = np.where(common[:, None], truth, 0).astype(np.int8)
    chance = linkage.carrier_chances(haps, simulated_region.positions, shown, common, hidden)
    sure = chance >= 0.5
    carried = truth[hidden] > 0
    prior = 1 - (1 - f[hidden, None]) ** 2  # the chance of carrying by frequency alone
    assert sure.sum() >= 100
    assert carried[sure].mean() >= 0.6
    assert carried[sure].mean() >= 5 * np.broadcast_to(prior, sure.shape)[sure].mean()


def isotonic_loss(rates: list[float], weights: list[float]) -> float:
    """The least weighted squared distance from `rates` to a non-decreasing sequence, over every
    split into runs of bins (the best fit is constant on runs, at each run's weighted mean)."""
    n = len(rates)
    r, w = np.asarray(rates), np.asarray(weights)
    best = np.inf
    for cuts in itertools.product((False, True), repeat=n - 1):
        bounds = [0, *(i + 1 for i, cut in enumerate(cuts) if cut), n]
        values = np.concatenate(
            [
                np.full(b - a, np.average(r[a:b], weights=w[a:b]))
                for a, b in itertools.pairwise(bounds)
            ]
        )
        if (np.diff(values) >= -1e-12).all():
            best = min(best, float((w * (values - r) ** 2).sum()))
    return best


@settings(max_examples=200, deadline=None)
@given(
    pairs=st.lists(st.tuples(st.floats(0.0, 1.0), st.floats(0.01, 100.0)), min_size=1, max_size=7)
)
def test_monotone_is_the_isotonic_fit(pairs: list[tuple[float, float]]) -> None:
    rates, weights = [r for r, _ in pairs], [w for _, w in pairs]
    fit = linkage.monotone(np.array(rates), np.array(weights))
    assert (np.diff(fit) >= -1e-12).all()
    loss = float((np.asarray(weights) * (fit - np.asarray(rates)) ** 2).sum())
    assert loss <= isotonic_loss(rates, weights) + 1e-9
    np.testing.assert_allclose((fit * weights).sum(), np.dot(rates, weights), rtol=1e-9)


def test_a_bin_of_one_person_does_not_lift_the_bins_above_it() -> None:
    # 200 pairs at weight 0.9995, 70% carried; one at 0.97, carried
    weights = np.array([[0.9995]] * 200 + [[0.97]])
    carried = np.array([[i % 10 < 7] for i in range(200)] + [[True]])
    adjust = linkage.calibrate(weights, carried, np.full(201, 2))
    near_one = adjust(np.array([[0.9995]]), np.array([2]))[0, 0]
    # the running maximum it replaced gave 0.98; pooled, the big bin stays near its own 0.7
    assert 0.69 <= near_one <= 0.75


def test_a_weight_near_one_is_surer_than_doubling_says(simulated_region: Simulated) -> None:
    _, victims, panel = split(simulated_region)
    haps = simulated_region.haps(panel)
    f = haps.mean(axis=1)
    common = (f >= linkage.COMMON) & (f <= 1 - linkage.COMMON)
    hidden = np.flatnonzero((f > 0) & (f < linkage.COMMON))
    truth = simulated_region.dosages(victims)
    shown = np.where(common[:, None], truth, 0).astype(np.int8)
    weight = linkage.carrier_weights(haps, simulated_region.positions, shown, common, hidden)
    carried = truth[hidden] > 0
    middling, near_one = (weight >= 0.5) & (weight < 0.9), weight >= 0.999
    assert middling.sum() >= 100 and near_one.sum() >= 100
    # doubling reads both as certain; the victims carry the second far more often
    assert carried[near_one].mean() >= carried[middling].mean() + 0.15


def test_an_allele_the_panel_lacks_is_never_inferred(simulated_region: Simulated) -> None:
    _, victims, panel = split(simulated_region)
    haps = simulated_region.haps(panel).copy()
    f = haps.mean(axis=1)
    common = (f >= linkage.COMMON) & (f <= 1 - linkage.COMMON)
    hidden = np.flatnonzero((f > 0) & (f < linkage.COMMON))
    haps[hidden[::2]] = 0  # alleles the attacker's panel does not hold
    truth = simulated_region.dosages(victims)
    shown = np.where(common[:, None], truth, 0).astype(np.int8)
    chance = linkage.carrier_chances(haps, simulated_region.positions, shown, common, hidden)
    assert (chance[::2] == 0).all()
    reference = (haps[:, 0::2] + haps[:, 1::2]).astype(np.int8)
    chances = linkage.answer_chances(reference, members=65, thresholds=EXACT)
    for v in range(chance.shape[1]):
        asked = linkage.choose_queries(chance[:, v], hidden, chances, most=50)
        assert np.isin(asked, np.arange(1, len(hidden), 2)).all()


@pytest.mark.slow
def test_the_attack_finds_the_members_of_a_small_beacon(simulated_region: Simulated) -> None:
    members, outsiders, panel = split(simulated_region)
    cohort = simulated_region.dosages(members)
    ac = cohort.sum(axis=1, dtype=np.int64)
    cut = int(np.ceil(0.05 * 2 * len(members)))
    victims = np.concatenate([cohort, simulated_region.dosages(outsiders)], axis=1)
    reference = simulated_region.dosages(panel)
    inferred = linkage.infer(
        victims,
        reference=reference,
        haplotypes=simulated_region.haps(panel),
        positions=simulated_region.positions,
        seed=1,
    )
    power = {}
    for name, answers, rule in (
        ("undefended", ac > 0, EXACT),
        ("hide-rare", ac >= cut, Thresholds((cut,), (1.0,))),
    ):
        found = linkage.von_thenen(
            inferred,
            victims=victims,
            members=len(members),
            reference=reference,
            beacon_size=len(members),
            ask=lambda _v, sites, said=answers: said[sites].astype(np.int8),
            truth=lambda sites: (ac[sites] > 0).astype(np.int8),
            rule=rule,
        )
        power[name] = dict(zip(found.curve.queries, found.curve.power, strict=True))
        assert found.confident_accuracy >= 0.6
        assert found.confident_accuracy >= 5 * found.prior_accuracy
    # the calibrated chances say how often the victims carry the alleles
    chance, carried = inferred.carried, victims[inferred.targets] > 0
    for low, high in ((0.3, 0.6), (0.6, 0.8), (0.8, 1.01)):
        inside = (chance >= low) & (chance < high)
        assert inside.sum() >= 200
        assert abs(chance[inside].mean() - carried[inside].mean()) <= 0.1
    # 65 + 65 victims: a power of 0.1 carries about +-0.05 of sampling error, of 0.9 +-0.04
    assert power["undefended"][5] >= 0.8
    assert power["undefended"][20] >= 0.8
    assert max(power["hide-rare"].values()) >= 0.2  # four times the false-positive rate


def test_the_hide_rare_baseline_withholds_alleles_under_five_percent() -> None:
    from genecommons.policy.models import Subject
    from genecommons.variants.answers import Granularity, hide_rare_answer
    from genecommons.variants.normalize import Variant
    from genecommons.variants.store import SiteCounts

    subject = Subject.user("a@example.org", roles=frozenset(), institution=None)

    def told(ac: int, an: int = 130) -> tuple[bool, bool]:
        site = SiteCounts(Variant("chr22", 1, "A", "G"), {"all": {"ac": ac, "an": an}})
        answer = hide_rare_answer(
            subject=subject,
            address="x",
            dataset="GCD1",
            granularity=Granularity.BOOLEAN,
            matches=[site],
        )
        return answer.exists, answer.withheld

    assert told(0) == (False, False)  # absent: never said to exist
    assert told(6) == (False, True)  # 6 of 130 copies: 4.6%, withheld
    assert told(7) == (True, False)  # 5.4%: the truth
    assert told(130) == (True, False)
