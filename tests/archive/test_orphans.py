"""What a writer killed mid-ingest leaves in the object store (kill -9 of a real process):
`archive verify` reports it as orphans, never what a live process is writing, and
`--remove-orphans` removes it. Stale uploads expire; an upload is bounded by its declared size."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, update

from genecommons import clock
from genecommons.archive import ingestion, inventory, keys_and_store, uploads
from genecommons.archive.locks import AdvisoryLocks, FileLocks, ObjectLocks, object_base
from genecommons.archive.tables import uploads as upload_rows
from genecommons.config import Settings
from genecommons.db import write_transaction
from genecommons.errors import ConflictError, PayloadTooLargeError
from genecommons.fingerprint.service import RecipientCopyService
from genecommons.policy.models import Subject

OPERATOR = Subject.operator("tester")

# a process that ingests and hangs at a chosen point until it is killed: "stream" in the
# middle of the body's bytes, "commit" with every object stored and the catalog rows not
# committed
WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from genecommons.policy.models import Subject
    from genecommons.archive import ingestion
    from genecommons.catalog import service as catalog_service
    from genecommons.config import Settings
    from genecommons.db import make_session_factory, node_engine

    mode, ready, target = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    settings = Settings()
    factory = make_session_factory(node_engine(settings))
    operator = Subject.operator("writer")

    def hang(*_):
        ready.write_text("ready")
        time.sleep(600)

    class HangsAfterArchiving:
        # the real archiver, then a hang before the catalog rows are committed

        def __init__(self):
            self.sink = ingestion.BundleArchiver(settings, operator)

        def attach(self, session, files, paths):
            self.sink.attach(session, files, paths)
            hang()

        def discard(self):
            self.sink.discard()

    if mode == "commit":
        catalog_service.submit(
            factory, target, subject=operator, data_files=HangsAfterArchiving()
        )
    else:
        seen = [0]

        def progress(count):
            seen[0] += count
            if seen[0] > 300_000:
                hang()

        ingestion.archive_path(
            factory, settings, subject=operator, accession=sys.argv[4], path=target,
            progress=progress,
        )
    """
)


def _env(settings: Settings) -> dict[str, str]:
    env = {
        **os.environ,
        "GENECOMMONS_DATA_DIR": str(settings.data_dir),
        "GENECOMMONS_DATABASE_URL": settings.effective_database_url,
        "GENECOMMONS_ENVIRONMENT": "test",
    }
    if settings.archive_url:
        env["GENECOMMONS_ARCHIVE_URL"] = settings.archive_url
        env["GENECOMMONS_ARCHIVE_S3_ENDPOINT_URL"] = str(settings.archive_s3_endpoint_url)
        for name in ("archive_s3_access_key", "archive_s3_secret_key"):
            secret = getattr(settings, name)
            env[f"GENECOMMONS_{name.upper()}"] = secret.get_secret_value()
    return env


def _killed_mid_write(settings: Settings, factory: Any, tmp_path: Path, *args: str) -> list[str]:
    """Run the writer until it hangs; check that what it stored is not an orphan while it is
    alive; kill -9 it; what it left (the store's names)."""
    ready = tmp_path / f"ready-{args[0]}"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    log = tmp_path / f"writer-{args[0]}.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, str(script), args[0], str(ready), *args[1:]],
            env=_env(settings),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            if process.poll() is not None:
                pytest.fail(log.read_text())
            assert time.monotonic() < deadline, "the writer never reached its point"
            time.sleep(0.05)
        return _while_alive_then_kill(settings, factory, process)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


def _while_alive_then_kill(
    settings: Settings, factory: Any, process: subprocess.Popen[bytes]
) -> list[str]:
    store = keys_and_store.object_store(settings)
    written = [*store.keys(), *store.parts()]
    assert written, "the writer stored nothing before it hung"
    # the writer is alive: what it is writing is no orphan (its catalog rows are still to come)
    orphans, in_flight = inventory.find_orphans(factory, settings, copies=RecipientCopyService())
    assert orphans == [] and in_flight == len(written)
    process.send_signal(signal.SIGKILL)
    process.wait()
    # a database server lets go of a dead client's locks once it sees the connection close
    deadline = time.monotonic() + 60
    while inventory.find_orphans(factory, settings, copies=RecipientCopyService())[1]:
        assert time.monotonic() < deadline, "the killed writer's locks were never let go"
        time.sleep(0.1)
    return written


