"""What a worker of `genecommons serve` does before it can answer: import the app (and, started
from the console script before this change, the command line). CPU seconds (what the import
costs, whatever else runs) and wall seconds, idle and with every core busy; with `--baseline
SRC`, the same for another source tree (the old code: a checkout's `src`) and the ratios.

    python -m benchmarks.startup --baseline /path/to/old/src
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def measure(src: Path, module: str) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of `python -c 'import MODULE'` from `src`."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", f"import {module}"], env=env, check=True, cwd="/")
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall


@contextmanager
def busy(count: int) -> Iterator[None]:
    """`count` processes spinning on the CPU while the block runs."""
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        yield
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--baseline", type=Path, help="the `src` of the code to compare with")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--burners", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    trees = {"this": SRC} | ({"baseline": args.baseline} if args.baseline else {})
    print(f"medians of {args.runs} runs; 'busy': {args.burners} CPU-bound processes beside")
    print(f"{'module':<18}{'tree':<10}{'cpu s':>8}{'wall s':>9}{'busy wall s':>13}")
    for module in ("genecommons.app", "genecommons.cli"):
        rows = {}
        for name, src in trees.items():
            measure(src, module)  # warm the file cache and the bytecode
            idle = [measure(src, module) for _ in range(args.runs)]
            with busy(args.burners):
                loaded = [measure(src, module)[1] for _ in range(args.runs)]
            rows[name] = (
                statistics.median(c for c, _ in idle),
                statistics.median(w for _, w in idle),
                statistics.median(loaded),
            )
            cpu, wall, busy_wall = rows[name]
            print(f"{module:<18}{name:<10}{cpu:>8.2f}{wall:>9.2f}{busy_wall:>13.2f}")
        if "baseline" in rows:
            ratios = [b / t for t, b in zip(rows["this"], rows["baseline"], strict=True)]
            print(f"{module:<18}{'old/new':<10}" + "".join(f"{r:>8.2f}x" for r in ratios))


if __name__ == "__main__":
    main()
