"""The CLI: arguments forwarded to the service (mocked), then the real thing end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import typer
from sqlalchemy import select
from typer.testing import CliRunner

from genecommons import cli
from genecommons.audit import service as audit_service
from genecommons.catalog.report import Report
from genecommons.catalog.service import SubmissionResult
from genecommons.cli import app
from genecommons.ledger.tables import audit_events
from genecommons.policy.models import Subject
from genecommons.runtime import reset, runtime

runner = CliRunner()


def test_submit_forwards_path_and_dry_run(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("GENECOMMONS_DATA_DIR", str(tmp_path))
    with mock.patch(
        "genecommons.catalog.commands.service.submit",
        return_value=SubmissionResult(report=Report(), committed=False),
    ) as submit:
        result = runner.invoke(app, ["submit", str(tmp_path / "bundle"), "--dry-run"])
    assert result.exit_code == 0, result.output
    (_factory, path), kwargs = submit.call_args
    assert path == tmp_path / "bundle"
    assert kwargs["dry_run"] is True
    assert kwargs["subject"].kind == "operator"
    assert "Dry run" in result.output


def test_template_writes_every_sheet(tmp_path: Path) -> None:
    result = runner.invoke(app, ["template", "--out", str(tmp_path / "t")])
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in (tmp_path / "t").iterdir())
    assert "individuals.tsv" in names and "submission.xlsx" in names
    header = (tmp_path / "t" / "samples.tsv").read_text(encoding="utf-8").splitlines()[0]
    assert header.split("\t")[:3] == ["alias", "individual", "tissue"]


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "genecommons", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.slow
def test_end_to_end(tmp_path: Path, make_bundle: Any, sheets: Any) -> None:
    env = {**os.environ, "GENECOMMONS_DATA_DIR": str(tmp_path / "data")}
    env.pop("GENECOMMONS_DATABASE_URL", None)
    assert _cli(["init"], env).returncode == 0
    assert _cli(["init"], env).returncode == 0  # safe to run again
    bad = sheets()
    bad["samples"][0]["individual"] = "NOBODY"
    rejected = _cli(["submit", str(make_bundle(bad)), "--json"], env)
    assert rejected.returncode == 2
    report = json.loads(rejected.stdout)
    assert report["valid"] is False and report["problems"][0]["value"] == "NOBODY"
    text = _cli(["submit", str(make_bundle(bad))], env)
    assert "samples.tsv, row 2, column individual" in text.stderr
    assert "第 2 行" in text.stderr
    accepted = _cli(["submit", str(make_bundle()), "--json"], env)
    assert accepted.returncode == 0, accepted.stderr
    study = json.loads(accepted.stdout)["accessions"]["studies"]["ST1"]  # stdout: the JSON only
    for stage in ("reading bundle2", "validating", "writing catalog records"):
        assert f"INFO genecommons.progress: {stage}: done, " in accepted.stderr
    assert "\x1b[" not in accepted.stderr
    listed = _cli(["studies", "list"], env)
    assert study in listed.stdout
    shown = json.loads(_cli(["studies", "show", study], env).stdout)
    assert shown["history"][0]["change"] == "created"
    missing = _cli(["datasets", "show", "GCD99999999"], env)
    assert missing.returncode == 3 and "错误" in missing.stderr


@pytest.mark.slow
def test_accounts_and_tokens_from_the_command_line(tmp_path: Path, make_bundle: Any) -> None:
    env = {**os.environ, "GENECOMMONS_DATA_DIR": str(tmp_path / "data")}
    env.pop("GENECOMMONS_DATABASE_URL", None)
    first = _cli(["init"], env)
    assert "admin@localhost" in first.stdout
    assert "admin@localhost" not in _cli(["init"], env).stdout  # only once
    accepted = _cli(["submit", str(make_bundle()), "--json"], env)
    institution = json.loads(accepted.stdout)["accessions"]["institutions"]["BGC"]
    added = _cli(
        ["users", "add", "li@example.org", "--institution", institution, "--role", "data_steward"],
        env,
    )
    assert added.returncode == 0, added.stderr
    moved = _cli(["users", "set-institution", "li@example.org", "--institution", institution], env)
    assert moved.returncode == 0, moved.stderr
    created = _cli(["tokens", "create", "li@example.org"], env)
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert created.stdout == token + "\n" and token.startswith("gct_")
    unknown = _cli(["tokens", "create", "nobody@example.org"], env)
    assert unknown.returncode != 0 and "nobody@example.org" in unknown.stderr
    bad_role = _cli(["users", "add", "x@example.org", "--role", "wizard"], env)
    assert bad_role.returncode != 0


def test_a_refusal_on_the_command_line_is_audited(
    database_url: str, engine: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI's error mapping writes a refusal of the decision point to the audit log, as the
    app's does (every command runs as the operator today, whom no rule refuses: a command that
    reads the audit entries as an anonymous caller stands in for a refused one)."""
    monkeypatch.setenv("GENECOMMONS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("GENECOMMONS_DATABASE_URL", database_url)
    reset()
    refused = typer.Typer()

    @refused.callback()
    def _group() -> None:
        """Commands that the decision point refuses."""

    @refused.command()
    def entries() -> None:
        audit_service.entries(runtime().factory, start=0, end=1, actor=Subject.anonymous())

    monkeypatch.setattr(cli, "app", refused)
    monkeypatch.setattr(sys, "argv", ["genecommons", "entries"])
    try:
        with pytest.raises(SystemExit) as exited:
            cli.main()
    finally:
        reset()
    assert exited.value.code == 4
    with engine.connect() as connection:
        (event,) = connection.execute(select(audit_events)).all()
    assert event.tag == "access:decision:deny" and event.actor == "address:local"
    assert event.subject == "audit"
    assert event.details["route"] == "cli entries" and event.details["answered"] == 4
    assert event.details["rule"] == "auditors-only" and event.details["caller"] == "anonymous"
