"""Secrets at rest: what the node keeps (one-time-password secrets, the visa and tree-head
signing keys, the fingerprint secret, the Beacon's threshold key, the development archive
passphrase) is sealed or encrypted under the node key store, and sent mail leaves the outbox.
A data directory of an earlier version, all in plaintext, keeps working as it is, and
`genecommons init` converts it with every value unchanged."""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyotp
import pytest
from alembic import command
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import create_engine, insert, select, update
from sqlalchemy.engine import Engine

from genecommons.access import passport_service, second_factor, service
from genecommons.access.keys import FileKeyStore
from genecommons.access.tables import outbox, users
from genecommons.archive import keys_and_store
from genecommons.archive.keys import ensure_archive_keys
from genecommons.audit import service as audit_service
from genecommons.audit.sth import save_private_key
from genecommons.config import Settings
from genecommons.db import is_plaintext, make_engine, make_session_factory, node_engine, sqlite_file
from genecommons.errors import ConfigurationError
from genecommons.fingerprint.secret import fingerprint_secret
from genecommons.migrate import alembic_config
from genecommons.policy.models import Subject
from genecommons.privacy import beacon_rules
from genecommons.secrets import SEALED_FILE_HEADER, SealedValueError, node_keys

OPERATOR = Subject.operator("tester")
PASSWORD = "a long passphrase"


def _env(settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "GENECOMMONS_DATA_DIR": str(settings.data_dir),
        "GENECOMMONS_DATABASE_URL": settings.effective_database_url,
        "GENECOMMONS_ENVIRONMENT": "test",
    }


def _earlier_database(url: str) -> Engine:
    """The database as an earlier version kept it, at the current schema: an SQLite file in
    plaintext (opened by the standard library's sqlite3), or PostgreSQL."""
    engine = create_engine(url) if url.startswith("sqlite") else make_engine(url)
    with engine.begin() as connection:
        config = alembic_config(url)
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    return engine


def _private(path: Path, data: bytes) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(0o600)


def _legacy_node(settings: Settings, factory: Any) -> dict[str, Any]:
    """A data directory and database as an earlier version left them: every secret in
    plaintext, a TOTP secret in its column, sent mail kept in the outbox."""
    old: dict[str, Any] = {
        "fingerprint": secrets.token_bytes(32),
        "beacon": secrets.token_bytes(32),
        "archive": secrets.token_urlsafe(32),
        "totp": pyotp.random_base32(),
    }
    _private(settings.fingerprint_key_file, old["fingerprint"])
    _private(settings.beacon_key_file, old["beacon"])
    _private(settings.archive_key_dir / "passphrase", old["archive"].encode())
    old["archive_public"] = ensure_archive_keys(
        settings.archive_key_dir, passphrase=old["archive"]
    ).public
    tree_key = Ed25519PrivateKey.generate()
    save_private_key(tree_key, path=settings.audit_key_file, passphrase=None)
    old["tree_public"] = tree_key.public_key().public_bytes_raw()
    old["visa_kid"] = FileKeyStore(settings.visa_key_dir).create_first_key()  # unencrypted PEM
    service.add_user(
        factory,
        email="boss@example.org",
        roles=["admin"],
        institution=None,
        actor=OPERATOR,
        password=PASSWORD,
    )
    with factory() as session, session.begin():
        session.execute(
            update(users)
            .where(users.c.email == "boss@example.org")
            .values(totp_secret=old["totp"], totp_sealed=None)
        )
        now = datetime.now(UTC)
        for sent in (now, None):
            session.execute(
                insert(outbox).values(
                    recipient="zhang@example.org",
                    subject="Verify your e-mail address",
                    body="Your code is:\n\n    OLD-CODE-123\n",
                    created_at=now,
                    sent_at=sent,
                )
            )
    return old


def _values(settings: Settings) -> dict[str, Any]:
    """The secrets as the node reads them now."""
    keys_and_store._load_keys.cache_clear()
    return {
        "fingerprint": fingerprint_secret(settings),
        "beacon": beacon_rules.beacon_key(settings),
        "archive": keys_and_store.archive_passphrase(settings),
        "archive_public": keys_and_store.archive_keys(settings).public,
        "tree_public": audit_service.signing_key(settings).public_key().public_bytes_raw(),
        "visa_kid": passport_service.key_store(settings).signer().kid,
    }


def _signs_in(factory: Any, settings: Settings, totp: str, address: str) -> bool:
    issued = service.sign_in(
        factory,
        settings,
        email="boss@example.org",
        password=PASSWORD,
        address=address,
        otp=pyotp.TOTP(totp).now(),
    )
    return service.authenticate(factory, issued.token).id == "user:boss@example.org"


