"""Backups made while the node works restore into a node whose audit log and archive verify and
whose files download; interrupted, damaged, hostile or wrongly unlocked backups are refused."""

from __future__ import annotations

import io
import json
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import crypt4gh.lib
import pytest
from sqlalchemy import func, select

from genecommons.archive import inventory
from genecommons.archive.drs import download
from genecommons.archive.keys import generate_key_pair
from genecommons.audit import service as audit_service
from genecommons.backup import service
from genecommons.backup.manifest import MANIFEST_NAME
from genecommons.config import Settings
from genecommons.db import make_session_factory, node_engine
from genecommons.errors import (
    BackupInvalidError,
    BackupPassphraseError,
    RestoreTargetNotEmptyError,
)
from genecommons.fingerprint.secret import fingerprint_secret
from genecommons.fingerprint.service import RecipientCopyService
from genecommons.ledger.events import EventTag, record_event
from genecommons.ledger.tables import audit_events

from .conftest import OPERATOR, PASSPHRASE

# delivery serves fingerprinted copies through fingerprint's service, as the app does
COPIES = RecipientCopyService()


def _events(factory: Any) -> int:
    with factory() as session:
        return int(session.execute(select(func.count()).select_from(audit_events)).scalar_one())


def _plain(factory: Any, settings: Settings, object_id: str) -> bytes:
    """A DRS download of `object_id` by the operator, decrypted with the crypt4gh library."""
    recipient = generate_key_pair()
    stream = download(
        factory,
        settings,
        subject=OPERATOR,
        copies=COPIES,
        object_id=object_id,
        recipient_public=recipient.public,
    )
    out = io.BytesIO()
    crypt4gh.lib.decrypt([(0, recipient.secret, None)], io.BytesIO(b"".join(stream.chunks)), out)
    return out.getvalue()


def _check_restored(target: Settings, node: SimpleNamespace) -> int:
    """`audit verify`, `archive verify` and a DRS download of each file on the restored node
    (the BAM as submitted; the VCF, delivered fingerprinted, as the original node delivers it:
    the same marks, so the fingerprint secret came back); the size of its audit log."""
    engine = node_engine(target)
    factory = make_session_factory(engine)
    try:
        key = audit_service.signing_key(target)
        log = audit_service.verify(factory, key.public_key())
        assert not log.problems, log.problems
        report = inventory.verify(factory, target, subject=OPERATOR, copies=COPIES)
        assert report.ok and report.checked == 2, report.damaged
        restored = {i: _plain(factory, target, i) for i in node.archived}
        assert node.files["bam"].read_bytes() in restored.values()
        assert restored == {i: _plain(node.factory, node.settings, i) for i in node.archived}
        assert fingerprint_secret(target) == fingerprint_secret(node.settings)
        return log.tree_size
    finally:
        engine.dispose()


@pytest.mark.slow
def test_a_backup_under_load_restores_to_a_node_that_verifies(
    node: SimpleNamespace, empty_target: Settings, tmp_path: Path
) -> None:
    before = _events(node.factory)
    stop = threading.Event()
    written = [0, 0]
    failures: list[BaseException] = []

    def write(worker: int) -> None:
        try:
            while not stop.is_set():
                with node.factory() as session, session.begin():
                    record_event(
                        session,
                        tag=EventTag.RECORD_READ,
                        actor=f"user:load{worker}@example.org",
                        subject=f"individual:GCI{written[worker]:08d}",
                        details={"n": written[worker]},
                    )
                written[worker] += 1
        except BaseException as error:  # handed to the test
            failures.append(error)

    writers = [threading.Thread(target=write, args=(i,)) for i in range(2)]
    for thread in writers:
        thread.start()
    try:
        while sum(written) < 20:  # the load is on before the backup starts
            stop.wait(0.01)
        summary = service.backup(
            node.settings,
            node.factory,
            tmp_path / "backup",
            actor=OPERATOR.id,
            passphrase=PASSPHRASE,
            with_objects=True,
        )
    finally:
        stop.set()
        for thread in writers:
            thread.join()
    assert not failures, failures
    assert summary.objects == 4  # two files, each a body and an index
    made = [p for p in (tmp_path / "backup").rglob("*") if p.is_file()]
    assert made and all(p.stat().st_mode & 0o077 == 0 for p in made)  # the node's user only
    restored = service.restore(
        empty_target, tmp_path / "backup", actor=OPERATOR.id, passphrase=PASSPHRASE
    )
    assert restored.objects == 4
    size = _check_restored(empty_target, node)
    # the copy holds the log as it was at one instant of the load: all before it, a prefix after
    assert before + 20 <= size - 1 <= _events(node.factory)  # and the restore's own event
    assert sum(written) >= 20


