"""An archived object decrypted back to a file on this node, for the node's own rebuilding work
(a variant store rebuilt from its dataset's VCF): never for delivery, which re-encrypts."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from genecommons.archive.catalog_files import catalog_file
from genecommons.archive.crypt import BodyDecryptor, session_keys
from genecommons.archive.keys_and_store import archive_keys, object_store
from genecommons.archive.tables import archive_objects
from genecommons.catalog import reads as catalog
from genecommons.config import Settings
from genecommons.errors import ConflictError

READ_SIZE = 1 << 20


def archived_vcfs(session: Session, dataset: str) -> list[str]:
    """The accessions of the intact archived VCFs that `dataset` releases, in order."""
    files = catalog.FILES
    rows = session.execute(
        select(files.c.accession)
        .join(archive_objects, archive_objects.c.file_id == files.c.id)
        .where(archive_objects.c.format == "vcf", archive_objects.c.state == "archived")
        .order_by(files.c.accession)
    ).scalars()
    return [a for a in rows if dataset in catalog_file(session, a).datasets]


def decrypt_to(session: Session, settings: Settings, accession: str, destination: Path) -> None:
    """Write the plaintext of the archived object of `accession` to `destination` (created
    readable by the node's user only), checked against the SHA-256 the archive recorded;
    ConflictError (and nothing left) when it does not match."""
    row = session.execute(
        select(archive_objects.c.object_key, archive_objects.c.header, archive_objects.c.sha256)
        .join(catalog.FILES, catalog.FILES.c.id == archive_objects.c.file_id)
        .where(catalog.FILES.c.accession == accession)
    ).one()
    decryptor = BodyDecryptor(session_keys(row.header, keys=archive_keys(settings)))
    digest = hashlib.sha256()
    descriptor = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with (
            os.fdopen(descriptor, "wb") as out,
            object_store(settings).open(row.object_key) as body,
        ):
            while chunk := body.read(READ_SIZE):
                plain = decryptor.update(chunk)
                digest.update(plain)
                out.write(plain)
            plain = decryptor.finish()
            digest.update(plain)
            out.write(plain)
        if digest.hexdigest() != row.sha256:
            raise ConflictError(
                f"{accession} no longer decrypts to the bytes that were archived; run "
                "`genecommons archive verify`.",
                message_zh=f"{accession} 解密后与归档时的内容不符；请运行 `genecommons archive verify`。",
            )
    except BaseException:
        destination.unlink(missing_ok=True)
        raise
