"""SQLCipher: the key of an SQLite file, opening it, encrypting an earlier plaintext one."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlcipher3.dbapi2 as sqlcipher
from sqlalchemy.engine import make_url

from genecommons.config import Settings
from genecommons.db.locking import RETRY_AFTER_SECONDS, _sqlite_busy
from genecommons.errors import BusyError, DatabaseKeyError
from genecommons.secrets import database_key, node_keys

PLAINTEXT_HEADER = b"SQLite format 3\x00"  # the first bytes of every plaintext SQLite file


@dataclass(frozen=True, slots=True)
class DatabaseKey:
    """The SQLCipher key of an SQLite database file: 256 raw bits, given to SQLCipher as a raw
    key (so that no PBKDF2 runs when a connection opens), and where it comes from, for
    messages."""

    raw: bytes = field(repr=False)
    source: str

    def __post_init__(self) -> None:
        if len(self.raw) != 32:
            raise ValueError("an SQLCipher raw key is 32 bytes")

    @property
    def literal(self) -> str:
        """The key as SQLCipher reads a raw key in `PRAGMA key` and `ATTACH ... KEY`."""
        return f"\"x'{self.raw.hex()}'\""


def sqlite_file(url: str) -> Path | None:
    """The file an SQLite URL names; None for an in-memory database or another backend."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database
    if not database or database == ":memory:" or parsed.query.get("mode") == "memory":
        return None
    return Path(database)


def is_plaintext(path: Path) -> bool:
    """Whether `path` is a plaintext (unencrypted) SQLite database file."""
    try:
        with path.open("rb") as handle:
            return handle.read(len(PLAINTEXT_HEADER)) == PLAINTEXT_HEADER
    except FileNotFoundError:
        return False


def node_database_key(settings: Settings) -> DatabaseKey:
    """The key of the node's SQLite database, derived from the node key store (which is made
    here, outside production, for a node that has neither a database nor a key yet)."""
    path = sqlite_file(settings.effective_database_url)
    fresh = path is None or not path.exists() or path.stat().st_size == 0
    check_node_key_present(settings)
    keys = node_keys(settings, create=fresh and settings.environment != "production")
    return DatabaseKey(
        database_key(keys), f"derived from the node key {settings.node_key_file}, id {keys.key_id}"
    )


def check_node_key_present(settings: Settings) -> None:
    """Refuse an encrypted SQLite database whose node key is missing (a new node key would not
    open it: `keys/` must be restored instead)."""
    path = sqlite_file(settings.effective_database_url)
    if path is None or settings.node_key_file.exists() or not path.exists():
        return
    if path.stat().st_size == 0 or is_plaintext(path):
        return
    raise DatabaseKeyError(
        f"The database {path} is encrypted with a key derived from the node key, but the node "
        f"key is missing (no file at {settings.node_key_file}). Restore keys/ and the node key "
        "passphrase from the backup that goes with this database, then retry; a new node key "
        "would not open it.",
        message_zh=f"数据库 {path} 使用由节点密钥派生的密钥加密，但节点密钥缺失（{settings.node_key_file} "
        "不存在）。请从与该数据库配套的备份恢复 keys/ 及节点密钥口令后重试；新的节点密钥无法打开它。",
        details={"database": str(path), "node_key": str(settings.node_key_file)},
    )


def database_key_error(path: Path, key: DatabaseKey) -> DatabaseKeyError:
    """The error of an SQLite file that does not open with `key`: a plaintext one of an
    earlier release, or one encrypted with another key (or damaged)."""
    if is_plaintext(path):
        return plaintext_database_error(path)
    return DatabaseKeyError(
        f"The database {path} does not open with its key ({key.source}): the node key or its "
        "passphrase is not the one this database was encrypted with, or the file is damaged. "
        "Restore keys/ and the node key passphrase from the backup that goes with this "
        "database (or the database from the backup that goes with these keys), then retry.",
        message_zh=f"数据库 {path} 无法用其密钥打开（{key.source}）：节点密钥或其口令不是加密该数据库时"
        "所用的，或文件已损坏。请从与该数据库配套的备份恢复 keys/ 及节点密钥口令（或从与这些密钥配套的"
        "备份恢复数据库）后重试。",
        details={"database": str(path)},
    )


def plaintext_database_error(path: Path) -> DatabaseKeyError:
    """The error of an earlier release's plaintext SQLite database, which `init` encrypts."""
    return DatabaseKeyError(
        f"The database {path} is a plaintext SQLite file (an earlier release wrote it "
        "unencrypted). Stop the node's server and run `genecommons init` once: it encrypts "
        "the database in place with the node key; then start the node again.",
        message_zh=f"数据库 {path} 是未加密的 SQLite 文件（由早期版本写入）。请停止节点服务后运行一次 "
        "`genecommons init`：它会用节点密钥就地加密该数据库；然后重新启动节点。",
        details={"database": str(path)},
    )


def connect_encrypted(path: Path, key: DatabaseKey, **options: Any) -> Any:
    """A DB-API connection to the SQLCipher database `path` under `key` (made when absent),
    checked to open: DatabaseKeyError when it does not. `options` go to the driver's
    `connect` (`database`: what to open when not `path` itself, e.g. a URI)."""
    options = {"database": str(path), "check_same_thread": False, **options}
    connection = sqlcipher.connect(**options)
    try:
        connection.execute("PRAGMA cipher_log_level = NONE")  # a wrong key is said once, here
        connection.execute(f"PRAGMA key = {key.literal}")
        connection.execute("PRAGMA temp_store = MEMORY")  # sorts and temporary tables: no files
        connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlcipher.DatabaseError as error:
        connection.close()
        if getattr(error, "sqlite_errorcode", None) == sqlcipher.SQLITE_NOTADB:
            raise database_key_error(path, key) from None
        raise
    return connection


