"""The leak simulation, on a small demo cohort and a few dozen trials.

Margins by binomial bounds. Each trial is independent given the copies, so the number of trials
that name a colluder is Binomial(n, rate). With n = 50 and the goal's rate 0.99, four or more
misses have probability C(50, 4) 0.01^4 ~ 2e-3, so we require at least 47 catches: a correct
scheme fails this with probability below 0.3 %, while one at 90 % passes it with probability
below 3 % (P[Binomial(50, 0.9) >= 47] ~ 0.025). Tracing names an innocent in a trial with
probability at most alpha = 1e-3 (the Bonferroni-corrected Bernstein bound), so P(any false
alarm in 50 trials) <= 1 - 0.999^50 < 5 %; the bound is loose (innocents' z stays near 0, the
threshold is about 5), and we require none. The seeds are fixed, so the run is deterministic.
"""

from __future__ import annotations

import numpy as np
import pytest

from genecommons.fingerprint.codes import Scheme, conditional_counts
from genecommons.fingerprint.leaksim import (
    SimulationSettings,
    attack_table,
    correlation_attack,
    demo_dosages,
    gwas_statistics,
    run_simulation,
    spearman,
)

TRIALS = 50


@pytest.fixture(scope="module")
def cohort() -> tuple[np.ndarray, np.ndarray]:
    return demo_dosages(individuals=1000, length=1_000_000, seed=7)


@pytest.mark.slow
def test_the_simulation_meets_the_goal_on_a_small_run(
    cohort: tuple[np.ndarray, np.ndarray],
) -> None:
    dosages, trait = cohort
    report = run_simulation(
        dosages,
        trait,
        settings=SimulationSettings(trials=TRIALS, utility_copies=3, seed=3),
    )
    assert report.trials == TRIALS
    caught = sum(o.caught for o in report.outcomes)
    assert caught >= TRIALS - 3
    assert sum(o.false_alarms for o in report.outcomes) == 0
    assert {o.colluders for o in report.outcomes} == {1, 2, 3, 4, 5}
    assert {o.strategy for o in report.outcomes} == {"majority", "average"}
    assert report.changed_share_max <= 0.005
    assert report.max_af_deviation <= 0.005
    assert report.gwas_spearman_min >= 0.99
    # the attack did bite (it reverted marks), at a cost in clean cells
    assert report.attack_marks_reverted > 0 and report.attack_clean_changed > 0


def test_sites_subsets_are_traced_too(cohort: tuple[np.ndarray, np.ndarray]) -> None:
    dosages, trait = cohort
    report = run_simulation(
        dosages,
        trait,
        settings=SimulationSettings(
            trials=10, recipients=20, subset_of="sites", subset=0.5, utility_copies=1, seed=4
        ),
        scheme=Scheme(),
    )
    assert sum(o.caught for o in report.outcomes) >= 9
    assert sum(o.false_alarms for o in report.outcomes) == 0


def test_the_attack_replaces_unlikely_values_with_the_likeliest() -> None:
    dosages = np.zeros((3, 10), dtype=np.int8)
    dosages[1, 9] = 2  # one sample of ten has a 2 where its neighbours say 0
    counts = conditional_counts(dosages)
    attacked = correlation_attack(dosages.astype(np.float64), attack_table(counts, 0.2))
    assert (attacked == 0).all()  # the lone 2 (q = 0.1) became the likeliest value, 0
    kept = correlation_attack(dosages.astype(np.float64), attack_table(counts, 0.05))
    assert np.array_equal(kept, dosages)


def test_gwas_statistics_and_spearman() -> None:
    rng = np.random.default_rng(0)
    dosages = rng.integers(0, 3, size=(30, 200)).astype(np.int8)
    trait = dosages[4].astype(float) + rng.normal(size=200)
    stats = gwas_statistics(dosages, trait)
    assert int(np.argmax(stats)) == 4
    r = float(np.corrcoef(dosages[4], trait)[0, 1])
    assert stats[4] == pytest.approx(abs(r) * np.sqrt(198 / (1 - r**2)))
    assert spearman(np.array([1.0, 2, 3, 4]), np.array([10.0, 20, 30, 40])) == pytest.approx(1)
    assert spearman(np.array([1.0, 2, 3, 4]), np.array([4.0, 3, 2, 1])) == pytest.approx(-1)
    assert spearman(np.array([1.0, 1, 2]), np.array([1.0, 1, 2])) == pytest.approx(1)
