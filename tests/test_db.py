"""db.GroupCommit and db.Prepared on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import bindparam, insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from genecommons.db import GroupCommit, Prepared
from genecommons.privacy.tables import privacy_releases

MOMENT = datetime(2026, 12, 1, tzinfo=UTC)


def test_a_group_commit_gives_each_item_its_own_result_once_committed(
    factory: sessionmaker[Session], engine: Engine
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

    failures: list[BaseException] = []

    def submit(thread: int) -> None:
        try:
            for i in range(thread * 20, thread * 20 + 20):
                if grouped.submit(work, i) != i * i:
                    wrong.append(i)
                if read.rows({"v": str(i)}) != [(str(i),)]:  # committed: others see it now
                    unseen.append(i)
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=submit, args=(t,)) for t in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == [] and wrong == [] and unseen == []
    with factory() as session:
        variants = session.execute(select(privacy_releases.c.variant)).scalars().all()
    assert sorted(variants, key=int) == [str(i) for i in range(200)]


def test_items_of_several_kinds_share_a_group_and_fail_with_it(
    factory: sessionmaker[Session],
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

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
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
