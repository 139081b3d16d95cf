"""Benchmark: fingerprinting a VCF export beside `bcftools view` reading the same file, and
tracing a leaked 100 MB file, in one run.

1. Fingerprinting: a recipient's copy of an msprime cohort (the demo's simulation), from the
   call arrays in memory (as `genecommons variants export` has them after reading the VCF Zarr
   store; reading the store is not timed): the keyed plan, the recipient's Tardos code, the
   marks and the VCF text, written plain and BGZF-compressed. Throughput is VCF text bytes per
   second (goal >= 50 MB/s). The peer is `bcftools view` (pysam's) reading that same file and
   writing it again, plain (-Ov) and compressed (-Oz).
2. Tracing: a leaked VCF of about --leak-mb MB (a copy's first sites), read, aligned with the
   original, and scored against 100 recipients (goal < 60 s). The database look-ups of
   `genecommons trace` (a handful of rows) are not included.

    .venv/bin/python -m benchmarks.fingerprint [--individuals 2000] [--length 2500000]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
import pysam
import pysam.bcftools

from genecommons.demo.simulate import default_region, simulate
from genecommons.fingerprint import codes, genotypes, trace

SECRET = b"benchmark-secret-benchmark-secre"
DATASET = "GCDBENCH"


def cohort(individuals: int, length: int) -> genotypes.Genotypes:
    """Phased biallelic calls of a demo simulation as a store would hold them."""
    sim = simulate(
        individuals=individuals,
        reference_individuals=0,
        region=default_region(length),
        seed_sequence=np.random.SeedSequence(11),
    )
    haplotypes = sim.ts.genotype_matrix(samples=sim.cohort_nodes)
    keep = haplotypes.max(axis=1) == 1
    haplotypes = haplotypes[keep].astype(np.int8)
    positions = sim.region.start + sim.ts.sites_position[keep].astype(np.int64) + 1
    sites = len(positions)
    return genotypes.Genotypes(
        calls=haplotypes.reshape(sites, individuals, 2),
        phased=np.ones((sites, individuals), dtype=np.bool_),
        samples=tuple(f"S{i:05d}" for i in range(individuals)),
        chroms=("chr22",) * sites,
        positions=positions,
        alleles=(("A", "G"),) * sites,
        contigs=(("chr22", 50_818_468),),
    )


def fingerprinted(source: genotypes.Genotypes, recipient: str) -> genotypes.Genotypes:
    """The recipient's copy: plan, code, marks."""
    dosages = source.dosages()
    plan = codes.make_plan(dosages, secret=SECRET, dataset=DATASET)
    bits = codes.recipient_bits(plan, secret=SECRET, dataset=DATASET, recipient=recipient)
    return genotypes.mark(source, plan, bits)


def export(
    source: genotypes.Genotypes, path: Path, *, compressed: bool, htslib: bool = False
) -> tuple[float, float]:
    """Seconds (wall clock, CPU) to fingerprint and write one copy (BGZF: as deliveries write
    it, or with htslib's writer at its default level, as before)."""
    start = time.perf_counter()
    cpu = time.process_time()
    copy = fingerprinted(source, "r001@example.org")
    handle: Any
    if compressed and htslib:
        handle = pysam.BGZFile(str(path), "wb", index=None)
    elif compressed:
        handle = genotypes.BgzfFile(path)
    else:
        handle = path.open("wb")
    try:
        genotypes.write_vcf(copy, handle, source="bench")
    finally:
        handle.close()
    return time.perf_counter() - start, time.process_time() - cpu


def bcftools_view(path: Path, out: Path, output_type: str) -> tuple[float, float]:
    """Seconds (wall clock, CPU) for `bcftools view` to read `path` and write it again (pysam
    runs it in this process, so the process's CPU time is bcftools')."""
    start = time.perf_counter()
    cpu = time.process_time()
    pysam.bcftools.view(f"-O{output_type}", "-o", str(out), str(path), catch_stdout=False)
    return time.perf_counter() - start, time.process_time() - cpu


