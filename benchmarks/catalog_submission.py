"""Benchmark: validate and commit a large submission; page through listings.

Writes a submission of N individuals, each with a sample, an experiment, a run and five HPO
terms, then times `genecommons.catalog.service.submit` on SQLite and PostgreSQL (when
reachable) in a fresh process each, with its CPU time (the process's and its validation
workers'; a PostgreSQL server's own is not counted), peak memory, and the p50/p95 of paginated
listings. With `--baseline [REF]`, the code at REF (by default the commit before the submission
was made parallel and bulk) is checked out into a temporary git worktree and measured on the
same generated input, in turns with this checkout's, and the ratios are printed.

    .venv/bin/python -m benchmarks.catalog_submission --individuals 100000 --baseline --repeat 2
"""

from __future__ import annotations

import argparse
import contextlib
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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
BASELINE = "88b0167112c9"  # the code before the submission was made parallel and bulk
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


def _run_one(url: str, bundle: Path) -> dict[str, Any]:
    """In this process: create the schema, submit, time listings."""
    import genecommons
    from genecommons.catalog import service
    from genecommons.db import make_engine, make_session_factory
    from genecommons.migrate import upgrade

    try:  # the decision point's types moved from access/ to policy/; the baseline may predate it
        from genecommons.policy.models import Subject
    except ImportError:
        from genecommons.access.models import Subject  # type: ignore[no-redef]

    try:  # a node's SQLite database is encrypted (SQLCipher) since the catalog was; not before
        from genecommons.db import DatabaseKey
    except ImportError:
        upgrade(url)
        factory = make_session_factory(make_engine(url))
    else:
        key = DatabaseKey(os.urandom(32), "the benchmark's key")
        upgrade(url, key=key)
        factory = make_session_factory(make_engine(url, key=key))
    before = _cpu_seconds()
    started = time.perf_counter()
    result = service.submit(factory, bundle, subject=Subject.operator("bench"))
    elapsed = time.perf_counter() - started
    cpu = _cpu_seconds() - before
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    workers_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
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
    return {
        "seconds": elapsed,
        "cpu_seconds": cpu,
        "records": result.counts.created,
        "peak_mb": peak,
        "workers_peak_mb": workers_peak,
        "individuals_p50_ms": statistics.median(timings["individuals"]),
        "individuals_p95_ms": statistics.quantiles(timings["individuals"], n=20)[18],
        "studies_p50_ms": statistics.median(timings["studies"]),
        "code": str(Path(genecommons.__file__).parent),
    }


