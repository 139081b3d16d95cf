"""The Merkle tree's nodes in the database, through the caller's session (a NodeStore)."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import JSON, Table, TextClause, func, insert, select, text
from sqlalchemy.orm import Session

from genecommons.ledger.merkle import NodeKey
from genecommons.ledger.tables import merkle_nodes

_CHUNK_KEYS = 64  # a proof touches at most ~2 log2(n) nodes


@functools.lru_cache(maxsize=_CHUNK_KEYS)
def _lookup(count: int) -> TextClause:
    """`count` nodes by primary key in one statement, built once per count.

    `(level = ? AND idx = ?) OR ...` lets every database walk the primary key (SQLite uses no
    index for a row-value IN list); a plain text statement, because building the same
    expression with SQLAlchemy's operators cost more than the query (two thirds of a proof).
    """
    terms = " OR ".join(f"(level = :l{n} AND idx = :i{n})" for n in range(count))
    return text(f"SELECT level, idx, hash FROM {merkle_nodes.name} WHERE {terms}")  # noqa: S608 - only placeholders are interpolated


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
        wanted = list(dict.fromkeys(keys))
        for start in range(0, len(wanted), _CHUNK_KEYS):
            chunk = wanted[start : start + _CHUNK_KEYS]
            parameters: dict[str, int] = {}
            for number, (level, index) in enumerate(chunk):
                parameters[f"l{number}"] = level
                parameters[f"i{number}"] = index
            for level, index, value in self.session.execute(_lookup(len(chunk)), parameters):
                found[(int(level), int(index))] = bytes(value)
        return [found.get(key) for key in keys]

    def put_many(self, items: Iterable[tuple[int, int, bytes]]) -> None:
        """Store new nodes (inside the caller's transaction)."""
        rows = [{"level": level, "idx": index, "hash": value} for level, index, value in items]
        insert_rows(self.session, merkle_nodes, rows)

    def leaf_count(self) -> int:
        """How many leaves the tree holds."""
        count = self.session.execute(
            select(func.max(merkle_nodes.c.idx)).where(merkle_nodes.c.level == 0)
        ).scalar()
        return 0 if count is None else int(count) + 1


_COPY_FROM = 16  # rows from which PostgreSQL gets a COPY instead of an executemany


def insert_rows(session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert rows inside the caller's transaction: by COPY on PostgreSQL (psycopg), where
    the driver's pipelined executemany of a batch of thousands of rows costs ten times as much,
    else by executemany. JSON columns are written as JSON text."""
    if not rows:
        return
    connection = session.connection()
    if len(rows) < _COPY_FROM or connection.dialect.driver != "psycopg":
        session.execute(insert(table), list(rows))
        return
    columns = list(rows[0])
    encode = {name for name in columns if isinstance(table.c[name].type, JSON)}
    driver: Any = connection.connection.driver_connection
    statement = f"COPY {table.name} ({', '.join(columns)}) FROM STDIN"
    with driver.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(
                [json.dumps(row[name]) if name in encode else row[name] for name in columns]
            )
