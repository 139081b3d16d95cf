"""Benchmark: building a variant store (VCF -> VCF Zarr + sites index with counts by group)
beside bio2zarr's `vcf2zarr convert` alone on the same VCF, in one run (goal: within 1.5x).

The VCF is generated once (random biallelic SNVs, 1000 Genomes-like allele frequencies, some
multi-allelic records) into --workdir and kept.

    .venv/bin/python -m benchmarks.variant_ingest [--sites 50000] [--samples 2000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pysam

from genecommons.secrets import LocalNodeKeys
from genecommons.variants.manifest import new_binding
from genecommons.variants.store import SampleInfo, build_store

POPULATIONS = ("CHB", "CHS", "JPT", "CEU", "YRI")


def write_vcf(path: Path, *, sites: int, samples: int, seed: int = 3) -> Path:
    """A bgzipped, indexed VCF of `sites` records x `samples` diploid genotypes."""
    if path.exists():
        return path
    rng = np.random.default_rng(seed)
    plain = path.with_suffix("")
    names = [f"S{i:05d}" for i in range(samples)]
    header = (
        "##fileformat=VCFv4.2\n##contig=<ID=chr22,length=50818468>\n"
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t" + "\t".join(names) + "\n"
    )
    positions = np.sort(rng.choice(np.arange(16_000_000, 50_000_000), sites, replace=False))
    codes = np.array(["0|0", "0|1", "1|0", "1|1", "0|2", "1|2"])
    with plain.open("w") as out:
        out.write(header)
        for block in range(0, sites, 1000):
            lines = []
            for position in positions[block : block + 1000]:
                frequency = min(0.5, rng.beta(0.3, 6.0))
                first = rng.random((samples, 2)) < frequency
                calls = first.sum(axis=1) + 2 * (first[:, 0] & ~first[:, 1])
                multi = rng.random() < 0.05
                if multi:
                    calls = np.where(rng.random(samples) < 0.01, 4, calls)
                genotypes = "\t".join(codes[np.minimum(calls, 5)])
                alts = "G,T" if multi else "G"
                lines.append(f"chr22\t{position}\t.\tA\t{alts}\t.\tPASS\t.\tGT\t{genotypes}\n")
            out.write("".join(lines))
    pysam.tabix_compress(str(plain), str(path), force=True)
    plain.unlink()
    pysam.tabix_index(str(path), preset="vcf", force=True, keep_original=True)
    return path


def main() -> None:
    """Generate once, then time vcf2zarr alone and the whole store build."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workdir", type=Path, default=Path(".bench-data/variants"))
    parser.add_argument("--sites", type=int, default=50_000)
    parser.add_argument("--samples", type=int, default=2000)
    args = parser.parse_args()
    work = args.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    print("generating the VCF (once) …", flush=True)
    vcf = write_vcf(
        work / f"calls-{args.sites}x{args.samples}.vcf.gz", sites=args.sites, samples=args.samples
    )
    samples = {
        f"S{i:05d}": SampleInfo(POPULATIONS[i % len(POPULATIONS)], ("female", "male")[i % 2])
        for i in range(args.samples)
    }
    peer, ours = [], []
    for _ in range(2):
        target = work / "peer.vcz"
        shutil.rmtree(target, ignore_errors=True)
        start = time.perf_counter()
        subprocess.run(
            [
                str(Path(sys.executable).with_name("vcf2zarr")),
                "convert",
                "-Q",
                str(vcf),
                str(target),
            ],
            check=True,
            capture_output=True,
        )
        peer.append(time.perf_counter() - start)
        shutil.rmtree(target)
        store = work / "store"
        shutil.rmtree(store, ignore_errors=True)
        start = time.perf_counter()
        keys = LocalNodeKeys(os.urandom(32))
        binding = new_binding(dataset=store.name, source_sha256="0" * 64, source_name=vcf.name)
        summary = build_store(vcf, store, samples=samples, keys=keys, binding=binding)
        ours.append(time.perf_counter() - start)
        shutil.rmtree(store)
    print(f"variant store of {args.sites:,} records x {args.samples:,} samples (best of 2)")
    print(f"  vcf2zarr convert (CLI)                 {min(peer):7.1f} s")
    print(
        f"  genecommons store (Zarr + sites index) {min(ours):7.1f} s  "
        f"({summary.sites:,} sites, {len(summary.groups)} groups)"
    )
    print(f"  ratio ours / vcf2zarr: {min(ours) / min(peer):.2f} (goal <= 1.5)")


if __name__ == "__main__":
    main()
