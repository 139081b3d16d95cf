"""Benchmark: the Beacon as users run it, old code against new in one interleaved run.

The node is what `make run` serves: `genecommons init`, the demo (2,000 people; the Makefile's
2 Mb region of chr22 by default, `--length 0` for the whole arm's 207,430 sites, or a demo made
already with `--demo`), its submission, the demo committee, the public reference loaded and
checked (reference windows on), SQLite, the defended guard with the default budget. It is built
once under `--node` and reused by later runs. `genecommons serve --workers 2` (its own
processes) is driven by 16 closed-loop keep-alive clients (benchmarks/http_load.py) with
`--queries` g_variants queries of the demo's own variants (80% real variants, 10% alleles the
cohort does not hold, 10% 10 kb ranges): anonymously (boolean answers), then by a verified
researcher's token (count answers, charged to the ledger; a fresh account and address per run).

The old code (`--old`, a git ref; main by default) is checked out into a temporary git
worktree and served from there by the same Python, alternately with this checkout's code,
`--rounds` times. On a shared machine the rates move with the load of others; the server's CPU
time per request answered (every process of the server: its workers, the parent with the
audit log's sequencer) moves much less, and is what the ratios compare first.

    .venv/bin/python -m benchmarks.beacon_demo [--rounds 3] [--seconds 10] [--old main]
        [--node .bench-data/beacon-demo] [--length 2000000 | --demo DIR] [--workers 2]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from benchmarks.beacon_history import Node, free_port, load_average, query_mix
from benchmarks.http_load import Load, load

REPO = Path(__file__).resolve().parents[1]
GOAL = 500.0  # req/s, anonymous and signed-in alike
KINDS = ("anonymous (boolean)", "signed-in researcher (count)")


def cli(env: dict[str, str], *args: str) -> None:
    """Run `genecommons ARGS` for the node of `env` (output shown only when it fails)."""
    done = subprocess.run(
        [sys.executable, "-m", "genecommons", *args], env=env, capture_output=True, text=True
    )
    if done.returncode:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"genecommons {' '.join(args)} failed")


def build_node(env: dict[str, str], demo: Path, length: int) -> None:
    """`make run`'s node: init, the demo (simulated when `demo` holds none), its submission,
    the demo committee, the public reference loaded and checked."""
    started = time.perf_counter()
    cli(env, "init")
    if not (demo / "truth.json").exists():
        print(f"  simulating the demo into {demo} (the whole arm takes minutes)", flush=True)
        cli(env, "demo", "--out", str(demo), *(("--length", str(length)) if length else ()))
    cli(env, "submit", str(demo))
    cli(env, "demo-committee")
    cli(env, "variants", "load-reference", str(demo / "public_frequencies.vcf.gz"))
    cli(env, "privacy", "check-reference")
    print(f"  node built in {time.perf_counter() - started:.0f} s", flush=True)


@dataclass(frozen=True, slots=True)
class Code:
    """A version of the code the server runs: its name, and the source folder it imports."""

    name: str
    src: Path


@contextlib.contextmanager
def old_code(ref: str) -> Iterator[Code]:
    """The code of git `ref`, checked out into a temporary worktree for the block."""
    folder = Path(tempfile.mkdtemp(prefix="bench-old-code-"))
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", ref],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    subprocess.run(
        ["git", "-C", str(REPO), "worktree", "add", "--detach", str(folder / "tree"), commit],
        capture_output=True,
        check=True,
    )
    try:
        yield Code(f"old ({ref} {commit})", folder / "tree" / "src")
    finally:
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "remove", "--force", str(folder / "tree")],
            capture_output=True,
        )
        folder.rmdir()


def serve(env: dict[str, str], code: Code, port: int, workers: int) -> subprocess.Popen[bytes]:
    """`genecommons serve --workers N` of `code` (its own processes), once it answers."""
    import httpx

    path = os.pathsep.join(filter(None, [str(code.src), env.get("PYTHONPATH")]))
    server = subprocess.Popen(
        [
            *(sys.executable, "-m", "genecommons", "serve", "--host", "127.0.0.1"),
            *("--port", str(port), "--workers", str(workers)),
        ],
        env={**env, "PYTHONPATH": path},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return server
        if server.poll() is not None:
            break
        time.sleep(0.2)
    server.terminate()
    raise SystemExit(f"the server of the {code.name} code did not start")


def existing_accounts(node: Node) -> int:
    """How many accounts the node has (the next researcher's number follows them)."""
    from sqlalchemy import func, select

    from genecommons.access.tables import users

    with node.factory() as session:
        return int(session.execute(select(func.count()).select_from(users)).scalar_one())


def cpu_per_request(run: Load) -> float:
    """The server's CPU milliseconds per request answered in `run`."""
    assert run.server_cpu is not None
    return 1e3 * run.server_cpu * run.seconds / max(run.done, 1)


def measure(
    env: dict[str, str],
    node: Node,
    code: Code,
    paths: list[str],
    args: argparse.Namespace,
    source: str,
) -> tuple[Load, Load]:
    """Anonymous and signed-in runs of the mix against a fresh server of `code`."""
    token = node.researcher()  # a fresh account, and `source` a fresh address: budgets unspent
    port = free_port()
    server = serve(env, code, port, args.workers)
    try:
        # warm every worker up (started, stores opened, statements cached) from an address
        # of its own: until each has written its metrics (a worker does at its first answer)
        metrics = Path(env["GENECOMMONS_DATA_DIR"]) / "metrics"
        for _ in range(30):
            load(
                "127.0.0.1", port, paths[:200], clients=args.clients, seconds=2, source="127.0.9.1"
            )
            if (
                len({p.stem.rsplit("_", 1)[-1] for p in metrics.glob("counter_*.db")})
                >= args.workers
            ):
                break
        load("127.0.0.1", port, paths[:200], clients=args.clients, seconds=2, source="127.0.9.1")
        runs = []
        for headers in (None, {"Authorization": f"Bearer {token}"}):
            runs.append(
                load(
                    "127.0.0.1",
                    port,
                    paths,
                    clients=args.clients,
                    seconds=args.seconds,
                    headers=headers,
                    server_pids=[server.pid],
                    source=source,
                )
            )
    finally:
        server.terminate()
        server.wait(timeout=60)
    return runs[0], runs[1]


def summary(results: dict[str, list[tuple[Load, Load]]], codes: list[Code]) -> None:
    """Medians over the rounds per code and kind, and new against old."""
    print("\nmedians over the rounds:")
    medians: dict[tuple[str, int], tuple[float, float]] = {}
    for code in codes:
        for kind, label in enumerate(KINDS):
            runs = [pair[kind] for pair in results[code.name]]
            rate = statistics.median(r.rate for r in runs)
            cpu = statistics.median(cpu_per_request(r) for r in runs)
            medians[(code.name, kind)] = (rate, cpu)
            print(
                f"  {code.name:28s} {label:30s} {rate:7,.0f} req/s ({rate / GOAL:.2f}x the "
                f"{GOAL:.0f} goal)  server CPU {cpu:5.2f} ms/request"
            )
    if len(codes) == 2:
        old, new = codes
        print(f"new against old ({new.name} / {old.name}):")
        for kind, label in enumerate(KINDS):
            old_rate, old_cpu = medians[(old.name, kind)]
            new_rate, new_cpu = medians[(new.name, kind)]
            print(
                f"  {label:30s} CPU per request {new_cpu / old_cpu:.2f}x "
                f"(requests per CPU second {old_cpu / new_cpu:.2f}x), req/s {new_rate / old_rate:.2f}x"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--node", type=Path, default=REPO / ".bench-data" / "beacon-demo")
    parser.add_argument(
        "--length", type=int, default=2_000_000, help="the demo's bp (make run's; 0: the arm)"
    )
    parser.add_argument("--demo", type=Path, help="a demo made already (`genecommons demo`)")
    parser.add_argument("--old", default="main", help="git ref of the old code ('' for none)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--queries", type=int, default=2000, help="distinct queries of the mix")
    args = parser.parse_args()
    node_dir = args.node.resolve()
    demo = (args.demo or node_dir / "demo").resolve()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENECOMMONS_")}
    env["GENECOMMONS_DATA_DIR"] = str(node_dir / "data")
    # every run's researcher is a fresh account at a fresh address, but of the node's one
    # institution, and every run charges the dataset's period: the pooled budgets (against
    # sybils) out of reach keep each run's count answers on the path that charges them (a
    # spent budget answers cheaper), as the per-caller ones are
    env["GENECOMMONS_BEACON_INSTITUTION_BUDGET"] = "1e12"
    env["GENECOMMONS_BEACON_DATASET_BUDGET"] = "1e12"
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    built = node_dir / "node.built"
    print(f"node {node_dir} (demo {demo}); load average {load_average()}", flush=True)
    if not built.exists() or built.read_text() != str(demo):
        build_node(env, demo, args.length)
        built.write_text(str(demo))
    node = Node(env)
    node.accounts = existing_accounts(node)  # a node built before has researchers of past runs
    paths = query_mix(demo, args.queries)
    node.app.state.services.engine.dispose()
    new = Code("new (this checkout)", REPO / "src")
    with contextlib.ExitStack() as stack:
        codes = [stack.enter_context(old_code(args.old))] if args.old else []
        codes.append(new)
        print(
            f"g_variants over {args.queries} queries of the demo's variants, {args.clients} "
            f"clients, {args.workers} workers, {args.seconds:.0f} s a run, {args.rounds} rounds:",
            flush=True,
        )
        results: dict[str, list[tuple[Load, Load]]] = {c.name: [] for c in codes}
        for round_number in range(args.rounds):
            order = codes if round_number % 2 == 0 else codes[::-1]
            for number, code in enumerate(order):
                # an address no run of this node has spent a budget from
                source = f"127.{random.randrange(20, 250)}.{random.randrange(256)}.{number + 1}"
                anonymous, signed = measure(env, node, code, paths, args, source)
                results[code.name].append((anonymous, signed))
                print(f" round {round_number + 1}, {code.name}, load average {load_average()}:")
                for label, run in zip(KINDS, (anonymous, signed), strict=True):
                    print(run.line(label, GOAL))
                    print(f"  {'':44s} server CPU {cpu_per_request(run):.2f} ms/request")
        summary(results, codes)


if __name__ == "__main__":
    main()
