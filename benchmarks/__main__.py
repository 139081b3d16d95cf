"""`make bench`: run every benchmark and print its table.

The sizes can be lowered for a quick look:
`BENCH_INDIVIDUALS=10000 BENCH_BAM_GB=0.2 BENCH_BIG_BAM_GB=0.5 BENCH_COPY_GB=0.1 make bench`.
"""

from __future__ import annotations

import os
import subprocess
import sys


def main() -> None:
    """Run the benchmarks one after the other, each in its own process."""
    individuals = os.environ.get("BENCH_INDIVIDUALS", "100000")
    bam_gb = os.environ.get("BENCH_BAM_GB", "2")
    big_bam_gb = os.environ.get("BENCH_BIG_BAM_GB", "5")
    for module, args in (
        ("benchmarks.catalog_submission", ["--individuals", individuals]),
        ("benchmarks.progress_overhead", []),
        ("benchmarks.access_policy", []),
        ("benchmarks.ops_metrics", []),
        ("benchmarks.audit_merkle", ["--leaves", "10000000"]),
        ("benchmarks.audit_log", ["--events", "200000", "--proof-leaves", "10000000"]),
        ("benchmarks.archive_delivery", ["--bam-gb", bam_gb, "--big-bam-gb", big_bam_gb]),
        ("benchmarks.variant_sites", ["--sites", os.environ.get("BENCH_SITES", "10000000")]),
        ("benchmarks.variant_ingest", []),
        ("benchmarks.variant_store_encryption", []),
        ("benchmarks.variant_counts", []),
        ("benchmarks.reference_lookup", []),
        ("benchmarks.fingerprint", []),
        ("benchmarks.fingerprinted_copy", ["--gb", os.environ.get("BENCH_COPY_GB", "1.0")]),
        ("benchmarks.privacy_guard", []),
        ("benchmarks.beacon", ["--sites", os.environ.get("BENCH_SITES", "10000000")]),
        ("benchmarks.beacon_history", []),
        ("benchmarks.startup", []),
    ):
        print(f"== {module}", flush=True)
        subprocess.run([sys.executable, "-m", module, *args], check=True)


if __name__ == "__main__":
    main()
