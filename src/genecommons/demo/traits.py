"""Planted traits: a height-like quantitative trait and type 2 diabetes under a liability threshold.

Each trait has a few causal variants (MAF >= 5 % in the cohort, spread along the region). Effects
are scaled so that, in the cohort, the causal variants explain exactly the stated heritability
(of height's within-sex variance; of the liability's variance for diabetes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

import numpy as np

from genecommons.demo.vcf import Sites

if TYPE_CHECKING:
    import tskit

HEIGHT_MEAN_CM = {"male": 171.0, "female": 159.0}  # adult means, roughly those of China
HEIGHT_SD_CM = 6.5  # within sex
HEIGHT_HERITABILITY = 0.5
T2D_PREVALENCE = 0.10
T2D_HERITABILITY = 0.4  # liability scale
CAUSAL_PER_TRAIT = 10
MIN_MAF = 0.05


@dataclass(frozen=True, slots=True)
class CausalVariant:
    """A planted causal variant; `effect` is per copy of the ALT allele."""

    chrom: str
    pos: int
    ref: str
    alt: str
    effect: float
    alt_frequency: float  # in the cohort

    def as_json(self) -> dict[str, Any]:
        """The variant as truth.json records it."""
        return {
            "chrom": self.chrom,
            "pos": self.pos,
            "ref": self.ref,
            "alt": self.alt,
            "effect": round(self.effect, 6),
            "alt_frequency": round(self.alt_frequency, 6),
            "maf": round(min(self.alt_frequency, 1 - self.alt_frequency), 6),
        }


@dataclass(frozen=True, slots=True)
class Traits:
    """Both traits for every cohort individual (in cohort order)."""

    height_causal: tuple[CausalVariant, ...]
    height_genetic: np.ndarray  # cm, centred in the cohort
    height_cm: np.ndarray  # rounded to 0.1 cm, as the phenotype sheet records it
    t2d_causal: tuple[CausalVariant, ...]
    t2d_genetic: np.ndarray  # liability units
    t2d_liability: np.ndarray
    t2d_threshold: float
    t2d_case: np.ndarray  # bool


def choose_causal(
    sites: Sites, cohort_haplotypes: int, count: int, *, span: int, rng: np.random.Generator
) -> list[int]:
    """Indices into `sites` of up to `count` common variants, kept at least span/(4*count) apart."""
    if cohort_haplotypes == 0 or len(sites) == 0:
        return []
    frequency = sites.cohort_alt_counts / cohort_haplotypes
    eligible = np.flatnonzero(np.minimum(frequency, 1 - frequency) >= MIN_MAF)
    gap = span // (4 * max(count, 1))
    chosen: list[int] = []
    for index in rng.permutation(eligible):
        position = sites.positions[index]
        if all(abs(int(position - sites.positions[c])) >= gap for c in chosen):
            chosen.append(int(index))
            if len(chosen) == count:
                break
    return sorted(chosen)


def dosages(
    ts: tskit.TreeSequence, sites: Sites, indices: Sequence[int], cohort_nodes: np.ndarray
) -> np.ndarray:
    """ALT dosages (individuals x variants) of the cohort at the chosen sites."""
    out = np.zeros((len(cohort_nodes) // 2, len(indices)), dtype=np.float64)
    import tskit

    variant = tskit.Variant(ts, samples=cohort_nodes)
    for column, index in enumerate(indices):
        variant.decode(int(sites.site_ids[index]))
        if variant.alleles[1] != sites.alts[index]:  # pragma: no cover - guarded by write_vcfs
            raise AssertionError("allele order changed between passes")
        out[:, column] = variant.genotypes.reshape(-1, 2).sum(axis=1)
    return out


def _genetic_values(
    x: np.ndarray,
    target_variance: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Effects per ALT allele and centred genetic values with variance `target_variance`."""
    if x.shape[1] == 0 or x.shape[0] < 2:
        return np.zeros(x.shape[1]), np.zeros(x.shape[0])
    raw = np.asarray(rng.normal(size=x.shape[1]), dtype=np.float64)
    centred = x - x.mean(axis=0)
    values = centred @ raw
    variance = float(values.var())
    scale = float(np.sqrt(target_variance / variance)) if variance > 0 else 0.0
    return raw * scale, values * scale


def plant(
    ts: tskit.TreeSequence,
    sites: Sites,
    cohort_nodes: np.ndarray,
    sexes: Sequence[str],
    *,
    chrom: str,
    span: int,
    rng: np.random.Generator,
) -> Traits:
    """Choose causal variants and draw both traits for the cohort."""
    n = len(cohort_nodes) // 2
    picked = choose_causal(sites, 2 * n, 2 * CAUSAL_PER_TRAIT, span=span, rng=rng)
    order = rng.permutation(len(picked))
    height_idx = sorted(picked[i] for i in order[: len(picked) // 2])
    t2d_idx = sorted(picked[i] for i in order[len(picked) // 2 :])

    def variants(indices: list[int], effects: np.ndarray) -> tuple[CausalVariant, ...]:
        return tuple(
            CausalVariant(
                chrom,
                int(sites.positions[i]),
                sites.refs[i],
                sites.alts[i],
                float(effects[k]),
                float(sites.cohort_alt_counts[i] / (2 * n)),
            )
            for k, i in enumerate(indices)
        )

    x_height = dosages(ts, sites, height_idx, cohort_nodes)
    h_effects, h_genetic = _genetic_values(x_height, HEIGHT_HERITABILITY * HEIGHT_SD_CM**2, rng)
    noise = rng.normal(scale=HEIGHT_SD_CM * np.sqrt(1 - HEIGHT_HERITABILITY), size=n)
    base = np.array([HEIGHT_MEAN_CM.get(sex, sum(HEIGHT_MEAN_CM.values()) / 2) for sex in sexes])
    height = np.round(base + h_genetic + noise, 1)

    x_t2d = dosages(ts, sites, t2d_idx, cohort_nodes)
    t_effects, t_genetic = _genetic_values(x_t2d, T2D_HERITABILITY, rng)
    liability = t_genetic + rng.normal(scale=np.sqrt(1 - T2D_HERITABILITY), size=n)
    threshold = NormalDist().inv_cdf(1 - T2D_PREVALENCE)
    return Traits(
        height_causal=variants(height_idx, h_effects),
        height_genetic=h_genetic,
        height_cm=height,
        t2d_causal=variants(t2d_idx, t_effects),
        t2d_genetic=t_genetic,
        t2d_liability=liability,
        t2d_threshold=threshold,
        t2d_case=liability > threshold,
    )
