"""Fingerprinted exports of a study's tables through the catalog service (SQLite and
PostgreSQL): the recipient's individuals sheet, written as TSV, trimmed, shuffled and with its
columns reordered, is traced back to the recipient; a dataset whose setting is off exports
unmarked tables and records nothing; the CLI forwards the recipient."""

from __future__ import annotations

import csv
import random
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from genecommons.catalog import service as catalog_service
from genecommons.catalog.export import write_sheets
from genecommons.cli import app
from genecommons.config import Settings
from genecommons.fingerprint import service as fingerprint_service
from genecommons.fingerprint.secret import fingerprint_secret
from genecommons.fingerprint.tables import fingerprint_deliveries
from genecommons.policy.models import Subject

OPERATOR = Subject.operator("tester")
PEOPLE = ["alice@example.org", "bob@example.org", "carol@example.org"]


@pytest.fixture
def study(settings: Settings, factory: Any, make_bundle: Any, sheets: Any) -> dict[str, Any]:
    """A study of 1,200 individuals and a node with a fingerprint secret."""
    fingerprint_secret(settings, create=True)
    result = catalog_service.submit(
        factory, make_bundle(sheets(individuals=1200)), subject=OPERATOR
    )
    return {
        "study": result.accessions["studies"]["ST1"],
        "dataset": result.accessions["datasets"]["DS1"],
    }


def _export(factory: Any, settings: Settings, study: str, who: str, out: Path) -> Path:
    sheets = fingerprint_service.export_study_for(
        factory, settings, study, subject=OPERATOR, recipient=who
    )
    write_sheets(out, sheets)
    return out / "individuals.tsv"


def _rewrite(source: Path, target: Path, *, keep: float, seed: int) -> Path:
    """What a leaker might do: keep some rows, shuffle them, reorder the columns, use CSV."""
    with source.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    rng = random.Random(seed)
    rows = [r for r in rows if rng.random() < keep]
    rng.shuffle(rows)
    columns = list(rows[0])
    rng.shuffle(columns)
    with target.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return target


def test_an_exported_table_traces_back_to_its_recipient(
    settings: Settings, factory: Any, study: dict[str, Any], tmp_path: Path
) -> None:
    tables = {
        who: _export(factory, settings, study["study"], who, tmp_path / who) for who in PEOPLE
    }
    assert tables[PEOPLE[0]].read_bytes() != tables[PEOPLE[1]].read_bytes()
    plain = catalog_service.export_study(factory, study["study"], subject=OPERATOR)
    write_sheets(tmp_path / "plain", plain)
    original = (tmp_path / "plain" / "individuals.tsv").read_text(encoding="utf-8")
    assert original.splitlines()[0] == tables[PEOPLE[0]].read_text().splitlines()[0]
    for number, who in enumerate(PEOPLE):
        leaked = _rewrite(tables[who], tmp_path / f"leak{number}.csv", keep=0.5, seed=number)
        result = fingerprint_service.trace_leak(factory, settings, subject=OPERATOR, leaked=leaked)
        assert result.format == "table" and result.dataset == study["dataset"]
        assert [s.recipient for s in result.verdict.named] == [who]
        assert result.verdict.named[0].p_value < 1e-6
    # the unmarked table names nobody
    (tmp_path / "plain.tsv").write_text(original, encoding="utf-8")
    clean = fingerprint_service.trace_leak(
        factory, settings, subject=OPERATOR, leaked=tmp_path / "plain.tsv"
    )
    assert clean.verdict.named == ()
    with factory() as session:
        rows = session.execute(select(fingerprint_deliveries)).all()
    assert [(r.recipient, r.channel, r.fingerprinted) for r in rows] == [
        (who, "export", True) for who in PEOPLE
    ]
    cost = rows[0].utility["individuals"]
    assert 0 < cost["cells_changed"] <= cost["cells_selected"]
    assert cost["largest_change"] == 1 and cost["changed_share"] < 0.2
    assert rows[0].what["marked_columns"] == {"individuals": ["age", "birth_year"]}


def test_a_dataset_whose_setting_is_off_exports_unmarked_tables(
    settings: Settings, factory: Any, study: dict[str, Any]
) -> None:
    fingerprint_service.set_policy(
        factory, subject=OPERATOR, dataset=study["dataset"], required=False
    )
    plain = catalog_service.export_study(factory, study["study"], subject=OPERATOR)
    theirs = fingerprint_service.export_study_for(
        factory, settings, study["study"], subject=OPERATOR, recipient=PEOPLE[0]
    )
    assert theirs == plain
    with factory() as session:
        assert not session.execute(select(fingerprint_deliveries)).all()


def test_the_cli_forwards_the_recipient(tmp_path: Path) -> None:
    from genecommons.fingerprint import commands

    with mock.patch.object(
        commands.fingerprint_service, "export_study_for", return_value={}
    ) as export:
        done = CliRunner().invoke(
            app,
            ["studies", "export", "GCS00000001", "--out", str(tmp_path), "--recipient", "a@b.org"],
        )
    assert done.exit_code == 0, done.output
    assert export.call_args.args[2] == "GCS00000001"
    assert export.call_args.kwargs["recipient"] == "a@b.org"
    assert export.call_args.args[1] is not None  # the node's settings (its fingerprint secret)
