"""The privacy CLI: arguments forwarded to the service (mocked), the plot and figures written;
then the real tool end to end on a small demo cohort."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from typer.testing import CliRunner

from genecommons import runtime
from genecommons.cli import app
from genecommons.demo.cohort import write_demo
from genecommons.privacy import attack
from genecommons.privacy.evaluation import Figures

runner = CliRunner()


@pytest.fixture(autouse=True)
def fresh_runtime() -> Iterator[None]:
    """Settings read from each test's environment, not cached by an earlier test's CLI run."""
    runtime.reset()
    yield
    runtime.reset()


def figures() -> Figures:
    found = Figures(beacon_size=10, victims=5)
    found.curves["undefended"] = [
        attack.Curve("SB, one account", (1, 10), (0.1, 1.0), low=(0.05, 0.9), high=(0.2, 1.0)),
        attack.Curve("von Thenen", (1,), (0.05,)),
    ]
    # an attack run against some Beacons only: its own panel of the plot and its own table
    found.curves["count, pooled budgets"] = [
        attack.Curve("12 sybils of one institution, knows the rule", (1, 10), (0.05, 0.07))
    ]
    found.inference["undefended"] = {
        "allele_accuracy": 0.5,
        "answer_accuracy": 1.0,
        "confident_accuracy": 0.8,
        "confident": 10,
        "prior_accuracy": 0.02,
        "power_at_5_queries": 0.05,
        "power_max": 0.05,
    }
    found.correctness["undefended"] = attack.Correctness(1.0, 3, 0, 4)
    return found


def test_attack_beacon_forwards_the_demo_files_and_writes_plot_and_figures(
    tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setenv("GENECOMMONS_DATA_DIR", str(tmp_path / "data"))
    with (
        mock.patch(
            "genecommons.privacy.commands.evaluation.attack_beacon", return_value=figures()
        ) as run,
        mock.patch("genecommons.privacy.measurements.record_assessment") as kept,
    ):
        result = runner.invoke(
            app,
            [
                *("privacy", "attack-beacon", "GCD00000001", "--demo", str(tmp_path / "demo")),
                *("--victims", "7", "--outsiders", "9", "--seed", "3"),
                *("--url", "http://127.0.0.1:9/beacon"),
                *("--url", "exact=http://127.0.0.1:10/beacon", "--max-queries", "100"),
                *("--correctness-sites", "50", "--out", str(tmp_path / "out")),
                *("--sybils", "12"),
            ],
        )
    assert result.exit_code == 0, result.output
    kwargs = run.call_args.kwargs
    assert kwargs["sybils"] == 12
    assert kwargs["cohort"] == tmp_path / "demo" / "cohort.vcf.gz"
    assert kwargs["panel"] == tmp_path / "demo" / "reference_panel.vcf.gz"
    assert (kwargs["dataset"], kwargs["victims"], kwargs["seed"]) == ("GCD00000001", 7, 3)
    assert kwargs["outsiders"] == 9
    assert kwargs["urls"] == {
        "http": "http://127.0.0.1:9/beacon",
        "exact": "http://127.0.0.1:10/beacon",
    }
    assert kwargs["queries"] == (1, 2, 5, 10, 20, 50, 100)
    assert kwargs["correctness_sites"] == 50
    assert kwargs["public"] == ()  # no truth.json naming a public reference
    assert kwargs["subject"].kind == "operator"
    assert (tmp_path / "out" / "power.png").read_bytes()[:4] == b"\x89PNG"
    written = json.loads((tmp_path / "out" / "figures.json").read_text())
    assert written["curves"]["undefended"][0]["power"] == [0.1, 1.0]
    assert written["curves"]["undefended"][0]["high"] == [0.2, 1.0]
    assert "0.10 (0.05–0.20)" in result.output  # the power with its 95% interval
    assert "answered right 100.00%" in result.output
    recorded = kept.call_args.kwargs  # the measurement kept with its inputs and defence
    assert (recorded["dataset"], recorded["members"]) == ("GCD00000001", 10)
    assert recorded["parameters"]["victims"] == 7
    assert recorded["parameters"]["defence"]["guard"] == "defended"
    assert recorded["figures"]["curves"]["undefended"][0]["power"] == [0.1, 1.0]
    assert "count, pooled budgets" in result.output  # its own table
    assert written["curves"]["count, pooled budgets"][0]["power"] == [0.05, 0.07]


def test_attack_beacon_refuses_two_beacons_of_one_name(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("GENECOMMONS_DATA_DIR", str(tmp_path / "data"))
    for urls in (["a=http://x/beacon", "a=http://y/beacon"], ["defended=http://x/beacon"]):
        result = runner.invoke(
            app,
            [
                *("privacy", "attack-beacon", "GCD1", "--demo", str(tmp_path)),
                *(arg for url in urls for arg in ("--url", url)),
            ],
        )
        assert result.exit_code == 2, result.output
        assert "Invalid value for --url" in result.output


def test_attack_beacon_needs_its_victims(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("GENECOMMONS_DATA_DIR", str(tmp_path / "data"))
    result = runner.invoke(app, ["privacy", "attack-beacon", "GCD00000001"])
    assert result.exit_code == 2
    assert "--demo" in result.output


@pytest.mark.slow
def test_attack_beacon_reads_who_is_in_the_public_reference(
    tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setenv("GENECOMMONS_DATA_DIR", str(tmp_path / "data"))
    demo = tmp_path / "demo"
    demo.mkdir()
    truth = {"public_frequencies": {"file": "public.vcf.gz", "samples": ["REF00001", "REF00002"]}}
    (demo / "truth.json").write_text(json.dumps(truth))
    listed = tmp_path / "public.txt"
    listed.write_text("P1\nP2  P3\n")
    with (
        mock.patch(
            "genecommons.privacy.commands.evaluation.attack_beacon", return_value=figures()
        ) as run,
        mock.patch("genecommons.privacy.measurements.record_assessment"),
    ):
        from_demo = runner.invoke(
            app, ["privacy", "attack-beacon", "GCD1", "--demo", str(demo), "--out", str(tmp_path)]
        )
        assert from_demo.exit_code == 0, from_demo.output
        assert run.call_args.kwargs["public"] == ("REF00001", "REF00002")
        given = runner.invoke(
            app,
            [
                *("privacy", "attack-beacon", "GCD1", "--demo", str(demo)),
                *("--public-people", str(listed), "--out", str(tmp_path)),
            ],
        )
        assert given.exit_code == 0, given.output
        assert run.call_args.kwargs["public"] == ("P1", "P2", "P3")


def test_attack_beacon_end_to_end_on_a_small_demo(
    tmp_path: Path, genecommons_cli: Callable[..., Any]
) -> None:
    demo = tmp_path / "demo"
    write_demo(demo, individuals=150, reference_individuals=100, sequence_length=400_000, seed=5)
    env = {**os.environ, "GENECOMMONS_DATA_DIR": str(tmp_path / "data")}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return genecommons_cli(env, *args)

    cli("init")
    submitted = cli("submit", str(demo))
    # a process off a terminal: one log line per stage on stderr, no bar
    # (one store for the demo's two datasets, which release the same VCF)
    building = (
        "INFO genecommons.progress: building the variant store of GCD00000001+GCD00000002: done, "
    )
    assert building in submitted.stderr
    assert "\x1b[" not in submitted.stdout + submitted.stderr
    # the demo's public reference, checked against its datasets: the defended Beacon places
    # windows by it where it suits, and the rule-aware attacker knows them
    cli("variants", "load-reference", str(demo / "public_frequencies.vcf.gz"))
    checked = cli("privacy", "check-reference", "GCD00000001").stdout
    assert "GCD00000001" in checked
    out = tmp_path / "out"
    attacked = cli(
        "privacy",
        "attack-beacon",
        "GCD00000001",
        "--demo",
        str(demo),
        "--victims",
        "30",
        "--out",
        str(out),
    )
    for beacon in ("undefended", "hide-rare", "defended"):
        assert f"attacking the {beacon} Beacon: done, " in attacked.stderr
    found = json.loads((out / "figures.json").read_text())
    power = {
        (beacon, c["name"]): c["power"]
        for beacon, curves in found["curves"].items()
        for c in curves
    }
    assert power[("undefended", "rarest-first, one account")][-1] >= 0.6  # 400 kb, few private
    assert max(power[("defended", "rarest-first, one account")]) <= 0.35  # 30 + 30 victims
    assert max(power[("defended", "knows the rule, fresh account per victim")]) <= 0.35
    assert found["correctness"]["defended"]["absent_present"] == 0
    assert (out / "power.png").exists()
    # the measurement is kept: the dataset's privacy report shows it, current
    report = json.loads(cli("privacy", "report", "GCD00000001", "--json").stdout)
    assert report["freshness"] == "current", report["reasons"]
    measured = report["measurement"]
    assert measured["members"] == report["members"] == found["beacon_size"]
    assert measured["parameters"]["victims"] == 30
    assert measured["parameters"]["defence"] == report["defence"]
    assert report["defence"]["reference_windows"] is True  # check-reference found it suits
    served = [p["worst"] for p in measured["powers"] if p["beacon"] == "defended"]
    assert measured["served_worst_power"] == max(served)
    assert "measurement" in cli("privacy", "report", "GCD00000001").stdout
    assert "still describes" in cli("privacy", "reassess").stdout
    # another budget is another defence: the measurement is stale until measured again
    other = {**env, "GENECOMMONS_BEACON_BUDGET": "50"}
    stale = json.loads(genecommons_cli(other, "privacy", "report", "GCD00000001", "--json").stdout)
    assert stale["freshness"] == "stale"
    assert any("budget" in reason for reason in stale["reasons"])
    again = genecommons_cli(other, "privacy", "reassess")
    assert "GCD00000001: measured again on" in again.stdout
    fresh = json.loads(genecommons_cli(other, "privacy", "report", "GCD00000001", "--json").stdout)
    assert fresh["freshness"] == "current"
    assert fresh["measurement"]["measured_at"] > measured["measured_at"]
    assert fresh["measurement"]["parameters"]["defence"]["budget"] == 50.0
