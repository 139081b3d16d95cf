"""`make bench`: run every benchmark and print its table.

The size can be lowered for a quick look: `BENCH_INDIVIDUALS=10000 make bench`.
"""

from __future__ import annotations

import os
import subprocess
import sys


def main() -> None:
    """Run the benchmarks one after the other, each in its own process."""
    individuals = os.environ.get("BENCH_INDIVIDUALS", "100000")
    for module, args in (
        ("benchmarks.catalog_submission", ["--individuals", individuals]),
        ("benchmarks.access_policy", []),
        ("benchmarks.audit_merkle", ["--leaves", "10000000"]),
        ("benchmarks.audit_log", ["--events", "200000"]),
    ):
        print(f"== {module}", flush=True)
        subprocess.run([sys.executable, "-m", module, *args], check=True)


if __name__ == "__main__":
    main()
