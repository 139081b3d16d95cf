"""The GeneCommons errors of a driver's errors: a busy database, a full one (SQLite's disk or
size limit, PostgreSQL's server disk)."""

from __future__ import annotations

import shutil
from pathlib import Path

import sqlcipher3.dbapi2 as sqlcipher
from sqlalchemy.engine import ExceptionContext

from genecommons.db.locking import _sqlite_busy, busy_error
from genecommons.errors import StorageFullError, human_size

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
