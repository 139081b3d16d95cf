"""What encrypting the catalog database costs: the same catalog submission and the same reads
on the node's SQLite database as main kept it (the standard library's sqlite3, plaintext), on
SQLCipher's own SQLite left unkeyed (plaintext: the same SQLite version, so that only the
encryption differs), and on SQLCipher keyed as the node keys it (a raw 256-bit key).

Each run is a process of its own, the three interleaved round after round; CPU time (user +
system, of the process) is what is compared, as the machine is shared.

    python -m benchmarks.catalog_encryption [--individuals 20000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.catalog_submission import write_submission

VARIANTS = {
    "stdlib": "plaintext, the standard library's sqlite3 (main)",
    "unkeyed": "plaintext, SQLCipher's SQLite unkeyed",
    "sqlcipher": "SQLCipher, raw 256-bit key (this branch)",
}


def _cpu() -> float:
    return time.process_time()  # user + system of this process, at the clock's resolution


def _engine(variant: str, url: str, key: Any) -> Any:
    """The engine of `variant` on `url`: make_engine's own for SQLCipher; for the plaintext
    ones, the same engine make_engine set up before the catalog was encrypted."""
    import sqlite3

    import sqlcipher3.dbapi2 as sqlcipher
    from sqlalchemy import create_engine, event

    from genecommons import db
    from genecommons.db import failures, locking

    if variant == "sqlcipher":
        return db.make_engine(url, key=key)
    engine = create_engine(
        url,
        module=sqlite3 if variant == "stdlib" else sqlcipher,
        connect_args={"check_same_thread": False},
        pool_size=16,
        max_overflow=24,
    )
    event.listen(engine, "connect", locking._sqlite_pragmas)
    event.listen(engine, "begin", locking._sqlite_begin)
    event.listen(engine, "handle_error", failures._translate)
    return engine


def _run_one(variant: str, folder: Path, bundle: Path, reads: int) -> dict[str, float]:
    """In this process: migrate, submit, list individuals, open connections; CPU seconds."""
    from alembic import command
    from sqlalchemy import text

    from genecommons.catalog import service
    from genecommons.db import DatabaseKey, make_session_factory
    from genecommons.migrate import alembic_config
    from genecommons.policy.models import Subject

    path = folder / f"{variant}.sqlite3"
    url = f"sqlite:///{path}"
    key = DatabaseKey(os.urandom(32), "the benchmark's key")
    engine = _engine(variant, url, key)
    with engine.begin() as connection:
        config = alembic_config(url)
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    factory = make_session_factory(engine)
    operator = Subject.operator("bench")

    cpu, wall = _cpu(), time.perf_counter()
    result = service.submit(factory, bundle, subject=operator)
    submit_cpu, submit_wall = _cpu() - cpu, time.perf_counter() - wall

    rng = random.Random(2)
    pages = max(1, result.counts.created // 4 // 50)
    listing: list[float] = []
    for _ in range(reads):
        page = rng.randint(1, min(pages, 200))
        cpu = _cpu()
        service.list_records(factory, "individuals", subject=operator, page=page, page_size=50)
        listing.append(_cpu() - cpu)
    engine.dispose()

    opens: list[float] = []  # a new connection (as a pool opens one) and its first read
    for _ in range(50):
        fresh = _engine(variant, url, key)
        cpu = _cpu()
        with fresh.connect() as connection:
            connection.execute(text("SELECT count(*) FROM individuals")).scalar_one()
        opens.append(_cpu() - cpu)
        fresh.dispose()
    return {
        "records": result.counts.created,
        "submit_cpu": submit_cpu,
        "submit_wall": submit_wall,
        "list_cpu_ms": statistics.median(listing) * 1000,
        "list_cpu_total": sum(listing),
        "open_cpu_ms": statistics.median(opens) * 1000,
        "megabytes": path.stat().st_size / 1e6,
    }


def main() -> None:
    """Run the variants interleaved and print their CPU times and ratios."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--individuals", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--reads", type=int, default=200, help="listing pages read per run")
    parser.add_argument("--child", nargs=3, metavar=("VARIANT", "FOLDER", "BUNDLE"))
    args = parser.parse_args()
    if args.child:
        variant, folder, bundle = args.child
        print(json.dumps(_run_one(variant, Path(folder), Path(bundle), args.reads)))
        return
    with tempfile.TemporaryDirectory(prefix="gc-bench-enc-") as temp:
        bundle = write_submission(Path(temp) / "bundle", args.individuals)
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in VARIANTS}
        for round_ in range(args.rounds):
            for variant in VARIANTS:
                folder = Path(temp) / f"{variant}-{round_}"
                folder.mkdir()
                out = subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "benchmarks.catalog_encryption",
                        "--reads",
                        str(args.reads),
                        "--child",
                        variant,
                        str(folder),
                        str(bundle),
                    ],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                runs[variant].append(json.loads(out.stdout.strip().splitlines()[-1]))
        best = {
            name: {k: min(r[k] for r in results) for k in results[0]}
            for name, results in runs.items()
        }
        records = int(best["sqlcipher"]["records"])
        print(
            f"catalog encryption: {args.individuals:,} individuals ({records:,} records), "
            f"{args.reads} listing pages, 50 connection opens; best of {args.rounds} "
            "interleaved rounds, CPU time"
        )
        print(
            f"{'database':<50}{'submit cpu s':>13}{'wall s':>8}{'list ms':>9}{'open ms':>9}"
            f"{'MB':>7}"
        )
        for name, label in VARIANTS.items():
            b = best[name]
            print(
                f"{label:<50}{b['submit_cpu']:>13.2f}{b['submit_wall']:>8.2f}"
                f"{b['list_cpu_ms']:>9.3f}{b['open_cpu_ms']:>9.3f}{b['megabytes']:>7.1f}"
            )
        for base in ("stdlib", "unkeyed"):
            ratio = {
                k: best["sqlcipher"][k] / best[base][k]
                for k in ("submit_cpu", "list_cpu_total", "open_cpu_ms")
            }
            print(
                f"SQLCipher / {base:<8} submit cpu x{ratio['submit_cpu']:.3f}, listing cpu "
                f"x{ratio['list_cpu_total']:.3f}, connection open cpu x{ratio['open_cpu_ms']:.3f}"
            )


if __name__ == "__main__":
    main()
