"""Consistent copies of the node's database while it serves, and their restore: SQLite's online
backup API, or `pg_dump`/`pg_restore` for PostgreSQL (a snapshot of one transaction). The copy
of an SQLite database is encrypted (SQLCipher) with the same key as the database, from the first
page written: it is never plaintext on disk, and opens with the node key in the backup's key
bundle."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import quote

from sqlalchemy import inspect
from sqlalchemy.engine import URL, make_url

from genecommons.db import DatabaseKey, connect_encrypted, make_engine
from genecommons.errors import ConfigurationError, RestoreTargetNotEmptyError, StorageError
from genecommons.secrets import write_new_secret_file

Kind = Literal["sqlite", "postgresql"]
CONNINFO = "\x00conninfo\x00"  # replaced by the URI (with its password file) when run
_SEARCH_PATH = re.compile(r"-c\s*search_path\s*=\s*([A-Za-z_][A-Za-z0-9_]*)")


@dataclass(frozen=True, slots=True)
class Target:
    """A database named by a SQLAlchemy URL, as the backup tools see it."""

    kind: Kind
    sqlite_path: Path | None = None
    conninfo: str = ""  # libpq URI, without the password
    password: str | None = None
    schema: str | None = None  # the schema of `-csearch_path=` in the URL's options
    url: str = ""


def target(url: str) -> Target:
    """The database `url` names."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            raise ConfigurationError(
                "An in-memory SQLite database cannot be backed up or restored.",
                message_zh="内存中的 SQLite 数据库无法备份或恢复。",
            )
        return Target("sqlite", sqlite_path=Path(parsed.database), url=url)
    if backend != "postgresql":
        raise ConfigurationError(
            f"Backups support SQLite and PostgreSQL, not {backend}.",
            message_zh=f"备份仅支持 SQLite 与 PostgreSQL，不支持 {backend}。",
        )
    query = dict(parsed.query)
    options = query.pop("options", None)
    schema = None
    if isinstance(options, str) and (found := _SEARCH_PATH.search(options)):
        schema = found.group(1)
    libpq = URL.create(
        "postgresql",
        username=parsed.username,
        host=parsed.host,
        port=parsed.port,
        database=parsed.database,
        query=query,
    )
    return Target(
        "postgresql",
        conninfo=libpq.render_as_string(hide_password=False),
        password=parsed.password,
        schema=schema,
        url=url,
    )


def dump(database: Target, destination: Path, *, key: DatabaseKey | None = None) -> None:
    """A consistent copy of `database` at `destination` (written aside, fsynced, renamed); an
    SQLite file's copy is encrypted with its `key`, as the database is."""
    aside = destination.with_name(f".{destination.name}.part")
    if database.kind == "sqlite":
        assert database.sqlite_path is not None
        if key is None:
            raise ValueError("an SQLite database is copied with its SQLCipher key")
        aside.unlink(missing_ok=True)  # an interrupted copy's: the copy starts afresh
        source = connect_encrypted(database.sqlite_path, key)
        copy = connect_encrypted(aside, key)
        try:
            source.backup(copy)  # in one step: one read snapshot, writers carry on (WAL)
        finally:
            copy.close()
            source.close()
    else:
        command = [
            _tool("pg_dump"),
            "--format=custom",
            "--no-owner",
            "--no-privileges",
            f"--file={aside}",
            f"--dbname={CONNINFO}",
        ]
        if database.schema:
            command.append(f"--schema={database.schema}")
        _run(command, database, "pg_dump")
    aside.chmod(0o600)  # the copy holds what the database holds: the node's user only
    _fsync(aside)
    os.replace(aside, destination)


def is_empty(database: Target) -> bool:
    """Whether `database` holds no table (a SQLite file absent or empty; a PostgreSQL schema
    without tables)."""
    if database.kind == "sqlite":
        assert database.sqlite_path is not None
        return not database.sqlite_path.exists() or database.sqlite_path.stat().st_size == 0
    engine = make_engine(database.url)
    try:
        return not inspect(engine).get_table_names(schema=database.schema or "public")
    finally:
        engine.dispose()


