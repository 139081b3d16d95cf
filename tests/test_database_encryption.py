"""The node's SQLite database at rest: encrypted with SQLCipher under a key derived from the node
key, refused by the standard library's sqlite3, one clear error for a wrong or missing key or an
earlier release's plaintext file, and that plaintext file encrypted in place."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlcipher3.dbapi2 as sqlcipher
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import Engine

from genecommons.catalog.tables import ENTITY_TABLES
from genecommons.config import Settings
from genecommons.db import (
    Base,
    DatabaseKey,
    encrypt_in_place,
    is_plaintext,
    make_engine,
    node_database_key,
    node_engine,
    sqlite_file,
)
from genecommons.errors import BusyError, DatabaseKeyError
from genecommons.secrets import DATABASE_KEY_PURPOSE, database_key, node_keys


def _node(tmp_path: Path, name: str = "node") -> Settings:
    return Settings(data_dir=tmp_path / name, environment="test")


def _stdlib_refuses(path: Path) -> bool:
    """Whether the standard library's sqlite3 refuses `path` as "file is not a database"."""
    with contextlib.closing(sqlite3.connect(path)) as plain:
        try:
            plain.execute("SELECT name FROM sqlite_master").fetchall()
        except sqlite3.DatabaseError as error:
            return error.sqlite_errorcode == sqlite3.SQLITE_NOTADB
    return False


def _submitted(settings: Settings, make_bundle: Any) -> Engine:
    from genecommons.catalog import service as catalog
    from genecommons.db import make_session_factory
    from genecommons.policy.models import Subject

    engine = node_engine(settings)
    Base.metadata.create_all(engine)
    catalog.submit(make_session_factory(engine), make_bundle(), subject=Subject.operator("t"))
    return engine


def test_the_node_database_is_encrypted_with_its_derived_key(
    tmp_path: Path, make_bundle: Any
) -> None:
    settings = _node(tmp_path)
    engine = _submitted(settings, make_bundle)
    path = sqlite_file(settings.effective_database_url)
    assert path is not None and path.exists()
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA cipher_version").scalar()  # SQLCipher
        individuals = connection.execute(
            select(func.count()).select_from(ENTITY_TABLES["individuals"])
        ).scalar_one()
    assert individuals == 3
    # the WAL and the file: no page in the clear, whichever holds the submission now
    for copy in path.parent.glob(path.name + "*"):
        assert b"P1-S1" not in copy.read_bytes() and b"Hearing loss" not in copy.read_bytes()
    engine.dispose()
    assert not is_plaintext(path) and _stdlib_refuses(path)
    # the key is the node key's derivation for this purpose, given raw: SQLCipher opens the
    # file with it and with nothing else
    raw = database_key(node_keys(settings))
    assert raw == node_keys(settings).derive(DATABASE_KEY_PURPOSE) and len(raw) == 32
    with contextlib.closing(sqlcipher.connect(str(path))) as raw_open:
        raw_open.execute(f"PRAGMA key = \"x'{raw.hex()}'\"")
        assert raw_open.execute("SELECT count(*) FROM individuals").fetchone() == (3,)


def test_a_database_under_another_node_key_is_one_clear_error(
    tmp_path: Path, make_bundle: Any
) -> None:
    settings = _node(tmp_path)
    _submitted(settings, make_bundle).dispose()
    other = _node(tmp_path, "other")
    node_keys(other, create=True)  # another node's key: its derivation does not open the file
    intruder = other.model_copy(update={"database_url": settings.effective_database_url})
    engine = node_engine(intruder)
    with pytest.raises(DatabaseKeyError) as caught, engine.connect():
        pass
    error = caught.value
    path = str(sqlite_file(settings.effective_database_url))
    assert path in error.message and path in error.message_zh
    assert "Restore keys/" in error.message and "keys/" in error.message_zh
    assert str(other.node_key_file) in error.message  # where the key in use came from
    assert error.exit_code == 6 and error.code == "database_key"


