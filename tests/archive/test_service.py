"""Archive use cases: ingest on submit and by upload (resumable), bad input of every kind leaving
nothing half stored and the catalog unchanged, listing, verification, S3 and interop."""

from __future__ import annotations

import gzip
import io
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import crypt4gh.keys
import crypt4gh.lib
import pytest
from sqlalchemy import func, select

from genecommons.archive import ingestion, inventory, keys_and_store, uploads
from genecommons.archive.crypt import read_header, session_keys
from genecommons.archive.ingest import ChecksumMismatchError, FormatCheckError
from genecommons.archive.keys import KeyPair, generate_key_pair, write_key_pair
from genecommons.archive.tables import archive_objects
from genecommons.archive.tables import uploads as upload_rows
from genecommons.catalog import service as catalog_service
from genecommons.catalog.tables import ENTITY_TABLES
from genecommons.config import Settings
from genecommons.errors import (
    AccessDeniedError,
    ConflictError,
    InvalidInputError,
    PayloadTooLargeError,
    StorageFullError,
)
from genecommons.fingerprint.service import RecipientCopyService
from genecommons.ledger.tables import audit_events
from genecommons.policy.models import Subject
from genecommons.secrets import private_directory

# delivery serves fingerprinted copies through fingerprint's service, as the app does
COPIES = RecipientCopyService()

OPERATOR = Subject.operator("tester")
SHARED = Path(__file__).resolve().parents[2].parent / "shared"


def _count(factory: Any, table: Any) -> int:
    with factory() as session:
        return int(session.execute(select(func.count()).select_from(table)).scalar_one())


def _stored_keys(settings: Settings) -> list[str]:
    return sorted(keys_and_store.object_store(settings).keys())


def _catalog_only(
    factory: Any, tmp_path: Path, data: dict[str, Any], datafiles: Any
) -> dict[str, Any]:
    """Submit metadata whose files are uploaded later (the folder holds no data file)."""
    folder = datafiles.write(tmp_path / "metadata", data)
    return catalog_service.submit(factory, folder, subject=OPERATOR).accessions


@pytest.fixture
def declared(
    archive_settings: Settings, factory: Any, tmp_path: Path, datafiles: Any
) -> dict[str, Any]:
    """A catalog declaring a VCF and a BAM that are not archived yet."""
    data_dir = tmp_path / "files"
    data_dir.mkdir()
    vcf = datafiles.vcf(data_dir / "calls.vcf.gz", records=500)
    bam = datafiles.bam(data_dir / "P1.bam", reads=10_000)
    accessions = _catalog_only(
        factory, tmp_path, datafiles.sheets(data_dir, vcf=vcf, bam=bam), datafiles
    )
    return {
        "vcf": (accessions["files"]["calls.vcf.gz"], vcf),
        "bam": (accessions["files"]["P1.bam"], bam),
    }


def test_submit_archives_the_files_the_folder_holds(world: Any) -> None:
    assert _count(world.factory, archive_objects) == 2
    keys = _stored_keys(world.settings)
    assert len(keys) == 4  # two files and their indexes
    store = keys_and_store.object_store(world.settings)
    plain = world.files["vcf"].read_bytes()
    for key in keys:
        stored = store.read_range(key, 0, store.size(key))
        assert plain[:4096] not in stored  # nothing is kept in plaintext
    listing = inventory.list_files(world.factory, subject=OPERATOR)
    assert {item["format"] for item in listing["items"]} == {"vcf", "bam"}
    assert {item["index"] for item in listing["items"]} == {"tbi", "bai"}
    assert all(item["datasets"] == [world.dataset] for item in listing["items"])


def test_submitting_the_same_folder_again_changes_nothing(world: Any, tmp_path: Path) -> None:
    folder = world.files["vcf"].parent
    again = catalog_service.submit(
        world.factory,
        folder,
        subject=OPERATOR,
        data_files=ingestion.BundleArchiver(world.settings, OPERATOR),
    )
    assert again.archived == []
    assert _count(world.factory, archive_objects) == 2


