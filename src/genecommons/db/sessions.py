"""Sessions and transactions: plain, write (SQLite's write lock at BEGIN), snapshot, and the
group commit that shares one write transaction among the writes of many threads."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from genecommons.db.locking import IMMEDIATE


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