def _declared(factory: Any, tmp_path: Path, datafiles: Any) -> tuple[str, Path]:
    """A BAM declared in the catalog and not archived yet."""
    from genecommons.catalog import service as catalog_service

    folder = tmp_path / "files"
    folder.mkdir()
    bam = datafiles.bam(folder / "P1.bam", reads=20_000)
    metadata = datafiles.write(tmp_path / "metadata", datafiles.sheets(folder, vcf=None, bam=bam))
    accessions = catalog_service.submit(factory, metadata, subject=OPERATOR).accessions
    return accessions["files"]["P1.bam"], bam


def _bundle(tmp_path: Path, datafiles: Any) -> Path:
    """A submission folder holding the VCF and BAM it declares."""
    folder = tmp_path / "bundle"
    folder.mkdir()
    vcf = datafiles.vcf(folder / "calls.vcf.gz", records=300)
    bam = datafiles.bam(folder / "P1.bam", reads=5_000)
    datafiles.write(folder, datafiles.sheets(folder, vcf=vcf, bam=bam))
    return folder


@pytest.mark.slow
def test_a_writer_killed_before_its_commit_leaves_orphans_verify_finds_and_removes(
    archive_settings: Settings, factory: Any, tmp_path: Path, datafiles: Any
) -> None:
    left = _killed_mid_write(
        archive_settings, factory, tmp_path, "commit", str(_bundle(tmp_path, datafiles))
    )
    assert any(name.endswith(".c4gh") for name in left)
    report = inventory.verify(
        factory, archive_settings, subject=OPERATOR, copies=RecipientCopyService()
    )
    assert sorted(report.orphans) == sorted(left) and not report.ok
    removed = inventory.verify(
        factory,
        archive_settings,
        subject=OPERATOR,
        copies=RecipientCopyService(),
        remove_orphans=True,
    )
    assert sorted(removed.removed) == sorted(left)
    store = keys_and_store.object_store(archive_settings)
    assert [*store.keys(), *store.parts()] == []
    assert inventory.verify(
        factory, archive_settings, subject=OPERATOR, copies=RecipientCopyService()
    ).ok


@pytest.mark.slow
def test_a_writer_killed_while_streaming_leaves_a_part_verify_finds(
    archive_settings: Settings, factory: Any, tmp_path: Path, datafiles: Any
) -> None:
    accession, bam = _declared(factory, tmp_path, datafiles)
    left = _killed_mid_write(archive_settings, factory, tmp_path, "stream", str(bam), accession)
    assert all(name.rsplit("/", 1)[-1].startswith(".") for name in left)  # temporary parts
    report = inventory.verify(
        factory,
        archive_settings,
        subject=OPERATOR,
        copies=RecipientCopyService(),
        remove_orphans=True,
    )
    assert sorted(report.orphans) == sorted(left) == sorted(report.removed)
    assert list(keys_and_store.object_store(archive_settings).parts()) == []
    # the file can be archived after all
    archived = ingestion.archive_path(
        factory, archive_settings, subject=OPERATOR, accession=accession, path=bam
    )
    assert archived.accession == accession
    assert (
        inventory.verify(
            factory, archive_settings, subject=OPERATOR, copies=RecipientCopyService()
        ).orphans
        == []
    )


@pytest.mark.slow
def test_orphans_on_s3(
    settings: Settings,
    factory: Any,
    tmp_path: Path,
    datafiles: Any,
    s3_archive_url: dict[str, Any],
) -> None:
    on_s3 = settings.model_copy(update=s3_archive_url)
    keys_and_store.archive_keys(on_s3, create=True)
    left = _killed_mid_write(on_s3, factory, tmp_path, "commit", str(_bundle(tmp_path, datafiles)))
    report = inventory.verify(
        factory, on_s3, subject=OPERATOR, copies=RecipientCopyService(), remove_orphans=True
    )
    assert sorted(report.orphans) == sorted(left) == sorted(report.removed)
    assert list(keys_and_store.object_store(on_s3).keys()) == []


@pytest.fixture(params=["files", pytest.param("advisory", marks=pytest.mark.postgres)])
def locks(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ObjectLocks]:
    """Each implementation of the object locks."""
    if request.param == "files":
        yield FileLocks(tmp_path / "locks")
        return
    engine = create_engine(request.getfixturevalue("postgres_schema_url"))
    yield AdvisoryLocks(engine)
    engine.dispose()


def test_an_object_whose_lock_is_held_is_in_flight(locks: ObjectLocks) -> None:
    """The locks' contract: held, busy (seen from another file description or session); let
    go, free."""
    base = object_base("GCF000001/abc.bai.c4gh")
    assert base == object_base("GCF000001/.abc.c4gh.0123abcd.part") == "GCF000001/abc"
    assert object_base("GCF000001/copies/x1.tbi.c4gh") == "GCF000001/copies/x1"
    assert not locks.busy(base)
    with locks.hold(base):
        assert locks.busy(base)
        assert locks.busy_among([base, "GCF000001/other"]) == {base}
    assert not locks.busy(base)
    assert locks.busy_among([base]) == set()


