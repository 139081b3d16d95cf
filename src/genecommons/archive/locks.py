"""Locks that mark the objects a live process is writing to the object store.

A writer holds the lock of an object's base (`GCF000001/5f0c…`, shared by the object, its
index and their temporary parts) from before its first byte is stored until the catalog row
naming it is committed (or the write is undone). `archive verify` counts an object the catalog
does not name as an orphan only when nobody holds its lock: a process killed mid-write (kill -9
included) loses its locks with it, so what it left is found; one still writing is left alone.

Two implementations, chosen by the database the node uses: lock files under the data
directory (`flock`: one machine, as the embedded SQLite default is), and PostgreSQL advisory
locks (every host writing to the same object store sees them).
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import os
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Protocol

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

from genecommons.config import Settings


def object_base(key: str) -> str:
    """The base an object key belongs to: its folder and name up to the first dot, the
    temporary part of a local write (`.NAME.HEX.part`) mapped to the object it becomes."""
    folder, _, name = key.rpartition("/")
    if name.startswith(".") and name.endswith(".part"):
        name = name[1:]
    stem = name.split(".", 1)[0]
    return f"{folder}/{stem}" if folder else stem


class ObjectLocks(Protocol):
    """Marks objects being written; tells whether one is."""

    def hold(self, base: str) -> AbstractContextManager[None]:
        """Hold the lock of `base` while the context runs (waiting for it if needed)."""

    def busy(self, base: str) -> bool:
        """Whether a live process holds the lock of `base` now."""

    def busy_among(self, bases: Iterable[str]) -> set[str]:
        """The ones of `bases` a live process holds the lock of now."""


def _digest(base: str) -> str:
    return hashlib.sha256(base.encode()).hexdigest()[:40]


class FileLocks:
    """`flock` on one lock file per base, under a directory of the node's data."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, base: str) -> Path:
        return self.directory / f"{_digest(base)}.lock"

    @contextmanager
    def hold(self, base: str) -> Iterator[None]:
        """Hold the lock of `base` (the file goes once the lock is let go)."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self._path(base)
        while True:
            descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            try:
                if os.stat(path).st_ino == os.fstat(descriptor).st_ino:
                    break
            except FileNotFoundError:
                pass
            # a checker removed the file between its opening and its locking: lock a new one
            os.close(descriptor)
        try:
            yield
        finally:
            # removed while still held: a checker that opened it before finds it free after,
            # when the object is named by the catalog or gone
            Path(path).unlink(missing_ok=True)
            os.close(descriptor)

    def busy(self, base: str) -> bool:
        """Whether another open file description holds the lock of `base`."""
        try:
            descriptor = os.open(self._path(base), os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(descriptor)  # lets go of the lock, if taken
        self._path(base).unlink(missing_ok=True)  # a dead writer's file: nobody holds it
        return False

    def busy_among(self, bases: Iterable[str]) -> set[str]:
        """The ones of `bases` whose lock is held."""
        return {base for base in set(bases) if self.busy(base)}


class AdvisoryLocks:
    """PostgreSQL session advisory locks, each on a connection of its own held while the
    object is written (the server lets go of it when the writer's connection drops)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @staticmethod
    def _key(base: str) -> int:
        return int.from_bytes(hashlib.sha256(base.encode()).digest()[:8], "big", signed=True)

    @contextmanager
    def hold(self, base: str) -> Iterator[None]:
        """Hold the advisory lock of `base`."""
        key = self._key(base)
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})

    def busy(self, base: str) -> bool:
        """Whether another session holds the advisory lock of `base`."""
        return bool(self.busy_among([base]))

    def busy_among(self, bases: Iterable[str]) -> set[str]:
        """The ones of `bases` whose advisory lock another session holds (on one
        connection, however many there are)."""
        held = set()
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            for base in set(bases):
                key = {"key": self._key(base)}
                if connection.execute(text("SELECT pg_try_advisory_lock(:key)"), key).scalar_one():
                    connection.execute(text("SELECT pg_advisory_unlock(:key)"), key)
                else:
                    held.add(base)
        return held


@functools.cache
def _engine(url: str) -> Engine:
    return create_engine(url, poolclass=NullPool)


def object_locks(settings: Settings) -> ObjectLocks:
    """The locks of the node's object writers: advisory locks on PostgreSQL, lock files
    under the data directory otherwise."""
    url = settings.effective_database_url
    if url.startswith("postgresql"):
        return AdvisoryLocks(_engine(url))
    return FileLocks(settings.data_dir / "locks" / "objects")
