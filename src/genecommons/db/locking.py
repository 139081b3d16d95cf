"""SQLite's connections: their pragmas, the write lock a write transaction takes at BEGIN
(tried again after short pauses, up to the busy timeout), and the error of a write that did
not get it."""

from __future__ import annotations

import itertools
import time
from typing import Any

import sqlcipher3.dbapi2 as sqlcipher

from genecommons.errors import BusyError

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
