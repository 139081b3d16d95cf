"""Benchmark: what a refusal costs, and whether a hidden record answers like a missing one.

A private study of 200 people is served by `genecommons serve` (one worker, SQLite) in its own
process. Anonymous callers ask for the study (hidden: refused, answered 404, the refusal
recorded in the audit log just after the answer) and for an accession no study has (404,
nothing recorded), interleaved on one keep-alive connection and on fresh connections; the
ratio of their latencies is what an enumerating prober could read. Then 16 keep-alive clients
flood each (benchmarks/http_load.py), and every refusal is checked to be in the log. For
scale: the individuals listing, refused with 403 and its event committed before the answer.

    .venv/bin/python -m benchmarks.refusals [--rounds 2000] [--seconds 10]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.beacon import free_port, load_average
from benchmarks.catalog_submission import write_submission


def _make_private(folder: Path) -> None:
    """Mark the submission's study private (a `public` column of `no`)."""
    sheet = folder / "studies.tsv"
    header, *rows = sheet.read_text(encoding="utf-8").splitlines()
    lines = [header + "\tpublic", *(row + "\tno" for row in rows)]
    sheet.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _quantiles(samples: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(samples, n=10)
    return statistics.median(samples), cuts[8]


def _interleaved(
    base: str, paths: dict[str, str], rounds: int, *, fresh: bool
) -> dict[str, list[float]]:
    """Latencies (ms) of each path, asked in turn (the order alternating each round)."""
    import httpx

    times: dict[str, list[float]] = {name: [] for name in paths}
    names = list(paths)
    with httpx.Client(base_url=base, timeout=30) as client:
        for index in range(rounds):
            order = names if index % 2 == 0 else names[::-1]
            for name in order:
                headers = {"Connection": "close"} if fresh else {}
                started = time.perf_counter()
                response = client.get(paths[name], headers=headers)
                times[name].append((time.perf_counter() - started) * 1000)
                assert response.status_code == 404, response.text
    return times


def main() -> None:
    """Build the node, serve it, time, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args()

    import httpx
    from sqlalchemy import func, select

    from benchmarks.http_load import load
    from genecommons.audit import service as audit_service
    from genecommons.catalog import service as catalog
    from genecommons.config import Settings
    from genecommons.db import make_session_factory, node_engine
    from genecommons.ledger.tables import audit_events
    from genecommons.migrate import upgrade_node
    from genecommons.policy.models import Subject

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        settings = Settings(data_dir=root / "data", environment="test")
        settings.data_dir.mkdir(parents=True)
        upgrade_node(settings)
        audit_service.signing_key(settings, create=True)
        factory = make_session_factory(node_engine(settings))
        folder = write_submission(root / "bundle", 200)
        _make_private(folder)
        result = catalog.submit(factory, folder, subject=Subject.operator("bench"))
        (study,) = result.accessions["studies"].values()
        missing = study[:3] + "9" * (len(study) - 3)
        port = free_port()
        env = {
            **os.environ,
            "GENECOMMONS_DATA_DIR": str(settings.data_dir),
            "GENECOMMONS_ENVIRONMENT": "test",
            "GENECOMMONS_DATABASE_URL": settings.effective_database_url,
        }
        server = subprocess.Popen(
            [
                *(sys.executable, "-m", "genecommons", "serve", "--host", "127.0.0.1"),
                *("--port", str(port), "--workers", "1"),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(300):
                try:
                    if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.2)
            paths = {"hidden": f"/api/v1/studies/{study}", "missing": f"/api/v1/studies/{missing}"}
            _interleaved(base, paths, 100, fresh=False)  # warm up
            print(
                f"Refusals on `genecommons serve` (1 worker, SQLite), load average before: "
                f"{load_average()}"
            )
            for fresh in (False, True):
                rounds = args.rounds if not fresh else max(args.rounds // 4, 50)
                times = _interleaved(base, paths, rounds, fresh=fresh)
                hidden, absent = _quantiles(times["hidden"]), _quantiles(times["missing"])
                label = "fresh connections" if fresh else "one keep-alive connection"
                print(f"  anonymous, {label}, {rounds} rounds interleaved:")
                print(
                    f"    private study (404, refusal recorded)  p50 {hidden[0]:6.2f} ms  "
                    f"p90 {hidden[1]:6.2f} ms"
                )
                print(
                    f"    no such study (404, nothing recorded)   p50 {absent[0]:6.2f} ms  "
                    f"p90 {absent[1]:6.2f} ms"
                )
                print(
                    f"    ratio hidden / missing                  p50 {hidden[0] / absent[0]:6.2f}"
                    f"     p90 {hidden[1] / absent[1]:6.2f}"
                )
            audit_service.sequence_queued(factory)
            with factory() as session:
                before = session.execute(
                    select(func.count())
                    .select_from(audit_events)
                    .where(audit_events.c.tag == "access:decision:deny")
                ).scalar_one()
            print(f"  {args.clients} keep-alive clients, {args.seconds:.0f} s each:")
            flood = {}
            for name, path in (*paths.items(), ("individuals", "/api/v1/individuals")):
                run = load(
                    "127.0.0.1",
                    port,
                    [path],
                    clients=args.clients,
                    seconds=args.seconds,
                    server_pids=[server.pid],
                )
                flood[name] = run
                answered = run.failed / run.seconds  # 404 and 403 answers
                print(
                    f"    {name:12s} {answered:7,.0f} answers/s  p50 {run.quantile(0.5):6.2f} ms"
                    f"  p99 {run.quantile(0.99):6.2f} ms  server CPU {run.server_cpu or 0:.2f}"
                )
            ratio = (flood["hidden"].failed / flood["hidden"].seconds) / (
                flood["missing"].failed / flood["missing"].seconds
            )
            print(f"    hidden / missing answers per second: {ratio:.2f}")
            audit_service.sequence_queued(factory)
            with factory() as session:
                after = session.execute(
                    select(func.count())
                    .select_from(audit_events)
                    .where(audit_events.c.tag == "access:decision:deny")
                ).scalar_one()
            refused = flood["hidden"].failed + flood["individuals"].failed
            print(
                f"    refusals answered in the floods: {refused:,}; refusal events added to the "
                f"log: {after - before:,}"
            )
            print(f"  load average after: {load_average()}")
        finally:
            server.terminate()
            server.wait(timeout=60)


if __name__ == "__main__":
    main()
