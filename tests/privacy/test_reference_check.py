"""Checking the public reference against each dataset: the Beacon places a dataset's windows by
the reference only when the check says it suits, for that reference, store and rule settings."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import select

from genecommons.config import Settings
from genecommons.db import make_session_factory, node_engine
from genecommons.demo.cohort import write_demo
from genecommons.errors import AccessDeniedError, ConfigurationError, NotFoundError
from genecommons.ledger.tables import audit_events
from genecommons.policy.models import Subject
from genecommons.privacy import beacon_rules
from genecommons.variants.service import open_reference

OPERATOR = Subject.operator("tester")
CliRun = Callable[..., Any]  # conftest's genecommons_cli


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory, genecommons_cli: CliRun) -> SimpleNamespace:
    """A small demo submitted to a node, with the demo's public reference loaded."""
    root = tmp_path_factory.mktemp("node")
    demo = root / "demo"
    write_demo(demo, individuals=300, reference_individuals=200, sequence_length=500_000, seed=9)
    env = {**os.environ, "GENECOMMONS_DATA_DIR": str(root / "data")}
    for name in [k for k in env if k.startswith("GENECOMMONS_") and k != "GENECOMMONS_DATA_DIR"]:
        env.pop(name)
    genecommons_cli(env, "init")
    genecommons_cli(env, "submit", str(demo))
    settings = Settings(data_dir=root / "data")

    def cli(*args: str) -> str:
        return str(genecommons_cli(env, *args).stdout)

    return SimpleNamespace(
        cli=cli,
        env=env,
        demo=demo,
        settings=settings,
        factory=make_session_factory(node_engine(settings)),
    )


@pytest.mark.slow
def test_the_reference_is_used_only_where_checked_and_suited(node: SimpleNamespace) -> None:
    shutil.rmtree(node.settings.data_dir / "privacy" / "reference-fit", ignore_errors=True)
    node.settings.effective_beacon_reference.unlink(missing_ok=True)
    with pytest.raises(ConfigurationError, match="load-reference"):
        beacon_rules.check_reference(
            node.factory, node.settings, subject=OPERATOR, dataset="GCD00000001"
        )
    node.cli("variants", "load-reference", str(node.demo / "public_frequencies.vcf.gz"))
    assert beacon_rules.threshold_rule(node.settings).placed == frozenset()  # loaded, not checked
    shown = node.cli("privacy", "check-reference")
    assert "GCD00000001" in shown and "GCD00000002" in shown
    fit = beacon_rules.check_reference(
        node.factory, node.settings, subject=OPERATOR, dataset="GCD00000001"
    )
    record = json.loads(beacon_rules.fit_path(node.settings, "GCD00000001").read_text())
    assert record["suits"] == fit.suits and record["ratio"] == pytest.approx(fit.ratio)
    assert fit.sites > 1000 and 0 < fit.listed <= fit.sites
    assert fit.ratio < 1  # the demo's reference is of its own populations
    rule = beacon_rules.threshold_rule(node.settings)
    expected = {"GCD00000001", "GCD00000002"} if fit.suits else set()
    assert rule.placed == frozenset(expected)
    key, alleles = "chr22-15000100-A-G", 600
    assert rule.places("GCD00000001") == fit.suits
    assert rule.window(key, alleles, "GCD-NOT-CHECKED") == (10, 40)  # unchecked: no windows
    with node.factory() as session:
        events = session.execute(
            select(audit_events.c.subject, audit_events.c.details).where(
                audit_events.c.tag == "privacy:reference:check"
            )
        ).all()
    assert {e.subject for e in events} == {"GCD00000001", "GCD00000002"}
    loaded = open_reference(node.settings)
    assert loaded is not None
    assert all(e.details["reference_sha256"] == loaded.source.sha256 for e in events)


@pytest.mark.slow
def test_a_check_of_other_settings_or_another_store_no_longer_counts(
    node: SimpleNamespace,
) -> None:
    node.cli("variants", "load-reference", str(node.demo / "public_frequencies.vcf.gz"))
    fit = beacon_rules.check_reference(
        node.factory, node.settings, subject=OPERATOR, dataset="GCD00000001"
    )
    if not fit.suits:
        pytest.skip(f"the small demo's reference does not suit it (ratio {fit.ratio:.2f})")
    assert beacon_rules.threshold_rule(node.settings).places("GCD00000001")
    wider = Settings(data_dir=node.settings.data_dir, beacon_threshold_window=5)
    assert not beacon_rules.threshold_rule(wider).places("GCD00000001")
    # another reference: the panel's genotypes, all 200 people
    node.cli("variants", "load-reference", str(node.demo / "reference_panel.vcf.gz"))
    assert not beacon_rules.threshold_rule(node.settings).places("GCD00000001")
    # the store rebuilt: its old check no longer counts
    node.cli("variants", "load-reference", str(node.demo / "public_frequencies.vcf.gz"))
    assert beacon_rules.threshold_rule(node.settings).places("GCD00000001")
    node.cli("variants", "build", "GCD00000001", str(node.demo / "cohort.vcf.gz"))
    assert not beacon_rules.threshold_rule(node.settings).places("GCD00000001")  # a new store id
    # a damaged record is ignored, not trusted
    beacon_rules.fit_path(node.settings, "GCD00000002").write_text("{not json")
    assert not beacon_rules.threshold_rule(node.settings).places("GCD00000002")


@pytest.mark.slow
def test_checking_needs_record_access_and_a_store(node: SimpleNamespace) -> None:
    node.cli("variants", "load-reference", str(node.demo / "public_frequencies.vcf.gz"))
    reader = Subject.user("r@example.org", roles=frozenset({"researcher"}), institution=None)
    with pytest.raises(AccessDeniedError):
        beacon_rules.check_reference(
            node.factory, node.settings, subject=reader, dataset="GCD00000001"
        )
    with pytest.raises(NotFoundError, match="no variant store"):
        beacon_rules.check_reference(node.factory, node.settings, subject=OPERATOR, dataset="GCD99")
