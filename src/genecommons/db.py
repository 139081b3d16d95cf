"""Database engine and session factory: SQLite by default, PostgreSQL in production.

An SQLite database file is encrypted with SQLCipher (AES-256 pages, each with an HMAC): the
node's own is keyed by a raw 256-bit key the node key store derives for it (`node_engine`), so
that no copy of it on disk (the file, its WAL, a backup's copy) holds individual-level data in
the clear. An in-memory SQLite database is never on disk and takes no key. PostgreSQL is
encrypted at rest by its server (an encrypted disk or volume, or the server's TDE), if at all.
"""

from __future__ import annotations

import itertools
import os
import shutil
import threading
import time
import weakref
from collections import namedtuple
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import sqlcipher3.dbapi2 as sqlcipher
from sqlalchemy import MetaData, create_engine, event, exc
from sqlalchemy.engine import Engine, ExceptionContext, make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.sql import CompoundSelect, Select
from sqlalchemy.sql.compiler import SQLCompiler

from genecommons.config import Settings
from genecommons.errors import BusyError, DatabaseKeyError, StorageFullError, human_size
from genecommons.secrets import database_key, node_keys

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base of every table; constraint names are stable for Alembic."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


BUSY_SECONDS = 10.0  # how long a connection waits for SQLite's write lock (its busy timeout)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # let SQLAlchemy, not the sqlite3 module, decide where transactions begin, so that a
    # transaction's reads and writes see one snapshot (the sqlite3 module starts transactions
    # only at the first write)
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={int(BUSY_SECONDS * 1000)}")
    cursor.close()


# an execution option (set by `write_transaction`) that makes SQLite take the write lock at BEGIN
IMMEDIATE = "genecommons_sqlite_immediate"


_PAUSES = (0.0001, 0.0002, 0.0005, 0.001)  # between tries for the write lock, then the last


def _sqlite_begin(connection: Any) -> None:
    if not connection.get_execution_options().get(IMMEDIATE, False):
        connection.exec_driver_sql("BEGIN")
        return
    # the write lock, tried again after short pauses: SQLite's own busy handler sleeps 1, 2,
    # 5, 10 ms... between tries, while the lock is held for a fraction of a millisecond (a
    # group commit), and all the requests of a group wait for it
    driver = connection.connection.dbapi_connection
    deadline = time.monotonic() + BUSY_SECONDS
    driver.execute("PRAGMA busy_timeout=0")
    try:
        for attempt in itertools.count():
            try:
                driver.execute("BEGIN IMMEDIATE")
                return
            except sqlcipher.OperationalError as error:
                if not _sqlite_busy(error):
                    raise
                if time.monotonic() > deadline:
                    raise busy_error() from error
            time.sleep(_PAUSES[min(attempt, len(_PAUSES) - 1)])
    finally:
        driver.execute(f"PRAGMA busy_timeout={int(BUSY_SECONDS * 1000)}")


RETRY_AFTER_SECONDS = 1
"""What a write refused for a busy database tells its caller to wait before sending it again."""


def busy_error() -> BusyError:
    """The error of a write that did not get the database's write lock within the bound."""
    return BusyError(
        f"The database was busy with other writes for more than {BUSY_SECONDS:g} s; this "
        "change was not made (nothing of it was kept). Send it again in "
        f"{RETRY_AFTER_SECONDS} s.",
        message_zh=f"数据库忙于其他写入超过 {BUSY_SECONDS:g} 秒；本次更改未执行（未保留任何部分）。"
        f"请在 {RETRY_AFTER_SECONDS} 秒后重试。",
        details={"retry_after": RETRY_AFTER_SECONDS},
        retry_after=RETRY_AFTER_SECONDS,
    )


