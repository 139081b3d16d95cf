"""Reads prepared once per engine and run on a pooled driver connection without the ORM."""

from __future__ import annotations

import threading
import weakref
from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.sql import CompoundSelect, Select
from sqlalchemy.sql.compiler import SQLCompiler


class Prepared:
    """A read statement compiled once for an engine, run on one of its pooled driver
    connections without the ORM and SQLAlchemy's execution layer (for reads that run on every
    request), its parameters and columns converted by their SQLAlchemy types as SQLAlchemy
    would. A single statement reads one snapshot of the database, on SQLite as on PostgreSQL."""

    def __init__(self, engine: Engine, statement: Select[Any] | CompoundSelect[Any]) -> None:
        dialect = engine.dialect
        compiled = statement.compile(dialect=engine.dialect)
        assert isinstance(compiled, SQLCompiler)
        self.engine = engine
        self.sql = compiled.string
        self.order = tuple(compiled.positiontup or ()) if compiled.positional else None
        self.binds = {
            name: processor
            for name, bind in compiled.binds.items()
            if (processor := bind.type.dialect_impl(dialect).bind_processor(dialect)) is not None
        }
        # the values the statement itself carries (literals SQLAlchemy binds, e.g. a separator)
        self.fixed = {
            name: bind.effective_value for name, bind in compiled.binds.items() if not bind.required
        }
        columns = list(statement.selected_columns)
        self.row = namedtuple("Row", [c.key for c in columns], rename=True)  # type: ignore[misc]
        self.types = [c.type.dialect_impl(dialect) for c in columns]
        self.columns: list[Callable[[Any], Any] | None] | None = None  # at the first read
        self.autocommit = dialect.name == "postgresql"

    def rows(self, params: Mapping[str, Any]) -> list[Any]:
        """The rows the statement reads with `params` (by bind parameter name), as named
        tuples."""
        given = {
            name: (self.binds[name](value) if name in self.binds else value)
            for name, value in {**self.fixed, **params}.items()
        }
        values: Any = given if self.order is None else [given[n] for n in self.order]
        connection = self.engine.raw_connection()
        driver = connection.dbapi_connection
        # on a server, the statement runs on its own (autocommit): no transaction is begun, so
        # none needs ending when the connection goes back to the pool (a round trip fewer)
        alone = self.autocommit and driver is not None
        try:
            if alone:
                driver.autocommit = True  # type: ignore[union-attr]
            cursor = connection.cursor()
            try:
                cursor.execute(self.sql, values)
                found = cursor.fetchall()
                if self.columns is None:  # as SQLAlchemy makes them, for the driver's types
                    dialect = self.engine.dialect
                    self.columns = [
                        t.result_processor(dialect, d[1])
                        for t, d in zip(self.types, cursor.description, strict=True)
                    ]
            finally:
                cursor.close()
        finally:
            if alone:
                try:
                    driver.autocommit = False  # type: ignore[union-attr]
                except Exception:  # a broken connection: never back to the pool in autocommit
                    connection.invalidate()
            connection.close()  # back to the pool, which ends any transaction
        columns, row = self.columns or [], self.row
        if not any(columns):
            return [row(*r) for r in found]
        return [row(*_converted(columns, r)) for r in found]


def _converted(columns: Sequence[Callable[[Any], Any] | None], values: Sequence[Any]) -> list[Any]:
    return [v if p is None else p(v) for p, v in zip(columns, values, strict=True)]


_PREPARED: weakref.WeakKeyDictionary[Engine, dict[int, tuple[Any, Prepared]]] = (
    weakref.WeakKeyDictionary()
)
_PREPARING = threading.Lock()


def prepared(engine: Engine, statement: Select[Any] | CompoundSelect[Any]) -> Prepared:
    """`statement` (one built once, at import) prepared for `engine`, the first time only."""
    by_statement = _PREPARED.get(engine)
    found = by_statement.get(id(statement)) if by_statement is not None else None
    if found is None or found[0] is not statement:
        with _PREPARING:
            found = (statement, Prepared(engine, statement))
            _PREPARED.setdefault(engine, {})[id(statement)] = found
    return found[1]