def restore(database: Target, source: Path, *, schema: str | None) -> None:
    """Load the copy `source` (made by `dump` from a database of `schema`) into the empty
    `database`: all or nothing."""
    if database.kind == "sqlite":
        assert database.sqlite_path is not None
        database.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
        aside = database.sqlite_path.with_name(f".{database.sqlite_path.name}.restoring")
        shutil.copyfile(source, aside)
        aside.chmod(0o600)
        _fsync(aside)
        os.replace(aside, database.sqlite_path)
        return
    if (schema or "public") != (database.schema or "public"):
        raise RestoreTargetNotEmptyError(
            f"The backup holds the PostgreSQL schema {schema or 'public'!r}, but "
            f"GENECOMMONS_DATABASE_URL names the schema {database.schema or 'public'!r}: restore "
            "into a schema of the same name (in a fresh database).",
            message_zh=f"备份中的 PostgreSQL 模式为 {schema or 'public'!r}，而 "
            f"GENECOMMONS_DATABASE_URL 指向模式 {database.schema or 'public'!r}：请恢复到"
            "同名模式（在新的数据库中）。",
        )
    listing = _run([_tool("pg_restore"), "--list", str(source)], database, "pg_restore")
    # the schema itself is made here when missing; its entry would fail on an existing one
    kept = [
        line
        for line in listing.splitlines()
        if not re.match(r"^\d+;\s+\d+\s+\d+\s+(SCHEMA|COMMENT) - (SCHEMA )?", line)
    ]
    listed = source.with_name(f".{source.name}.{os.getpid()}.list")
    try:
        listed.write_text("\n".join(kept) + "\n", encoding="utf-8")
        if database.schema:
            _run(
                [
                    _tool("psql"),
                    "--no-psqlrc",
                    "--set=ON_ERROR_STOP=1",
                    f"--dbname={CONNINFO}",
                    f'--command=CREATE SCHEMA IF NOT EXISTS "{database.schema}"',
                ],
                database,
                "psql",
            )
        _run(
            [
                _tool("pg_restore"),
                "--single-transaction",
                "--exit-on-error",
                "--no-owner",
                "--no-privileges",
                f"--use-list={listed}",
                f"--dbname={CONNINFO}",
                str(source),
            ],
            database,
            "pg_restore",
        )
    finally:
        listed.unlink(missing_ok=True)


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise ConfigurationError(
            f"`{name}` is not installed on this machine; install the PostgreSQL client tools "
            "(of the server's major version or newer) and retry.",
            message_zh=f"本机未安装 `{name}`；请安装 PostgreSQL 客户端工具（不低于服务器的主版本）后重试。",
        )
    return found


@contextmanager
def _conninfo(database: Target) -> Iterator[str]:
    """The libpq URI of `database`; a password goes through a private password file for the
    time of the call, never on a command line."""
    if not database.password:
        yield database.conninfo
        return
    with tempfile.TemporaryDirectory(prefix="genecommons-pg-") as folder:
        passfile = Path(folder) / "pgpass"
        escaped = database.password.replace("\\", "\\\\").replace(":", "\\:")
        write_new_secret_file(passfile, f"*:*:*:*:{escaped}\n".encode())
        separator = "&" if "?" in database.conninfo else "?"
        yield f"{database.conninfo}{separator}passfile={quote(str(passfile))}"


def _run(command: list[str], database: Target, what: str) -> str:
    with _conninfo(database) as conninfo:
        command = [c.replace(CONNINFO, conninfo) for c in command]
        done = subprocess.run(  # noqa: S603 - the client tools found on PATH, arguments built here
            command, capture_output=True, text=True, check=False
        )
    if done.returncode != 0:
        raise StorageError(
            f"`{what}` failed (exit {done.returncode}): {done.stderr.strip()[-800:]}",
            message_zh=f"`{what}` 执行失败（退出码 {done.returncode}）：{done.stderr.strip()[-800:]}",
        )
    return done.stdout


def _fsync(path: Path) -> None:
    with path.open("rb") as handle:
        os.fsync(handle.fileno())
