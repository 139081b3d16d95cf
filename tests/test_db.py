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

    grouped: GroupCommit[int, int] = GroupCommit(factory, work)
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
                if grouped.submit(i) != i * i:
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
