"""Figures: membership detection from the open route's allele frequencies (Homer et al. 2008,
Sankararaman et al. 2009) over 1,000 to 100,000 variants of the demo cohort, against exact
frequencies, the per-variant noisy tables served without a genome-wide bound, and the tables
the dataset's detection budget lets out (privacy/detection.py); and the utility of each (mean
absolute error of the "all" AF, alleles >= 1% and >= 5%, over the variants released).

    genecommons demo --individuals 1000 --reference-individuals 600 --length 15000000 --out demo
    PYTHONPATH=src .venv/bin/python -m benchmarks.frequency_attack --demo demo

Members attacked are cohort people (the pool is the whole cohort); non-members and the
attacker's reference panel are disjoint halves of the demo's reference panel. The attacker asks
variants in a random order.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from genecommons.privacy import detection, pooled
from genecommons.privacy.oracles import read_dosages


def main() -> None:
    """Run, print the table, write the JSON."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--demo", type=Path, required=True)
    parser.add_argument("--variants", type=int, default=100_000)
    parser.add_argument("--victims", type=int, default=300)
    parser.add_argument("--epsilon", type=float, default=1.0)
    parser.add_argument("--power", type=float, default=0.10)
    parser.add_argument("--fpr", type=float, default=0.05)
    parser.add_argument("--min-cell", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    started = time.process_time()
    truth = json.loads((args.demo / "truth.json").read_text(encoding="utf-8"))
    cohort = read_dosages(args.demo / "cohort.vcf.gz")
    panel = read_dosages(args.demo / "reference_panel.vcf.gz", sites=cohort.variants)
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(cohort.variants))[: args.variants]
    pool = cohort.dosages[order]
    people = pool.shape[1]
    info = dict(
        zip(
            truth["cohort"]["sample"],
            zip(truth["cohort"]["population"], truth["cohort"]["sex"], strict=True),
            strict=True,
        )
    )
    pops = np.array([info[p][0] for p in cohort.people])
    sexes = np.array([info[p][1] for p in cohort.people])
    names, groups = ["all"], [np.ones(people, dtype=bool)]
    for pop in sorted(set(pops)):
        names.append(pop)
        groups.append(pops == pop)
    for sex in sorted(set(sexes)):
        names.append(sex)
        groups.append(sexes == sex)
    for pop in sorted(set(pops)):
        for sex in sorted(set(sexes)):
            names.append(f"{pop}:{sex}")
            groups.append((pops == pop) & (sexes == sex))
    tables = pooled.tables(pool, groups, names)
    chosen = rng.choice(people, size=args.victims, replace=False)
    members = pool[:, chosen]
    panel_pops = dict(
        zip(truth["reference_panel"]["sample"], truth["reference_panel"]["population"], strict=True)
    )
    split = rng.permutation(panel.dosages.shape[1])
    outsiders = panel.dosages[order][:, split[: args.victims]]
    own = panel.dosages[order][:, split[args.victims :]]
    own_pops = np.array([panel_pops[panel.people[i]] for i in split[args.victims :]])
    references = {"all": own.sum(axis=1) / (2 * own.shape[1])}
    for pop in sorted(set(pops)):
        mine = own[:, own_pops == pop]
        references[pop] = mine.sum(axis=1) / (2 * max(mine.shape[1], 1))
    strata = {
        "all": (None, None),
        "by population": (
            [str(pops[i]) for i in chosen],
            [panel_pops[panel.people[i]] for i in split[: args.victims]],
        ),
    }
    exact_af = pool.sum(axis=1) / (2 * people)
    limit = detection.bound(args.power, args.fpr)
    spread = detection.epsilon_for(
        args.variants, limit=limit, groups=len(names), ceiling=args.epsilon
    )
    print(
        f"{people} members, {own.shape[1]} in the attacker's panel, {args.victims} members and "
        f"{args.victims} non-members attacked, {len(order):,} variants, {len(names)} groups; "
        f"bound C = {limit:.4f} (power {args.power} at {args.fpr} false positives)"
    )
    runs = [
        ("exact", pooled.Release.EXACT, args.epsilon),
        (f"noisy eps={args.epsilon}", pooled.Release.NOISY, args.epsilon),
        (f"budgeted eps={args.epsilon}", pooled.Release.BUDGETED, args.epsilon),
        (
            f"budgeted eps={spread:.4f} (expected {args.variants:,})",
            pooled.Release.BUDGETED,
            spread,
        ),
    ]
    out = {}
    for name, kind, epsilon in runs:
        cpu = time.process_time()
        released = pooled.release(
            kind, tables, epsilon=epsilon, min_cell=args.min_cell, limit=limit
        )
        powers = {
            stratum: pooled.measure(
                released,
                members=members,
                outsiders=outsiders,
                references=references,
                member_groups=member_groups,
                outsider_groups=outsider_groups,
                name=name,
            )
            for stratum, (member_groups, outsider_groups) in strata.items()
        }
        power = powers["all"]
        errors = {
            f">={cut:.0%}": pooled.absolute_error(
                released.frequencies["all"], exact_af, at_least=cut
            )
            for cut in (0.01, 0.05)
        }
        out[name] = {
            "power": {k: asdict(p) for k, p in powers.items()},
            "mae": errors,
            "cpu_s": time.process_time() - cpu,
        }
        print(f"\n{name}  (cpu {time.process_time() - cpu:.1f} s)")
        print("variants asked             " + " ".join(f"{k:>8,}" for k in power.variants))
        print("released                   " + " ".join(f"{k:>8,}" for k in power.released))
        print("charged C                  " + " ".join(f"{c:>8.3f}" for c in power.charged))
        for stratum, p in powers.items():
            print(f"Homer power, {stratum:<14}" + " ".join(f"{x:>8.3f}" for x in p.homer))
            print(f"LR power, {stratum:<17}" + " ".join(f"{x:>8.3f}" for x in p.likelihood_ratio))
        for cut, (mae, n) in errors.items():
            print(f"AF MAE {cut:>5}     {mae:.4f} over {n:,} released variants")
    print(f"\ntotal cpu {time.process_time() - started:.0f} s (shared machine)")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
