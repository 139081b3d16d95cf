"""Bringing a data directory of an earlier version up to this one, beyond the schema (which
Alembic migrates): what it kept in a form this version no longer accepts is rebuilt."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from genecommons.archive.plaintext import archived_vcfs, decrypt_to
from genecommons.config import Settings
from genecommons.db import encrypt_in_place, node_database_key, sqlite_file
from genecommons.policy.models import Subject
from genecommons.variants import store_service
from genecommons.variants.service import build_dataset_store

logger = logging.getLogger(__name__)

RESEAL_DIR = "reseal"
"""The staging folder of the plaintext VCF a store is rebuilt from, removed after each rebuild
and at the start of the next run (a killed run's plaintext does not stay)."""


def encrypt_plaintext_database(
    settings: Settings, *, step: Callable[[str], None] | None = None
) -> Path | None:
    """The node's SQLite database, when an earlier release kept it in plaintext, encrypted in
    place (SQLCipher) under the key the node key store derives for it: its path when it was,
    None when there was nothing to do (encrypted already, no database yet, PostgreSQL). What a
    killed run left aside is removed; `step` as `db.encrypt_in_place`'s."""
    path = sqlite_file(settings.effective_database_url)
    if path is None:
        return None
    return path if encrypt_in_place(path, node_database_key(settings), step=step) else None


def restrict_modes(root: Path) -> int:
    """Take group and other permissions off every file and directory under `root` (what an
    earlier version wrote with its umask); how many it changed. Symbolic links are left as
    they are, and so is nothing outside `root`."""
    changed = 0
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        mode = path.stat().st_mode & 0o7777
        if mode & 0o077:
            try:
                path.chmod(mode & ~0o077)
            except OSError as error:  # not the node's own (another user's file): said, kept
                logger.warning("could not restrict %s: %s", path, error)
                continue
            changed += 1
    return changed


@dataclass(frozen=True, slots=True)
class Resealed:
    """What became of one plaintext variant store."""

    dataset: str
    source: str | None  # the archived VCF it was rebuilt from; None when it was not
    detail: str


def reseal_plaintext_stores(
    factory: sessionmaker[Session], settings: Settings, *, subject: Subject
) -> list[Resealed]:
    """Rebuild each plaintext variant store (of the format before stores were encrypted) as a
    sealed store bound to its dataset, from the one archived VCF the dataset releases; the
    plaintext store is removed once the new one is in place. A dataset with no archived VCF,
    or several, is left for `genecommons variants build` and said so."""
    findings = store_service.verify_stores(factory, settings, subject=subject, deep=False)
    scratch = settings.staging_dir / RESEAL_DIR
    shutil.rmtree(scratch, ignore_errors=True)  # a plaintext VCF an earlier, killed run left
    done = []
    for finding in findings:
        if finding.state != "legacy" or finding.dataset is None:
            continue
        with factory() as session:
            sources = archived_vcfs(session, finding.dataset)
        if len(sources) != 1:
            done.append(
                Resealed(
                    finding.dataset,
                    None,
                    f"{len(sources)} archived VCFs release it: rebuild it with "
                    "`genecommons variants build DATASET VCF`",
                )
            )
            continue
        scratch.mkdir(parents=True, mode=0o700, exist_ok=True)
        plain = scratch / f"{sources[0]}.vcf.gz"
        try:
            with factory() as session:
                decrypt_to(session, settings, sources[0], plain)
            summary = build_dataset_store(
                factory, settings, subject=subject, dataset=finding.dataset, vcf=plain
            )
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        done.append(Resealed(finding.dataset, sources[0], f"{summary.sites:,} sites, sealed"))
        logger.info("plaintext variant store of %s rebuilt sealed", finding.dataset)
    return done
