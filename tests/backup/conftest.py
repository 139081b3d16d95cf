"""Fixtures of the backup tests: a node with archived files, and an empty environment to
restore it into (a fresh data directory, and a fresh PostgreSQL database when the node's is
PostgreSQL)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import create_engine, make_url, text

from genecommons.archive import ingestion
from genecommons.audit import service as audit_service
from genecommons.catalog import service as catalog_service
from genecommons.config import Settings
from genecommons.policy.models import Subject

OPERATOR = Subject.operator("tester")
PASSPHRASE = b"correct horse battery staple"


@pytest.fixture
def node(
    archive_settings: Settings, factory: Any, tmp_path: Path, datafiles: SimpleNamespace
) -> SimpleNamespace:
    """A node with a submitted study whose VCF and BAM are archived (two files, four objects),
    and every key `genecommons init` makes."""
    audit_service.signing_key(archive_settings, create=True)
    folder = tmp_path / "bundle"
    folder.mkdir()
    vcf = datafiles.vcf(folder / "calls.vcf.gz", records=400)
    bam = datafiles.bam(folder / "P1.bam", reads=4000)
    datafiles.write(folder, datafiles.sheets(folder, vcf=vcf, bam=bam))
    result = catalog_service.submit(
        factory,
        folder,
        subject=OPERATOR,
        data_files=ingestion.BundleArchiver(archive_settings, OPERATOR),
    )
    return SimpleNamespace(
        settings=archive_settings,
        factory=factory,
        archived=list(result.archived),
        files={"vcf": vcf, "bam": bam},
    )


@pytest.fixture
def passphrase_file(tmp_path: Path) -> Path:
    """A file holding the backup passphrase."""
    path = tmp_path / "backup-passphrase"
    path.write_bytes(PASSPHRASE + b"\n")
    path.chmod(0o600)
    return path


@pytest.fixture
def empty_target(settings: Settings, tmp_path: Path) -> Iterator[Settings]:
    """Settings of an empty environment like the node's: a new data directory and, on
    PostgreSQL, a new database with a schema of the node's name (dropped afterwards)."""
    url = make_url(settings.effective_database_url)
    if url.get_backend_name() == "sqlite":
        yield Settings(data_dir=tmp_path / "restored", environment="test")
        return
    name = f"gc_restore_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url.set(query={}), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        target = url.set(database=name).render_as_string(hide_password=False)
        yield Settings(data_dir=tmp_path / "restored", database_url=target, environment="test")
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()
