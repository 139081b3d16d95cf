"""Database engine and session factory: SQLite by default, PostgreSQL in production."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

from sqlalchemy import MetaData, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

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


class Prepared:
    """A read statement compiled once for an engine, run on one of its pooled driver
    connections without the ORM and SQLAlchemy's execution layer (for reads that run on every
    request; their columns come back as the driver gives them). A single statement reads one
    snapshot of the database, on SQLite as on PostgreSQL."""

    def __init__(self, engine: Engine, statement: ClauseElement) -> None:
        compiled = statement.compile(dialect=engine.dialect)
        assert isinstance(compiled, SQLCompiler)
        self.engine = engine
        self.sql = compiled.string
        self.order = tuple(compiled.positiontup or ()) if compiled.positional else None

    def rows(self, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """The rows the statement reads with `params` (by bind parameter name)."""
        values: Any = params if self.order is None else [params[n] for n in self.order]
        connection = self.engine.raw_connection()
        try:
            cursor = connection.cursor()
            try:
                cursor.execute(self.sql, values)
                return [tuple(row) for row in cursor.fetchall()]
            finally:
                cursor.close()
        finally:
            connection.close()  # back to the pool, which ends its transaction


Item = TypeVar("Item")
Result = TypeVar("Result")


class _Waiting(Generic[Item, Result]):
    """One item waiting for the transaction that does it."""

    __slots__ = ("done", "error", "item", "lead", "result")

    def __init__(self, item: Item) -> None:
        self.item = item
        self.done = threading.Event()
        self.lead = False  # woken to commit the next group rather than because it is done
        self.error: BaseException | None = None
        self.result: Result | None = None


class GroupCommit(Generic[Item, Result]):
    """Work that is its own write transaction, from many threads at once: the items that
    arrive while one group is being committed are done together, in submission order, by
    `work(session, items)` in the next `write_transaction` (a group commit), and `submit`
    returns an item's result only once its group is committed (or raises what failed the
    group, for every item of it). One thread at a time writes, the first of a group; the
    others wait for it without contending for the database's write lock."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        work: Callable[[Session, Sequence[Item]], Sequence[Result]],
    ) -> None:
        self.factory = factory
        self.work = work
        self._mutex = threading.Lock()
        self._waiting: list[_Waiting[Item, Result]] = []
        self._writing = False

    def submit(self, item: Item) -> Result:
        """Do `item` in a transaction of its own or shared with items submitted at the same
        time; its result, once committed."""
        mine: _Waiting[Item, Result] = _Waiting(item)
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
        return mine.result  # type: ignore[return-value]  # set with the group's commit

    def _commit_group(self) -> None:
        with self._mutex:
            group, self._waiting = self._waiting, []
        error: BaseException | None = None
        results: Sequence[Result] = ()
        try:
            with write_transaction(self.factory) as session:
                results = self.work(session, [w.item for w in group])
                if len(results) != len(group):
                    raise RuntimeError("a group commit's work gave a result per item")
        except BaseException as failure:  # each waiting item fails with it
            error = failure
        for index, waiting in enumerate(group):
            waiting.error = error
            if error is None:
                waiting.result = results[index]
            waiting.done.set()
        with self._mutex:
            if self._waiting:  # the next group's first item commits it
                following = self._waiting[0]
                following.lead = True
                following.done.set()
            else:
                self._writing = False
