"""The archive's keys and object store as the node's settings configure them (its Crypt4GH
key pair, the passphrase that unlocks it, the object store), and the recipients' public keys
that deliveries are encrypted for."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from genecommons import clock
from genecommons.archive.keys import KeyPair, ensure_archive_keys, load_secret_key, parse_public_key
from genecommons.archive.store import ObjectStore, open_store
from genecommons.archive.tables import recipient_keys
from genecommons.config import Settings
from genecommons.db import write_transaction
from genecommons.errors import ConfigurationError
from genecommons.ledger.events import EventTag, record_event
from genecommons.policy.decision import require
from genecommons.policy.models import Action, Resource, Subject
from genecommons.secrets import (
    NodeKeys,
    create_sealed_file,
    node_keys,
    read_sealed_file,
    seal_file_in_place,
)

ARCHIVE_PASSPHRASE_PURPOSE = "archive-key-passphrase"  # noqa: S105 - a label, not a secret


def archive_passphrase(settings: Settings, *, create: bool = False) -> str:
    """The passphrase of the archive's secret key: from the environment, else from the secret
    file; outside production a file in the key directory is made on `create`, sealed by the node
    key store (a file an operator wrote in plaintext is read as is)."""
    if settings.archive_key_passphrase is not None:
        return settings.archive_key_passphrase.get_secret_value()
    path = settings.archive_key_passphrase_file or settings.archive_key_dir / "passphrase"
    if not path.exists() and create and settings.environment != "production":
        create_sealed_file(
            path,
            node_keys(settings, create=True),
            purpose=ARCHIVE_PASSPHRASE_PURPOSE,
            make=lambda: secrets.token_urlsafe(32).encode("ascii"),
        )
    if not path.exists():
        raise ConfigurationError(
            "The archive key passphrase is not configured: set GENECOMMONS_ARCHIVE_KEY_PASSPHRASE "
            f"or GENECOMMONS_ARCHIVE_KEY_PASSPHRASE_FILE (no file at {path}).",
            message_zh="未配置归档密钥口令：请设置 GENECOMMONS_ARCHIVE_KEY_PASSPHRASE 或 "
            "GENECOMMONS_ARCHIVE_KEY_PASSPHRASE_FILE。",
        )
    content = read_sealed_file(
        path, lambda: node_keys(settings), purpose=ARCHIVE_PASSPHRASE_PURPOSE
    )
    passphrase = content.decode("utf-8", "replace").strip()
    if not passphrase:
        raise ConfigurationError(
            f"The archive key passphrase file {path} is empty.",
            message_zh=f"归档密钥口令文件 {path} 为空。",
        )
    return passphrase


def seal_archive_passphrase(settings: Settings, keys: NodeKeys) -> bool:
    """Seal the passphrase file an earlier version made in plaintext outside production (the
    passphrase unchanged); whether there was one to seal. A file the operator configured
    (GENECOMMONS_ARCHIVE_KEY_PASSPHRASE_FILE), or any file in production, is theirs: left as
    it is."""
    if settings.archive_key_passphrase_file is not None or settings.environment == "production":
        return False
    return seal_file_in_place(
        settings.archive_key_dir / "passphrase", keys, purpose=ARCHIVE_PASSPHRASE_PURPOSE
    )


def archive_keys(settings: Settings, *, create: bool = False) -> KeyPair:
    """The archive's Crypt4GH key pair (made on `create` when there is none)."""
    passphrase = archive_passphrase(settings, create=create)
    if create:
        return ensure_archive_keys(settings.archive_key_dir, passphrase=passphrase)
    return _load_keys(str(settings.archive_key_dir / "archive.sec"), passphrase)


def archive_public_key(settings: Settings) -> bytes:
    """The archive's Crypt4GH public key; needs no passphrase."""
    path = settings.archive_key_dir / "archive.pub"
    try:
        return parse_public_key(path.read_bytes())
    except OSError as error:
        raise ConfigurationError(
            f"The archive has no key pair yet (no readable file at {path}): run `genecommons init`.",
            message_zh=f"归档尚无密钥对（{path} 不可读）：请运行 `genecommons init`。",
        ) from error


@lru_cache(maxsize=8)
def _load_keys(path: str, passphrase: str) -> KeyPair:
    # unlocking the key costs a scrypt derivation; do it once per process
    return load_secret_key(Path(path), passphrase=passphrase)


def object_store(settings: Settings) -> ObjectStore:
    """The object store the settings name."""
    options: dict[str, Any] | None = None
    url = settings.effective_archive_url
    if url.startswith("s3://"):
        options = {"client_kwargs": {"region_name": settings.archive_s3_region}}
        if settings.archive_s3_endpoint_url:
            options["client_kwargs"]["endpoint_url"] = settings.archive_s3_endpoint_url
        if settings.archive_s3_access_key and settings.archive_s3_secret_key:
            options["key"] = settings.archive_s3_access_key.get_secret_value()
            options["secret"] = settings.archive_s3_secret_key.get_secret_value()
    return _store(url, tuple(sorted(_flatten(options or {}))))


def _flatten(options: dict[str, Any], prefix: str = "") -> Iterable[tuple[str, Any]]:
    for key, value in options.items():
        if isinstance(value, dict):
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


@lru_cache(maxsize=8)
def _store(url: str, flat: tuple[tuple[str, Any], ...]) -> ObjectStore:
    options: dict[str, Any] = {}
    for dotted, value in flat:
        target = options
        *parents, leaf = dotted.split(".")
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = value
    return open_store(url, storage_options=options or None)


# -- recipients' keys -----------------------------------------------------------------------------


def register_public_key(
    factory: sessionmaker[Session], *, subject: Subject, owner: str, public_key: bytes
) -> None:
    """Record the Crypt4GH public key that deliveries to `owner` are encrypted for."""
    require(subject, Action.REGISTER_KEY, Resource("key", owner=owner))
    now = clock.now()
    with write_transaction(factory) as session:
        exists = session.execute(
            select(recipient_keys.c.subject_id).where(recipient_keys.c.subject_id == owner)
        ).first()
        values = {"public_key": public_key, "registered_at": now}
        if exists:
            session.execute(
                update(recipient_keys).where(recipient_keys.c.subject_id == owner).values(values)
            )
        else:
            session.execute(insert(recipient_keys).values(subject_id=owner, **values))
        record_event(
            session,
            tag=EventTag.KEY_REGISTERED,
            actor=subject.id,
            subject=owner,
            details={"key_sha256": hashlib.sha256(public_key).hexdigest()},
        )
