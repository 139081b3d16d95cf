"""Benchmark: Beacon g_variants over HTTP as a node's history grows, signed in and anonymous.

The node is the configuration users get: `make run`'s demo (its real variants, its shared
store), its public reference loaded and checked (reference windows on), the defended guard
with the default privacy budget. Its history is made as real use makes it: researchers of a
verified institution, each with an API token, ask the Beacon signed-in queries through the app
(each a token use and a query in the audit log, and the ledger's charges), until the log holds
N events (the runs of the smaller N count towards it: a target they passed adds nothing); the
queued events are sequenced as `serve` does.

At each N, `genecommons serve` (its own process, its sequencer and watcher running) is driven by
`--clients` keep-alive clients (benchmarks/http_load.py) with the same query mix twice: anonymous
(boolean answers) and by a verified researcher's token (count answers, charged to the ledger).
The history of each N and its runs come from one loopback address (as a tester's do), a new
one per N, and the signed-in run from a fresh account. The ratio signed-in/anonymous is printed
per N, and each rate against the first N's. `--busy K` keeps K more processes spinning on the
CPU during the runs (a busy machine).

    .venv/bin/python -m benchmarks.beacon_history [--history 0 3000 30000] [--seconds 15]
        [--workers 2] [--clients 8] [--busy 0] [--demo DIR] [--postgres postgresql://127.0.0.1/test]
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from benchmarks.http_load import Load, load
from genecommons.policy.models import Subject

OPERATOR = Subject.operator("bench")
QUERIES = 400  # distinct queries of the mix


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def load_average() -> str:
    """The 1, 5 and 15 minute load averages (the machine is shared)."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def cli(env: dict[str, str], *args: str) -> None:
    """Run `genecommons ARGS` for the node of `env` (output shown only when it fails)."""
    done = subprocess.run(
        [sys.executable, "-m", "genecommons", *args], env=env, capture_output=True, text=True
    )
    if done.returncode:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"genecommons {' '.join(args)} failed")


def make_node(env: dict[str, str], demo: Path) -> None:
    """`make run`'s node: init, the demo (made when `demo` holds none), its submission, the
    public reference loaded and checked (its committee plays no part in the Beacon)."""
    started = time.perf_counter()
    cli(env, "init")
    if not (demo / "truth.json").exists():
        cli(env, "demo", "--out", str(demo), "--length", "2000000")
    cli(env, "submit", str(demo))
    cli(env, "variants", "load-reference", str(demo / "public_frequencies.vcf.gz"))
    cli(env, "privacy", "check-reference")
    print(f"  node: the demo submitted, reference checked in {time.perf_counter() - started:.0f} s")


class Node:
    """The benchmark's handle on the node: its settings, app and researchers."""

    def __init__(self, env: dict[str, str]) -> None:
        from genecommons.app import create_app
        from genecommons.config import Settings

        self.settings = Settings(
            data_dir=Path(env["GENECOMMONS_DATA_DIR"]),
            database_url=env.get("GENECOMMONS_DATABASE_URL"),
            environment="test",
        )
        self.app = create_app(self.settings)
        self.factory = self.app.state.services.factory
        self.institution = self._verified_institution()
        self.accounts = 0

    def _verified_institution(self) -> str:
        from sqlalchemy import select

        from genecommons.access import institution_service
        from genecommons.catalog.tables import ENTITY_TABLES

        institutions = ENTITY_TABLES["institutions"]
        with self.factory() as session:
            accession = session.execute(
                select(institutions.c.accession).order_by(institutions.c.id).limit(1)
            ).scalar_one()
        institution_service.verify_institution(
            self.factory,
            institution=accession,
            foreign_controlled=False,
            attestation="benchmark",
            actor=OPERATOR,
        )
        return str(accession)

    def researcher(self) -> str:
        """A new researcher of the verified institution; their API token."""
        from genecommons.access import service as access_service

        self.accounts += 1
        email = f"researcher{self.accounts}@example.org"
        access_service.add_user(
            self.factory,
            email=email,
            roles=["researcher"],
            institution=self.institution,
            actor=OPERATOR,
        )
        return access_service.create_token(self.factory, email=email, actor=OPERATOR).token

    def events(self) -> int:
        """The audit log's events, sequenced and queued."""
        from sqlalchemy import func, select

        from genecommons.ledger.tables import audit_events, audit_queue

        with self.factory() as session:
            return sum(
                int(session.execute(select(func.count()).select_from(t)).scalar_one())
                for t in (audit_events, audit_queue)
            )

    def ledger(self) -> int:
        """The privacy ledger's charges."""
        from sqlalchemy import func, select

        from genecommons.privacy.tables import privacy_charges

        with self.factory() as session:
            return int(session.execute(select(func.count()).select_from(privacy_charges)).scalar())