def test_an_earlier_data_directory_keeps_working_and_init_protects_it(
    tmp_path: Path, database_url: str, genecommons_cli: Callable[..., Any]
) -> None:
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url, environment="test")
    engine = _earlier_database(database_url)
    factory = make_session_factory(engine)
    try:
        old = _legacy_node(settings, factory)
        # read as it is, with no node key yet
        assert not settings.node_key_file.exists()
        assert _values(settings) == {k: v for k, v in old.items() if k != "totp"}
        assert _signs_in(factory, settings, old["totp"], "10.0.0.1")
        assert not settings.node_key_file.exists()
        engine.dispose()  # init runs with the node stopped

        converted = genecommons_cli(_env(settings), "init").stdout
        assert "Protected at rest" in converted
        path = sqlite_file(database_url)
        if path is not None:  # the database itself, encrypted in place under the node key
            assert "the database" in converted and not is_plaintext(path)
        engine = node_engine(settings)
        factory = make_session_factory(engine)
        # now nothing of it is in plaintext, at rest
        for path, value in (
            (settings.fingerprint_key_file, old["fingerprint"]),
            (settings.beacon_key_file, old["beacon"]),
            (settings.archive_key_dir / "passphrase", old["archive"].encode()),
        ):
            content = path.read_bytes()
            assert content.startswith(SEALED_FILE_HEADER) and value not in content, path
        for pem in (settings.audit_key_file, *settings.visa_key_dir.glob("*.key.pem")):
            assert pem.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----"), pem
            with pytest.raises(TypeError):  # no longer readable without its passphrase
                serialization.load_pem_private_key(pem.read_bytes(), password=None)
        with factory() as session:
            row = session.execute(
                select(users.c.totp_secret, users.c.totp_sealed).where(
                    users.c.email == "boss@example.org"
                )
            ).one()
            mail = session.execute(select(outbox.c.body, outbox.c.sent_at)).all()
        assert row.totp_secret is None and old["totp"].encode() not in bytes(row.totp_sealed)
        assert [m.sent_at for m in mail] == [None]  # the sent one is gone, the waiting one kept
        # and every value is the same: past marks, Beacon windows, signatures, codes hold
        assert _values(settings) == {k: v for k, v in old.items() if k != "totp"}
        assert _signs_in(factory, settings, old["totp"], "10.0.0.2")

        again = genecommons_cli(_env(settings), "init").stdout
        assert "Protected at rest" not in again  # nothing left to convert

        # without the node key, the sealed secrets cannot be read: a clear error, not a guess
        shutil.move(settings.node_key_file, tmp_path / "node.key.bak")
        with pytest.raises(ConfigurationError) as missing:
            fingerprint_secret(settings)
        assert "genecommons init" in missing.value.message and missing.value.message_zh
    finally:
        engine.dispose()


def test_a_new_node_keeps_no_secret_in_plaintext(
    tmp_path: Path, database_url: str, genecommons_cli: Callable[..., Any]
) -> None:
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url, environment="test")
    genecommons_cli(_env(settings), "init")
    values = _values(settings)
    for path, value in (
        (settings.fingerprint_key_file, values["fingerprint"]),
        (settings.beacon_key_file, values["beacon"]),
        (settings.archive_key_dir / "passphrase", values["archive"].encode()),
    ):
        assert path.read_bytes().startswith(SEALED_FILE_HEADER) and value not in path.read_bytes()
    pems = [settings.audit_key_file, *settings.visa_key_dir.glob("*.key.pem")]
    assert len(pems) == 2
    for pem in pems:
        assert pem.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----"), pem


def test_a_totp_secret_is_sealed_to_its_account(factory: Any, settings: Settings) -> None:
    for email in ("boss@example.org", "dac@example.org"):
        service.add_user(
            factory,
            email=email,
            roles=["admin"],
            institution=None,
            actor=OPERATOR,
            password=PASSWORD,
        )
    secret, _ = second_factor.enrol(factory, settings, email="boss@example.org", actor=OPERATOR)
    other, _ = second_factor.enrol(factory, settings, email="dac@example.org", actor=OPERATOR)
    with factory() as session:
        rows = {
            r.email: r
            for r in session.execute(
                select(users.c.email, users.c.totp_secret, users.c.totp_sealed)
            )
        }
    boss = rows["boss@example.org"]
    assert boss.totp_secret is None and secret.encode() not in bytes(boss.totp_sealed)
    assert _signs_in(factory, settings, secret, "10.0.0.3")
    # a sealed secret copied onto another account's row opens for nobody
    with factory() as session, session.begin():
        session.execute(
            update(users)
            .where(users.c.email == "dac@example.org")
            .values(totp_sealed=boss.totp_sealed)
        )
    with pytest.raises(SealedValueError):
        service.sign_in(
            factory,
            settings,
            email="dac@example.org",
            password=PASSWORD,
            address="10.0.0.4",
            otp=pyotp.TOTP(secret).now(),
        )
    assert other != secret
    assert node_keys(settings).key_id  # the key that sealed them