def test_stale_uploads_expire_and_their_bytes_go(
    archive_settings: Settings, factory: Any, tmp_path: Path, datafiles: Any
) -> None:
    accession, bam = _declared(factory, tmp_path, datafiles)
    data = bam.read_bytes()
    stale = uploads.start_upload(factory, archive_settings, subject=OPERATOR, accession=accession)
    fresh = uploads.start_upload(factory, archive_settings, subject=OPERATOR, accession=accession)
    for upload in (stale, fresh):
        uploads.append_upload(
            factory,
            archive_settings,
            subject=OPERATOR,
            upload_id=upload.id,
            offset=0,
            chunks=[data[:1000]],
        )
    staged = archive_settings.staging_dir / "uploads"
    leftover = staged / "0c7f1e9e-0000-4000-8000-000000000000.part"  # of no open upload
    leftover.write_bytes(b"x")
    hours = archive_settings.upload_expiry_hours
    with write_transaction(factory) as session:
        session.execute(
            update(upload_rows)
            .where(upload_rows.c.id == stale.id)
            .values(updated_at=clock.now() - timedelta(hours=hours + 1))
        )
    assert uploads.expire_uploads(factory, archive_settings, subject=OPERATOR) == [stale.id]
    assert sorted(p.name for p in staged.iterdir()) == [f"{fresh.id}.part"]
    assert uploads.upload_status(factory, subject=OPERATOR, upload_id=stale.id).state == "expired"
    with pytest.raises(ConflictError):  # not resumable
        uploads.append_upload(
            factory,
            archive_settings,
            subject=OPERATOR,
            upload_id=stale.id,
            offset=1000,
            chunks=[data[1000:]],
        )
    assert uploads.expire_uploads(factory, archive_settings, subject=OPERATOR) == []


def test_an_upload_opened_without_a_size_is_bounded_by_the_declared_size(
    archive_settings: Settings, factory: Any, tmp_path: Path, datafiles: Any
) -> None:
    accession, bam = _declared(factory, tmp_path, datafiles)
    data = bam.read_bytes()
    upload = uploads.start_upload(factory, archive_settings, subject=OPERATOR, accession=accession)
    uploads.append_upload(
        factory,
        archive_settings,
        subject=OPERATOR,
        upload_id=upload.id,
        offset=0,
        chunks=[data[:5000]],
    )
    with pytest.raises(PayloadTooLargeError) as caught:
        uploads.append_upload(
            factory,
            archive_settings,
            subject=OPERATOR,
            upload_id=upload.id,
            offset=5000,
            chunks=[data[5000:], b"more than declared"],
        )
    assert caught.value.http_status == 413
    assert caught.value.details == {"offset": 5000, "max_bytes": len(data)}
    # nothing that request sent is kept: the upload resumes where it began
    assert uploads.upload_status(factory, subject=OPERATOR, upload_id=upload.id).received == 5000
    path = archive_settings.staging_dir / "uploads" / f"{upload.id}.part"
    assert path.stat().st_size == 5000
    uploads.append_upload(
        factory,
        archive_settings,
        subject=OPERATOR,
        upload_id=upload.id,
        offset=5000,
        chunks=[data[5000:]],
    )
    archived = uploads.complete_upload(
        factory, archive_settings, subject=OPERATOR, upload_id=upload.id
    )
    assert archived.size == len(data)


def test_the_server_expires_stale_uploads_when_it_starts(
    archive_settings: Settings, factory: Any, tmp_path: Path, datafiles: Any
) -> None:
    accession, _ = _declared(factory, tmp_path, datafiles)
    stale = uploads.start_upload(factory, archive_settings, subject=OPERATOR, accession=accession)
    hours = archive_settings.upload_expiry_hours
    with write_transaction(factory) as session:
        session.execute(
            update(upload_rows)
            .where(upload_rows.c.id == stale.id)
            .values(updated_at=clock.now() - timedelta(hours=hours + 1))
        )
    expiry = uploads.UploadExpiry(factory, archive_settings, subject=OPERATOR)
    expiry.start()
    try:
        deadline = time.monotonic() + 60
        while uploads.upload_status(factory, subject=OPERATOR, upload_id=stale.id).state == "open":
            assert time.monotonic() < deadline, "the stale upload was never expired"
            time.sleep(0.05)
    finally:
        expiry.stop()
    assert uploads.upload_status(factory, subject=OPERATOR, upload_id=stale.id).state == "expired"
