"""Benchmark: which engine holds the sites index. The same synthetic sites (sorted by position,
with a packed counts blob of 31 groups) in SQLite with a B-tree on (chrom, pos), in DuckDB over
Parquet, and in a DuckDB table; point lookups of existing variants and 10 kb range queries,
p50 and p99 in the same run.

    .venv/bin/python -m benchmarks.variant_sites [--sites 10000000]
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import duckdb

GROUPS = 31
CHROMS = 22


def build(workdir: Path, sites: int) -> tuple[Path, Path, Path]:
    """The same sites as Parquet (and a DuckDB table) and in SQLite."""
    parquet = workdir / "sites.parquet"
    database = workdir / "sites.duckdb"
    lite = workdir / "sites.sqlite"
    per_chrom = sites // CHROMS
    connection = duckdb.connect(str(database))
    connection.execute(
        f"""
        CREATE TABLE sites AS
        SELECT CAST(c AS VARCHAR) AS chrom,
               CAST(10000 + i * 25 + (hash(c * 1000003 + i) % 20) AS BIGINT) AS pos,
               ['A','C','G','T'][1 + CAST(hash(i) % 4 AS INTEGER)] AS ref,
               ['C','G','T','A'][1 + CAST(hash(i) % 4 AS INTEGER)] AS alt,
               repeat('x', {GROUPS * 16})::BLOB AS counts
        FROM range(1, {CHROMS + 1}) t(c), range({per_chrom}) s(i)
        ORDER BY c, pos
        """
    )
    connection.execute(f"COPY sites TO '{parquet}' (FORMAT parquet, ROW_GROUP_SIZE 100000)")
    target = sqlite3.connect(lite)
    target.execute(
        "CREATE TABLE sites (chrom TEXT, pos INTEGER, end INTEGER, ref TEXT, alt TEXT, counts BLOB)"
    )
    cursor = connection.execute("SELECT chrom, pos, pos, ref, alt, counts FROM sites")
    while rows := cursor.fetchmany(200_000):
        target.executemany("INSERT INTO sites VALUES (?,?,?,?,?,?)", rows)
    target.execute("CREATE INDEX sites_locus ON sites (chrom, pos)")
    target.commit()
    target.close()
    connection.close()
    return parquet, database, lite


def sample_keys(database: Path, count: int) -> list[tuple[str, int, str, str]]:
    """Existing variants to look up."""
    with duckdb.connect(str(database), read_only=True) as connection:
        rows = connection.execute(
            f"SELECT chrom, pos, ref, alt FROM sites USING SAMPLE {count} ROWS"
        ).fetchall()
    return [(str(c), int(p), str(r), str(a)) for c, p, r, a in rows]


def timed(label: str, call: Callable[[Any], object], keys: Sequence[Any]) -> float:
    """p50 in ms of `call` over the keys (and print p50/p99)."""
    samples = []
    for key in keys:
        start = time.perf_counter()
        call(key)
        samples.append(time.perf_counter() - start)
    cuts = statistics.quantiles(samples, n=100)
    print(f"  {label:38s} p50 {cuts[49] * 1e3:8.3f} ms   p99 {cuts[98] * 1e3:8.3f} ms")
    return cuts[49]


def main() -> None:
    """Build once, then time each engine on the same keys."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sites", type=int, default=10_000_000)
    parser.add_argument("--queries", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gc-sites-") as folder:
        workdir = Path(folder)
        start = time.perf_counter()
        parquet, database, lite = build(workdir, args.sites)
        print(f"built {args.sites:,} sites in {time.perf_counter() - start:.1f} s")
        keys = sample_keys(database, args.queries)
        rng = random.Random(5)
        ranges = [(c, p - rng.randrange(10_000)) for c, p, _, _ in keys]
        lite_db = sqlite3.connect(f"file:{lite}?mode=ro&immutable=1", uri=True)
        duck = duckdb.connect(str(database), read_only=True)
        print("point lookup of an existing variant")
        point = "WHERE chrom = ? AND pos = ? AND ref = ? AND alt = ?"
        ours = timed(
            "SQLite B-tree (chosen)",
            lambda k: lite_db.execute(f"SELECT counts FROM sites {point}", k).fetchone(),
            keys,
        )
        theirs = timed(
            "DuckDB over Parquet",
            lambda k: duck.execute(
                f"SELECT counts FROM read_parquet('{parquet}') {point}", list(k)
            ).fetchone(),
            keys[:300],
        )
        table = timed(
            "DuckDB table",
            lambda k: duck.execute(f"SELECT counts FROM sites {point}", list(k)).fetchone(),
            keys[:300],
        )
        print(f"  ratio DuckDB/Parquet to SQLite: {theirs / ours:.0f}x, table: {table / ours:.0f}x")
        print("range of 10 kb")
        window = "WHERE chrom = ? AND pos BETWEEN ? AND ?"
        timed(
            "SQLite B-tree (chosen)",
            lambda k: lite_db.execute(
                f"SELECT pos, counts FROM sites {window}", (k[0], k[1], k[1] + 10_000)
            ).fetchall(),
            ranges,
        )
        timed(
            "DuckDB over Parquet",
            lambda k: duck.execute(
                f"SELECT pos, counts FROM read_parquet('{parquet}') {window}",
                [k[0], k[1], k[1] + 10_000],
            ).fetchall(),
            ranges[:300],
        )
        lite_db.close()
        duck.close()


if __name__ == "__main__":
    main()