def test_a_wrong_or_missing_key_on_the_command_line_is_one_message_not_a_traceback(
    tmp_path: Path, genecommons_cli: Callable[..., Any]
) -> None:
    settings = _node(tmp_path)
    env = {
        **os.environ,
        "GENECOMMONS_DATA_DIR": str(settings.data_dir),
        "GENECOMMONS_ENVIRONMENT": "test",
    }
    env.pop("GENECOMMONS_DATABASE_URL", None)
    genecommons_cli(env, "init")
    keys = settings.key_dir
    shutil.move(keys / "node.key", tmp_path / "node.key")
    node_keys(settings, create=True)  # a new node key in place of the one that encrypted it

    def refused(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "genecommons", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 6, done.stdout + done.stderr
        assert "Traceback" not in done.stderr, done.stderr
        return done.stderr

    wrong = refused("studies", "list")
    assert "does not open with its key" in wrong and "无法用其密钥打开" in wrong
    assert str(settings.data_dir / "genecommons.sqlite3") in wrong
    # missing: init must not make a new key over it (a new key would not open it either)
    (keys / "node.key").unlink()
    missing = refused("init")
    assert "node key is missing" in missing and "节点密钥缺失" in missing
    assert not (keys / "node.key").exists()
    shutil.move(tmp_path / "node.key", keys / "node.key")  # restored: it opens again
    genecommons_cli(env, "studies", "list")


def test_an_earlier_plaintext_database_is_named_as_such_and_encrypted_in_place(
    tmp_path: Path,
) -> None:
    settings = _node(tmp_path)
    settings.data_dir.mkdir(parents=True)
    path = settings.data_dir / "genecommons.sqlite3"
    plain = create_engine(f"sqlite:///{path}")  # the standard library's sqlite3, as before
    with plain.begin() as connection:
        connection.exec_driver_sql("PRAGMA journal_mode=WAL")
        connection.exec_driver_sql("CREATE TABLE individuals (id INTEGER PRIMARY KEY, alias)")
        connection.exec_driver_sql("INSERT INTO individuals (alias) VALUES ('DEMO00042')")
        connection.exec_driver_sql("PRAGMA user_version = 7")
    plain.dispose()
    with pytest.raises(DatabaseKeyError) as caught, node_engine(settings).connect():
        pass
    assert "plaintext" in caught.value.message and "genecommons init" in caught.value.message
    assert "genecommons init" in caught.value.message_zh

    node_keys(settings, create=True)
    steps: list[str] = []
    assert encrypt_in_place(path, node_database_key(settings), step=steps.append)
    assert steps == ["locked", "exported", "synced", "replaced"]
    assert sorted(p.name for p in settings.data_dir.iterdir() if p.is_file()) == [path.name]
    assert not is_plaintext(path) and _stdlib_refuses(path)
    assert b"DEMO00042" not in path.read_bytes()
    engine = node_engine(settings)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT alias FROM individuals")).all() == [("DEMO00042",)]
        assert connection.exec_driver_sql("PRAGMA user_version").scalar() == 7
    engine.dispose()
    assert not encrypt_in_place(path, node_database_key(settings))  # nothing left to do


def test_a_database_in_use_is_not_encrypted_under_its_users(tmp_path: Path) -> None:
    path = tmp_path / "busy.sqlite3"
    with contextlib.closing(sqlite3.connect(path)) as plain:
        plain.execute("PRAGMA journal_mode=WAL")
        plain.execute("CREATE TABLE t (x)")
        plain.commit()
    holder = subprocess.Popen(  # another process (a server of the earlier release) has it open
        [
            sys.executable,
            "-c",
            "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
            "c.execute('SELECT * FROM t').fetchall(); print('open', flush=True); sys.stdin.read()",
            str(path),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        key = DatabaseKey(os.urandom(32), "a test's own key")
        with pytest.raises(BusyError) as caught:
            encrypt_in_place(path, key)
        assert "Stop the node's server" in caught.value.message and caught.value.message_zh
        assert is_plaintext(path)  # untouched
    finally:
        assert holder.stdin is not None and holder.stdout is not None
        holder.stdin.close()
        holder.wait(30)
        holder.stdout.close()  # or its pipe is left for the garbage collector (ResourceWarning)
    assert encrypt_in_place(path, key) and not is_plaintext(path)


def test_an_sqlite_file_needs_a_key_and_an_in_memory_database_none() -> None:
    with pytest.raises(ValueError, match="SQLCipher key"):
        make_engine("sqlite:////tmp/never-made.sqlite3")
    engine = make_engine("sqlite://")  # never on disk: nothing to encrypt
    with engine.connect() as connection:
        assert connection.execute(text("SELECT 1")).scalar() == 1
    engine.dispose()
    assert sqlite_file("sqlite://") is None and sqlite_file("sqlite:///:memory:") is None
    assert sqlite_file("postgresql+psycopg://u@h/db") is None
    assert "x'" not in repr(DatabaseKey(bytes(32), "zeros"))  # never printed
