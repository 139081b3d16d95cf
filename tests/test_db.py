"""db.GroupCommit and db.Prepared on SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import bindparam, event, insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from genecommons import db
from genecommons.db import (
    Base,
    DatabaseKey,
    GroupCommit,
    Prepared,
    make_engine,
    make_session_factory,
    write_transaction,
)
from genecommons.errors import BusyError, StorageFullError
from genecommons.privacy.tables import privacy_releases

MOMENT = datetime(2026, 12, 1, tzinfo=UTC)
InThreads = Callable[[int, Callable[[int], object]], list[BaseException | None]]  # conftest's


def test_a_group_commit_gives_each_item_its_own_result_once_committed(
    factory: sessionmaker[Session], engine: Engine, in_threads: InThreads
) -> None:
    def work(session: Session, items: Sequence[int]) -> list[int]:
        rows = [
            {"dataset": "D", "variant": str(i), "epsilon": 1.0, "counts": {}, "released_at": MOMENT}
            for i in items
        ]
        session.execute(insert(privacy_releases), rows)
        return [i * i for i in items]

    grouped = GroupCommit(factory)
    wrong: list[int] = []
    unseen: list[int] = []
    read = Prepared(
        engine,
        select(privacy_releases.c.variant).where(privacy_releases.c.variant == bindparam("v")),
    )

    def submit(thread: int) -> None:
        for i in range(thread * 20, thread * 20 + 20):
            if grouped.submit(work, i) != i * i:
                wrong.append(i)
            if read.rows({"v": str(i)}) != [(str(i),)]:  # committed: others see it now
                unseen.append(i)

    failures = [e for e in in_threads(10, submit) if e is not None]
    assert failures == [] and wrong == [] and unseen == []
    with factory() as session:
        variants = session.execute(select(privacy_releases.c.variant)).scalars().all()
    assert sorted(variants, key=int) == [str(i) for i in range(200)]


def test_items_of_several_kinds_share_a_group_and_fail_with_it(
    factory: sessionmaker[Session], in_threads: InThreads
) -> None:
    # one kind writes, the other fails: a group holding both commits nothing, and each of its
    # items raises what failed it
    def write(session: Session, items: Sequence[int]) -> list[int]:
        rows = [
            {"dataset": "D", "variant": str(i), "epsilon": 1.0, "counts": {}, "released_at": MOMENT}
            for i in items
        ]
        session.execute(insert(privacy_releases), rows)
        return list(items)

    def refuse(session: Session, items: Sequence[int]) -> list[int]:
        raise LookupError(f"refused {list(items)}")

    grouped = GroupCommit(factory)
    outcomes: dict[int, object] = {}

    def submit(i: int) -> None:
        try:
            outcomes[i] = grouped.submit(refuse if i % 5 == 0 else write, i)
        except LookupError as error:
            outcomes[i] = error

    assert in_threads(40, submit) == [None] * 40  # each outcome is kept below
    with factory() as session:
        written = {int(v) for v in session.execute(select(privacy_releases.c.variant)).scalars()}
    assert len(outcomes) == 40
    for i, outcome in outcomes.items():
        if i % 5 == 0:
            assert isinstance(outcome, LookupError)  # its own kind failed
        elif isinstance(outcome, LookupError):
            assert i not in written  # failed with its group: nothing of it committed
        else:
            assert outcome == i and i in written


def test_a_write_transaction_waits_for_the_sqlite_write_lock_then_writes(
    tmp_path: Path, sqlcipher_key: DatabaseKey
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'locked.sqlite3'}", key=sqlcipher_key)
    Base.metadata.create_all(engine, tables=[privacy_releases])
    factory = make_session_factory(engine)
    held, release = threading.Event(), threading.Event()
    failures: list[BaseException] = []
    row = {"dataset": "D", "epsilon": 1.0, "counts": {}, "released_at": MOMENT}

    def hold() -> None:
        with write_transaction(factory) as session:
            session.execute(insert(privacy_releases), [{**row, "variant": "first"}])
            held.set()
            release.wait()

    def write() -> None:
        try:
            with write_transaction(factory) as session:  # waits for the lock, retrying
                seen = session.execute(select(privacy_releases.c.variant)).scalars().all()
                session.execute(insert(privacy_releases), [{**row, "variant": f"after {seen}"}])
        except BaseException as error:
            failures.append(error)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait()
    writer = threading.Thread(target=write)
    writer.start()
    time.sleep(0.05)  # let the writer try while the lock is held (the outcome is the same)
    release.set()
    holder.join()
    writer.join()
    assert failures == []
    with factory() as session:
        variants = set(session.execute(select(privacy_releases.c.variant)).scalars())
    assert variants == {"first", "after ['first']"}  # it began once the first had committed
    engine.dispose()


def test_a_prepared_read_leaves_its_connection_as_it_found_it(
    engine: Engine, factory: sessionmaker[Session]
) -> None:
    """On PostgreSQL the read runs on its own (autocommit: no transaction to end); its
    connection goes back to the pool in transactions again, so that the ORM's writes on it
    still commit or roll back as a whole."""
    read = Prepared(engine, select(privacy_releases.c.variant))
    for _ in range(3):
        assert read.rows({}) == []
    with engine.connect() as connection:  # the pool's one idle connection, as reads left it
        driver = connection.connection.dbapi_connection
        if engine.dialect.name == "postgresql":
            assert driver.autocommit is False  # type: ignore[union-attr]
            assert driver.info.transaction_status.name == "IDLE"  # type: ignore[union-attr]
    try:
        with factory.begin() as session:
            session.execute(
                insert(privacy_releases),
                [
                    {
                        "dataset": "d",
                        "variant": "v",
                        "epsilon": 1.0,
                        "counts": {},
                        "released_at": MOMENT,
                    }
                ],
            )
            raise RuntimeError("roll it back")
    except RuntimeError:
        pass
    assert read.rows({}) == []  # the failed transaction wrote nothing


def _drop_the_pooled_connection(engine: Engine) -> tuple[Prepared, int]:
    """A read that has used the engine's one pooled connection, and that connection's server
    process id, after the server has terminated it (as a restart would)."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no server to drop connections")
    read = Prepared(engine, select(privacy_releases.c.variant))
    assert read.rows({}) == []
    with engine.connect() as connection:
        pid = int(connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())
    admin = make_engine(str(engine.url))
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f"SELECT pg_terminate_backend({pid})")
    finally:
        admin.dispose()
    return read, pid


