"""Study: the linkage attack (von Thenen et al. 2019) against an undefended Beacon of the demo,
beside the paper's own choices, on the same victims, inference and answers.

The Beacon is the truth about the whole cohort (any copy: yes); victims, the attacker's panel
and the inference are those of `genecommons privacy attack-beacon --demo` (seed 1). Curves
(power at 5% false positives against queries per victim):

- "von Thenen": the attack as `linkage.von_thenen` runs it (queries by expected
  log-likelihood ratio, answers scored with the calibrated chances);
- "paper's order": the hidden alleles inferred with chance >= 0.9, rarest first (the paper's
  choice: confident and rare), scored by the Shringarpure & Bustamante test with error 0.001
  and each allele's frequency, as the paper's code scores them (`attack.log_ratios`);
- "paper's code": the hidden alleles at which the victim is heterozygous, rarest first, same
  test: what the paper's released code (ciceklab/beacon_attack, GI_Method.m) asks, its
  candidates filtered by the victim's own genotypes before the Markov chain is consulted.

    .venv/bin/python -m benchmarks.privacy_linkage_paper --demo demo65
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt

from genecommons.privacy import attack, evaluation, linkage
from genecommons.privacy.oracles import read_dosages

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]


def main() -> None:
    """Run the study, print, write JSON."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--demo", type=Path, required=True)
    parser.add_argument("--victims", type=int, default=65)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("linkage-paper.json"))
    args = parser.parse_args()
    started = time.process_time()
    victims = evaluation.draw_victims(
        args.demo / "cohort.vcf.gz",
        args.demo / "reference_panel.vcf.gz",
        victims=args.victims,
        seed=args.seed,
        public=evaluation.demo_public_people(args.demo),
    )
    cohort = read_dosages(args.demo / "cohort.vcf.gz").dosages
    beacon = cohort.sum(axis=1, dtype=np.int64) > 0
    size = cohort.shape[1]
    people = np.concatenate([victims.members, victims.outsiders], axis=1)
    members = victims.members.shape[1]
    inferred = evaluation.linked(victims, people, seed=args.seed)
    targets, carried, f = inferred.targets, inferred.carried, inferred.frequencies
    queries = np.asarray(linkage.QUERIES)
    chances = linkage.answer_chances(victims.reference, members=size, thresholds=attack.EXACT)
    sb_yes, sb_no = attack.log_ratios(f, size, error=1e-3)

    def curve(
        choose: Callable[[int], Ints], score: Callable[[int, Ints, Ints], Floats]
    ) -> list[float]:
        out = np.zeros((people.shape[1], len(queries)))
        for v in range(people.shape[1]):
            best = choose(v)
            sites = targets[best]
            running = np.concatenate([[0.0], np.cumsum(score(v, best, sites))])
            out[v] = running[np.minimum(queries, len(sites))]
        return [round(float(p), 3) for p in attack.power_at(out[:members], out[members:])]

    def calibrated(v: int, best: Ints, sites: Ints) -> Floats:
        _, yes, no = linkage.scored_answers(carried[best, v], sites, chances)
        return np.where(beacon[sites], yes, no)

    def shringarpure(_v: int, _best: Ints, sites: Ints) -> Floats:
        return np.where(beacon[sites], sb_yes[sites], sb_no[sites])

    def rarest(candidates: Ints) -> Ints:
        return candidates[np.argsort(f[targets[candidates]], kind="stable")][: queries.max()]

    curves = {
        "von Thenen": curve(
            lambda v: linkage.choose_queries(carried[:, v], targets, chances, most=50),
            calibrated,
        ),
        "paper's order": curve(
            lambda v: rarest(np.flatnonzero(carried[:, v] >= 0.9)), shringarpure
        ),
        "paper's code": curve(
            lambda v: rarest(np.flatnonzero(people[targets, v] == 1)), shringarpure
        ),
    }
    telling = (f[targets] > 0) & (f[targets] < 0.005)
    figures = {
        "beacon_size": size,
        "victims": members,
        "queries": queries.tolist(),
        "curves": curves,
        "hidden_alleles_under_0.5%_carried_per_victim": float(
            np.median(((people[targets] > 0) & telling[:, None]).sum(axis=0))
        ),
        "cpu_seconds": round(time.process_time() - started, 1),
    }
    for name, power in curves.items():
        print(
            f"{name:>15}: " + "  ".join(f"{q}:{p:.2f}" for q, p in zip(queries, power, strict=True))
        )
    args.out.write_text(json.dumps(figures, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