def _cpu_seconds() -> float:
    """CPU time of this process and of the children it has waited for (validation workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


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


def _drop_schema(url: str) -> None:
    from sqlalchemy import create_engine, text

    schema = url.rsplit("%3D", 1)[1]
    with create_engine(POSTGRES_URL).begin() as connection:
        connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


def _child(url: str, bundle: Path, code: Path | None) -> dict[str, Any]:
    """One measurement in a fresh process: this benchmark's child, importing the package from
    `code` (another checkout's src) when given, else from this checkout."""
    env = dict(os.environ)
    if code is not None:  # ahead of the editable install of this checkout
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(code), env.get("PYTHONPATH")]))
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.catalog_submission", "--child", url, str(bundle)],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        cwd=Path(__file__).resolve().parents[1],
    )
    if out.returncode != 0:
        raise SystemExit(f"the benchmark's child failed:\n{out.stderr}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    if code is not None and not result["code"].startswith(str(code)):
        raise SystemExit(f"the baseline run imported {result['code']}, not {code}")
    return result


@contextlib.contextmanager
def _checkout(ref: str, folder: Path) -> Iterator[Path]:
    """`ref` checked out into a temporary git worktree under `folder`; its src directory."""
    repository = Path(__file__).resolve().parents[1]
    target = folder / "baseline"
    subprocess.run(
        ["git", "-C", str(repository), "worktree", "add", "--detach", str(target), ref],
        check=True,
        capture_output=True,
    )
    try:
        yield target / "src"
    finally:
        subprocess.run(
            ["git", "-C", str(repository), "worktree", "remove", "--force", str(target)],
            check=False,
            capture_output=True,
        )


def _row(name: str, r: dict[str, Any]) -> str:
    return (
        f"{name:<22}{r['seconds']:>9.1f}{r['cpu_seconds']:>9.1f}{int(r['records']):>9}"
        f"{r['peak_mb']:>9.0f}{r['workers_peak_mb']:>11.0f}{r['individuals_p50_ms']:>14.2f}"
        f"{r['individuals_p95_ms']:>14.2f}{r['studies_p50_ms']:>16.2f}"
    )


def main() -> None:
    """Run the benchmark and print a table (and the ratio to the baseline, when asked)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--individuals", type=int, default=100_000)
    parser.add_argument(
        "--baseline",
        nargs="?",
        const=BASELINE,
        metavar="REF",
        help="also measure the code at REF (a commit, tag or branch; without REF, the code "
        "before the submission was made parallel and bulk), in turns with this checkout's",
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs of each (interleaved)")
    parser.add_argument(
        "--backend", choices=["sqlite", "postgresql"], action="append", help="default: both"
    )
    parser.add_argument("--child", nargs=2, metavar=("URL", "BUNDLE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_run_one(args.child[0], Path(args.child[1]))))
        return
    backends = args.backend or ["sqlite", "postgresql"]
    with tempfile.TemporaryDirectory(prefix="gc-bench-") as temp, contextlib.ExitStack() as stack:
        bundle = write_submission(Path(temp) / "bundle", args.individuals)
        codes: dict[str, Path | None] = {"this checkout": None}
        if args.baseline:
            codes = {args.baseline: stack.enter_context(_checkout(args.baseline, Path(temp)))}
            codes["this checkout"] = None
        print(
            f"catalog submission: {args.individuals} individuals, each with a sample, an "
            "experiment, a run and 5 HPO terms"
        )
        print(
            f"{'backend / code':<22}{'seconds':>9}{'cpu s':>9}{'records':>9}{'peak MB':>9}"
            f"{'workers MB':>11}{'indiv p50 ms':>14}{'indiv p95 ms':>14}{'studies p50 ms':>16}"
        )
        results: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for repeat in range(args.repeat):
            # old and new in turns, the first of each turn alternating, so that a busy spell
            # of a shared machine weighs on both alike
            order = list(codes.items())
            if repeat % 2:
                order.reverse()
            for backend in backends:
                for label, code in order:
                    if backend == "sqlite":
                        url = f"sqlite:///{temp}/bench-{repeat}-{len(results)}.sqlite3"
                    else:
                        url = _postgres_url() or ""
                        if not url:
                            continue
                    try:
                        r = _child(url, bundle, code)
                    finally:
                        if backend == "postgresql":
                            _drop_schema(url)
                        else:
                            Path(url.removeprefix("sqlite:///")).unlink(missing_ok=True)
                    results.setdefault((backend, label), []).append(r)
                    print(_row(f"{backend} {label[:11]}", r), flush=True)
        if args.baseline:
            _print_ratios(results, backends, args.baseline)


def _print_ratios(
    results: dict[tuple[str, str], list[dict[str, Any]]], backends: list[str], baseline: str
) -> None:
    print(f"median of each; ratio = this checkout / {baseline[:12]} (below 1: faster)")
    for backend in backends:
        old, new = results.get((backend, baseline)), results.get((backend, "this checkout"))
        if not old or not new:
            continue
        for key, label in (("seconds", "wall"), ("cpu_seconds", "cpu"), ("peak_mb", "peak MB")):
            before = statistics.median(r[key] for r in old)
            after = statistics.median(r[key] for r in new)
            print(
                f"{backend:<12}{label:<9}{before:>10.1f} -> {after:>8.1f}   ratio {after / before:.2f}"
            )


if __name__ == "__main__":
    main()
