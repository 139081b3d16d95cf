"""Study: von Thenen et al.'s linkage attack on real genomes (1000 Genomes, phased), in the
paper's setting: a Beacon of 65 people of one population, victims who hide their alleles of
frequency under 5%, an attacker whose panel is the rest of the super-population.

Beacons, answered in process by the project's guards over the members' counts: the truth
(`exact_answer`), the hide-rare baseline (`hide_rare_answer`) and the defended guard
(`DefendedGuard`, a key drawn from the seed, the configured threshold range). Victims: the members and as many
non-members of the super-population; the attacker's panel: the rest of it. Prints power at 5%
false positives against queries and the inference's accuracy; writes the figures as JSON.

    .venv/bin/python -m benchmarks.privacy_linkage_1000g \\
        --vcf ../shared/data/1000g/chr1_11697036-11836540.vcf.gz \\
        --panel ../shared/data/1000g/integrated_call_samples_v3.20130502.ALL.panel
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import numpy.typing as npt


def main() -> None:
    """Run the study, print, write JSON."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--vcf", type=Path, required=True)
    parser.add_argument("--panel", type=Path, required=True, help="1000 Genomes .panel file")
    parser.add_argument("--population", default="CEU")
    parser.add_argument("--superpopulation", default="EUR")
    parser.add_argument("--members", type=int, default=65)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("linkage-1000g.json"))
    args = parser.parse_args()

    from genecommons.config import Settings
    from genecommons.db import make_engine, make_session_factory
    from genecommons.policy.models import Subject
    from genecommons.privacy import attack, linkage
    from genecommons.privacy.beacon_rules import threshold_rule
    from genecommons.privacy.evaluation import hide_cut
    from genecommons.privacy.guards import DefendedGuard
    from genecommons.privacy.oracles import read_dosages, read_haplotypes
    from genecommons.variants.answers import (
        Granularity,
        VariantGuard,
        exact_answer,
        hide_rare_answer,
    )
    from genecommons.variants.store import SiteCounts

    started = time.perf_counter()
    genotypes = read_dosages(args.vcf)
    people, haplotypes = read_haplotypes(args.vcf, sites=genotypes.variants)
    rows = [line.split() for line in args.panel.read_text().splitlines()[1:] if line.strip()]
    population = {r[0]: (r[1], r[2]) for r in rows}
    index = np.arange(len(people))
    own = np.array([population.get(p, ("", ""))[0] == args.population for p in people])
    superpop = np.array([population.get(p, ("", ""))[1] == args.superpopulation for p in people])
    rng = np.random.default_rng(args.seed)
    members = np.sort(rng.choice(index[own], size=args.members, replace=False))
    others = rng.permutation(np.setdiff1d(index[superpop], members))
    outsiders, attacker = np.sort(others[: args.members]), np.sort(others[args.members :])
    panel = genotypes.dosages[:, attacker]
    panel_haps = haplotypes[:, np.ravel(np.stack([2 * attacker, 2 * attacker + 1], axis=1))]
    positions = np.array([v.pos for v in genotypes.variants], dtype=np.int64)
    cohort = genotypes.dosages[:, members]
    victims = np.concatenate([cohort, genotypes.dosages[:, outsiders]], axis=1)
    ac = cohort.sum(axis=1, dtype=np.int64)
    sites = [
        SiteCounts(v, {"all": {"ac": int(c), "an": 2 * args.members, "hom": 0, "hemi": 0}})
        for v, c in zip(genotypes.variants, ac, strict=True)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp))
        factory = make_session_factory(make_engine("sqlite://"))  # unused: in memory
        rule = threshold_rule(settings, key=rng.bytes(32))  # a key of its own, fixed by the seed
        # each Beacon, and its rule as the attacker believes it (the chances, not the key)
        guards: dict[str, tuple[VariantGuard, attack.Thresholds]] = {
            "undefended": (exact_answer, attack.EXACT),
            "hide-rare": (hide_rare_answer, attack.Thresholds((hide_cut(args.members),), (1.0,))),
            "defended": (
                DefendedGuard(factory, settings, rule=rule),
                attack.Thresholds(tuple(range(rule.low, rule.high + 1)), rule.pmf),
            ),
        }
        subject = Subject.user("attacker@example.org", roles=frozenset(), institution=None)

        def answers(guard: VariantGuard) -> npt.NDArray[np.int8]:
            return np.array(
                [
                    guard(
                        subject=subject,
                        address="attacker",
                        dataset="GCD-1000G",
                        granularity=Granularity.BOOLEAN,
                        matches=[s],
                    ).exists
                    for s in sites
                ],
                dtype=np.int8,
            )

        told = {name: answers(guard) for name, (guard, _) in guards.items()}
    truth = (ac > 0).astype(np.int8)
    common = (panel.mean(axis=1) / 2 >= linkage.COMMON) & (
        panel.mean(axis=1) / 2 <= 1 - linkage.COMMON
    )
    print(
        f"{len(genotypes.variants):,} sites, {common.sum():,} common in the panel; "
        f"{args.members} {args.population} members, {len(outsiders)} non-members, "
        f"{len(attacker)} {args.superpopulation} people in the attacker's panel"
    )
    inferred = linkage.infer(
        victims, reference=panel, haplotypes=panel_haps, positions=positions, seed=args.seed
    )
    figures: dict[str, object] = {}
    for name, (_, believed) in guards.items():
        said = told[name]
        found, partners = (
            linkage.von_thenen(
                inferred,
                victims=victims,
                members=args.members,
                reference=panel,
                beacon_size=args.members,
                ask=lambda _v, s, said=said: said[s],
                truth=lambda s: truth[s],
                rule=believed,
                from_partners=from_partners,
            )
            for from_partners in (False, True)
        )
        rarest = attack.run_attack(
            "rarest first, all alleles shown",
            members=cohort,
            outsiders=genotypes.dosages[:, outsiders],
            f=attack.frequencies(panel),
            beacon_size=args.members,
            ask=lambda _v, s, said=said: said[s],
            rarest_first=True,
            seed=args.seed,
            queries=linkage.QUERIES,
        )
        figures[name] = {
            "von_thenen": asdict(found),
            "von_thenen_partners": asdict(partners),
            "rarest_first": asdict(rarest),
        }
        print(
            f"{name:>10}: von Thenen power {' '.join(f'{p:.2f}' for p in found.curve.power)} "
            f"at {found.curve.queries} queries; rarest first (victim hides nothing) "
            f"{' '.join(f'{p:.2f}' for p in rarest.power)}; withheld answers from LD partners "
            f"{' '.join(f'{p:.2f}' for p in partners.curve.power)}"
        )
        print(
            f"{'':>10}  asked alleles carried {found.accuracy:.1%}; inferred >= 50% "
            f"{found.confident:,} carried {found.confident_accuracy:.1%} (frequency says "
            f"{found.prior_accuracy:.1%}); answers right {found.answer_accuracy:.1%}"
        )
    args.out.write_text(json.dumps(figures, indent=1) + "\n", encoding="utf-8")
    print(f"{time.perf_counter() - started:.0f} s; figures: {args.out}")


if __name__ == "__main__":
    main()