def test_backup_and_restore_through_the_cli(
    node: SimpleNamespace, passphrase_file: Path, tmp_path: Path, genecommons_cli: Any
) -> None:
    if node.settings.database_url and not node.settings.database_url.startswith("sqlite"):
        pytest.skip("the service test covers PostgreSQL; the CLI is the same")
    source = {
        "GENECOMMONS_DATA_DIR": str(node.settings.data_dir),
        "GENECOMMONS_DATABASE_URL": node.settings.effective_database_url,
        "GENECOMMONS_ENVIRONMENT": "test",
        "PATH": "/usr/bin:/bin",
    }
    derived = {  # files of the data directory beside the database, keys and archive
        "variants/GCD00000001/calls/.zarray": b'{"zarr_format": 2}',
        "privacy/reference-fit/GCD00000001.json": b"{}",
    }
    for relative, content in derived.items():
        (node.settings.data_dir / relative).parent.mkdir(parents=True, exist_ok=True)
        (node.settings.data_dir / relative).write_bytes(content)
    made = genecommons_cli(
        source,
        "backup",
        str(tmp_path / "b"),
        "--passphrase-file",
        str(passphrase_file),
        "--with-objects",
    )
    assert "Backup complete" in made.stdout
    target = {**source, "GENECOMMONS_DATA_DIR": str(tmp_path / "fresh")}
    del target["GENECOMMONS_DATABASE_URL"]
    genecommons_cli(
        target, "restore", str(tmp_path / "b"), "--passphrase-file", str(passphrase_file)
    )
    assert "intact" in genecommons_cli(target, "audit", "verify").stdout
    genecommons_cli(target, "archive", "verify")
    for relative, content in derived.items():
        assert (tmp_path / "fresh" / relative).read_bytes() == content
    again = subprocess.run(
        [
            sys.executable,
            "-m",
            "genecommons",
            "restore",
            str(tmp_path / "b"),
            "--passphrase-file",
            str(passphrase_file),
        ],
        env=target,
        capture_output=True,
        text=True,
        check=False,
    )
    assert again.returncode == RestoreTargetNotEmptyError.exit_code
    told = "".join(again.stderr.split())  # the console wraps lines
    assert "isnotempty" in told and "不为空" in told


# -- kill -9 at several points of a backup ------------------------------------------------------

KILLER = """
import os, signal, sys
import genecommons.backup.service as s

point = sys.argv[1]


def die():
    os.kill(os.getpid(), signal.SIGKILL)


if point == "database":
    dump = s.database.dump
    s.database.dump = lambda *a, **k: (dump(*a, **k), die())
elif point == "keys":
    seal = s.bundle.seal
    s.bundle.seal = lambda *a, **k: (seal(*a, **k), die())[0]
elif point == "objects":
    copy, seen = s._copy, []

    def copy_then_die(source, target, root, role):
        if role == "object":
            seen.append(target)
            if len(seen) == 2:
                entry = copy(source, target, root, role)
                die()
        return copy(source, target, root, role)

    s._copy = copy_then_die
elif point == "manifest":
    rename = os.replace

    def replace(source, target):
        if str(target).endswith("MANIFEST.json"):
            die()
        return rename(source, target)

    os.replace = replace
from genecommons.cli import main

sys.argv = ["genecommons", "backup", *sys.argv[2:]]
main()
"""


