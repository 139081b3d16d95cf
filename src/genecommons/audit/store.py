"""The Merkle tree's nodes in the database, through the caller's session (a NodeStore)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import and_, func, insert, or_, select
from sqlalchemy.orm import Session

from genecommons.audit.merkle import NodeKey
from genecommons.audit.tables import merkle_nodes

_CHUNK_LEVELS = 64  # a proof touches at most ~2 log2(n) levels


class SqlNodeStore:
    """Complete-subtree hashes in the `merkle_nodes` table."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, level: int, index: int) -> bytes | None:
        """The hash at (level, index), if stored."""
        return self.get_many([(level, index)])[0]

    def get_many(self, keys: Sequence[NodeKey]) -> list[bytes | None]:
        """The hashes at `keys`, in order; None where absent."""
        found: dict[NodeKey, bytes] = {}
        by_level: dict[int, list[int]] = {}
        for level, index in dict.fromkeys(keys):
            by_level.setdefault(level, []).append(index)
        # one query, `(level = ? AND idx IN (...)) OR ...`, so that every database walks the
        # primary key (SQLite uses no index for a row-value IN list)
        conditions = [
            and_(merkle_nodes.c.level == level, merkle_nodes.c.idx.in_(indexes))
            for level, indexes in by_level.items()
        ]
        for start in range(0, len(conditions), _CHUNK_LEVELS):
            rows = self.session.execute(
                select(merkle_nodes.c.level, merkle_nodes.c.idx, merkle_nodes.c.hash).where(
                    or_(*conditions[start : start + _CHUNK_LEVELS])
                )
            )
            for level, index, value in rows:
                found[(int(level), int(index))] = bytes(value)
        return [found.get(key) for key in keys]

    def put_many(self, items: Iterable[tuple[int, int, bytes]]) -> None:
        """Store new nodes (inside the caller's transaction)."""
        rows = [{"level": level, "idx": index, "hash": value} for level, index, value in items]
        if rows:
            self.session.execute(insert(merkle_nodes), rows)

    def leaf_count(self) -> int:
        """How many leaves the tree holds."""
        count = self.session.execute(
            select(func.max(merkle_nodes.c.idx)).where(merkle_nodes.c.level == 0)
        ).scalar()
        return 0 if count is None else int(count) + 1
