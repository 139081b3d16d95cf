"""The archive's CLI and upload client: `genecommons upload` over real HTTP (resuming after a
broken connection), `archive verify`, `archive files`, `archive public-key`."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from genecommons.archive.client import UploadClient
from genecommons.cli import app
from genecommons.errors import ConflictError, GeneCommonsError


class BreakOnce(httpx.BaseTransport):
    """A real HTTP transport whose n-th PATCH fails mid-request once (a dropped connection)."""

    def __init__(self, fail_at: int) -> None:
        self._inner = httpx.HTTPTransport()
        self._fail_at = fail_at
        self.patches = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "PATCH":
            self.patches += 1
            if self.patches == self._fail_at:
                raise httpx.ConnectError("connection dropped", request=request)
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()


@pytest.fixture
def steward_upload(world: Any, live_server: str, tmp_path: Path, datafiles: Any) -> Any:
    """A file declared in the catalog (by the operator) and not archived, and the steward's
    token that may upload it."""
    folder = tmp_path / "late"
    folder.mkdir()
    bam = datafiles.bam(folder / "late.bam", reads=6000, seed=5)
    data = datafiles.sheets(folder, vcf=None, bam=bam)
    datafiles.write(tmp_path / "late-metadata", data)
    from genecommons.catalog import service as catalog_service
    from genecommons.policy.models import Subject

    result = catalog_service.submit(
        world.factory, tmp_path / "late-metadata", subject=Subject.operator("tester")
    )
    return bam, result.accessions["files"]["late.bam"], world.tokens["steward@example.org"]


def test_upload_resumes_after_a_broken_connection(
    world: Any, live_server: str, steward_upload: Any, tmp_path: Path
) -> None:
    bam, accession, token = steward_upload
    transport = BreakOnce(fail_at=2)
    positions: list[int] = []
    client = UploadClient(
        live_server,
        token,
        state_dir=tmp_path / "state",
        transport=transport,
        piece_size=64 * 1024,
    )
    try:
        result = client.upload(bam, accession=accession, progress=positions.append)
    finally:
        client.close()
    assert result["sha256"] == hashlib.sha256(bam.read_bytes()).hexdigest()
    assert result["size"] == bam.stat().st_size
    assert transport.patches > bam.stat().st_size // (64 * 1024)  # one PATCH was repeated
    assert positions[-1] == bam.stat().st_size
    assert not list((tmp_path / "state").iterdir())  # nothing left to resume


def test_an_interrupted_run_is_resumed_by_the_next(
    world: Any,
    live_server: str,
    steward_upload: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bam, accession, token = steward_upload
    state = tmp_path / "state"
    first = UploadClient(
        live_server, token, state_dir=state, transport=BreakOnce(fail_at=3), piece_size=65536
    )
    monkeypatch.setattr("genecommons.archive.client.RETRIES", 0)  # give up at the first break
    try:
        with pytest.raises(GeneCommonsError, match="resume"):
            first.upload(bam, accession=accession)
    finally:
        first.close()
    assert len(list(state.iterdir())) == 1  # the unfinished upload is remembered
    second = UploadClient(live_server, token, state_dir=state, piece_size=65536)
    try:
        positions: list[int] = []
        result = second.upload(bam, accession=accession, progress=positions.append)
    finally:
        second.close()
    assert positions[0] == 2 * 65536  # went on where the server stopped
    assert result["size"] == bam.stat().st_size
    again = UploadClient(live_server, token, piece_size=65536)
    try:
        with pytest.raises(ConflictError):  # archived files are immutable
            again.upload(bam, accession=accession)
    finally:
        again.close()


def test_cli_verify_files_and_public_key(world: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from genecommons import runtime

    monkeypatch.setenv("GENECOMMONS_DATA_DIR", str(world.settings.data_dir))
    monkeypatch.setenv("GENECOMMONS_DATABASE_URL", world.settings.effective_database_url)
    runtime.reset()
    try:
        runner = CliRunner()
        listed = runner.invoke(app, ["archive", "files"])
        assert listed.exit_code == 0, listed.output
        assert "2 file(s)" in listed.output
        key = runner.invoke(app, ["archive", "public-key"])
        assert key.exit_code == 0 and "CRYPT4GH PUBLIC KEY" in key.output
        verified = runner.invoke(app, ["archive", "verify"])
        assert verified.exit_code == 0 and "match their checksums" in verified.output
        victim = sorted((world.settings.data_dir / "archive").rglob("*.c4gh"))[0]
        victim.chmod(0o640)
        victim.write_bytes(victim.read_bytes()[:-1])
        damaged = runner.invoke(app, ["archive", "verify"])
        assert damaged.exit_code == 7 and "DAMAGED" in damaged.output
    finally:
        runtime.reset()


def test_cli_verify_reports_and_removes_orphans_and_expires_uploads(
    world: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from genecommons import runtime

    monkeypatch.setenv("GENECOMMONS_DATA_DIR", str(world.settings.data_dir))
    monkeypatch.setenv("GENECOMMONS_DATABASE_URL", world.settings.effective_database_url)
    runtime.reset()
    try:
        runner = CliRunner()
        archive = world.settings.data_dir / "archive"
        named = sorted(archive.rglob("*.c4gh"))[0]
        orphan = named.with_name("0123456789abcdef0123456789abcdef.c4gh")  # no row names it
        orphan.write_bytes(named.read_bytes())
        part = named.with_name(f".{orphan.name}.feedface.part")  # a killed write's part
        part.write_bytes(b"half")
        found = runner.invoke(app, ["archive", "verify"])
        assert found.exit_code == 7, found.output
        assert found.output.count("ORPHAN") == 2 and "--remove-orphans" in found.output
        assert orphan.exists() and part.exists()
        removed = runner.invoke(app, ["archive", "verify", "--remove-orphans"])
        assert removed.exit_code == 0, removed.output
        assert removed.output.count("REMOVED") == 2
        assert not orphan.exists() and not part.exists() and named.exists()
        expired = runner.invoke(app, ["archive", "expire-uploads"])
        assert expired.exit_code == 0 and "0 upload(s) expired" in expired.output
    finally:
        runtime.reset()


def test_cli_upload_reports_its_bytes_off_a_terminal(
    steward_upload: Any,
    live_server: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    bam, accession, token = steward_upload
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # where unfinished uploads are kept
    caplog.set_level(logging.INFO, logger="genecommons.progress")
    done = CliRunner().invoke(
        app, ["upload", str(bam), "--file", accession, "--server", live_server, "--token", token]
    )
    assert done.exit_code == 0, done.output
    assert f"Archived {accession}" in done.output and "\x1b[" not in done.output
    (line,) = [r.getMessage() for r in caplog.records if r.name == "genecommons.progress"]
    size = bam.stat().st_size
    assert line.startswith(f"uploading late.bam: done, {size / 1000:.1f} kB in ")