def test_a_data_file_with_a_wrong_checksum_rejects_the_whole_submission(
    archive_settings: Settings, factory: Any, tmp_path: Path, datafiles: Any
) -> None:
    folder = tmp_path / "bundle"
    folder.mkdir()
    vcf = datafiles.vcf(folder / "calls.vcf.gz", records=200)
    data = datafiles.sheets(folder, vcf=vcf, bam=None)
    data["files"][0]["sha256"] = "0" * 64
    datafiles.write(folder, data)
    with pytest.raises(ChecksumMismatchError) as caught:
        catalog_service.submit(
            factory,
            folder,
            subject=OPERATOR,
            data_files=ingestion.BundleArchiver(archive_settings, OPERATOR),
        )
    assert "sha256" in caught.value.details["mismatch"]
    assert _count(factory, ENTITY_TABLES["studies"]) == 0  # the catalog is unchanged
    assert _count(factory, archive_objects) == 0
    assert _stored_keys(archive_settings) == []


def test_an_unsorted_vcf_is_refused_with_its_place(
    archive_settings: Settings, factory: Any, tmp_path: Path, datafiles: Any
) -> None:
    folder = tmp_path / "bundle"
    folder.mkdir()
    vcf = datafiles.vcf(folder / "calls.vcf.gz", records=200, unsorted=True)
    datafiles.write(folder, datafiles.sheets(folder, vcf=vcf, bam=None))
    with pytest.raises(FormatCheckError) as caught:
        catalog_service.submit(
            factory,
            folder,
            subject=OPERATOR,
            data_files=ingestion.BundleArchiver(archive_settings, OPERATOR),
        )
    assert "sort" in caught.value.message.lower()
    assert caught.value.details.get("line") or caught.value.details.get("record")
    assert _count(factory, ENTITY_TABLES["studies"]) == 0
    assert _stored_keys(archive_settings) == []


def test_content_that_is_not_what_its_name_says(
    archive_settings: Settings, factory: Any, declared: dict[str, Any]
) -> None:
    accession, _ = declared["vcf"]
    bam = declared["bam"][1]
    with pytest.raises(InvalidInputError):
        ingestion.archive_path(
            factory, archive_settings, subject=OPERATOR, accession=accession, path=bam
        )
    assert _stored_keys(archive_settings) == []
    assert _count(factory, archive_objects) == 0


def test_resumable_upload(
    archive_settings: Settings, factory: Any, declared: dict[str, Any]
) -> None:
    accession, path = declared["bam"]
    data = path.read_bytes()
    state = uploads.start_upload(
        factory, archive_settings, subject=OPERATOR, accession=accession, size=len(data)
    )

    def interrupted() -> Iterator[bytes]:
        yield data[:70_000]
        yield data[70_000:100_000]
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        uploads.append_upload(
            factory,
            archive_settings,
            subject=OPERATOR,
            upload_id=state.id,
            offset=0,
            chunks=interrupted(),
        )
    status = uploads.upload_status(factory, subject=OPERATOR, upload_id=state.id)
    assert status.received == 100_000
    with pytest.raises(InvalidInputError) as early:  # incomplete: says where to resume
        uploads.complete_upload(factory, archive_settings, subject=OPERATOR, upload_id=state.id)
    assert early.value.details == {"offset": 100_000}
    with pytest.raises(ConflictError) as wrong:
        uploads.append_upload(
            factory,
            archive_settings,
            subject=OPERATOR,
            upload_id=state.id,
            offset=50_000,
            chunks=[data[50_000:]],
        )
    assert wrong.value.details == {"offset": 100_000}
    uploads.append_upload(
        factory,
        archive_settings,
        subject=OPERATOR,
        upload_id=state.id,
        offset=100_000,
        chunks=[data[100_000:]],
    )
    archived = uploads.complete_upload(
        factory, archive_settings, subject=OPERATOR, upload_id=state.id
    )
    assert archived.size == len(data) and archived.index == "bai"
    assert not list((archive_settings.staging_dir / "uploads").iterdir())
    with pytest.raises(ConflictError):  # archived files are immutable
        uploads.start_upload(factory, archive_settings, subject=OPERATOR, accession=accession)


