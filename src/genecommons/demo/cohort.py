"""`write_demo`: a synthetic cohort written as a valid submission bundle, with its ground truth.

The folder it writes:

    institutions.tsv ... datasets.tsv, phenotypes.tsv   the submission sheets (catalog.models)
    cohort.vcf.gz, cohort.vcf.gz.tbi                     the analysis file the sheets declare
    truth.json                                           seed, model, populations, traits, effects
    reference_panel.vcf.gz(.tbi)                         non-members from the same simulation
    public_frequencies.vcf.gz(.tbi)                      sites-only AC/AN of the panel's first
                                                         half: the stand-in for gnomAD

The bundle reader takes only `submission.json|yaml` as a document, so truth.json beside the
sheets is a plain file. Everything is a function of the seed: no clock, no network.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from genecommons.catalog.models import PHENOTYPES_SHEET, SHEETS
from genecommons.demo import sheets, traits
from genecommons.demo.simulate import SPECIES, default_region, simulate
from genecommons.demo.vcf import write_vcfs
from genecommons.errors import InvalidInputError

logger = logging.getLogger(__name__)

MAX_INDIVIDUALS = 100_000
MIN_SEQUENCE_LENGTH = 1_000
TRUTH_JSON = "truth.json"
PANEL_VCF = "reference_panel.vcf.gz"
PUBLIC_VCF = "public_frequencies.vcf.gz"
TRUTH_FORMAT = "genecommons-demo-truth/1"

Progress = Callable[[str, float], None]


@dataclass(frozen=True, slots=True)
class DemoSummary:
    """What `write_demo` wrote."""

    out_dir: Path
    sheets: tuple[Path, ...]
    cohort_vcf: Path
    cohort_index: Path
    reference_panel_vcf: Path | None
    reference_panel_index: Path | None
    truth: Path
    seed: int
    model_id: str
    chrom: str
    start: int  # 1-based first position of the simulated region (GRCh38)
    end: int  # 1-based last position
    individuals: int
    reference_individuals: int
    sites: int
    t2d_cases: int
    public_frequencies_vcf: Path | None = None  # sites-only AC/AN of the panel's first half
    public_frequencies_index: Path | None = None


def file_digests(path: Path) -> tuple[str, str, int]:
    """MD5 and SHA-256 (hex) and size in bytes of a file, read in 1 MiB chunks."""
    md5 = hashlib.md5(usedforsecurity=False)
    sha256 = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            md5.update(chunk)
            sha256.update(chunk)
            size += len(chunk)
    return md5.hexdigest(), sha256.hexdigest(), size


def _check(
    individuals: int, reference_individuals: int, sequence_length: int | None, seed: int
) -> None:
    if not 1 <= individuals <= MAX_INDIVIDUALS:
        raise InvalidInputError(
            f"individuals must be between 1 and {MAX_INDIVIDUALS}, not {individuals}.",
            message_zh=f"个体数须在 1 到 {MAX_INDIVIDUALS} 之间，而不是 {individuals}。",
        )
    if not 0 <= reference_individuals <= MAX_INDIVIDUALS:
        raise InvalidInputError(
            f"reference_individuals must be between 0 and {MAX_INDIVIDUALS}, not "
            f"{reference_individuals}.",
            message_zh=f"参考面板个体数须在 0 到 {MAX_INDIVIDUALS} 之间，而不是 "
            f"{reference_individuals}。",
        )
    if sequence_length is not None and sequence_length < MIN_SEQUENCE_LENGTH:
        raise InvalidInputError(
            f"sequence_length must be at least {MIN_SEQUENCE_LENGTH} bp, not {sequence_length}.",
            message_zh=f"序列长度至少为 {MIN_SEQUENCE_LENGTH} bp，而不是 {sequence_length}。",
        )
    if seed < 0:
        raise InvalidInputError(
            f"seed must not be negative, not {seed}.",
            message_zh=f"随机种子不能为负数，而不是 {seed}。",
        )


def write_demo(
    out_dir: Path,
    *,
    individuals: int = 2000,
    seed: int = 42,
    reference_individuals: int | None = None,
    sequence_length: int | None = None,
    progress: Progress | None = None,
) -> DemoSummary:
    """Simulate a cohort and write it to `out_dir` as a submission bundle plus its truth.

    `reference_individuals` defaults to half the cohort (at least one; 0 writes no panel);
    the public frequency file counts the panel's first half (none for a panel of 0 or 1);
    `sequence_length` shrinks the region from chr22's whole q arm to its first bases.
    `progress(stage, fraction)` is called as the work advances.
    """
    if reference_individuals is None:
        reference_individuals = max(1, individuals // 2)
    _check(individuals, reference_individuals, sequence_length, seed)

    def report(stage: str, fraction: float) -> None:
        if progress is not None:
            progress(stage, fraction)

    out_dir.mkdir(parents=True, exist_ok=True)
    extras = out_dir
    sim_seeds, people_seeds, trait_seeds, phenotype_seeds = np.random.SeedSequence(seed).spawn(4)
    region = default_region(sequence_length)

    report("simulating genomes", 0.0)
    simulation = simulate(
        individuals=individuals,
        reference_individuals=reference_individuals,
        region=region,
        seed_sequence=sim_seeds,
    )
    report("simulating genomes", 1.0)

    people = sheets.draw_people(simulation.cohort_populations, np.random.default_rng(people_seeds))
    panel_names = tuple(sheets.panel_alias(i + 1) for i in range(reference_individuals))
    cohort_vcf = out_dir / sheets.COHORT_VCF
    panel_vcf = extras / PANEL_VCF
    public_vcf = extras / PUBLIC_VCF
    # the public counts' people: the panel's first half, outside the cohort (two nodes each)
    public_names = panel_names[: reference_individuals // 2]
    outputs = [(cohort_vcf, people.samples, simulation.cohort_nodes)]
    sites_only = []
    if reference_individuals:
        outputs.append((panel_vcf, panel_names, simulation.panel_nodes))
    else:
        for stale in (panel_vcf, panel_vcf.with_name(panel_vcf.name + ".tbi")):
            stale.unlink(missing_ok=True)
    if public_names:
        sites_only.append((public_vcf, simulation.panel_nodes[: 2 * len(public_names)]))
    else:
        for stale in (public_vcf, public_vcf.with_name(public_vcf.name + ".tbi")):
            stale.unlink(missing_ok=True)
    source = f"genecommons-demo;{SPECIES}/{simulation.model_id};seed={seed}"
    report("writing VCFs", 0.0)
    sites = write_vcfs(
        simulation,
        outputs,
        source=source,
        sites_only=sites_only,
        progress=lambda f: report("writing VCFs", f),
    )

    report("planting traits", 0.0)
    planted = traits.plant(
        simulation.ts,
        sites,
        simulation.cohort_nodes,
        people.sexes,
        chrom=region.chrom,
        span=region.length,
        rng=np.random.default_rng(trait_seeds),
    )
    report("planting traits", 1.0)

    report("writing sheets", 0.0)
    md5, sha256, size = file_digests(cohort_vcf)
    rows: dict[str, Any] = {
        **sheets.study_rows(individuals),
        "individuals": sheets.individual_rows(people),
        **sheets.sequencing_rows(people),
        **sheets.release_rows(
            people, md5=md5, sha256=sha256, size=size, model_id=simulation.model_id
        ),
        PHENOTYPES_SHEET: sheets.phenotype_rows(
            people, planted, np.random.default_rng(phenotype_seeds)
        ),
    }
    written = []
    for k, sheet in enumerate(SHEETS):
        path = out_dir / f"{sheet}.tsv"
        sheets.write_sheet(path, sheets.columns(sheet), rows[sheet])
        written.append(path)
        report("writing sheets", (k + 1) / len(SHEETS))

    truth_path = extras / TRUTH_JSON
    truth = _truth(
        seed=seed,
        simulation=simulation,
        people=people,
        panel_names=panel_names,
        public_names=public_names,
        planted=planted,
        sites=len(sites),
        md5=md5,
    )
    truth_path.write_text(json.dumps(truth, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    report("done", 1.0)
    return DemoSummary(
        out_dir=out_dir,
        sheets=tuple(written),
        cohort_vcf=cohort_vcf,
        cohort_index=cohort_vcf.with_name(cohort_vcf.name + ".tbi"),
        reference_panel_vcf=panel_vcf if reference_individuals else None,
        reference_panel_index=(
            panel_vcf.with_name(panel_vcf.name + ".tbi") if reference_individuals else None
        ),
        truth=truth_path,
        seed=seed,
        model_id=simulation.model_id,
        chrom=region.chrom,
        start=region.start + 1,
        end=region.end,
        individuals=individuals,
        reference_individuals=reference_individuals,
        sites=len(sites),
        t2d_cases=int(planted.t2d_case.sum()),
        public_frequencies_vcf=public_vcf if public_names else None,
        public_frequencies_index=(
            public_vcf.with_name(public_vcf.name + ".tbi") if public_names else None
        ),
    )


def _truth(
    *,
    seed: int,
    simulation: Any,
    people: sheets.People,
    panel_names: tuple[str, ...],
    public_names: tuple[str, ...],
    planted: traits.Traits,
    sites: int,
    md5: str,
) -> dict[str, Any]:
    import msprime
    import stdpopsim

    region = simulation.region
    cases = int(planted.t2d_case.sum())
    n = len(people.individuals)
    return {
        "format": TRUTH_FORMAT,
        "seed": seed,
        "model": {
            "species": SPECIES,
            "id": simulation.model_id,
            "description": simulation.model_description,
            "mutation_rate": simulation.mutation_rate,
            "recombination_rate": simulation.recombination_rate,
            "recombination_map": "uniform",
            "mutation_model": "JC69",
            "generation_time": simulation.generation_time,
            "msprime": msprime.__version__,
            "stdpopsim": stdpopsim.__version__,
        },
        "region": {
            "assembly": "GRCh38",
            "chrom": region.chrom,
            "start": region.start + 1,
            "end": region.end,
        },
        "vcf": {
            "cohort": sheets.COHORT_VCF,
            "cohort_md5": md5,
            "reference_panel": PANEL_VCF if panel_names else None,
            "sites": sites,
            "phased": True,
            "site_filter": "biallelic SNVs polymorphic among cohort and panel",
        },
        "cohort": {
            "individual": list(people.individuals),
            "sample": list(people.samples),
            "population": list(people.populations),
            "sex": list(people.sexes),
            "age": [int(a) for a in people.ages],
        },
        "reference_panel": {
            "sample": list(panel_names),
            "population": list(simulation.panel_populations),
        },
        # sites-only AC/AN of these panel people (the first half): the public reference
        "public_frequencies": {
            "file": PUBLIC_VCF if public_names else None,
            "samples": list(public_names),
        },
        "traits": {
            "height": {
                "kind": "quantitative",
                "phenotype": {"term": sheets.HEIGHT_TERM[0], "unit": sheets.HEIGHT_TERM[2]},
                "model": "height = sex mean + sum(effect * ALT dosage, centred) + noise",
                "sex_mean_cm": traits.HEIGHT_MEAN_CM,
                "sd_within_sex_cm": traits.HEIGHT_SD_CM,
                "heritability": traits.HEIGHT_HERITABILITY,
                "effect_unit": "cm per ALT allele",
                "causal_variants": [v.as_json() for v in planted.height_causal],
                "genetic_value": [round(float(g), 4) for g in planted.height_genetic],
                "value": [float(h) for h in planted.height_cm],
            },
            "type_2_diabetes": {
                "kind": "binary",
                "phenotype": {
                    "term": sheets.T2D_DISEASE[0],
                    "case": "excluded=false",
                    "control": "excluded=true",
                },
                "model": "liability threshold: case if liability > threshold",
                "prevalence_target": traits.T2D_PREVALENCE,
                "prevalence_observed": round(cases / n, 6),
                "heritability_liability": traits.T2D_HERITABILITY,
                "threshold": round(planted.t2d_threshold, 6),
                "effect_unit": "liability SD per ALT allele",
                "causal_variants": [v.as_json() for v in planted.t2d_causal],
                "genetic_value": [round(float(g), 4) for g in planted.t2d_genetic],
                "liability": [round(float(x), 4) for x in planted.t2d_liability],
                "value": [int(c) for c in planted.t2d_case],
                "cases": cases,
            },
        },
        "population_effects": "none: phenotypes do not depend on population",
    }
