"""Benchmark: what the defended Beacon guard adds to an answer, beside the undefended one and
the Beacon's goal (a g_variants point query under 5 ms p50 in the server).

Boolean answers (the keyed threshold rule, no state) and count answers (the rule plus the
budget ledger: one transaction on SQLite), p50/p95 over many variants, each new to the account.

    .venv/bin/python -m benchmarks.privacy_guard
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable

GOAL_MS = 5.0  # the whole g_variants point query, p50


def _percentiles(samples: list[float]) -> tuple[float, float]:
    return statistics.median(samples), statistics.quantiles(samples, n=20)[18]


def _time(calls: list[Callable[[], object]]) -> list[float]:
    out = []
    for call in calls:
        started = time.perf_counter()
        call()
        out.append((time.perf_counter() - started) * 1000)
    return out


def main() -> None:
    """Time each guard, print."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--answers", type=int, default=5000)
    answers = parser.parse_args().answers

    from pathlib import Path

    from genecommons.config import Settings
    from genecommons.db import make_session_factory, node_engine
    from genecommons.migrate import upgrade_node
    from genecommons.policy.models import Subject
    from genecommons.privacy.beacon_guard import ThresholdRule
    from genecommons.privacy.guards import DefendedGuard
    from genecommons.variants.answers import Granularity, exact_answer
    from genecommons.variants.normalize import Variant
    from genecommons.variants.store import SiteCounts

    user = Subject.user("bench@example.org", roles=frozenset(), institution=None)
    sites = [
        SiteCounts(
            Variant("chr22", 16_000_000 + i, "A", "G"),
            {"all": {"ac": 5 + i % 60, "an": 4000, "hom": 0, "hemi": 0}},
        )
        for i in range(answers)
    ]
    with tempfile.TemporaryDirectory(prefix="gc-guard-") as temp:
        url = f"sqlite:///{temp}/guard.sqlite3"
        settings = Settings(
            data_dir=Path(temp),
            database_url=url,
            beacon_budget=1e9,
            beacon_institution_budget=1e9,
            beacon_dataset_budget=1e9,
        )
        upgrade_node(settings)
        engine = node_engine(settings)
        guard = DefendedGuard(
            make_session_factory(engine), settings, rule=ThresholdRule(bytes(32), 10, 40)
        )

        def call(g: Callable[..., object], granularity: Granularity, s: SiteCounts) -> object:
            return g(
                subject=user,
                address="10.0.0.1",
                dataset="GCD00000001",
                granularity=granularity,
                matches=[s],
            )

        rows = []
        for name, g, granularity in (
            ("exact (undefended)", exact_answer, Granularity.BOOLEAN),
            ("defended, boolean", guard, Granularity.BOOLEAN),
            ("defended, count + ledger (SQLite)", guard, Granularity.COUNT),
        ):
            samples = _time([lambda s=s, g=g, k=granularity: call(g, k, s) for s in sites])
            rows.append((name, *_percentiles(samples)))
        engine.dispose()
    print(f"{'guard':<36}{'p50 ms':>10}{'p95 ms':>10}{'p50 / goal':>12}")
    for name, p50, p95 in rows:
        print(f"{name:<36}{p50:>10.4f}{p95:>10.4f}{p50 / GOAL_MS:>12.4f}")
    print(f"goal: a whole g_variants point query under {GOAL_MS} ms p50")


if __name__ == "__main__":
    main()
