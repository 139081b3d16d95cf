"""The long commands report their stages: off a terminal (CliRunner, pipes) one log line each,
no bar; and reporting never changes what they compute."""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from typer.testing import CliRunner

from genecommons import runtime
from genecommons.audit import service as audit_service
from genecommons.cli import app
from genecommons.config import Settings
from genecommons.fingerprint import leaksim
from genecommons.fingerprint import service as fingerprint_service
from genecommons.policy.models import Subject
from genecommons.progress import LoggedProgress
from genecommons.variants import service as variants_service

PROGRESS = "genecommons.progress"
OPERATOR = Subject.operator("tester")
runner = CliRunner()


@pytest.fixture
def node(archive_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """The CLI's runtime on the test node (data directory and database)."""
    monkeypatch.setenv("GENECOMMONS_DATA_DIR", str(archive_settings.data_dir))
    monkeypatch.setenv("GENECOMMONS_DATABASE_URL", archive_settings.effective_database_url)
    runtime.reset()
    yield archive_settings
    runtime.reset()


def _stages(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The stages logged since the last clear, in the order they ended."""
    names = [r.getMessage().split(": ")[0] for r in caplog.records if r.name == PROGRESS]
    caplog.clear()
    return names


def _bundle(tmp_path: Path, datafiles: SimpleNamespace) -> Path:
    folder = tmp_path / "submitted"
    folder.mkdir()
    vcf = datafiles.vcf(folder / "calls.vcf.gz", records=30)
    datafiles.write(folder, datafiles.sheets(folder, vcf=vcf, bam=None))
    return folder


def test_submit_build_and_verify_report_one_line_per_stage(
    factory: Any,  # the schema
    node: Settings,
    tmp_path: Path,
    datafiles: SimpleNamespace,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=PROGRESS)
    folder = _bundle(tmp_path, datafiles)
    submitted = runner.invoke(app, ["submit", str(folder)])
    assert submitted.exit_code == 0, submitted.output
    found = re.search(r"variant store (GCD\d+)", submitted.output)
    assert found is not None
    dataset = found.group(1)
    assert _stages(caplog) == [
        "reading submitted",
        "scanning for identifiers",
        "validating",
        "writing catalog records",
        "archiving calls.vcf.gz",
        f"building the variant store of {dataset}",
    ]
    assert "\x1b[" not in submitted.output  # no bar off a terminal

    built = runner.invoke(app, ["variants", "build", dataset, str(folder / "calls.vcf.gz")])
    assert built.exit_code == 0, built.output
    assert _stages(caplog) == [
        "checksumming calls.vcf.gz",
        f"building the variant store of {dataset}",
    ]
    assert "60 sites from 60 records x 3 samples" in built.output

    verified = runner.invoke(app, ["archive", "verify"])
    assert verified.exit_code == 0, verified.output
    assert _stages(caplog) == ["verifying 1 archived file(s)"]

    audit_service.signing_key(node, create=True)
    audited = runner.invoke(app, ["audit", "verify"])
    assert audited.exit_code == 0, audited.output
    assert _stages(caplog) == [
        "re-reading the events",
        "rebuilding the Merkle tree",
        "checking the signed tree heads",
    ]


def test_a_stage_line_counts_what_was_done(
    factory: Any,
    node: Settings,
    tmp_path: Path,
    datafiles: SimpleNamespace,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=PROGRESS)
    folder = _bundle(tmp_path, datafiles)
    assert runner.invoke(app, ["submit", str(folder)]).exit_code == 0
    lines = [r.getMessage() for r in caplog.records if r.name == PROGRESS]
    size = (folder / "calls.vcf.gz").stat().st_size
    building = next(line for line in lines if line.startswith("building"))
    assert re.search(r": done, 60 sites in [\d.]+ s", building)
    archiving = next(line for line in lines if line.startswith("archiving"))
    assert f": done, {size} B in" in archiving  # a small file


def test_the_store_built_is_the_same_with_progress_reported(
    factory: Any, node: Settings, tmp_path: Path, datafiles: SimpleNamespace
) -> None:
    from genecommons.catalog import service as catalog

    folder = tmp_path / "plain"
    folder.mkdir()
    vcf = datafiles.vcf(folder / "calls.vcf.gz", records=30)
    datafiles.write(folder, datafiles.sheets(folder, vcf=vcf, bam=None))
    dataset = catalog.submit(factory, folder, subject=OPERATOR).accessions["datasets"]["DS1"]
    quiet = variants_service.build_dataset_store(
        factory, node, subject=OPERATOR, dataset=dataset, vcf=vcf
    )
    quiet.lease.release()
    told = variants_service.build_dataset_store(
        factory, node, subject=OPERATOR, dataset=dataset, vcf=vcf, progress=LoggedProgress()
    )
    told.lease.release()
    assert (told.sites, told.records, told.samples, told.groups) == (
        quiet.sites,
        quiet.records,
        quiet.samples,
        quiet.groups,
    )
    assert told.binding.source_sha256 == quiet.binding.source_sha256


def test_the_leak_simulation_reports_its_trials_and_keeps_its_figures(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=PROGRESS)
    settings = leaksim.SimulationSettings(
        recipients=4, max_colluders=2, trials=3, utility_copies=2, seed=3
    )
    options: dict[str, Any] = {"individuals": 30, "length": 20_000, "seed": 3}
    quiet = fingerprint_service.simulate(settings=settings, **options)
    caplog.clear()
    told = fingerprint_service.simulate(settings=settings, progress=LoggedProgress(), **options)
    assert _stages(caplog) == ["simulating 30 genomes over 20,000 bp", "leak trials"]
    assert dataclasses.replace(told, seconds=0.0) == dataclasses.replace(quiet, seconds=0.0)


def test_fingerprint_simulate_reports_its_stages(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=PROGRESS)
    ran = runner.invoke(
        app,
        [
            "fingerprint",
            "simulate",
            "--trials",
            "2",
            "--recipients",
            "3",
            "--colluders",
            "2",
            "--individuals",
            "30",
            "--length",
            "20000",
        ],
    )
    assert ran.exit_code in (0, 1), ran.output  # 1: a simulation this small misses the goal
    assert _stages(caplog) == ["simulating 30 genomes over 20,000 bp", "leak trials"]
    assert "\x1b[" not in ran.output
