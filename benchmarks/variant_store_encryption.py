"""Benchmark: what encrypting the variant store costs, old (plaintext) and new (sealed) side by
side in one run, with ratios:

- building a store from a VCF: the old build (bio2zarr `vcf2zarr convert`, then a plaintext
  sites index counted from the Zarr store) against the new one (streamed cyvcf2 encoding into
  the sealed Zarr store, counted on the way into the SQLCipher index);
- the Beacon's count path: point lookups of the sites index (the query and the unpacking of the
  counts that every boolean and count answer makes), plain SQLite against SQLCipher, on
  `--sites` synthetic variants of 18 groups;
- the record-level path: reading one record's calls (what record-granularity Beacon answers and
  the subset counts read), and the whole genotype matrix (what an export or a leak trace reads),
  from the plaintext bio2zarr store against the sealed one.

    .venv/bin/python -m benchmarks.variant_store_encryption [--sites 1000000] [--records 20000]
        [--samples 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.variant_ingest import POPULATIONS, write_vcf
from genecommons.secrets import LocalNodeKeys
from genecommons.variants.counts import count_block
from genecommons.variants.manifest import connect_sites, new_binding, read_manifest
from genecommons.variants.normalize import normalize
from genecommons.variants.sealed import derive_key
from genecommons.variants.store import (
    SITES_INDEX,
    SITES_SCHEMA,
    SampleInfo,
    VariantStore,
    build_store,
    group_names,
)

GROUPS = 18
LOOKUP = (
    "SELECT chrom, pos, end, ref, alt, counts FROM sites "
    "WHERE chrom = ? AND pos = ? AND ref = ? AND alt = ?"
)


def paired(calls: dict[str, Callable[[Any], object]], items: Sequence[Any]) -> dict[str, float]:
    """p50 in µs of each of `calls` over `items`, timed in turn item by item (so that the
    machine's load drifts over all of them alike); p50 and p99 printed."""
    samples: dict[str, list[float]] = {label: [] for label in calls}
    for item in items:
        for label, call in calls.items():
            start = time.perf_counter()
            call(item)
            samples[label].append(time.perf_counter() - start)
    found = {}
    for label, seen in samples.items():
        cuts = statistics.quantiles(seen, n=100)
        print(f"  {label:44s} p50 {cuts[49] * 1e6:9.1f} µs   p99 {cuts[98] * 1e6:9.1f} µs")
        found[label] = cuts[49] * 1e6
    return found


def old_build(vcf: Path, folder: Path, samples: dict[str, SampleInfo]) -> None:
    """The build before encryption: vcf2zarr convert, then a plaintext sites index."""
    import zarr
    from bio2zarr import vcf as vcf2zarr

    vcf2zarr.convert([str(vcf)], str(folder / "calls.vcz"), worker_processes=0)
    root: Any = zarr.open_group(str(folder / "calls.vcz"), mode="r")
    sample_ids = [str(s) for s in root["sample_id"][:]]
    groups = group_names({s: samples[s] for s in sample_ids if s in samples})
    members = np.zeros((len(sample_ids), len(groups)), dtype=np.int32)
    members[:, 0] = 1
    contigs = [str(c) for c in root["contig_id"][:]]
    connection = sqlite3.connect(folder / "sites.sqlite")
    connection.executescript(SITES_SCHEMA)
    step = root["call_genotype"].chunks[0]
    for start in range(0, root["call_genotype"].shape[0], step):
        block = slice(start, start + step)
        alleles = root["variant_allele"][block]
        counts = count_block(
            root["call_genotype"][block],
            n_alleles=alleles.shape[1],
            members=members,
            groups=groups,
        )
        rows = []
        for v, (contig, position) in enumerate(
            zip(root["variant_contig"][block], root["variant_position"][block], strict=True)
        ):
            ref, *alts = (str(a) for a in alleles[v] if str(a))
            for allele, variant in normalize(contigs[int(contig)], int(position), ref, alts):
                packed = np.stack(
                    [
                        counts.ac[v, allele],
                        counts.an[v],
                        counts.hom[v, allele],
                        counts.hemi[v, allele],
                    ]
                ).astype("<i4")
                rows.append(
                    (variant.chrom, variant.pos, variant.end, variant.ref, variant.alt,
                     start + v, allele, packed.tobytes())
                )  # fmt: skip
        connection.executemany("INSERT INTO sites VALUES (?,?,?,?,?,?,?,?)", rows)
    connection.execute(SITES_INDEX)
    connection.commit()
    connection.close()


def fill(connection: Any, sites: int) -> list[tuple[str, int, str, str]]:
    """`sites` synthetic variants on 22 chromosomes (counts of 18 groups); keys to look up."""
    rng = np.random.default_rng(11)
    blobs = [rng.integers(0, 800, (4, GROUPS)).astype("<i4").tobytes() for _ in range(256)]
    connection.executescript(SITES_SCHEMA)
    per_chrom = sites // 22
    keys = []
    for chrom in (f"chr{i}" for i in range(1, 23)):
        positions = 10_000 + np.arange(per_chrom) * 25 + rng.integers(0, 20, per_chrom)
        rows = [
            (chrom, int(p), int(p), "A", "G", i, 1, blobs[i % 256]) for i, p in enumerate(positions)
        ]
        connection.executemany("INSERT INTO sites VALUES (?,?,?,?,?,?,?,?)", rows)
        keys.extend((chrom, row[1], "A", "G") for row in rows[:: max(1, per_chrom // 300)])
    connection.execute(SITES_INDEX)
    connection.commit()
    return keys


def lookups(work: Path, sites: int, queries: int) -> None:
    plain = sqlite3.connect(work / "plain-sites.sqlite")
    keys = fill(plain, sites)
    plain.close()
    key = os.urandom(32)
    sealed = connect_sites(work / "sealed-sites.sqlite", key=key, read_only=False)
    fill(sealed, sites)
    sealed.close()
    plain_uri = f"file:{work / 'plain-sites.sqlite'}?mode=ro&immutable=1"
    readers = {
        "plain SQLite (old)": sqlite3.connect(plain_uri, uri=True),
        "SQLCipher (new)": connect_sites(work / "sealed-sites.sqlite", key=key, read_only=True),
    }
    chosen = [random.Random(3).choice(keys) for _ in range(queries)]
    print(f"Beacon count path: sites index point lookups, {sites:,} sites x {GROUPS} groups")

    def lookup(connection: Any) -> Callable[[tuple[str, int, str, str]], object]:
        def call(found: tuple[str, int, str, str]) -> object:
            row = connection.execute(LOOKUP, found).fetchone()
            assert row is not None
            return np.frombuffer(row[5], dtype="<i4").reshape(4, GROUPS)

        return call

    calls = {label: lookup(connection) for label, connection in readers.items()}
    for item in chosen[:300]:
        for call in calls.values():
            call(item)  # warm the page cache, as a serving process is
    p50 = paired(calls, chosen)
    ratio = p50["SQLCipher (new)"] / p50["plain SQLite (old)"]
    print(f"  ratio new / old (p50): {ratio:.2f}")


def genotype_reads(work: Path, vcf: Path, samples: dict[str, SampleInfo], records: int) -> None:
    import zarr

    keys = LocalNodeKeys(os.urandom(32))
    binding = new_binding(dataset="GCD00000001", source_sha256="0" * 64, source_name=vcf.name)
    built = build_store(
        vcf, work / "new" / "GCD00000001", samples=samples, keys=keys, binding=binding
    )
    built.lease.release()
    store = VariantStore(built.path, keys=keys, binding=binding)
    old: Any = zarr.open_group(str(work / "old" / "calls.vcz"), mode="r")
    new = store.calls()
    rng = random.Random(5)
    chosen = [rng.randrange(records) for _ in range(300)]
    print(f"Record-level path: calls of one record ({len(samples):,} samples)")
    old_calls, new_calls = old["call_genotype"], new["call_genotype"]
    p50 = paired(
        {
            "plaintext bio2zarr store (old)": lambda r: np.asarray(old_calls[r : r + 1]),
            "sealed store (new)": lambda r: np.asarray(new_calls[r : r + 1]),
        },
        chosen,
    )
    print(
        f"  ratio new / old (p50): {p50['sealed store (new)'] / p50['plaintext bio2zarr store (old)']:.2f}"
    )
    print(f"Whole genotype matrix ({records:,} x {len(samples):,}), best of 3")
    whole = {}
    for label, root in (("plaintext bio2zarr store (old)", old), ("sealed store (new)", new)):
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            np.asarray(root["call_genotype"][:])
            best = min(best, time.perf_counter() - start)
        whole[label] = best
        print(f"  {label:44s} {best * 1e3:9.1f} ms")
    print(
        f"  ratio new / old: {whole['sealed store (new)'] / whole['plaintext bio2zarr store (old)']:.2f}"
    )
    _, _, data_key = read_manifest(built.path, keys=keys)
    assert derive_key(data_key, "sites")  # the store opens with its own key only


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path(".bench-data/variants"))
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--sites", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=3000)
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    vcf = write_vcf(
        args.workdir.resolve() / f"calls-{args.records}x{args.samples}.vcf.gz",
        sites=args.records,
        samples=args.samples,
    )
    samples = {
        f"S{i:05d}": SampleInfo(POPULATIONS[i % len(POPULATIONS)], ("female", "male")[i % 2])
        for i in range(args.samples)
    }
    with tempfile.TemporaryDirectory(prefix="bench-store-") as folder:
        work = Path(folder)
        print(
            f"Building a store of {args.records:,} records x {args.samples:,} samples (best of 2)"
        )
        times: dict[str, float] = {}
        old, new = "old: vcf2zarr + plaintext index", "new: sealed Zarr + SQLCipher index"
        for label in (old, new):
            best = float("inf")
            for attempt in range(2):
                target = work / ("old" if label.startswith("old") else "new") / str(attempt)
                target.mkdir(parents=True)
                start = time.perf_counter()
                if label.startswith("old"):
                    old_build(vcf, target, samples)
                else:
                    keys = LocalNodeKeys(os.urandom(32))
                    binding = new_binding(dataset="GCD1", source_sha256="0" * 64, source_name="v")
                    build_store(vcf, target / "GCD1", samples=samples, keys=keys, binding=binding)
                best = min(best, time.perf_counter() - start)
            times[label] = best
            print(f"  {label:44s} {best:9.1f} s")
        print(f"  ratio new / old: {times[new] / times[old]:.2f}")
        (work / "old" / "0" / "calls.vcz").rename(work / "old" / "calls.vcz")
        genotype_reads(work, vcf, samples, args.records)
        lookups(work, args.sites, args.queries)
    print(json.dumps({"note": "noisy shared machine: compare the ratios, not the absolutes"}))


if __name__ == "__main__":
    main()
