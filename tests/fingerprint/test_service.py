"""Fingerprinted exports and leak tracing through the service (SQLite and PostgreSQL), on a
small demo cohort's real VCF Zarr store; then the CLI's forwarding with the service mocked."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pysam
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from genecommons.cli import app
from genecommons.config import Settings
from genecommons.demo.cohort import write_demo
from genecommons.errors import AccessDeniedError, InvalidInputError, NotFoundError
from genecommons.fingerprint import genotypes, models
from genecommons.fingerprint import service as fingerprint_service
from genecommons.fingerprint.secret import fingerprint_secret
from genecommons.fingerprint.trace import Verdict
from genecommons.ledger.events import EventTag
from genecommons.ledger.tables import audit_events
from genecommons.policy.models import Subject
from genecommons.secrets import node_keys
from genecommons.variants.service import build_dataset_store
from genecommons.variants.store_service import open_store

OPERATOR = Subject.operator("tester")
DATASET = "GCD00000042"
PEOPLE = [f"{name}@example.org" for name in ("alice", "bob", "carol", "dave", "erin")]
runner = CliRunner()


@pytest.fixture(scope="module")
def cohort_vcf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The VCF of 300 demo individuals over 300 kb (simulated once)."""
    root = tmp_path_factory.mktemp("fingerprint-demo")
    demo = write_demo(
        root / "demo", individuals=300, reference_individuals=0, sequence_length=300_000, seed=5
    )
    return Path(demo.cohort_vcf)


@pytest.fixture
def node(
    factory: Any, settings: Settings, cohort_vcf: Path, catalog_dataset: Callable[[str], int]
) -> Settings:
    """A node holding the store of the demo VCF as DATASET's, with a fingerprint secret."""
    node_keys(settings, create=True)
    catalog_dataset(DATASET)
    build_dataset_store(factory, settings, subject=OPERATOR, dataset=DATASET, vcf=cohort_vcf)
    fingerprint_secret(settings, create=True)
    return settings


def _original(factory: Any, settings: Settings) -> genotypes.Genotypes:
    with factory() as session:
        store = open_store(session, settings, DATASET)
    assert store is not None
    return genotypes.from_zarr(store.calls())


def _export(factory: Any, settings: Settings, who: str, out: Path) -> models.Delivery:
    return fingerprint_service.export_vcf(
        factory, settings, subject=OPERATOR, dataset=DATASET, recipient=who, out=out
    )


def _calls(path: Path) -> np.ndarray:
    with pysam.VariantFile(str(path)) as vcf:
        return np.array(
            [[sum(s["GT"]) for s in record.samples.values()] for record in vcf], dtype=np.int8
        )


def test_an_export_is_a_marked_copy_recorded_as_a_delivery_and_an_event(
    factory: Any, node: Settings, tmp_path: Path
) -> None:
    delivery = _export(factory, node, PEOPLE[0], tmp_path / "alice.vcf.gz")
    original = _original(factory, node).dosages()
    copy = _calls(tmp_path / "alice.vcf.gz")
    assert copy.shape == original.shape
    changed = np.count_nonzero(copy != original) / original.size
    assert 0 < changed <= 0.005
    assert np.array_equal(copy.sum(axis=1), original.sum(axis=1))  # every AF kept
    assert delivery.fingerprinted and delivery.utility["changed_share"] == pytest.approx(
        changed, abs=1e-6
    )
    assert delivery.utility["max_af_deviation"] == 0.0
    assert delivery.what["marked_positions"] > 1000
    again = _export(factory, node, PEOPLE[0], tmp_path / "again.vcf.gz")
    assert np.array_equal(_calls(tmp_path / "again.vcf.gz"), copy)  # deterministic
    assert again.delivery_id != delivery.delivery_id
    recorded = fingerprint_service.deliveries(factory, subject=OPERATOR, dataset=DATASET)
    assert [d.delivery_id for d in recorded] == [delivery.delivery_id, again.delivery_id]
    assert recorded[0].what["sha256"] == delivery.what["sha256"]
    with factory() as session:
        events = session.execute(
            select(audit_events).where(audit_events.c.tag == str(EventTag.FINGERPRINT_DELIVERED))
        ).all()
    assert [e.details["delivery_id"] for e in events] == [d.delivery_id for d in recorded]
    assert events[0].details["recipient"] == PEOPLE[0]
    assert not list(tmp_path.glob(".*partial"))


