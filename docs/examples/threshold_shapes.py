"""Reproduce docs/privacy.md's table of threshold shapes (expected power of the attacker who
knows the rule, over 16 keys), on the demo cohort:

    PYTHONPATH=src python docs/examples/threshold_shapes.py genecommons-data/demo

A model of `attack.run_rule_aware_attack` that is fast enough to compare many shapes: victims'
alleles grouped by the attacker's panel count (its belief depends on nothing else), the
thresholds drawn afresh for each key, the same order and statistic as the tool. Draws 1-3 pick
1,000 members and 300 non-members their own way; the tool's draw is `draw_victims(seed=1)`.
About 20 minutes on a 2-core machine.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from genecommons.privacy import attack
from genecommons.privacy.beacon_guard import ThresholdRule
from genecommons.privacy.oracles import read_dosages

HIGHEST, PANEL_MAX = 80, 250  # thresholds modelled; panel counts above PANEL_MAX always say yes
QUERIES = np.array([1, 5, 10, 100, 1000, 5000])


def shape(low: int, high: int, alpha: float, beta: float) -> np.ndarray:
    """The rule's chances on 1..HIGHEST (index t - 1), from ThresholdRule itself."""
    p = np.zeros(HIGHEST)
    p[low - 1 : high] = ThresholdRule(bytes(16), low, high, alpha, beta).pmf
    return p


class Model:
    """The attacker's beliefs and the victims' alleles for one draw of victims."""

    def __init__(self, cohort: np.ndarray, panel: np.ndarray, members, held, attacker) -> None:
        self.ac = cohort.sum(axis=1, dtype=np.int64)
        ref = panel[:, attacker]
        self.c = ref.sum(axis=1, dtype=np.int64)
        cs = np.arange(PANEL_MAX + 1)
        # the tool's own ratios per threshold, for a panel whose site i has count cs[i]
        self.per_t = []
        fake = np.zeros((len(cs), ref.shape[1]), dtype=np.int8)
        for i, c in enumerate(cs):
            fake[i, : c // 2] = 2
            fake[i, c // 2 : c // 2 + c % 2] = 1
        self.fake, self.members_n = fake, cohort.shape[1]
        self.victims = []
        for who in (cohort[:, members], panel[:, held]):
            rows = []
            for v in range(who.shape[1]):
                a = np.flatnonzero((who[:, v] > 0) & (self.c <= PANEL_MAX))
                rows.append((a, self.c[a], np.minimum(who[a, v], 2).astype(np.int64) - 1))
            self.victims.append(rows)

    def power(self, p: np.ndarray, keys: int = 16, seed: int = 0) -> np.ndarray:
        """Power at QUERIES, averaged over `keys` draws of the thresholds."""
        support = np.flatnonzero(p > 0)
        thresholds = attack.Thresholds(tuple(int(t) + 1 for t in support), tuple(p[support]))
        yes, no, said = attack.rule_aware_ratios(
            self.fake, members=self.members_n, thresholds=thresholds
        )
        gain = said * yes + (1 - said) * no
        flat = []
        for rows in self.victims:
            sites, ys, ns, ends, starts, off = [], [], [], [], [], 0
            for a, c, g in rows:
                o = np.argsort(-gain[g, c], kind="stable")
                sites.append(a[o])
                ys.append(yes[g[o], c[o]])
                ns.append(no[g[o], c[o]])
                starts.append(off)
                ends.append(off + np.minimum(QUERIES, len(o)))
                off += len(o)
            flat.append(
                (np.concatenate(sites), np.concatenate(ys), np.concatenate(ns), ends, starts)
            )
        rng, cdf = np.random.default_rng(seed), np.cumsum(p)
        cdf[-1] = 1.0
        out = []
        for _ in range(keys):
            said_yes = self.ac >= np.searchsorted(cdf, rng.random(len(self.ac)), side="right") + 1
            scores = []
            for sites, ys, ns, ends, starts in flat:
                run = np.concatenate([[0.0], np.cumsum(np.where(said_yes[sites], ys, ns))])
                scores.append(run[np.array(ends)] - run[np.array(starts)][:, None])
            out.append(attack.power_at(scores[0], scores[1]))
        return np.mean(out, axis=0)


def main(demo: Path) -> None:
    cohort = read_dosages(demo / "cohort.vcf.gz")
    panel = read_dosages(demo / "reference_panel.vcf.gz", sites=cohort.variants).dosages
    n, m = cohort.dosages.shape[1], panel.shape[1]
    draws = {}
    for seed in (1, 2, 3):
        rng = np.random.default_rng(seed)
        order = rng.permutation(m)
        draws[f"draw {seed}"] = (rng.choice(n, 1000, replace=False), order[:300], order[300:])
    rng = np.random.default_rng(1)  # as evaluation.draw_victims(victims=1000, outsiders=300)
    chosen = np.sort(rng.choice(n, 1000, replace=False))
    order = rng.permutation(m)
    draws["the tool's draw"] = (chosen, np.sort(order[:300]), np.sort(order[300:]))
    shapes = {
        "uniform": shape(10, 40, 1, 1),
        "Beta(0.5, 3)": shape(10, 40, 0.5, 3),
        "Beta(1, 3)": shape(10, 40, 1, 3),
        "Beta(0.5, 1)": shape(10, 40, 0.5, 1),
        "fixed 40": shape(40, 40, 1, 1),
    }
    for name, (members, held, attacker) in draws.items():
        model = Model(cohort.dosages, panel, members, held, attacker)
        for label, p in shapes.items():
            power = model.power(p)
            print(f"{name:16} {label:13} max {power.max():.3f}  {np.round(power, 3)}", flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
