"""`genecommons backup` and `restore` forward their arguments to the service (mocked here; the
real thing runs end to end in test_backup.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from unittest import mock

from typer.testing import CliRunner

from genecommons.backup.service import BackupSummary, RestoreSummary
from genecommons.cli import app
from genecommons.runtime import reset

runner = CliRunner()


def test_backup_forwards_destination_passphrase_and_objects(
    tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setenv("GENECOMMONS_DATA_DIR", str(tmp_path / "data"))
    reset()
    secret = tmp_path / "pass"
    secret.write_bytes(b"a passphrase long enough\n")
    summary = BackupSummary(tmp_path / "out", files=3, objects=4, bytes=10, seconds=0.1)
    with mock.patch("genecommons.backup.commands.service.backup", return_value=summary) as made:
        result = runner.invoke(
            app,
            ["backup", str(tmp_path / "out"), "--passphrase-file", str(secret), "--with-objects"],
        )
    reset()
    assert result.exit_code == 0, result.output
    (settings, _factory, destination), kwargs = made.call_args
    assert settings.data_dir == tmp_path / "data"
    assert destination == tmp_path / "out"
    assert kwargs["passphrase"] == b"a passphrase long enough\n"
    assert kwargs["with_objects"] is True
    assert kwargs["actor"].startswith("operator:")
    assert "Backup complete" in result.output


def test_restore_forwards_source_and_asks_for_the_passphrase(
    tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setenv("GENECOMMONS_DATA_DIR", str(tmp_path / "data"))
    reset()
    summary = RestoreSummary(tmp_path / "data", files=8, objects=4, key_id="ab", seconds=0.1)
    with mock.patch("genecommons.backup.commands.service.restore", return_value=summary) as done:
        result = runner.invoke(app, ["restore", str(tmp_path / "b")], input="typed passphrase\n")
    reset()
    assert result.exit_code == 0, result.output
    (_settings, source), kwargs = done.call_args
    assert source == tmp_path / "b"
    assert kwargs["passphrase"] == b"typed passphrase"
    assert "Restored into" in result.output
