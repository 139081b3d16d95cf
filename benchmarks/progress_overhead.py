"""Benchmark: what progress reporting costs a submission.

Writes a demo cohort once, then submits it (metadata, archive ingest of the cohort VCF, its
variant store) to a fresh node on SQLite, as `genecommons submit` does, with no progress
reported, with one log line per stage (off a terminal) and with live rich bars (drawn into a
string, as on a terminal), the three interleaved `--repeats` times after one untimed
warm-up, the order turning each round. Prints the median wall and CPU time (all threads; less
moved by a busy machine) of each and their ratios to the run without progress.

    .venv/bin/python -m benchmarks.progress_overhead --individuals 2000 --length 2000000
"""

from __future__ import annotations

import argparse
import io
import logging
import statistics
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

from rich.console import Console

from genecommons.archive import keys_and_store
from genecommons.archive.ingestion import BundleArchiver
from genecommons.catalog import service as catalog_service
from genecommons.config import Settings
from genecommons.db import make_session_factory, node_engine
from genecommons.demo.cohort import write_demo
from genecommons.fingerprint.secret import fingerprint_secret
from genecommons.migrate import upgrade_node
from genecommons.policy.models import Subject
from genecommons.progress import SILENT, LoggedProgress, Progress
from genecommons.progress_bars import BarProgress
from genecommons.secrets import node_keys
from genecommons.variants.service import VariantStoreSink

OPERATOR = Subject.operator("benchmark")


def _silent() -> AbstractContextManager[Progress]:
    return nullcontext(SILENT)


def _logged() -> AbstractContextManager[Progress]:
    log = logging.getLogger("benchmark.progress")
    log.propagate = False
    log.addHandler(logging.StreamHandler(io.StringIO()))
    log.setLevel(logging.INFO)
    return nullcontext(LoggedProgress(log))


def _bars() -> AbstractContextManager[Progress]:
    return BarProgress(Console(file=io.StringIO(), force_terminal=True, width=120))


MODES: dict[str, Callable[[], AbstractContextManager[Progress]]] = {
    "no progress": _silent,
    "log lines": _logged,
    "rich bars": _bars,
}


def submit_once(demo: Path, root: Path, mode: str) -> tuple[float, float]:
    """Wall and CPU seconds (all threads) to submit `demo` to a new node under `root`, progress
    reported as `mode` says."""
    root.mkdir(parents=True)
    settings = Settings(
        data_dir=root / "data",
        database_url=f"sqlite:///{root / 'node.sqlite3'}",
        environment="test",
    )
    upgrade_node(settings)
    node_keys(settings, create=True)
    keys_and_store.archive_keys(settings, create=True)
    fingerprint_secret(settings, create=True)
    factory = make_session_factory(node_engine(settings))
    started, cpu = time.perf_counter(), time.process_time()
    with MODES[mode]() as progress:
        stores = VariantStoreSink(settings, OPERATOR, progress=progress)
        result = catalog_service.submit(
            factory,
            demo,
            subject=OPERATOR,
            progress=progress,
            data_files=BundleArchiver(settings, OPERATOR, progress=progress, after=stores),
        )
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    assert result.committed and stores.built, "the demo's store was not built"
    return seconds, cpu


def main() -> None:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--individuals", type=int, default=2000)
    parser.add_argument("--length", type=int, default=2_000_000, help="bp of chr22")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="progress-bench-") as tmp:
        demo = Path(tmp) / "demo"
        summary = write_demo(
            demo, individuals=args.individuals, sequence_length=args.length, seed=7
        )
        print(
            f"demo: {summary.individuals:,} individuals x {summary.sites:,} sites "
            f"({(demo / 'cohort.vcf.gz').stat().st_size / 1e6:.1f} MB VCF); "
            f"{args.repeats} submissions per mode, interleaved"
        )
        submit_once(demo, Path(tmp) / "warm-up", "no progress")  # imports, caches: not timed
        times: dict[str, list[tuple[float, float]]] = {mode: [] for mode in MODES}
        for repeat in range(args.repeats):
            # the order turns each round, so that no mode always runs first after a quiet spell
            order = list(MODES)[repeat % len(MODES) :] + list(MODES)[: repeat % len(MODES)]
            for mode in order:
                root = Path(tmp) / f"{mode.replace(' ', '-')}-{repeat}"
                times[mode].append(submit_once(demo, root, mode))
    base_wall = statistics.median(w for w, _ in times["no progress"])
    base_cpu = statistics.median(c for _, c in times["no progress"])
    print(
        f"{'mode':<14}{'wall s':>9}{'min':>8}{'max':>8}{'vs none':>9}"
        f"{'CPU s':>9}{'min':>8}{'max':>8}{'vs none':>9}"
    )
    for mode, runs in times.items():
        wall = [w for w, _ in runs]
        cpu = [c for _, c in runs]
        print(
            f"{mode:<14}{statistics.median(wall):>9.2f}{min(wall):>8.2f}{max(wall):>8.2f}"
            f"{statistics.median(wall) / base_wall:>8.3f}x"
            f"{statistics.median(cpu):>9.2f}{min(cpu):>8.2f}{max(cpu):>8.2f}"
            f"{statistics.median(cpu) / base_cpu:>8.3f}x"
        )


if __name__ == "__main__":
    main()
