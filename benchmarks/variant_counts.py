"""Benchmark: allele counts by population (AC, AN, homozygous and hemizygous allele counts)
beside `bcftools +fill-tags` on the same VCF, in one run: equal exactly, and timed.

Ours is the variant store's counting step (`variants.counts.count_block` over the VCF Zarr's
genotype blocks, as `build_store` runs it after `vcf2zarr convert`, which
`benchmarks.variant_ingest` times). The peer is Debian's `bcftools +fill-tags -S groups -t
AC,AN,AC_Hom,AC_Hemi`, reading the bgzipped VCF and writing uncompressed BCF to /dev/null (the
plugin is not part of pysam's bcftools; `apt-get install bcftools` provides it). Both are timed
on a synthetic cohort (variant_ingest's generator, some multi-allelic records) and on the 1000
Genomes slice in ../shared/data/1000g when present (26 populations).

    .venv/bin/python -m benchmarks.variant_counts [--sites 50000] [--samples 2000]
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pysam

from benchmarks.variant_ingest import POPULATIONS, write_vcf
from genecommons.variants.counts import count_block, membership

KG = Path("../shared/data/1000g")
KG_VCF = KG / "chr1_11697036-11836540.vcf.gz"
KG_PANEL = KG / "integrated_call_samples_v3.20130502.ALL.panel"
TAGS = ("AC", "AN", "AC_Hom", "AC_Hemi")
Table = dict[tuple[int, str], tuple[tuple[int, ...], int, tuple[int, ...], tuple[int, ...]]]


def convert(vcf: Path, store: Path) -> None:
    """The VCF Zarr of `vcf` (made once)."""
    if store.exists():
        return
    from bio2zarr import vcf as vcf2zarr

    vcf2zarr.convert([str(vcf)], str(store), worker_processes=0)


def ours(store: Path, population: dict[str, str], groups: Sequence[str]) -> tuple[float, Table]:
    """Seconds to count every record of the store by group, and the counts."""
    import zarr

    started = time.perf_counter()
    root: Any = zarr.open_group(str(store), mode="r")
    samples = [str(s) for s in root["sample_id"][:]]
    members = membership([population.get(s) for s in samples], groups)
    genotypes, alleles = root["call_genotype"], root["variant_allele"]
    step, records = genotypes.chunks[0], genotypes.shape[0]
    blocks = []
    for start in range(0, records, step):
        block = slice(start, min(start + step, records))
        width = alleles[block].shape[1]
        blocks.append(
            (start, count_block(genotypes[block], n_alleles=width, members=members, groups=groups))
        )
    seconds = time.perf_counter() - started
    n_alt = (np.asarray(root["variant_allele"][:]) != "").sum(axis=1) - 1
    table: Table = {}
    for start, counts in blocks:
        for v in range(counts.ac.shape[0]):
            k = int(n_alt[start + v])
            for g, group in enumerate(groups):
                table[(start + v, group)] = (
                    tuple(int(x) for x in counts.ac[v, 1 : 1 + k, g]),
                    int(counts.an[v, g]),
                    tuple(2 * int(x) for x in counts.hom[v, 1 : 1 + k, g]),
                    tuple(int(x) for x in counts.hemi[v, 1 : 1 + k, g]),
                )
    return seconds, table


def fill_tags(bcftools: str, vcf: Path, groups_file: Path, out: str) -> float:
    """Seconds for `bcftools +fill-tags` to tag `vcf` by the groups of `groups_file`."""
    started = time.perf_counter()
    subprocess.run(
        [
            bcftools,
            "+fill-tags",
            str(vcf),
            "-Ou" if out == os.devnull else "-Ov",
            "-o",
            out,
            "--",
            "-S",
            str(groups_file),
            "-t",
            ",".join(TAGS),
        ],
        check=True,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def theirs(path: Path, groups: Sequence[str]) -> Table:
    """The counts `bcftools +fill-tags` wrote into `path`, per record and group."""
    table: Table = {}
    with pysam.VariantFile(str(path)) as vcf:
        for index, record in enumerate(vcf):
            info = record.info
            for group in groups:
                table[(index, group)] = (
                    tuple(info[f"AC_{group}"]),
                    int(info[f"AN_{group}"]),
                    tuple(info[f"AC_Hom_{group}"]),
                    tuple(info[f"AC_Hemi_{group}"]),
                )
    return table


def compare(
    name: str, bcftools: str, vcf: Path, store: Path, population: dict[str, str], work: Path
) -> None:
    """Time both on one VCF, check the counts are equal, print the ratio."""
    groups = sorted(set(population.values()))
    groups_file = work / f"{name}-groups.txt"
    present = set(pysam.VariantFile(str(vcf)).header.samples)
    groups_file.write_text("".join(f"{s}\t{p}\n" for s, p in population.items() if s in present))
    convert(vcf, store)
    ours_s = min(ours(store, population, groups)[0] for _ in range(2))
    _, mine = ours(store, population, groups)
    peer_s = min(fill_tags(bcftools, vcf, groups_file, os.devnull) for _ in range(2))
    tagged = work / f"{name}-tagged.vcf"
    fill_tags(bcftools, vcf, groups_file, str(tagged))
    peer = theirs(tagged, groups)
    differing = sum(1 for key, value in peer.items() if mine.get(key) != value)
    records = len(peer) // max(len(groups), 1)
    print(
        f"  {name}: {records:,} records x {len(present):,} samples, {len(groups)} populations\n"
        f"    counts by population, ours (VCF Zarr blocks):  {ours_s:8.2f} s\n"
        f"    bcftools +fill-tags (bgzipped VCF -> BCF):     {peer_s:8.2f} s\n"
        f"    ratio ours / bcftools: {ours_s / peer_s:.2f}x; "
        f"cells compared {len(peer):,}, differing {differing} "
        f"({'EQUAL' if differing == 0 and len(peer) == len(mine) else 'NOT EQUAL'})"
    )
    if differing or len(peer) != len(mine):
        sys.exit(1)


def main() -> None:
    """Generate the synthetic cohort once, then compare on it and on the 1000 Genomes slice."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workdir", type=Path, default=Path(".bench-data/variants"))
    parser.add_argument("--sites", type=int, default=50_000)
    parser.add_argument("--samples", type=int, default=2000)
    args = parser.parse_args()
    bcftools = shutil.which("bcftools")
    if bcftools is None:
        print(
            "  skipped: bcftools (with its fill-tags plugin) is not installed; "
            "`apt-get install bcftools` provides it"
        )
        return
    work = args.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    name = f"calls-{args.sites}x{args.samples}"
    vcf = write_vcf(work / f"{name}.vcf.gz", sites=args.sites, samples=args.samples)
    population = {f"S{i:05d}": POPULATIONS[i % len(POPULATIONS)] for i in range(args.samples)}
    compare("synthetic", bcftools, vcf, work / f"{name}.vcz", population, work)
    if KG_VCF.exists() and KG_PANEL.exists():
        with KG_PANEL.open() as handle:
            panel = {r["sample"]: r["pop"] for r in csv.DictReader(handle, delimiter="\t")}
        compare("1000 Genomes chr1 slice", bcftools, KG_VCF.resolve(), work / "kg.vcz", panel, work)
    else:
        print(f"  1000 Genomes slice: skipped ({KG} is absent)")


if __name__ == "__main__":
    main()
