"""Database engine and session factory: SQLite by default, PostgreSQL in production."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import MetaData, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

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


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # let SQLAlchemy, not the sqlite3 module, decide where transactions begin, so that a
    # transaction's reads and writes see one snapshot (the sqlite3 module starts transactions
    # only at the first write)
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


# an execution option (set by `write_transaction`) that makes SQLite take the write lock at BEGIN
IMMEDIATE = "genecommons_sqlite_immediate"


def _sqlite_begin(connection: Any) -> None:
    immediate = connection.get_execution_options().get(IMMEDIATE, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def make_engine(url: str) -> Engine:
    """An engine for `url`, with SQLite set up for concurrent readers and foreign keys."""
    # connections kept open for the requests served at once (a Beacon query holds two at most,
    # and a server runs up to 40 in its worker threads): below that, each burst of requests
    # opens and closes connections again (and sets SQLite's pragmas on each)
    pooling = {"pool_size": 16, "max_overflow": 24}
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False}, **pooling)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(url, pool_pre_ping=True, **pooling)


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
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session whose work is committed on success and rolled back on any error."""
    with factory() as session, session.begin():
        yield session