def test_an_upload_may_not_exceed_its_size(
    archive_settings: Settings, factory: Any, declared: dict[str, Any]
) -> None:
    accession, path = declared["vcf"]
    data = path.read_bytes()
    state = uploads.start_upload(
        factory, archive_settings, subject=OPERATOR, accession=accession, size=len(data)
    )
    with pytest.raises(PayloadTooLargeError):  # nothing that request sent is kept
        uploads.append_upload(
            factory,
            archive_settings,
            subject=OPERATOR,
            upload_id=state.id,
            offset=0,
            chunks=[data, b"extra"],
        )
    assert uploads.upload_status(factory, subject=OPERATOR, upload_id=state.id).received == 0


def test_a_wrong_upload_is_refused_and_its_plaintext_removed(
    archive_settings: Settings, factory: Any, declared: dict[str, Any]
) -> None:
    accession, path = declared["vcf"]
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF  # a corrupt byte: checksum mismatch (and a damaged block)
    state = uploads.start_upload(factory, archive_settings, subject=OPERATOR, accession=accession)
    uploads.append_upload(
        factory,
        archive_settings,
        subject=OPERATOR,
        upload_id=state.id,
        offset=0,
        chunks=[bytes(data)],
    )
    with pytest.raises(InvalidInputError):
        uploads.complete_upload(factory, archive_settings, subject=OPERATOR, upload_id=state.id)
    status = uploads.upload_status(factory, subject=OPERATOR, upload_id=state.id)
    assert status.state == "failed" and status.error
    assert not list((archive_settings.staging_dir / "uploads").iterdir())
    assert _stored_keys(archive_settings) == []
    with factory() as session:
        tags = set(session.execute(select(audit_events.c.tag)).scalars())
    assert "archive:file:reject" in tags


def test_uploads_belong_to_their_uploader(
    archive_settings: Settings, factory: Any, declared: dict[str, Any]
) -> None:
    accession, _ = declared["vcf"]
    stranger = Subject.user("x@example.org", roles=frozenset({"submitter"}), institution=None)
    with pytest.raises(AccessDeniedError):  # the file was declared by the operator
        uploads.start_upload(factory, archive_settings, subject=stranger, accession=accession)
    state = uploads.start_upload(factory, archive_settings, subject=OPERATOR, accession=accession)
    from genecommons.errors import NotFoundError

    with pytest.raises(NotFoundError):
        uploads.upload_status(factory, subject=stranger, upload_id=state.id)
    with pytest.raises(NotFoundError):
        uploads.upload_status(factory, subject=OPERATOR, upload_id="../../etc/passwd")


def _encrypt_for(public: bytes, data: bytes, sender: KeyPair) -> bytes:
    out = io.BytesIO()
    crypt4gh.lib.encrypt([(0, sender.secret, public)], io.BytesIO(data), out)
    return out.getvalue()


def test_an_upload_encrypted_for_the_archive_keeps_its_body(
    archive_settings: Settings, factory: Any, declared: dict[str, Any], tmp_path: Path
) -> None:
    accession, path = declared["vcf"]
    archive = keys_and_store.archive_keys(archive_settings)
    encrypted = _encrypt_for(archive.public, path.read_bytes(), generate_key_pair())
    staged = tmp_path / "calls.vcf.gz.c4gh"
    staged.write_bytes(encrypted)
    result = ingestion.archive_path(
        factory, archive_settings, subject=OPERATOR, accession=accession, path=staged
    )
    assert result.encrypted_upload and result.size == path.stat().st_size
    stream = io.BytesIO(encrypted)
    read_header(stream)
    body = stream.read()
    store = keys_and_store.object_store(archive_settings)
    assert store.read_range(result.object_key, 0, len(body)) == body


