"""Writing many rows at once (one executemany, one COPY on PostgreSQL) and the JSON they carry,
encoded once; reading ids in chunks."""

from __future__ import annotations

import functools
import operator
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from pydantic_core import to_json
from sqlalchemy import JSON, Date, DateTime, Table
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

_CHUNK = 500
WRITE_CHUNK = 5000


def _chunks(values: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def bulk_insert(session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert many rows with one driver-level executemany (on PostgreSQL, one COPY).

    SQLAlchemy's generic executemany costs about 20 µs of Python per row in parameter handling;
    here the statement is compiled once and each value goes through its type's bind processor
    only.
    """
    if not rows:
        return
    connection = session.connection()
    dialect = connection.dialect
    columns = list(rows[0])
    quote = dialect.identifier_preparer.quote
    marker = "?" if dialect.paramstyle == "qmark" else "%s"
    statement = (
        # identifiers come from our own table definitions, quoted; values are bound parameters
        f"INSERT INTO {quote(table.name)} ({', '.join(quote(c) for c in columns)}) "  # noqa: S608
        f"VALUES ({', '.join(marker for _ in columns)})"
    )
    converting = [
        (i, processor)
        for i, processor in enumerate(_processor(table.c[c].type, dialect) for c in columns)
        if processor is not None
    ]
    cells = operator.itemgetter(*columns)  # every row of one call has the same keys
    params: list[Any] = [cells(row) for row in rows]
    if len(columns) == 1:  # of one key, itemgetter gives the value itself
        params = [(value,) for value in params]
    if converting:
        for n, values in enumerate(params):
            converted = list(values)
            for i, processor in converting:
                if converted[i] is not None:
                    converted[i] = processor(converted[i])
            params[n] = tuple(converted)
    if dialect.name == "postgresql":
        _copy(connection, table, columns, params)
        return
    connection.exec_driver_sql(statement, params)


def _copy(
    connection: Connection, table: Table, columns: list[str], rows: list[tuple[Any, ...]]
) -> None:
    """PostgreSQL's COPY of `rows` into `table`, in the connection's transaction: one stream
    instead of a statement per row. Its errors reach the caller as SQLAlchemy's would (an
    IntegrityError, the node's errors for a full or busy server)."""
    quote = connection.dialect.identifier_preparer.quote
    statement = (  # identifiers from our own table definitions, quoted
        f"COPY {quote(table.name)} ({', '.join(quote(c) for c in columns)}) FROM STDIN"
    )
    driver = connection.connection.driver_connection
    assert driver is not None
    cursor = driver.cursor()
    try:
        with cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row(row)
    except connection.dialect.loaded_dbapi.Error as error:
        connection._handle_dbapi_exception(error, statement, None, cursor, None)
    finally:
        cursor.close()


def _processor(type_: Any, dialect: Any) -> Any:
    if isinstance(type_, JSON):
        return _json_text  # the driver gets text; the column's type turns it into JSON
    processor = type_.bind_processor(dialect)
    if processor is None and isinstance(type_, DateTime) and dialect.name == "sqlite":
        # the text the sqlite3 module's own adapter makes of a datetime, made here once
        processor = _sqlite_datetime
    if processor is not None and isinstance(type_, Date | DateTime):
        # a submission stamps every row with the same moment: convert it once
        return functools.lru_cache(maxsize=64)(processor)
    return processor


def _sqlite_datetime(value: datetime) -> str:
    return value.isoformat(" ")


def _json(document: Any) -> str:
    """Compact JSON text, non-ASCII kept as is (what json.dumps with ensure_ascii=False and
    no spaces writes, its float spellings aside), by pydantic-core's encoder: about four times
    faster than the json module's on a submission's documents."""
    return to_json(document).decode()


def _json_text(value: Any) -> str:
    if isinstance(value, EncodedJSON):
        return str(value)
    return _json(value)


@functools.lru_cache(maxsize=256)
def _encoded_fields(fields: tuple[str, ...]) -> EncodedJSON:
    return _encoded(list(fields))


class EncodedJSON(str):
    """A JSON document already encoded, so that one written twice is encoded once."""

    __slots__ = ()


def _encoded(document: Any) -> EncodedJSON:
    return EncodedJSON(_json(document))