@pytest.mark.slow
@pytest.mark.parametrize("point", ["database", "keys", "objects", "manifest", None])
def test_a_backup_killed_at_any_point_is_refused_by_restore(
    node: SimpleNamespace,
    passphrase_file: Path,
    tmp_path: Path,
    point: str | None,
) -> None:
    if node.settings.database_url and not node.settings.database_url.startswith("sqlite"):
        pytest.skip("kill -9 is the same on PostgreSQL (pg_dump writes aside too)")
    destination = tmp_path / "killed"
    env = {
        "GENECOMMONS_DATA_DIR": str(node.settings.data_dir),
        "GENECOMMONS_DATABASE_URL": node.settings.effective_database_url,
        "GENECOMMONS_ENVIRONMENT": "test",
        "PATH": "/usr/bin:/bin",
    }
    args = [str(destination), "--passphrase-file", str(passphrase_file), "--with-objects"]
    done = subprocess.run(
        [sys.executable, "-c", KILLER, str(point), *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    target = Settings(data_dir=tmp_path / "target", environment="test")
    if point is None:  # the same backup, not killed, is accepted: the refusals are not blanket
        assert done.returncode == 0, done.stderr
        service.restore(target, destination, actor=OPERATOR.id, passphrase=PASSPHRASE)
        return
    assert done.returncode == -9, done.stderr
    assert any(destination.iterdir())  # it had written something
    if point == "manifest":
        assert (destination / f".{MANIFEST_NAME}.part").exists()
    with pytest.raises(BackupInvalidError, match=f"no {MANIFEST_NAME}"):
        service.restore(target, destination, actor=OPERATOR.id, passphrase=PASSPHRASE)
    assert not target.data_dir.exists()  # nothing restored


# -- refusals -----------------------------------------------------------------------------------


@pytest.fixture
def made(node: SimpleNamespace, tmp_path: Path) -> Path:
    """A complete backup of the node, with its objects."""
    destination = tmp_path / "made"
    service.backup(
        node.settings,
        node.factory,
        destination,
        actor=OPERATOR.id,
        passphrase=PASSPHRASE,
        with_objects=True,
    )
    return destination


def _fresh(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "fresh", environment="test")


def test_a_wrong_passphrase_is_told_and_writes_nothing(made: Path, tmp_path: Path) -> None:
    target = _fresh(tmp_path)
    with pytest.raises(BackupPassphraseError) as caught:
        service.restore(target, made, actor=OPERATOR.id, passphrase=b"not the passphrase at all")
    assert "does not open this backup" in caught.value.message
    assert "口令" in caught.value.message_zh
    assert not target.data_dir.exists()


def test_a_non_empty_target_is_refused(made: Path, tmp_path: Path) -> None:
    target = _fresh(tmp_path)
    target.data_dir.mkdir()
    (target.data_dir / "something").write_text("mine")
    with pytest.raises(RestoreTargetNotEmptyError, match="is not empty"):
        service.restore(target, made, actor=OPERATOR.id, passphrase=PASSPHRASE)
    assert [p.name for p in target.data_dir.iterdir()] == ["something"]
    elsewhere = tmp_path / "db.sqlite3"
    with sqlite3.connect(elsewhere) as connection:
        connection.execute("CREATE TABLE mine (x)")
    with_db = Settings(
        data_dir=tmp_path / "fresh2", database_url=f"sqlite:///{elsewhere}", environment="test"
    )
    with pytest.raises(RestoreTargetNotEmptyError, match="already holds tables"):
        service.restore(with_db, made, actor=OPERATOR.id, passphrase=PASSPHRASE)


@pytest.mark.parametrize(
    "path", ["data/../../../etc/passwd", "/etc/passwd", "data/a/../../x", "../keys.c4gh", "data"]
)
def test_a_hostile_manifest_is_refused(made: Path, tmp_path: Path, path: str) -> None:
    document = json.loads((made / MANIFEST_NAME).read_bytes())
    document["files"].append({"path": path, "role": "data", "size": 4, "sha256": "0" * 64})
    (made / MANIFEST_NAME).write_text(json.dumps(document))
    target = _fresh(tmp_path)
    with pytest.raises(BackupInvalidError, match="not a plain path inside the backup"):
        service.restore(target, made, actor=OPERATOR.id, passphrase=PASSPHRASE)
    assert not target.data_dir.exists()


def test_a_hostile_object_key_is_refused(made: Path, tmp_path: Path) -> None:
    document = json.loads((made / MANIFEST_NAME).read_bytes())
    document["objects"][0]["key"] = "../../outside"
    (made / MANIFEST_NAME).write_text(json.dumps(document))
    with pytest.raises(BackupInvalidError, match="not a plain path"):
        service.restore(_fresh(tmp_path), made, actor=OPERATOR.id, passphrase=PASSPHRASE)


def test_a_damaged_file_or_an_altered_manifest_is_refused(made: Path, tmp_path: Path) -> None:
    manifest = made / MANIFEST_NAME
    original = manifest.read_bytes()
    document = json.loads(original)
    document["with_objects"] = False  # consistent, well formed, but not what was signed
    manifest.write_text(json.dumps(document))
    with pytest.raises(BackupInvalidError, match="fails its authentication"):
        service.restore(_fresh(tmp_path), made, actor=OPERATOR.id, passphrase=PASSPHRASE)
    manifest.write_bytes(original)
    copy = next(p for p in made.iterdir() if p.name.startswith("database."))
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 1
    copy.write_bytes(bytes(data))
    with pytest.raises(BackupInvalidError, match="is damaged"):
        service.restore(_fresh(tmp_path), made, actor=OPERATOR.id, passphrase=PASSPHRASE)


def test_a_backup_without_objects_needs_the_store_that_holds_them(
    node: SimpleNamespace, empty_target: Settings, tmp_path: Path
) -> None:
    service.backup(
        node.settings, node.factory, tmp_path / "thin", actor=OPERATOR.id, passphrase=PASSPHRASE
    )
    target = empty_target
    with pytest.raises(BackupInvalidError, match="lacks 4 of its 4 objects"):
        service.restore(target, tmp_path / "thin", actor=OPERATOR.id, passphrase=PASSPHRASE)
    assert not target.data_dir.exists()
    shared = target.model_copy(update={"archive_url": node.settings.effective_archive_url})
    restored = service.restore(shared, tmp_path / "thin", actor=OPERATOR.id, passphrase=PASSPHRASE)
    assert restored.objects == 0
    _check_restored(shared, node)


def test_a_database_password_reaches_pg_tools_through_a_private_file() -> None:
    from urllib.parse import parse_qs, urlsplit

    from genecommons.backup import database

    found = database.target("postgresql+psycopg://gc:s3:cr\\et@db.example/gc")
    assert found.password == "s3:cr\\et"
    with database._conninfo(found) as conninfo:
        assert "s3" not in conninfo
        passfile = Path(parse_qs(urlsplit(conninfo).query)["passfile"][0])
        assert passfile.read_text(encoding="utf-8") == "*:*:*:*:s3\\:cr\\\\et\n"
        assert passfile.stat().st_mode & 0o777 == 0o600
    assert not passfile.exists()