def test_trace_names_the_source_of_a_reordered_subset_in_another_format(
    factory: Any, node: Settings, tmp_path: Path
) -> None:
    for who in PEOPLE:
        _export(factory, node, who, tmp_path / f"{who}.vcf.gz")
    copy = genotypes.read_leak(tmp_path / f"{PEOPLE[2]}.vcf.gz")
    rng = np.random.default_rng(1)
    rows = rng.permutation(len(copy.sites))[: len(copy.sites) // 2]
    cols = rng.permutation(len(copy.samples))[: len(copy.samples) * 2 // 5]
    leaked = genotypes.LeakedMatrix(
        sites=[copy.sites[i] for i in rows],
        samples=[copy.samples[j] for j in cols],
        values=copy.values[np.ix_(rows, cols)],
        format="tsv",
    )
    path = tmp_path / "leak.tsv"
    with path.open("wb") as sink:
        genotypes.write_tsv(leaked, sink)
    result = fingerprint_service.trace_leak(factory, node, subject=OPERATOR, leaked=path)
    assert result.dataset == DATASET and result.format == "tsv"
    assert result.matched_samples == len(cols) and result.matched_sites == len(rows)
    assert [s.recipient for s in result.verdict.named] == [PEOPLE[2]]
    assert len(result.verdict.scores) == len(PEOPLE)
    with factory() as session:
        event = session.execute(
            select(audit_events).where(audit_events.c.tag == str(EventTag.LEAK_TRACED))
        ).one()
    assert event.details["named"][0]["recipient"] == PEOPLE[2]


def test_the_cli_traces_stage_by_stage_to_the_same_verdict(
    factory: Any,
    node: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from genecommons import runtime

    for who in PEOPLE[:3]:
        _export(factory, node, who, tmp_path / f"{who}.vcf.gz")
    leaked = tmp_path / f"{PEOPLE[1]}.vcf.gz"
    quiet = fingerprint_service.trace_leak(factory, node, subject=OPERATOR, leaked=leaked)
    monkeypatch.setenv("GENECOMMONS_DATA_DIR", str(node.data_dir))
    monkeypatch.setenv("GENECOMMONS_DATABASE_URL", node.effective_database_url)
    caplog.set_level(logging.INFO, logger="genecommons.progress")
    runtime.reset()
    try:
        traced = runner.invoke(app, ["trace", str(leaked)])
    finally:
        runtime.reset()
    assert traced.exit_code == 0, traced.output
    stages = [r.getMessage().split(": ")[0] for r in caplog.records if r.name.endswith("progress")]
    assert stages == [
        f"reading {leaked.name}",
        f"reading the genotypes of {leaked.name}",
        "matching against the delivered datasets",
        f"scoring the recipients of {DATASET}",
    ]
    assert [s.recipient for s in quiet.verdict.named] == [PEOPLE[1]]
    assert f"Likely source(s) 可能的来源: {PEOPLE[1]}" in traced.output


def test_trace_names_a_colluder_of_a_flipped_majority_copy(
    factory: Any, node: Settings, tmp_path: Path
) -> None:
    for who in PEOPLE:
        _export(factory, node, who, tmp_path / f"{who}.vcf.gz")
    copies = [genotypes.read_leak(tmp_path / f"{who}.vcf.gz") for who in PEOPLE[1:4]]
    stacked = np.stack([c.values for c in copies])
    majority = np.sort(stacked, axis=0)[1]  # the median of three is their majority
    rng = np.random.default_rng(2)
    flip = rng.random(majority.shape) < 0.01
    majority[flip] = (majority[flip] + rng.integers(1, 3, size=int(flip.sum()))) % 3
    path = tmp_path / "leak.tsv"
    with path.open("wb") as sink:
        genotypes.write_tsv(
            genotypes.LeakedMatrix(copies[0].sites, copies[0].samples, majority, "tsv"), sink
        )
    named = {
        s.recipient
        for s in fingerprint_service.trace_leak(
            factory, node, subject=OPERATOR, leaked=path, dataset=DATASET
        ).verdict.named
    }
    assert named and named <= set(PEOPLE[1:4])


def test_with_the_policy_off_a_copy_is_unmarked_and_names_no_one(
    factory: Any, node: Settings, tmp_path: Path
) -> None:
    _export(factory, node, PEOPLE[0], tmp_path / "alice.vcf")
    fingerprint_service.set_policy(factory, subject=OPERATOR, dataset=DATASET, required=False)
    plain = _export(factory, node, PEOPLE[1], tmp_path / "bob.vcf")
    assert not plain.fingerprinted
    original = _original(factory, node).dosages()
    assert np.array_equal(_calls(tmp_path / "bob.vcf"), original)
    result = fingerprint_service.trace_leak(
        factory, node, subject=OPERATOR, leaked=tmp_path / "bob.vcf"
    )
    assert result.verdict.named == ()
    assert [s.recipient for s in result.verdict.scores] == [PEOPLE[0]]  # only marked copies


def test_nothing_to_trace_is_a_clear_error(factory: Any, node: Settings, tmp_path: Path) -> None:
    stranger = tmp_path / "other.tsv"
    stranger.write_text("CHROM\tPOS\tREF\tALT\tX1\nchr1\t5\tA\tG\t1\n", encoding="utf-8")
    with pytest.raises(NotFoundError):  # no delivery yet
        fingerprint_service.trace_leak(factory, node, subject=OPERATOR, leaked=stranger)
    _export(factory, node, PEOPLE[0], tmp_path / "alice.vcf.gz")
    with pytest.raises(InvalidInputError) as raised:
        fingerprint_service.trace_leak(factory, node, subject=OPERATOR, leaked=stranger)
    assert raised.value.details["file"] == "other.tsv"
    garbage = tmp_path / "garbage.txt"
    garbage.write_text("hello\tworld\n1\t2\n", encoding="utf-8")
    with pytest.raises(InvalidInputError):
        fingerprint_service.trace_leak(factory, node, subject=OPERATOR, leaked=garbage)


def test_tracing_and_listing_are_for_auditors(factory: Any, node: Settings, tmp_path: Path) -> None:
    researcher = Subject.user("r@example.org", roles=frozenset({"researcher"}), institution=None)
    with pytest.raises(AccessDeniedError):
        fingerprint_service.trace_leak(factory, node, subject=researcher, leaked=tmp_path / "x.vcf")
    with pytest.raises(AccessDeniedError):
        fingerprint_service.deliveries(factory, subject=researcher)
    with pytest.raises(AccessDeniedError):
        fingerprint_service.export_vcf(
            factory, node, subject=researcher, dataset=DATASET, recipient="r", out=tmp_path / "o"
        )


# -- the CLI forwards its arguments ---------------------------------------------------------


def test_trace_command_forwards_the_file_and_options(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("GENECOMMONS_DATA_DIR", str(tmp_path))
    result_value = models.TraceResult(
        file="leak.vcf",
        format="vcf",
        dataset=DATASET,
        matched_sites=10,
        matched_samples=3,
        verdict=Verdict(scores=(), positions=0, variance=0.0, alpha=1e-4),
        deliveries={},
    )
    with mock.patch(
        "genecommons.fingerprint.commands.fingerprint_service.trace_leak", return_value=result_value
    ) as traced:
        result = runner.invoke(
            app, ["trace", str(tmp_path / "leak.vcf"), "--dataset", DATASET, "--alpha", "1e-4"]
        )
    assert result.exit_code == 0, result.output
    _args, kwargs = traced.call_args
    assert kwargs["leaked"] == tmp_path / "leak.vcf"
    assert kwargs["dataset"] == DATASET and kwargs["alpha"] == 1e-4
    assert kwargs["subject"].kind == "operator"
    assert "No recipient is named" in result.output


def test_export_command_forwards_the_recipient(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("GENECOMMONS_DATA_DIR", str(tmp_path))
    delivery = models.Delivery(
        delivery_id="d1",
        recipient="a@example.org",
        dataset=DATASET,
        delivered_at=datetime(2026, 1, 1, tzinfo=UTC),
        channel="export",
        fingerprinted=True,
        what={"sites": 1, "samples": 2},
        key_id="k",
        utility={"changed_share": 0.001, "max_af_deviation": 0.0},
    )
    with mock.patch(
        "genecommons.fingerprint.commands.fingerprint_service.export_vcf", return_value=delivery
    ) as exported:
        result = runner.invoke(
            app,
            [
                "variants",
                "export",
                DATASET,
                "--recipient",
                "a@example.org",
                "--out",
                str(tmp_path / "a.vcf.gz"),
            ],
        )
    assert result.exit_code == 0, result.output
    _args, kwargs = exported.call_args
    assert kwargs["dataset"] == DATASET and kwargs["recipient"] == "a@example.org"
    assert kwargs["out"] == tmp_path / "a.vcf.gz"
    assert "delivery d1" in result.output