def test_a_connection_the_server_dropped_while_idle_is_replaced(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pooled connection that sat idle (IDLE_PING_SECONDS) is pinged before it is handed out:
    one the server dropped meanwhile (a restart, an idle timeout) is replaced, and the read
    succeeds."""
    read, pid = _drop_the_pooled_connection(engine)
    # as if it had been idle long
    monkeypatch.setattr("genecommons.db.engine.IDLE_PING_SECONDS", 0.0)
    assert read.rows({}) == []  # on a new connection
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one() != pid


def test_a_connection_dropped_while_in_steady_use_fails_one_read_then_is_replaced(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The price of pinging only idle connections: a read on a connection the server dropped
    a moment ago fails (the driver's error), and that connection is not handed out again."""
    import psycopg

    read, _ = _drop_the_pooled_connection(engine)
    monkeypatch.setattr("genecommons.db.engine.IDLE_PING_SECONDS", 1e9)  # in steady use: not pinged
    with pytest.raises(psycopg.OperationalError):
        read.rows({})
    assert read.rows({}) == []  # on a new connection


def test_a_write_that_does_not_get_the_lock_in_time_is_refused_as_busy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sqlcipher_key: DatabaseKey
) -> None:
    """Past the bound, BusyError (503 with Retry-After), not the driver's error; the write
    left nothing. (The database is encrypted, as every SQLite file of the node is.)"""
    monkeypatch.setattr("genecommons.db.locking.BUSY_SECONDS", 0.2)
    engine = make_engine(f"sqlite:///{tmp_path / 'busy.sqlite3'}", key=sqlcipher_key)
    Base.metadata.create_all(engine, tables=[privacy_releases])
    factory = make_session_factory(engine)
    row = {"dataset": "D", "epsilon": 1.0, "counts": {}, "released_at": MOMENT}
    with write_transaction(factory) as holder:
        holder.execute(insert(privacy_releases), [{**row, "variant": "held"}])
        with pytest.raises(BusyError) as caught, write_transaction(factory) as session:
            session.execute(insert(privacy_releases), [{**row, "variant": "refused"}])
    assert caught.value.http_status == 503 and caught.value.retry_after >= 1
    assert caught.value.message_zh != caught.value.message
    with factory() as session:
        assert session.execute(select(privacy_releases.c.variant)).scalars().all() == ["held"]
    engine.dispose()
    assert _encrypted(tmp_path / "busy.sqlite3")