def query_mix(demo: Path, count: int) -> list[str]:
    """`count` g_variants queries of the demo's variants (its VCF, which both of its datasets
    release), as a user asks them: point queries of real variants (most), of alleles the
    cohort does not hold, and 10 kb ranges."""
    import pysam

    with pysam.VariantFile(str(demo / "cohort.vcf.gz")) as vcf:
        sites = [(r.chrom, r.pos, r.ref, r.alts[0]) for r in vcf if r.alts and r.ref]
    rng = random.Random(7)
    paths = []
    for index in range(count):
        chrom, pos, ref, alt = rng.choice(sites)
        chrom = chrom.removeprefix("chr")
        where = f"/beacon/g_variants?referenceName={chrom}&start={pos - 1}"
        if index % 10 == 8:  # an allele the cohort does not hold
            alt = next(b for b in "ACGT" if b not in (ref[0], alt))
            paths.append(f"{where}&referenceBases={ref[0]}&alternateBases={alt}&assemblyId=GRCh38")
        elif index % 10 == 9:  # a 10 kb range
            paths.append(f"{where}&end={pos + 10_000}&assemblyId=GRCh38")
        else:
            paths.append(f"{where}&referenceBases={ref}&alternateBases={alt}&assemblyId=GRCh38")
    return paths