def _sqlite_busy(error: BaseException) -> bool:
    # the primary result code: SQLITE_BUSY_SNAPSHOT, _RECOVERY... are kinds of SQLITE_BUSY
    code = getattr(error, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (sqlcipher.SQLITE_BUSY, sqlcipher.SQLITE_LOCKED)


# PostgreSQL's SQLSTATEs of a write that lost to others (deadlock detected, lock not
# available) and of a server out of space (disk full: "could not extend file")
_PG_BUSY = frozenset({"40P01", "55P03"})
_PG_FULL = "53100"
DATABASE_HEADROOM = 64 * 1024 * 1024
"""The free space a database needs at the least to take writes again after it filled up."""


def _translate(context: ExceptionContext) -> BaseException | None:
    """The GeneCommons error for a driver's error that one describes (a busy or a full
    database), so that callers see what happened and how to recover, not a driver's error."""
    error = context.original_exception
    sqlstate = getattr(error, "sqlstate", None)
    if _sqlite_busy(error) or sqlstate in _PG_BUSY:
        return busy_error()
    if getattr(error, "sqlite_errorcode", None) == sqlcipher.SQLITE_FULL:
        return _sqlite_full(context.engine.url.database if context.engine else None)
    if sqlstate == _PG_FULL:
        return _server_full(str(error))
    return None


def _sqlite_full(database: str | None) -> StorageFullError:
    """SQLite's "database or disk is full": the disk holding `database`, or (with space on
    that disk) the size limit the database was given (`PRAGMA max_page_count`)."""
    path = Path(database) if database and database != ":memory:" else None
    try:
        size = path.stat().st_size if path is not None else 0
        free = shutil.disk_usage(path.parent).free if path is not None else 0
    except OSError:
        size, free = 0, 0
    needed = max(DATABASE_HEADROOM, size // 10)
    details = {"free_bytes": free, "needed_bytes": needed, "database": str(path)}
    if path is not None and free >= needed:
        return StorageFullError(
            f"The database {path} reached its size limit (SQLite's max_page_count) while "
            f"{human_size(free)} are free on its disk; the change was not made. The operator "
            "raises the limit; then send the change again.",
            message_zh=f"数据库 {path} 已达到其大小上限（SQLite 的 max_page_count），磁盘尚余 "
            f"{human_size(free)}；本次更改未执行。请运维人员调高上限后重试。",
            details=details,
        )
    return StorageFullError(
        f"The disk holding the database ({path.parent if path else 'unknown'}) is full: it "
        f"has {human_size(free)} free, and the database needs at least {human_size(needed)} to take "
        "writes again. The change was not made; free or add space there, then send it again.",
        message_zh=f"数据库所在磁盘（{path.parent if path else '未知'}）已满：剩余 {human_size(free)}，"
        f"数据库至少需要 {human_size(needed)} 才能继续写入。本次更改未执行；请释放或增加空间后重试。",
        details=details,
    )


def _server_full(reason: str) -> StorageFullError:
    """PostgreSQL's disk full: the server's disk, which the node cannot measure from here."""
    return StorageFullError(
        "The database server's disk is full (PostgreSQL: "
        f"{reason.splitlines()[0] if reason else 'disk full'}); the change was not made. The "
        "operator frees or adds space in the server's data directory (at least "
        f"{human_size(DATABASE_HEADROOM)}), then the change is sent again.",
        message_zh="数据库服务器磁盘已满（PostgreSQL）；本次更改未执行。请运维人员在服务器数据目录"
        f"释放或增加空间（至少 {human_size(DATABASE_HEADROOM)}）后重试。",
        details={"needed_bytes": DATABASE_HEADROOM},
    )


def make_engine(url: str, *, key: DatabaseKey | Callable[[], DatabaseKey] | None = None) -> Engine:
    """An engine for `url`, with SQLite set up for concurrent readers and foreign keys. An SQLite
    database file is opened with SQLCipher under `key` (required for one; a callable is asked
    once, at the first connection); `key` is not used for another database."""
    # connections kept open for the requests served at once (a Beacon query holds two at most,
    # and a server runs up to 40 in its worker threads): below that, each burst of requests
    # opens and closes connections again (and sets SQLite's pragmas on each)
    pooling = {"pool_size": 16, "max_overflow": 24}
    if url.startswith("sqlite"):
        path = sqlite_file(url)
        if path is not None and key is None:
            raise ValueError(
                f"{url} names an SQLite file, which is opened with its SQLCipher key: "
                "make_engine(url, key=...), or node_engine(settings) for the node's database"
            )
        engine = create_engine(
            url,
            module=sqlcipher,
            connect_args={"check_same_thread": False},
            **(pooling if path is not None else {}),  # in memory: one connection per thread
        )
        if path is not None and key is not None:
            event.listen(engine, "do_connect", _KeyedConnect(path, key))
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        event.listen(engine, "handle_error", _translate)
        return engine
    engine = create_engine(url, **pooling)
    event.listen(engine, "handle_error", _translate)
    event.listen(engine, "checkin", _stamp_checkin)
    event.listen(engine, "checkout", _ping_if_idle)
    return engine


def node_engine(settings: Settings) -> Engine:
    """The engine of the node's own database (`settings.effective_database_url`): an SQLite
    file is opened with the key the node key store derives for it, asked for at the first
    connection (`node_database_key`)."""
    url = settings.effective_database_url

    def key() -> DatabaseKey:
        path = sqlite_file(url)
        if path is not None and is_plaintext(path):  # said before the node key is asked for
            raise plaintext_database_error(path)
        return node_database_key(settings)

    return make_engine(url, key=key)


# -- SQLCipher: the key of an SQLite file, opening it, encrypting an earlier plaintext one ----

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


IDLE_PING_SECONDS = 10.0
"""A pooled server connection unused this long is pinged before it is handed out again."""


def _stamp_checkin(_dbapi_connection: Any, record: Any) -> None:
    record.info["checked_in"] = time.monotonic()


def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    """Ping a connection that sat idle in the pool (the server may have restarted or dropped
    it since), and have the pool replace it if the ping fails. A connection in steady use is
    not pinged: SQLAlchemy's `pool_pre_ping` pings on every checkout, a round trip more for
    every statement `Prepared` runs (a Beacon count query makes four). The price: after a
    server restart under steady load, a connection that was in use fails one request before
    it is replaced (the pool drops every connection once SQLAlchemy sees a disconnect in a
    session; a `Prepared` read drops only its own), where `pool_pre_ping` would have
    replaced it unseen."""
    if time.monotonic() - record.info.get("checked_in", 0.0) < IDLE_PING_SECONDS:
        return
    try:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("SELECT 1")
        finally:
            cursor.close()
        dbapi_connection.rollback()
    except Exception as error:  # any failure: the pool opens a new connection in its place
        raise exc.DisconnectionError(f"a pooled connection failed its ping: {error}") from error


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """A session factory bound to `engine`; objects stay readable after commit."""
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def write_transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """Like `transaction`, for work that reads and then writes while other connections (threads
    or worker processes) write too: on SQLite it takes the write lock when it begins, waiting
    up to the busy timeout for it. (A deferred SQLite transaction that has read cannot write
    once another connection has committed since: it fails at once with "database is locked",
    which no busy timeout retries.) PostgreSQL's row locks need nothing more."""
    with factory() as session, session.begin():
        session.connection(execution_options={IMMEDIATE: True})
        yield session


@contextmanager
def snapshot_transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A long transaction that reads one snapshot and writes at its end (a submission, which
    validates against the catalog before it writes): it takes SQLite's write lock only at its
    first write, so that other writers (a revocation) are not held up while it works. Where
    another write committed since it began, SQLite refuses its first write at once: BusyError,
    and nothing of it is kept; the caller says so and the work is repeated."""
    with factory() as session, session.begin():
        yield session


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session whose work is committed on success and rolled back on any error."""
    with factory() as session, session.begin():
        yield session


class Prepared:
    """A read statement compiled once for an engine, run on one of its pooled driver
    connections without the ORM and SQLAlchemy's execution layer (for reads that run on every
    request), its parameters and columns converted by their SQLAlchemy types as SQLAlchemy
    would. A single statement reads one snapshot of the database, on SQLite as on PostgreSQL."""

    def __init__(self, engine: Engine, statement: Select[Any] | CompoundSelect[Any]) -> None:
        dialect = engine.dialect
        compiled = statement.compile(dialect=engine.dialect)
        assert isinstance(compiled, SQLCompiler)
        self.engine = engine
        self.sql = compiled.string
        self.order = tuple(compiled.positiontup or ()) if compiled.positional else None
        self.binds = {
            name: processor
            for name, bind in compiled.binds.items()
            if (processor := bind.type.dialect_impl(dialect).bind_processor(dialect)) is not None
        }
        # the values the statement itself carries (literals SQLAlchemy binds, e.g. a separator)
        self.fixed = {
            name: bind.effective_value for name, bind in compiled.binds.items() if not bind.required
        }
        columns = list(statement.selected_columns)
        self.row = namedtuple("Row", [c.key for c in columns], rename=True)  # type: ignore[misc]
        self.types = [c.type.dialect_impl(dialect) for c in columns]
        self.columns: list[Callable[[Any], Any] | None] | None = None  # at the first read
        self.autocommit = dialect.name == "postgresql"

    def rows(self, params: Mapping[str, Any]) -> list[Any]:
        """The rows the statement reads with `params` (by bind parameter name), as named
        tuples."""
        given = {
            name: (self.binds[name](value) if name in self.binds else value)
            for name, value in {**self.fixed, **params}.items()
        }
        values: Any = given if self.order is None else [given[n] for n in self.order]
        connection = self.engine.raw_connection()
        driver = connection.dbapi_connection
        # on a server, the statement runs on its own (autocommit): no transaction is begun, so
        # none needs ending when the connection goes back to the pool (a round trip fewer)
        alone = self.autocommit and driver is not None
        try:
            if alone:
                driver.autocommit = True  # type: ignore[union-attr]
            cursor = connection.cursor()
            try:
                cursor.execute(self.sql, values)
                found = cursor.fetchall()
                if self.columns is None:  # as SQLAlchemy makes them, for the driver's types
                    dialect = self.engine.dialect
                    self.columns = [
                        t.result_processor(dialect, d[1])
                        for t, d in zip(self.types, cursor.description, strict=True)
                    ]
            finally:
                cursor.close()
        finally:
            if alone:
                try:
                    driver.autocommit = False  # type: ignore[union-attr]
                except Exception:  # a broken connection: never back to the pool in autocommit
                    connection.invalidate()
            connection.close()  # back to the pool, which ends any transaction
        columns, row = self.columns or [], self.row
        if not any(columns):
            return [row(*r) for r in found]
        return [row(*_converted(columns, r)) for r in found]


def _converted(columns: Sequence[Callable[[Any], Any] | None], values: Sequence[Any]) -> list[Any]:
    return [v if p is None else p(v) for p, v in zip(columns, values, strict=True)]


_PREPARED: weakref.WeakKeyDictionary[Engine, dict[int, tuple[Any, Prepared]]] = (
    weakref.WeakKeyDictionary()
)
_PREPARING = threading.Lock()


def prepared(engine: Engine, statement: Select[Any] | CompoundSelect[Any]) -> Prepared:
    """`statement` (one built once, at import) prepared for `engine`, the first time only."""
    by_statement = _PREPARED.get(engine)
    found = by_statement.get(id(statement)) if by_statement is not None else None
    if found is None or found[0] is not statement:
        with _PREPARING:
            found = (statement, Prepared(engine, statement))
            _PREPARED.setdefault(engine, {})[id(statement)] = found
    return found[1]


Item = TypeVar("Item")
Result = TypeVar("Result")
Work = Callable[[Session, Sequence[Item]], Sequence[Result]]


class _Waiting:
    """One item waiting for the transaction that does it."""

    __slots__ = ("done", "error", "item", "lead", "result", "work")

    def __init__(self, work: Callable[[Session, Sequence[Any]], Sequence[Any]], item: Any) -> None:
        self.work = work
        self.item = item
        self.done = threading.Event()
        self.lead = False  # woken to commit the next group rather than because it is done
        self.error: BaseException | None = None
        self.result: Any = None


class GroupCommit:
    """Writes that are their own transaction, from many threads at once: the items that arrive
    while one group is being committed are done together in the next `write_transaction` (a
    group commit), each kind by its `work(session, items)`, in submission order, and `submit`
    returns an item's result only once its group is committed (or raises what failed the
    group, for every item of it). One thread at a time writes, the first of a group; the
    others wait for it without contending for the database's write lock. An app shares one
    for all its high-rate writes (audit events, budget charges), so that its threads never
    contend with each other for the lock either."""

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self.factory = factory
        self._mutex = threading.Lock()
        self._waiting: list[_Waiting] = []
        self._writing = False

    def submit(
        self, work: Callable[[Session, Sequence[Item]], Sequence[Result]], item: Item
    ) -> Result:
        """Do `item` with `work` (a function: the same one for items of the same kind) in a
        transaction of its own or shared with items submitted at the same time; its result,
        once committed."""
        mine = _Waiting(work, item)
        with self._mutex:
            self._waiting.append(mine)
            lead = not self._writing
            self._writing = True
        if not lead:
            mine.done.wait()
        if mine.lead:
            mine.lead = False
            lead = True
        if lead:
            self._commit_group()  # a group that holds this item: it was waiting when taken
        if mine.error is not None:
            raise mine.error
        result: Result = mine.result
        return result

    def _commit_group(self) -> None:
        with self._mutex:
            group, self._waiting = self._waiting, []
        kinds: dict[Callable[[Session, Sequence[Any]], Sequence[Any]], list[_Waiting]] = {}
        for waiting in group:
            kinds.setdefault(waiting.work, []).append(waiting)
        error: BaseException | None = None
        results: list[tuple[_Waiting, Any]] = []
        try:
            with write_transaction(self.factory) as session:
                for work, items in kinds.items():
                    done = work(session, [w.item for w in items])
                    if len(done) != len(items):
                        raise RuntimeError("a group commit's work must give a result per item")
                    results.extend(zip(items, done, strict=True))
        except BaseException as failure:  # each waiting item fails with it
            error = failure
        if error is None:
            for waiting, result in results:
                waiting.result = result
        for waiting in group:
            waiting.error = error
            waiting.done.set()
        with self._mutex:
            if self._waiting:  # the next group's first item commits it
                following = self._waiting[0]
                following.lead = True
                following.done.set()
            else:
                self._writing = False
