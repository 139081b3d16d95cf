"""Reproduce docs/privacy.md's table of windows placed by public counts (power of the attacker
who knows the rule and the public reference, over keys), on the demo cohort:

    PYTHONPATH=src python docs/examples/threshold_windows.py genecommons-data/demo [KEYS]

The demo's public reference is the first half of its reference panel (truth.json,
`public_frequencies`). For each draw of victims (`evaluation.draw_victims` with seeds 1-4, the
tool's own draw being seed 1: 1,000 members, 300 non-members never in the public half, the
attacker's panel the other 700, the public half with it), each window size and each of KEYS
keys (default 4), the thresholds are drawn afresh within each variant's window
(`ThresholdRule.window`) and the tool's rule-aware attack (`attack.run_rule_aware_attack`)
runs against those answers, the attacker holding the windows' chances
(`evaluation.known_rule`). "uniform" is the rule without a reference, [10, 40].
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from genecommons.privacy import attack, evaluation
from genecommons.privacy.beacon_guard import ThresholdRule
from genecommons.privacy.oracles import read_dosages
from genecommons.variants.reference import ReferenceCounts, build_reference

QUERIES = (1, 5, 10, 100, 1000, 5000)
SIZES = (2, 3, 4, 5, 6, 8)


def main(demo: Path, keys: int) -> None:
    truth = json.loads((demo / "truth.json").read_text(encoding="utf-8"))
    public = tuple(truth["public_frequencies"]["samples"])
    cohort = read_dosages(demo / "cohort.vcf.gz")
    # the node's own reference store, built from the demo's public AC/AN (what make run loads)
    built = Path(tempfile.mkdtemp()) / "reference.sqlite"
    build_reference(demo / truth["public_frequencies"]["file"], built)
    table = ReferenceCounts(built)
    ac = cohort.dosages.sum(axis=1, dtype=np.int64)
    alleles = 2 * cohort.dosages.shape[1]
    uniform = ThresholdRule(key=bytes(32), low=10, high=40)
    rules = {"uniform": uniform} | {
        f"window {w}": replace(uniform, reference=table, window_size=w) for w in SIZES
    }
    for seed in (1, 2, 3, 4):
        victims = evaluation.draw_victims(
            demo / "cohort.vcf.gz",
            demo / "reference_panel.vcf.gz",
            victims=1000,
            outsiders=300,
            seed=seed,
            public=public,
        )
        for name, rule in rules.items():
            started = time.perf_counter()
            known = evaluation.known_rule(rule, victims.variants, alleles=alleles)
            first = np.array([rule.window(v.key, alleles)[0] for v in victims.variants])
            size = rule.width if rule.reference is None else rule.window_size
            rng = np.random.default_rng(seed)
            powers, answered = [], []
            for _ in range(keys):
                said = ((ac >= first + rng.integers(0, size, size=len(ac))) & (ac > 0)).astype(
                    np.int8
                )
                curve = attack.run_rule_aware_attack(
                    name,
                    members=victims.members,
                    outsiders=victims.outsiders,
                    reference=victims.reference,
                    beacon_size=cohort.dosages.shape[1],
                    ask=lambda _v, sites, said=said: said[sites],
                    thresholds=known,
                    queries=QUERIES,
                )
                powers.append(curve.power)
                answered.append(said[(ac > 0) & (ac < 40)].mean())
            power = np.mean(powers, axis=0)
            print(
                f"draw {seed}  {name:9}  max {power.max():.3f}  {np.round(power, 3)}  "
                f"alleles of 1-39 copies answered yes {np.mean(answered):.3f}  "
                f"({time.perf_counter() - started:.0f} s)",
                flush=True,
            )


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 4)