def grow_history(
    node: Node, target: int, paths: Sequence[str], *, address: str, accounts: int = 20
) -> float:
    """Ask signed-in queries through the app from `address`, by `accounts` researchers in
    turn, until the audit log holds `target` events; the seconds it took."""
    from fastapi.testclient import TestClient

    from genecommons.audit.service import sequence_queued

    started = time.perf_counter()
    tokens = [node.researcher() for _ in range(accounts)]
    rng = random.Random(target)
    with TestClient(node.app, client=(address, 50000)) as client:
        while (have := node.events()) < target:
            for _ in range(min(500, (target - have + 1) // 2)):
                token = rng.choice(tokens)
                response = client.get(
                    rng.choice(paths), headers={"Authorization": f"Bearer {token}"}
                )
                if response.status_code != 200:
                    raise SystemExit(f"history query failed: {response.status_code}")
            sequence_queued(node.factory)
    return time.perf_counter() - started


def serve(env: dict[str, str], port: int, workers: int) -> subprocess.Popen[bytes]:
    """`genecommons serve --workers N` (its own processes), once it answers."""
    import httpx

    server = subprocess.Popen(
        [
            *(sys.executable, "-m", "genecommons", "serve", "--host", "127.0.0.1"),
            *("--port", str(port), "--workers", str(workers)),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(600):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.2)
    server.terminate()
    raise SystemExit("the server did not start")


def measure(
    env: dict[str, str],
    node: Node,
    paths: Sequence[str],
    args: argparse.Namespace,
    source: str,
) -> tuple[Load, Load]:
    """Anonymous and signed-in runs of the mix against a fresh server; (anonymous, signed)."""
    token = node.researcher()
    node.app.state.services.engine.dispose()
    port = free_port()
    server = serve(env, port, args.workers)
    spin = "import time\nend = time.monotonic() + 600\nwhile time.monotonic() < end: pass"
    hogs = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(args.busy)]
    try:
        auth = {"Authorization": f"Bearer {token}"}
        # warm the worker up: its store opened, statements cached (from an address of its own)
        load("127.0.0.1", port, paths[:50], clients=2, seconds=2, source="127.0.9.1")
        anonymous = load(
            "127.0.0.1",
            port,
            paths,
            clients=args.clients,
            seconds=args.seconds,
            server_pids=[server.pid],
            source=source,
        )
        signed = load(
            "127.0.0.1",
            port,
            paths,
            clients=args.clients,
            seconds=args.seconds,
            headers=auth,
            server_pids=[server.pid],
            source=source,
        )
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
        server.terminate()
        server.wait(timeout=60)
    return anonymous, signed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", type=int, nargs="+", default=[0, 3000, 30000])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2, help="serve's workers (its default here)")
    parser.add_argument("--queries", type=int, default=QUERIES, help="distinct queries of the mix")
    parser.add_argument("--demo", type=Path, help="a demo made already (`genecommons demo`)")
    parser.add_argument(
        "--busy", type=int, default=0, help="processes spinning on the CPU during each run"
    )
    parser.add_argument("--postgres", help="a PostgreSQL URL to run on (in a fresh schema)")
    args = parser.parse_args()
    schema = f"bench_history_{os.getpid()}"
    database_url = None
    if args.postgres:
        from sqlalchemy import create_engine, text

        admin = create_engine(args.postgres)
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        database_url = f"{args.postgres}?options=-csearch_path%3D{schema}"
    try:
        with tempfile.TemporaryDirectory(prefix="bench-history-") as folder:
            run(Path(folder), args, database_url)
    finally:
        if args.postgres:
            with admin.begin() as connection:
                connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()


def run(workdir: Path, args: argparse.Namespace, database_url: str | None) -> None:
    env = {
        **os.environ,
        "GENECOMMONS_DATA_DIR": str(workdir / "data"),
        "GENECOMMONS_ENVIRONMENT": "test",
        # fresh researchers, but of one institution, on one period: the pooled budgets
        # (against sybils) out of reach, so that no run answers cheaper for a spent budget
        "GENECOMMONS_BEACON_INSTITUTION_BUDGET": "1e12",
        "GENECOMMONS_BEACON_DATASET_BUDGET": "1e12",
    }
    if database_url:
        env["GENECOMMONS_DATABASE_URL"] = database_url
    print(
        f"  database: {'PostgreSQL' if database_url else 'SQLite'}; load average {load_average()}"
    )
    make_node(env, args.demo or workdir / "demo")
    node = Node(env)
    paths = query_mix(args.demo or workdir / "demo", args.queries)
    print(
        f"g_variants, the demo's open dataset, {args.queries} queries (80% real variants, 10% absent "
        f"alleles, 10% 10 kb ranges), {args.clients} clients, {args.workers} worker(s), {args.seconds:.0f} s a run:"
    )
    first: tuple[float, float] | None = None
    for number, target in enumerate(sorted(args.history)):
        # the history comes from the address the runs then come from, as a tester's does
        source = f"127.0.{number + 1}.1"
        took = grow_history(node, target, paths, address=source)
        events, charges = node.events(), node.ledger()
        anonymous, signed = measure(env, node, paths, args, source=source)
        print(
            f" N = {events:,} audit events, {charges:,} ledger charges (made in {took:.0f} s), "
            f"load average {load_average()}:"
        )
        print(anonymous.line("anonymous (boolean)"))
        print(signed.line("signed-in researcher (count)"))
        ratio = signed.rate / anonymous.rate if anonymous.rate else float("nan")
        print(f"  signed-in / anonymous: {ratio:.2f}x the rate")
        if first is None:
            first = (anonymous.rate, signed.rate)
        else:
            print(
                f"  against the first N: anonymous {anonymous.rate / first[0]:.2f}x, "
                f"signed-in {signed.rate / first[1]:.2f}x"
            )


if __name__ == "__main__":
    main()
