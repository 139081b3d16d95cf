"""The attack tool against the platform's own Beacon over HTTP: a small demo submitted to a node,
served by `genecommons serve` twice (the exact guard, and the default defended one), attacked
through both URLs."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from genecommons.demo.cohort import write_demo

OPEN_DATASET = "GCD00000002"  # the demo's DEMO-BEACON, open tier: boolean answers


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def served(env: dict[str, str], log: Path) -> Iterator[str]:
    """`genecommons serve` on a free loopback port; its Beacon's base URL."""
    port = free_port()
    with log.open("w") as out:
        server = subprocess.Popen(
            # the access log shows that the tool's queries reached this server
            [sys.executable, "-m", "genecommons", "serve", "--port", str(port), "--access-log"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/beacon"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/info", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("genecommons serve did not start: " + log.read_text())
            time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.slow
def test_attack_tool_against_the_served_beacon_exact_and_defended(
    tmp_path: Path, genecommons_cli: Callable[..., Any]
) -> None:
    demo = tmp_path / "demo"
    write_demo(demo, individuals=65, reference_individuals=40, sequence_length=300_000, seed=42)
    env = {**os.environ, "GENECOMMONS_DATA_DIR": str(tmp_path / "data")}
    env.pop("GENECOMMONS_BEACON_GUARD", None)

    def cli(*args: str) -> None:
        genecommons_cli(env, *args)

    cli("init")
    cli("submit", str(demo))
    # the demo's public reference, checked: the served Beacon places windows by it as the
    # in-process guard does
    cli("variants", "load-reference", str(demo / "public_frequencies.vcf.gz"))
    cli("privacy", "check-reference", OPEN_DATASET)
    fit = json.loads(
        (tmp_path / "data" / "privacy" / "reference-fit" / f"{OPEN_DATASET}.json").read_text()
    )
    assert fit["suits"], fit
    out = tmp_path / "out"
    with (
        served({**env, "GENECOMMONS_BEACON_GUARD": "exact"}, tmp_path / "exact.log") as exact,
        served(env, tmp_path / "defended.log") as defended,
    ):
        cli(
            *("privacy", "attack-beacon", OPEN_DATASET, "--demo", str(demo)),
            *("--victims", "20", "--max-queries", "20", "--correctness-sites", "300"),
            *("--url", f"exact={exact}", "--url", f"served={defended}", "--out", str(out)),
        )
    found = json.loads((out / "figures.json").read_text())
    power = {
        (beacon, c["name"]): c["power"]
        for beacon, curves in found["curves"].items()
        for c in curves
    }
    rarest = "rarest-first, one account"
    assert max(power[("exact", rarest)]) >= 0.6
    assert max(power[("served", rarest)]) <= 0.35  # 20 + 20 victims: coarse
    assert max(power[("exact", rarest)]) - max(power[("served", rarest)]) >= 0.4
    # the Beacon over HTTP answers as the guards do in process: the same curves, the same scores
    for attack in ("SB, one account", rarest, "SB, fresh account per victim"):
        assert power[("exact", attack)] == power[("undefended", attack)]
        assert power[("served", attack)] == power[("defended", attack)]
    assert found["correctness"]["exact"] == found["correctness"]["undefended"]
    assert found["correctness"]["served"] == found["correctness"]["defended"]
    assert found["correctness"]["exact"]["common_correct"] == 1.0
    for beacon in ("exact", "served"):
        assert found["correctness"][beacon]["absent_asked"] > 200
        assert found["correctness"][beacon]["absent_present"] == 0
    assert 0 < found["queries_made"]["served"] <= found["queries_made"]["defended"]
    assert "GET /beacon/g_variants?" in (tmp_path / "defended.log").read_text()
