"""Benchmark: the public reference counts the Beacon reads once per answered variant. A
synthetic gnomAD-style sites VCF (INFO AC/AN, a tenth of the records multi-allelic) is built
with `build_reference`; then `ReferenceCounts.get` of listed and unlisted keys in random order,
one call timed at a time (p50, p99) and in a loop (mean), in one thread and in two at once.

    .venv/bin/python -m benchmarks.reference_lookup [--sites 2000000] [--lookups 200000]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import threading
import time
from pathlib import Path

import pysam

from genecommons.variants.reference import ReferenceCounts, build_reference

HEADER = (
    "##fileformat=VCFv4.3\n##contig=<ID=chr22>\n"
    '##INFO=<ID=AC,Number=A,Type=Integer,Description="Allele count">\n'
    '##INFO=<ID=AN,Number=1,Type=Integer,Description="Allele number">\n'
    "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
)


def write_sites(path: Path, sites: int, rng: random.Random) -> list[str]:
    """A bgzipped sites VCF of about `sites` variants; the keys it lists."""
    plain = path.with_suffix("")
    keys: list[str] = []
    pos = 10_000_000
    with plain.open("w", encoding="ascii") as handle:
        handle.write(HEADER)
        while len(keys) < sites:
            pos += rng.randint(1, 12)
            ref = rng.choice("ACGT")
            alts = rng.sample([b for b in "ACGT" if b != ref], 2 if rng.random() < 0.1 else 1)
            counts = ",".join(str(rng.randint(0, 50)) for _ in alts)
            handle.write(
                f"chr22\t{pos}\t.\t{ref}\t{','.join(alts)}\t.\tPASS\tAC={counts};AN=152312\n"
            )
            keys.extend(f"chr22-{pos}-{ref}-{alt}" for alt in alts)
    pysam.tabix_compress(str(plain), str(path), force=True)
    plain.unlink()
    return keys


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


def single_calls(counts: ReferenceCounts, keys: list[str]) -> tuple[float, float]:
    timer = time.perf_counter_ns
    samples = []
    for key in keys:
        start = timer()
        counts.get(key)
        samples.append(timer() - start)
    samples.sort()
    return samples[len(samples) // 2] / 1000, samples[int(len(samples) * 0.99)] / 1000


def loop_mean(counts: ReferenceCounts, keys: list[str]) -> float:
    get = counts.get
    start = time.perf_counter()
    for key in keys:
        get(key)
    return (time.perf_counter() - start) / len(keys) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sites", type=int, default=2_000_000)
    parser.add_argument("--lookups", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = random.Random(20261201)
    with tempfile.TemporaryDirectory() as folder:
        vcf = Path(folder) / "sites.vcf.gz"
        keys = write_sites(vcf, args.sites, rng)
        start = time.perf_counter()
        summary = build_reference(vcf, Path(folder) / "reference.sqlite")
        took = time.perf_counter() - start
        size = summary.path.stat().st_size / 1e6
        print(
            f"build: {summary.records:,} records, {summary.source.sites:,} keys in {took:.1f} s "
            f"({summary.records / took:,.0f} records/s), {size:.0f} MB; {load()}"
        )
        counts = ReferenceCounts(summary.path)
        listed = rng.sample(keys, min(args.lookups, len(keys)))
        unlisted = [k + "A" for k in listed]  # insertions at listed positions: never listed
        mixed = [k for pair in zip(listed, unlisted, strict=True) for k in pair][: args.lookups]
        counts.get(listed[0])  # this thread's connection
        for repeat in range(args.repeats):
            hit = single_calls(counts, listed)
            miss = single_calls(counts, unlisted)
            mean = loop_mean(counts, mixed)
            print(
                f"run {repeat + 1}: listed p50 {hit[0]:.1f} us p99 {hit[1]:.1f} us; unlisted "
                f"p50 {miss[0]:.1f} us p99 {miss[1]:.1f} us; loop mean {mean:.1f} us; {load()}"
            )
        means: list[float] = []

        def worker(part: list[str]) -> None:
            counts.get(part[0])
            means.append(loop_mean(counts, part))

        threads = [threading.Thread(target=worker, args=(mixed[k::2],)) for k in range(2)]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - start
        print(
            f"two threads: per-thread loop mean {statistics.mean(means):.1f} us, "
            f"{len(mixed) / wall:,.0f} lookups/s together; {load()}"
        )


if __name__ == "__main__":
    main()
