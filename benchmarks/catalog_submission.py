"""Benchmark: validate and commit a large submission; page through listings.

Writes a submission of N individuals, each with a sample, an experiment, a run and five HPO
terms, then times `genecommons.catalog.service.submit` on SQLite and PostgreSQL (when
reachable) in a fresh process each, with peak memory, and the p50/p95 of paginated listings.

    .venv/bin/python -m benchmarks.catalog_submission --individuals 100000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

HPO_TERMS = [
    "HP:0000365",
    "HP:0001250",
    "HP:0001513",
    "HP:0000822",
    "HP:0005978",
    "HP:0001263",
    "HP:0000252",
    "HP:0001249",
    "HP:0002069",
    "HP:0000707",
    "HP:0004322",
    "HP:0001627",
    "HP:0000486",
    "HP:0000478",
    "HP:0002011",
    "HP:0001252",
    "HP:0000729",
    "HP:0002360",
]
PROVINCES = ["110000", "310000", "440000", "510000", "330000", "420000", "370000", "610000"]
POSTGRES_URL = os.environ.get(
    "GENECOMMONS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def write_submission(folder: Path, individuals: int, seed: int = 1) -> Path:
    """A valid TSV submission of `individuals` people with sample, experiment, run, 5 terms."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)

    def sheet(name: str, header: list[str], rows: object) -> None:
        with (folder / f"{name}.tsv").open("w", encoding="utf-8") as out:
            out.write("\t".join(header) + "\n")
            for row in rows:  # type: ignore[attr-defined]
                out.write("\t".join(row) + "\n")

    sheet(
        "institutions",
        ["alias", "name_en", "name_zh", "country", "province", "kind"],
        [["NGC", "National Genome Center", "国家基因组中心", "CN", "110000", "biobank"]],
    )
    sheet(
        "studies",
        [
            "alias",
            "title",
            "institution",
            "study_type",
            "participants_planned",
            "collection_licence",
        ],
        [["BIG", "Large cohort", "NGC", "cohort", str(individuals), "2024CJ9999"]],
    )
    sheet(
        "consents",
        ["alias", "study", "version", "permission", "modifiers"],
        [["C1", "BIG", "1.0", "GRU", "NPU"]],
    )
    sheet(
        "ethics_approvals",
        ["alias", "study", "committee", "number", "approved_on"],
        [["E1", "BIG", "NGC IRB", "IRB-1", "2023-01-01"]],
    )
    ids = [f"I{i:06d}" for i in range(individuals)]
    sheet(
        "individuals",
        ["alias", "study", "sex", "birth_year", "ethnic_group", "province", "consent"],
        (
            [
                a,
                "BIG",
                rng.choice(["female", "male"]),
                str(rng.randint(1940, 2005)),
                "01",
                rng.choice(PROVINCES),
                "C1",
            ]
            for a in ids
        ),
    )
    sheet(
        "phenotypes",
        ["individual", "kind", "term"],
        ([a, "feature", t] for a in ids for t in rng.sample(HPO_TERMS, 5)),
    )
    sheet(
        "samples",
        [
            "alias",
            "individual",
            "tissue",
            "collection_date",
            "collection_institution",
            "ethics_approval",
        ],
        ([f"{a}-S", a, "blood", "2024-05-01", "NGC", "E1"] for a in ids),
    )
    sheet(
        "experiments",
        ["alias", "sample", "library_strategy", "platform", "instrument"],
        ([f"{a}-X", f"{a}-S", "WGS", "DNBSEQ", "DNBSEQ-T7"] for a in ids),
    )
    sheet("runs", ["alias", "experiment"], ([f"{a}-R", f"{a}-X"] for a in ids))
    return folder


def _run_one(url: str, bundle: Path) -> dict[str, float]:
    """In this process: create the schema, submit, time listings."""
    from genecommons.access.models import Subject
    from genecommons.catalog import service
    from genecommons.db import DatabaseKey, make_engine, make_session_factory
    from genecommons.migrate import upgrade

    key = DatabaseKey(os.urandom(32), "the benchmark's key")
    upgrade(url, key=key)
    factory = make_session_factory(make_engine(url, key=key))
    started = time.perf_counter()
    result = service.submit(factory, bundle, subject=Subject.operator("bench"))
    elapsed = time.perf_counter() - started
    operator, anonymous = Subject.operator("bench"), Subject.anonymous()
    timings: dict[str, list[float]] = {"individuals": [], "studies": []}
    rng = random.Random(2)
    total_pages = max(1, result.counts.created // 4 // 50)
    for _ in range(200):
        page = rng.randint(1, min(total_pages, 200))
        t = time.perf_counter()
        service.list_records(factory, "individuals", subject=operator, page=page, page_size=50)
        timings["individuals"].append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        service.list_records(factory, "studies", subject=anonymous, page=1, page_size=50)
        timings["studies"].append((time.perf_counter() - t) * 1000)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "seconds": elapsed,
        "records": result.counts.created,
        "peak_mb": peak,
        "individuals_p50_ms": statistics.median(timings["individuals"]),
        "individuals_p95_ms": statistics.quantiles(timings["individuals"], n=20)[18],
        "studies_p50_ms": statistics.median(timings["studies"]),
    }


def _postgres_url() -> str | None:
    try:
        from sqlalchemy import create_engine, text

        engine = create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
        schema = f"gc_bench_{uuid.uuid4().hex[:8]}"
        with engine.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        return f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    except Exception as error:
        print(f"PostgreSQL skipped: {type(error).__name__}: {error}", file=sys.stderr)
        return None


def main() -> None:
    """Run the benchmark and print a table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--individuals", type=int, default=100_000)
    parser.add_argument("--child", nargs=2, metavar=("URL", "BUNDLE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_run_one(args.child[0], Path(args.child[1]))))
        return
    with tempfile.TemporaryDirectory(prefix="gc-bench-") as temp:
        bundle = write_submission(Path(temp) / "bundle", args.individuals)
        targets = {"sqlite": f"sqlite:///{temp}/bench.sqlite3"}
        pg = _postgres_url()
        if pg:
            targets["postgresql"] = pg
        print(
            f"catalog submission: {args.individuals} individuals, each with a sample, an "
            "experiment, a run and 5 HPO terms"
        )
        print(
            f"{'backend':<12}{'seconds':>9}{'records':>9}{'peak MB':>9}"
            f"{'indiv p50 ms':>14}{'indiv p95 ms':>14}{'studies p50 ms':>16}"
        )
        for name, url in targets.items():
            out = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "benchmarks.catalog_submission",
                    "--child",
                    url,
                    str(bundle),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(
                f"{name:<12}{r['seconds']:>9.1f}{int(r['records']):>9}{r['peak_mb']:>9.0f}"
                f"{r['individuals_p50_ms']:>14.2f}{r['individuals_p95_ms']:>14.2f}"
                f"{r['studies_p50_ms']:>16.2f}"
            )
            if name == "postgresql":
                from sqlalchemy import create_engine, text

                schema = url.rsplit("%3D", 1)[1]
                with create_engine(POSTGRES_URL).begin() as connection:
                    connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


if __name__ == "__main__":
    main()