def main() -> None:
    """Generate the cohort, time the export beside bcftools, then time a trace."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workdir", type=Path, default=Path(".bench-data/fingerprint"))
    parser.add_argument("--individuals", type=int, default=2000)
    parser.add_argument("--length", type=int, default=2_500_000)
    parser.add_argument("--leak-mb", type=float, default=100.0)
    parser.add_argument("--recipients", type=int, default=100)
    args = parser.parse_args()
    work = args.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    print("simulating the cohort …", flush=True)
    source = cohort(args.individuals, args.length)
    plain, packed = work / "copy.vcf", work / "copy.vcf.gz"
    ours_plain = min(export(source, plain, compressed=False) for _ in range(2))
    ours_packed = export(source, packed, compressed=True)
    packed_size = packed.stat().st_size
    ours_default = export(source, work / "copy6.vcf.gz", compressed=True, htslib=True)
    default_size = (work / "copy6.vcf.gz").stat().st_size
    size = plain.stat().st_size
    peer_plain = min(bcftools_view(plain, work / "peer.vcf", "v") for _ in range(2))
    peer_packed = bcftools_view(plain, work / "peer.vcf.gz", "z")
    mb = size / 1e6
    print(
        f"fingerprinted VCF export: {len(source.positions):,} sites x {len(source.samples):,} "
        f"samples, {mb:,.0f} MB of VCF text (noisy shared machine: wall clock and CPU time)"
    )
    for name, (wall, cpu) in (
        ("genecommons, plain VCF", ours_plain),
        ("bcftools view -Ov      ", peer_plain),
        ("genecommons, BGZF      ", ours_packed),
        ("  before: htslib lvl 6 ", ours_default),
        ("bcftools view -Oz      ", peer_packed),
    ):
        print(
            f"  {name:24} {wall:6.2f} s {mb / wall:7.1f} MB/s wall   "
            f"{cpu:6.2f} s {mb / cpu:7.1f} MB/s CPU"
        )
    print(
        f"  ratio ours / bcftools (CPU): plain {peer_plain[1] / ours_plain[1]:.2f}, BGZF "
        f"{peer_packed[1] / ours_packed[1]:.2f}; goal >= 50 MB/s; BGZF libdeflate "
        f"level {genotypes.BGZF_LEVEL} / htslib's zlib 6: {ours_default[1] / ours_packed[1]:.2f}x "
        "the speed, "
        f"{packed_size / default_size:.2f}x the size ({packed_size / 1e6:.1f} / "
        f"{default_size / 1e6:.1f} MB)"
    )

    # a leak: the first sites of one recipient's copy, about --leak-mb MB of VCF
    recipients = [f"r{k + 1:03d}@example.org" for k in range(args.recipients)]
    copy = fingerprinted(source, recipients[7])
    per_site = size / len(source.positions)
    keep = min(len(source.positions), int(args.leak_mb * 1e6 / per_site))
    leak_path = work / "leak.vcf"
    part = genotypes.Genotypes(
        calls=copy.calls[:keep],
        phased=copy.phased[:keep],
        samples=copy.samples,
        chroms=copy.chroms[:keep],
        positions=copy.positions[:keep],
        alleles=copy.alleles[:keep],
        contigs=copy.contigs,
    )
    with leak_path.open("wb") as handle:
        genotypes.write_vcf(part, handle, source="leak")
    start = time.perf_counter()
    cpu = time.process_time()
    matrix = genotypes.read_leak(leak_path)
    read = time.perf_counter() - start
    aligned = trace.align(
        original_sites=source.site_keys,
        original_samples=source.samples,
        leaked_sites=matrix.sites,
        leaked_samples=matrix.samples,
        values=matrix.values,
    )
    plan = codes.make_plan(source.dosages(), secret=SECRET, dataset=DATASET)
    recipient_codes = codes.code_matrix(plan, secret=SECRET, dataset=DATASET, recipients=recipients)
    verdict = trace.accuse(
        trace.dense_observations(plan, aligned), plan.bias, recipient_codes, recipients
    )
    total = time.perf_counter() - start
    cpu = time.process_time() - cpu
    named = [s.recipient for s in verdict.named]
    print(
        f"tracing a leaked {leak_path.stat().st_size / 1e6:,.0f} MB VCF against "
        f"{len(recipients)} recipients: {total:.1f} s wall, {cpu:.1f} s CPU (reading "
        f"{read:.1f} s; goal < 60 s); "
        f"named {named} (source {recipients[7]})"
    )


if __name__ == "__main__":
    main()
