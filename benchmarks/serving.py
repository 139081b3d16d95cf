"""Benchmark: what the guards of serving cost, side by side with the unguarded code in one run.

1. Parsing: `bounded.loads_json` (a depth scan, then `json.loads`) against `json.loads` alone,
   on a Beacon query body, a passport header, and a 10 MB submission document.
2. Serving: the app under uvicorn's httptools protocol as uvicorn ships it, and under
   `TimedHttpToolsProtocol` (the read timeouts), one worker each, alternating runs of
   `benchmarks/http_load.py` (16 keep-alive clients) on `/health` and `/beacon/info`.

    .venv/bin/python -m benchmarks.serving [--seconds 5] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from benchmarks.http_load import load
from genecommons import bounded

PROTOCOLS = {
    "uvicorn httptools": "httptools",
    "with read timeouts": "genecommons.serving:TimedHttpToolsProtocol",
}
LAUNCH = (
    "import sys, uvicorn; uvicorn.run('genecommons.app:create_app', factory=True, "
    "host='127.0.0.1', port=int(sys.argv[1]), http=sys.argv[2], workers=1, "
    "log_level='warning', access_log=False, proxy_headers=False)"
)


def _best(call: Callable[[], object], repeat: int) -> float:
    """The median time of `call` in microseconds."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e6


def parsing() -> None:
    """Print the parse times of the three documents, bounded and not."""
    beacon = json.dumps(
        {
            "meta": {"apiVersion": "2.0"},
            "query": {
                "requestParameters": {
                    "referenceName": "22",
                    "start": [16050074],
                    "referenceBases": "A",
                    "alternateBases": "G",
                    "assemblyId": "GRCh38",
                },
                "filters": [{"id": "HP:0000365"}],
                "requestedGranularity": "count",
            },
        }
    ).encode()
    passport = json.dumps(
        {"ga4gh_passport_v1": ["e" * 600 + "." + "p" * 900 + "." + "s" * 342] * 2}
    )
    rows = [
        {"alias": f"P{i}", "study": "ST1", "sex": "female", "birth_year": 1970, "consent": "C1"}
        for i in range(120_000)
    ]
    document = json.dumps({"individuals": rows, "phenotypes": [{"term": "HP:0000365"}] * 10})
    print("Parsing (median):")
    for label, text, repeat in (
        ("Beacon query body", beacon, 2000),
        ("X-GA4GH-Passport header", passport, 2000),
        (f"submission document, {len(document) / 1e6:.1f} MB", document, 5),
    ):
        plain = _best(lambda text=text: json.loads(text), repeat)  # type: ignore[misc]
        checked = _best(lambda text=text: bounded.loads_json(text), repeat)  # type: ignore[misc]
        print(
            f"  {label:34s} json.loads {plain:11,.1f} us   bounded {checked:11,.1f} us   "
            f"-> {checked / plain:.2f}x"
        )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def _server(protocol: str, data_dir: Path) -> Iterator[tuple[int, int]]:
    port = _free_port()
    env = {**os.environ, "GENECOMMONS_DATA_DIR": str(data_dir)}
    process = subprocess.Popen(
        [sys.executable, "-c", LAUNCH, str(port), protocol], env=env, stderr=subprocess.DEVNULL
    )
    try:
        for _ in range(200):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        yield port, process.pid
    finally:
        process.terminate()
        process.wait(timeout=30)


def serving(seconds: float, rounds: int) -> None:
    """Print the request rates of the two protocols, in alternating runs."""
    rates: dict[tuple[str, str], list[float]] = {}
    costs: dict[tuple[str, str], list[float]] = {}  # server CPU microseconds per request
    with tempfile.TemporaryDirectory() as folder:
        data_dir = Path(folder) / "data"
        subprocess.run(
            [sys.executable, "-m", "genecommons", "init"],
            env={**os.environ, "GENECOMMONS_DATA_DIR": str(data_dir)},
            check=True,
            capture_output=True,
        )
        for _ in range(rounds):
            for label, protocol in PROTOCOLS.items():
                with _server(protocol, data_dir) as (port, pid):
                    for path in ("/health", "/beacon/info"):
                        measured = load(
                            "127.0.0.1", port, [path], seconds=seconds, server_pids=[pid]
                        )
                        rates.setdefault((path, label), []).append(measured.rate)
                        cpu = measured.server_cpu or 0.0
                        costs.setdefault((path, label), []).append(cpu / measured.rate * 1e6)
    print(
        f"Serving (one worker, 16 keep-alive clients, median of {rounds} x {seconds:g} s; "
        "the server's CPU per request is steadier than its rate on a busy machine):"
    )
    for path in ("/health", "/beacon/info"):
        base, timed = (statistics.median(rates[(path, label)]) for label in PROTOCOLS)
        base_cpu, timed_cpu = (statistics.median(costs[(path, label)]) for label in PROTOCOLS)
        print(
            f"  {path:14s} uvicorn httptools {base:7,.0f} req/s {base_cpu:6.0f} us CPU   "
            f"with read timeouts {timed:7,.0f} req/s {timed_cpu:6.0f} us CPU   "
            f"-> rate {timed / base:.2f}x, CPU {timed_cpu / base_cpu:.2f}x"
        )


def main() -> None:
    """Parse the arguments, run both parts."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args()
    parsing()
    serving(arguments.seconds, arguments.rounds)


if __name__ == "__main__":
    main()
