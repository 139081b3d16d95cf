"""Figures: membership detection from the open route's allele frequencies (Homer et al. 2008,
Sankararaman et al. 2009) over 1,000 to 100,000 variants, against exact frequencies, the
per-variant noisy tables served without a genome-wide bound, and the tables the dataset's
detection budget lets out (privacy/detection.py); and the utility of each (mean absolute error
of the "all" AF over the variants released, alleles >= 1% and >= 5%).

    # independent variants (genome-wide SNPs far apart), 1,000 members, seeded:
    PYTHONPATH=src .venv/bin/python -m benchmarks.frequency_attack --synthetic
    # the demo cohort (one 15 Mb stretch of chr22: strong LD), 1,000 members, 4 populations:
    genecommons demo --individuals 1000 --reference-individuals 600 --length 15000000 --out demo
    PYTHONPATH=src .venv/bin/python -m benchmarks.frequency_attack --demo demo

The pool is the whole cohort; members attacked are drawn from it, non-members and the
attacker's reference panel are disjoint sets of outsiders. The attacker asks, in a random order,
variants whose allele frequency in their own panel is at least --min-af. Each victim is tested
on the "all" row, and on their population's row against their population's reference.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from genecommons.privacy import detection, pooled
from genecommons.privacy.oracles import read_dosages

Dosages = npt.NDArray[np.int8]


@dataclass(frozen=True, slots=True)
class Cohort:
    """The pool (sites x people) with each member's population and sex, and the outsiders."""

    pool: Dosages
    populations: npt.NDArray[np.str_]
    sexes: npt.NDArray[np.str_]
    outsiders: Dosages
    outsider_populations: npt.NDArray[np.str_]


def synthetic(people: int, outsiders: int, sites: int, seed: int) -> Cohort:
    """Independent variants, frequencies uniform in [1%, 50%], one population, two sexes."""
    rng = np.random.default_rng(seed)
    f = rng.uniform(0.01, 0.5, size=sites)
    dosages = rng.binomial(2, f[:, None], size=(sites, people + outsiders)).astype(np.int8)
    return Cohort(
        pool=dosages[:, :people],
        populations=np.full(people, "POP"),
        sexes=np.where(rng.random(people) < 0.5, "female", "male"),
        outsiders=dosages[:, people:],
        outsider_populations=np.full(outsiders, "POP"),
    )


def demo(folder: Path) -> Cohort:
    """The demo's cohort and reference panel, populations and sexes from its truth.json."""
    truth = json.loads((folder / "truth.json").read_text(encoding="utf-8"))
    cohort = read_dosages(folder / "cohort.vcf.gz")
    panel = read_dosages(folder / "reference_panel.vcf.gz", sites=cohort.variants)
    population = dict(zip(truth["cohort"]["sample"], truth["cohort"]["population"], strict=True))
    sex = dict(zip(truth["cohort"]["sample"], truth["cohort"]["sex"], strict=True))
    panel_population = dict(
        zip(truth["reference_panel"]["sample"], truth["reference_panel"]["population"], strict=True)
    )
    return Cohort(
        pool=cohort.dosages,
        populations=np.array([population[p] for p in cohort.people]),
        sexes=np.array([sex[p] for p in cohort.people]),
        outsiders=panel.dosages,
        outsider_populations=np.array([panel_population[p] for p in panel.people]),
    )


def group_masks(cohort: Cohort) -> tuple[list[str], list[npt.NDArray[np.bool_]]]:
    """The open route's groups: all, each population, each sex, each population x sex."""
    pops, sexes = cohort.populations, cohort.sexes
    names, masks = ["all"], [np.ones(len(pops), dtype=bool)]
    for pop in sorted(set(pops)):
        names.append(str(pop))
        masks.append(pops == pop)
    for sex in sorted(set(sexes)):
        names.append(str(sex))
        masks.append(sexes == sex)
    for pop in sorted(set(pops)):
        for sex in sorted(set(sexes)):
            names.append(f"{pop}:{sex}")
            masks.append((pops == pop) & (sexes == sex))
    return names, masks


def main() -> None:
    """Run, print the table, write the JSON."""
    parser = argparse.ArgumentParser()
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--demo", type=Path)
    source.add_argument("--synthetic", action="store_true")
    parser.add_argument("--people", type=int, default=1000, help="synthetic pool size")
    parser.add_argument("--variants", type=int, default=100_000)
    parser.add_argument("--victims", type=int, default=300)
    parser.add_argument("--min-af", type=float, default=0.05)
    parser.add_argument("--epsilon", type=float, default=1.0)
    parser.add_argument("--power", type=float, default=0.10)
    parser.add_argument("--fpr", type=float, default=0.05)
    parser.add_argument("--min-cell", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    started = time.process_time()
    sites = int(args.variants * 1.2)
    cohort = demo(args.demo) if args.demo else synthetic(args.people, 1000, sites, args.seed)
    rng = np.random.default_rng(args.seed)
    split = rng.permutation(cohort.outsiders.shape[1])
    tested, own = split[: args.victims], split[args.victims :]
    own_af = cohort.outsiders[:, own].sum(axis=1) / (2 * len(own))
    askable = np.flatnonzero(np.minimum(own_af, 1 - own_af) >= args.min_af)
    order = askable[rng.permutation(len(askable))][: args.variants]
    pool = cohort.pool[order]
    people = pool.shape[1]
    names, masks = group_masks(cohort)
    tables = pooled.tables(pool, masks, names)
    chosen = rng.choice(people, size=args.victims, replace=False)
    members = pool[:, chosen]
    outsiders = cohort.outsiders[order][:, tested]
    mine = cohort.outsiders[order][:, own]
    own_pops = cohort.outsider_populations[own]
    references = {"all": mine.sum(axis=1) / (2 * mine.shape[1])}
    for pop in sorted(set(cohort.populations)):
        of_pop = mine[:, own_pops == pop]
        references[str(pop)] = of_pop.sum(axis=1) / (2 * max(of_pop.shape[1], 1))
    strata: dict[str, tuple[list[str] | None, list[str] | None]] = {
        "all": (None, None),
        "by population": (
            [str(p) for p in cohort.populations[chosen]],
            [str(p) for p in cohort.outsider_populations[tested]],
        ),
    }
    exact_af = pool.sum(axis=1) / (2 * people)
    limit = detection.bound(args.power, args.fpr)
    spread = detection.epsilon_for(len(order), limit=limit, groups=len(names), ceiling=args.epsilon)
    print(
        f"{people} members, {len(own)} in the attacker's panel, {args.victims} members and "
        f"{args.victims} non-members attacked, {len(order):,} variants (panel AF >= "
        f"{args.min_af}), {len(names)} groups; bound C = {limit:.4f} (power {args.power} at "
        f"{args.fpr} false positives)"
    )
    runs = [
        ("exact", pooled.Release.EXACT, args.epsilon),
        (f"noisy eps={args.epsilon}", pooled.Release.NOISY, args.epsilon),
        (f"budgeted eps={args.epsilon}", pooled.Release.BUDGETED, args.epsilon),
        (
            f"budgeted eps={spread:.4f} (expected {len(order):,})",
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
        seconds = time.process_time() - cpu
        out[name] = {
            "power": {k: asdict(p) for k, p in powers.items()},
            "mae": errors,
            "cpu_s": seconds,
        }
        print(f"\n{name}  (cpu {seconds:.1f} s)")
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