def test_an_upload_encrypted_for_another_key_is_refused(
    archive_settings: Settings, factory: Any, declared: dict[str, Any], tmp_path: Path
) -> None:
    accession, path = declared["vcf"]
    other = generate_key_pair()
    staged = tmp_path / "calls.vcf.gz.c4gh"
    staged.write_bytes(_encrypt_for(other.public, path.read_bytes(), other))
    with pytest.raises(InvalidInputError) as caught:
        ingestion.archive_path(
            factory, archive_settings, subject=OPERATOR, accession=accession, path=staged
        )
    assert "key" in caught.value.message.lower()
    assert _stored_keys(archive_settings) == []


def test_a_gzip_bomb_declared_as_fastq_is_refused(
    archive_settings: Settings, factory: Any, tmp_path: Path, datafiles: Any
) -> None:
    bomb = tmp_path / "files" / "reads.fastq.gz"
    bomb.parent.mkdir()
    with gzip.open(bomb, "wb", compresslevel=9) as handle:
        for _ in range(64):
            handle.write(b"\0" * (1 << 20))
    data = datafiles.sheets(bomb.parent, vcf=None, bam=None)
    data["files"] = [
        {"alias": bomb.name, "run": "P1-R1", "format": "fastq", **datafiles.digest(bomb)}
    ]
    accessions = _catalog_only(factory, tmp_path, data, datafiles)
    with pytest.raises(InvalidInputError):
        ingestion.archive_path(
            factory,
            archive_settings,
            subject=OPERATOR,
            accession=accessions["files"][bomb.name],
            path=bomb,
        )
    assert _stored_keys(archive_settings) == []


def test_verify_finds_a_damaged_object(world: Any) -> None:
    assert inventory.verify(
        world.factory, world.settings, subject=OPERATOR, copies=RecipientCopyService()
    ).ok
    store_root = world.settings.data_dir / "archive"
    victim = sorted(p for p in store_root.rglob("*.c4gh") if ".bai." not in p.name)[0]
    os.chmod(victim, 0o640)
    with victim.open("r+b") as handle:
        handle.seek(100)
        byte = handle.read(1)
        handle.seek(100)
        handle.write(bytes([byte[0] ^ 1]))
    report = inventory.verify(
        world.factory, world.settings, subject=OPERATOR, copies=RecipientCopyService()
    )
    assert not report.ok and len(report.damaged) == 1
    with world.factory() as session:
        states = set(session.execute(select(archive_objects.c.state)).scalars())
        tags = list(session.execute(select(audit_events.c.tag)).scalars())
    assert "damaged" in states
    assert "archive:object:damage" in tags


def test_interop_with_the_rust_crypt4gh(
    settings: Settings, factory: Any, tmp_path: Path, datafiles: Any
) -> None:
    """A file encrypted by htsget-rs's Rust crypt4gh for bob is accepted when bob's key is the
    archive's, re-keyed, and delivered to decrypt to the plain file beside it."""
    folder = SHARED / "data" / "crypt4gh"
    if not folder.exists():
        pytest.skip("../shared/data/crypt4gh is not present on this machine")
    secret = crypt4gh.keys.get_private_key(str(folder / "htsget-rs_bob.sec"), lambda: "")
    public = crypt4gh.keys.get_public_key(str(folder / "htsget-rs_bob.pub"))
    # bob's key pair is the archive's here, in place of the one `genecommons init` made
    shutil.rmtree(settings.archive_key_dir)
    private_directory(settings.archive_key_dir)
    (settings.archive_key_dir / "passphrase").write_text("interop-test", encoding="utf-8")
    (settings.archive_key_dir / "passphrase").chmod(0o600)  # as init writes it
    write_key_pair(
        secret_path=settings.archive_key_dir / "archive.sec",
        public_path=settings.archive_key_dir / "archive.pub",
        pair=KeyPair(secret=secret, public=public),
        passphrase="interop-test",
    )
    plain = folder / "htsget-rs_sample1-bcbio-cancer.vcf.gz"
    data = datafiles.sheets(tmp_path, vcf=None, bam=None)
    data["analyses"][0]["reference_assembly"] = "GRCh37"
    data["files"] = [
        {"alias": plain.name, "analysis": "A1", "format": "vcf", **datafiles.digest(plain)}
    ]
    accessions = _catalog_only(factory, tmp_path, data, datafiles)
    upload = tmp_path / "upload.c4gh"
    shutil.copy(folder / f"{plain.name}.c4gh", upload)
    result = ingestion.archive_path(
        factory,
        settings,
        subject=OPERATOR,
        accession=accessions["files"][plain.name],
        path=upload,
    )
    assert result.encrypted_upload
    from genecommons.archive.drs import download

    recipient = generate_key_pair()
    with factory() as session:
        header = session.execute(select(archive_objects.c.header)).scalar_one()
    assert session_keys(header, keys=keys_and_store.archive_keys(settings))
    grantee = Subject.operator("delivery-test")
    stream = download(
        factory,
        settings,
        subject=grantee,
        copies=COPIES,
        object_id=result.accession,
        recipient_public=recipient.public,
    )
    encrypted = b"".join(stream.chunks)
    out = io.BytesIO()
    crypt4gh.lib.decrypt([(0, recipient.secret, None)], io.BytesIO(encrypted), out)
    assert out.getvalue() == plain.read_bytes()