class _KeyedConnect:
    """The `do_connect` hook of an engine on an SQLCipher file: each connection is keyed before
    anything else reads the file (its key asked for once, at the first connection)."""

    def __init__(self, path: Path, key: DatabaseKey | Callable[[], DatabaseKey]) -> None:
        self.path = path
        self._source = key
        self._key = key if isinstance(key, DatabaseKey) else None
        self._lock = threading.Lock()

    def key(self) -> DatabaseKey:
        if self._key is None:
            with self._lock:
                if self._key is None:
                    source = self._source
                    self._key = source if isinstance(source, DatabaseKey) else source()
        return self._key

    def __call__(
        self, _dialect: Any, _record: Any, cargs: Sequence[Any], cparams: dict[str, Any]
    ) -> Any:
        options = dict(cparams)
        if cargs:
            options["database"] = cargs[0]
        return connect_encrypted(self.path, self.key(), **options)


ENCRYPTING = ".encrypting"
"""The suffix of the encrypted copy `encrypt_in_place` writes beside a plaintext database."""


def encrypt_in_place(
    path: Path, key: DatabaseKey, *, step: Callable[[str], None] | None = None
) -> bool:
    """Encrypt the plaintext SQLite database `path` (an earlier release's) with `key`, keeping
    its name: exported into a new file beside it (`sqlcipher_export`), checked, synced, renamed
    over it. False when there is nothing to encrypt. A run killed at any point leaves either
    the plaintext database, whole (converted by the next run), or the encrypted one; the next
    run removes what a killed one left aside. The database must not be in use (the node's
    server stopped): it is locked for the whole conversion. `step(name)` is told of each step
    done ("locked", "exported", "synced", "replaced")."""
    say = step or (lambda _: None)
    aside = path.with_name(f".{path.name}{ENCRYPTING}")
    for leftover in (aside, *(aside.with_name(aside.name + s) for s in ("-journal", "-wal"))):
        leftover.unlink(missing_ok=True)
    if not is_plaintext(path):
        return False
    source = sqlcipher.connect(str(path), isolation_level=None, check_same_thread=False)
    try:
        source.execute("PRAGMA busy_timeout = 0")
        source.execute("PRAGMA temp_store = MEMORY")
        # the lock, once taken, is held until the connection closes, after the rename: nobody
        # reads or writes the plaintext database meanwhile
        source.execute("PRAGMA locking_mode = EXCLUSIVE")
        try:
            # a WAL is folded into the file and removed (refused while another connection
            # has the database open)
            mode = source.execute("PRAGMA journal_mode = DELETE").fetchone()[0]
            source.execute("BEGIN EXCLUSIVE")
            source.execute("COMMIT")
        except sqlcipher.OperationalError as error:
            if not _sqlite_busy(error):
                raise
            raise _in_use(path) from None
        if str(mode).lower() != "delete":
            raise _in_use(path)
        source.execute("PRAGMA journal_mode = MEMORY")  # no more journal file: nothing written
        say("locked")
        version = int(source.execute("PRAGMA user_version").fetchone()[0])
        source.execute(f"ATTACH DATABASE ? AS encrypted KEY {key.literal}", (str(aside),))
        source.execute("SELECT sqlcipher_export('encrypted')")
        source.execute(f"PRAGMA encrypted.user_version = {version}")
        _check_copied(source, path)
        source.execute("DETACH DATABASE encrypted")
        say("exported")
        aside.chmod(0o600)
        _fsync(aside)
        say("synced")
        # the plaintext database's own side files (no WAL is left, no transaction is open):
        # the encrypted file must not find them beside it under its name
        for suffix in ("-shm", "-journal"):
            path.with_name(path.name + suffix).unlink(missing_ok=True)
        os.replace(aside, path)
        _fsync_directory(path.parent)
        say("replaced")
    finally:
        source.close()
    connect_encrypted(path, key).close()  # it opens with its key
    return True


def _check_copied(connection: Any, path: Path) -> None:
    """Every table of `main` has as many rows in `encrypted`."""
    tables = [
        name
        for (name,) in connection.execute(
            "SELECT name FROM main.sqlite_master WHERE type = 'table'"
        ).fetchall()
    ]
    for name in tables:
        quoted = '"' + name.replace('"', '""') + '"'
        counts = [
            connection.execute(f"SELECT count(*) FROM {schema}.{quoted}").fetchone()[0]  # noqa: S608
            for schema in ("main", "encrypted")
        ]
        if counts[0] != counts[1]:
            raise DatabaseKeyError(
                f"Encrypting {path} did not copy the table {name} whole ({counts[1]} of "
                f"{counts[0]} rows); the plaintext database is kept as it was. Check the disk "
                "(space, errors) and run `genecommons init` again.",
                message_zh=f"加密 {path} 时未能完整复制表 {name}（{counts[0]} 行中的 {counts[1]} 行）；"
                "明文数据库保持原样。请检查磁盘（空间、错误）后再次运行 `genecommons init`。",
            )


def _in_use(path: Path) -> BusyError:
    return BusyError(
        f"The database {path} is in use by another process (the node's server?); it cannot be "
        "encrypted while it is. Stop the node's server and run `genecommons init` again.",
        message_zh=f"数据库 {path} 正被其他进程（节点服务？）使用，无法在使用中加密。请停止节点服务后"
        "再次运行 `genecommons init`。",
        details={"database": str(path)},
        retry_after=RETRY_AFTER_SECONDS,
    )


def _fsync(path: Path) -> None:
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


def _fsync_directory(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