def _fill(factory: sessionmaker[Session]) -> int:
    """Commit rows of 64 KiB until the database refuses one; how many were committed."""
    row = {"dataset": "D", "epsilon": 1.0, "released_at": MOMENT}
    for committed in range(10_000):
        with write_transaction(factory) as session:
            session.execute(
                insert(privacy_releases),
                [{**row, "variant": f"v{committed}", "counts": {"pad": "x" * 65536}}],
            )
    raise AssertionError("the database never filled up")


def test_a_full_disk_under_sqlite_names_the_disk_and_the_space_needed(
    small_disk: Path, sqlcipher_key: DatabaseKey
) -> None:
    """A real 1 MiB filesystem fills up at a commit: StorageFullError with the free space and
    the space needed, not a driver's traceback; what was committed before stays readable."""
    engine = make_engine(f"sqlite:///{small_disk / 'full.sqlite3'}", key=sqlcipher_key)
    Base.metadata.create_all(engine, tables=[privacy_releases])
    factory = make_session_factory(engine)
    with pytest.raises(StorageFullError) as caught:
        _fill(factory)
    details = caught.value.details
    assert details["free_bytes"] < details["needed_bytes"]
    assert details["needed_bytes"] >= db.DATABASE_HEADROOM
    assert str(small_disk) in caught.value.message and "is full" in caught.value.message
    assert caught.value.message_zh != caught.value.message
    with factory() as session:
        assert session.execute(select(privacy_releases.c.variant)).scalars().all()
    engine.dispose()
    assert _encrypted(small_disk / "full.sqlite3")


def test_a_database_at_its_size_limit_is_not_blamed_on_the_disk(
    tmp_path: Path, sqlcipher_key: DatabaseKey
) -> None:
    """SQLite's max_page_count reached with room on the disk: the error names the limit."""
    engine = make_engine(f"sqlite:///{tmp_path / 'limited.sqlite3'}", key=sqlcipher_key)
    Base.metadata.create_all(engine, tables=[privacy_releases])

    def limit(connection: Any, _record: Any) -> None:
        connection.execute("PRAGMA max_page_count=64")

    event.listen(engine, "connect", limit)
    engine.dispose()  # connections opened from here on carry the limit
    factory = make_session_factory(engine)
    with pytest.raises(StorageFullError) as caught:
        _fill(factory)
    assert "size limit" in caught.value.message
    assert caught.value.details["free_bytes"] >= caught.value.details["needed_bytes"]
    engine.dispose()
    assert _encrypted(tmp_path / "limited.sqlite3")


def _encrypted(path: Path) -> bool:
    """Whether `path` is an SQLCipher file: no plaintext SQLite header, and stdlib sqlite3
    cannot read it."""
    import sqlite3

    with contextlib.closing(sqlite3.connect(path)) as plain:
        try:
            plain.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.DatabaseError as error:  # "file is not a database"
            return error.sqlite_errorcode == sqlite3.SQLITE_NOTADB and not db.is_plaintext(path)
    return False