def test_a_full_disk_stores_nothing(
    settings: Settings, factory: Any, tmp_path: Path, datafiles: Any
) -> None:
    """ENOSPC from the store (a real 1 MiB tmpfs): a clear error, nothing half written."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(
        ["/usr/bin/mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        full = settings.model_copy(update={"archive_url": str(mount / "archive")})
        keys_and_store.archive_keys(full, create=True)
        folder = tmp_path / "files"
        folder.mkdir()
        bam = datafiles.bam(folder / "P1.bam", reads=40_000)
        assert bam.stat().st_size > 1 << 20
        accessions = _catalog_only(
            factory, tmp_path, datafiles.sheets(folder, vcf=None, bam=bam), datafiles
        )
        with pytest.raises(StorageFullError) as caught:
            ingestion.archive_path(
                factory,
                full,
                subject=OPERATOR,
                accession=accessions["files"]["P1.bam"],
                path=bam,
            )
        assert caught.value.message_zh
        # the cause and the space needed, not a complaint about the file
        details = caught.value.details
        assert details["where"] == str(mount / "archive")
        assert details["free_bytes"] < details["needed_bytes"]
        assert details["needed_bytes"] > bam.stat().st_size
        assert "full" in caught.value.message and "needs about" in caught.value.message
        assert list(keys_and_store.object_store(full).keys()) == []
        assert list(keys_and_store.object_store(full).parts()) == []
        assert _count(factory, archive_objects) == 0
        assert _count(factory, upload_rows) == 0
    finally:
        subprocess.run(["/usr/bin/umount", str(mount)], check=False)


def test_the_archive_on_s3(
    settings: Settings, factory: Any, tmp_path: Path, s3_archive_url: dict[str, Any], datafiles: Any
) -> None:
    """The same ingest and delivery against a real S3 protocol server (moto, loopback)."""
    on_s3 = settings.model_copy(update=s3_archive_url)
    keys_and_store.archive_keys(on_s3, create=True)
    folder = tmp_path / "bundle"
    folder.mkdir()
    vcf = datafiles.vcf(folder / "calls.vcf.gz", records=300)
    datafiles.write(folder, datafiles.sheets(folder, vcf=vcf, bam=None))
    result = catalog_service.submit(
        factory, folder, subject=OPERATOR, data_files=ingestion.BundleArchiver(on_s3, OPERATOR)
    )
    assert len(result.archived) == 1
    assert len(list(keys_and_store.object_store(on_s3).keys())) == 2
    assert inventory.verify(factory, on_s3, subject=OPERATOR, copies=RecipientCopyService()).ok
    from genecommons.archive.drs import download

    recipient = generate_key_pair()
    stream = download(
        factory,
        on_s3,
        subject=OPERATOR,
        copies=COPIES,
        object_id=result.archived[0],
        recipient_public=recipient.public,
    )
    out = io.BytesIO()
    crypt4gh.lib.decrypt([(0, recipient.secret, None)], io.BytesIO(b"".join(stream.chunks)), out)
    assert out.getvalue() == vcf.read_bytes()
