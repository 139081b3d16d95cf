"""Restore drill: a demo-like node (the synthetic cohort `make run` submits: its VCF archived),
backed up while the audit log takes events from a second process, restored into a fresh data
directory, then `audit verify` and `archive verify` on the restored node. Prints the time and
size of the backup and the restore, and the size of the data directory they copy.

    .venv/bin/python -m benchmarks.backup_drill [--individuals 2000] [--length 10000000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _run(env: dict[str, str], *args: str) -> float:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "genecommons", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"genecommons {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return time.perf_counter() - started


def main() -> None:
    """Run the drill and print its figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--individuals", type=int, default=2000)
    parser.add_argument("--length", type=int, default=10_000_000)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gc-drill-") as folder:
        root = Path(folder)
        base = {
            "PATH": os.defpath + ":/usr/bin",
            "HOME": str(root),
            "GENECOMMONS_ENVIRONMENT": "development",
        }
        node = {**base, "GENECOMMONS_DATA_DIR": str(root / "node")}
        passphrase = root / "passphrase"
        passphrase.write_text("drill passphrase, kept apart\n")
        _run(node, "init")
        _run(
            node,
            "demo",
            "--out",
            str(root / "demo"),
            "--individuals",
            str(options.individuals),
            "--length",
            str(options.length),
        )
        submit = _run(node, "submit", str(root / "demo"))
        # a second process writes to the audit log while the backup runs (sign-in attempts)
        load = subprocess.Popen(
            [sys.executable, "-c", LOAD],
            env=node,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            backup = _run(
                node,
                "backup",
                str(root / "backup"),
                "--passphrase-file",
                str(passphrase),
                "--with-objects",
            )
        finally:
            load.terminate()
            load.wait()
        fresh = {**base, "GENECOMMONS_DATA_DIR": str(root / "restored")}
        restore = _run(fresh, "restore", str(root / "backup"), "--passphrase-file", str(passphrase))
        audit = _run(fresh, "audit", "verify")
        archive = _run(fresh, "archive", "verify")
        print(f"demo cohort: {options.individuals} individuals, {options.length:,} bp")
        print(f"submit (archive the VCF): {submit:.1f} s")
        print(f"data directory of the node: {_size(root / 'node') / 1e6:.1f} MB")
        print(f"backup --with-objects: {backup:.1f} s, {_size(root / 'backup') / 1e6:.1f} MB")
        print(f"restore: {restore:.1f} s, data directory {_size(root / 'restored') / 1e6:.1f} MB")
        print(f"audit verify: {audit:.1f} s, archive verify: {archive:.1f} s (both pass)")


LOAD = """
import itertools, time
from genecommons.ledger.events import EventTag, record_event
from genecommons.runtime import runtime
factory = runtime().factory
for i in itertools.count():
    with factory() as session, session.begin():
        record_event(session, tag=EventTag.RECORD_READ, actor="user:load@example.org",
                     subject=f"individual:GCI{i:08d}", details={"n": i})
    time.sleep(0.005)
"""


if __name__ == "__main__":
    main()
