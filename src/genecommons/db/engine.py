"""The engines: SQLite (an SQLCipher file, or in memory) or PostgreSQL, with their pragmas,
write lock, error mapping and, on a server, a ping for a connection that sat idle in the
pool."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import sqlcipher3.dbapi2 as sqlcipher
from sqlalchemy import create_engine, event, exc
from sqlalchemy.engine import Engine

from genecommons.config import Settings
from genecommons.db.encryption import (
    DatabaseKey,
    _KeyedConnect,
    is_plaintext,
    node_database_key,
    plaintext_database_error,
    sqlite_file,
)
from genecommons.db.failures import _translate
from genecommons.db.locking import _sqlite_begin, _sqlite_pragmas


def make_engine(url: str, *, key: DatabaseKey | Callable[[], DatabaseKey] | None = None) -> Engine:
    """An engine for `url`, with SQLite set up for concurrent readers and foreign keys. An SQLite
    database file is opened with SQLCipher under `key` (required for one; a callable is asked
    once, at the first connection); `key` is not used for another database."""
    # connections kept open for the requests served at once (a Beacon query holds two at most,
    # and a server runs up to 40 in its worker threads): below that, each burst of requests
    # opens and closes connections again (and sets SQLite's pragmas on each)
    pooling = {"pool_size": 16, "max_overflow": 24}
    if url.startswith("sqlite"):
        path = sqlite_file(url)
        if path is not None and key is None:
            raise ValueError(
                f"{url} names an SQLite file, which is opened with its SQLCipher key: "
                "make_engine(url, key=...), or node_engine(settings) for the node's database"
            )
        engine = create_engine(
            url,
            module=sqlcipher,
            connect_args={"check_same_thread": False},
            **(pooling if path is not None else {}),  # in memory: one connection per thread
        )
        if path is not None and key is not None:
            event.listen(engine, "do_connect", _KeyedConnect(path, key))
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        event.listen(engine, "handle_error", _translate)
        return engine
    engine = create_engine(url, **pooling)
    event.listen(engine, "handle_error", _translate)
    event.listen(engine, "checkin", _stamp_checkin)
    event.listen(engine, "checkout", _ping_if_idle)
    return engine


def node_engine(settings: Settings) -> Engine:
    """The engine of the node's own database (`settings.effective_database_url`): an SQLite
    file is opened with the key the node key store derives for it, asked for at the first
    connection (`node_database_key`)."""
    url = settings.effective_database_url

    def key() -> DatabaseKey:
        path = sqlite_file(url)
        if path is not None and is_plaintext(path):  # said before the node key is asked for
            raise plaintext_database_error(path)
        return node_database_key(settings)

    return make_engine(url, key=key)


IDLE_PING_SECONDS = 10.0
"""A pooled server connection unused this long is pinged before it is handed out again."""


def _stamp_checkin(_dbapi_connection: Any, record: Any) -> None:
    record.info["checked_in"] = time.monotonic()


def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    """Ping a connection that sat idle in the pool (the server may have restarted or dropped
    it since), and have the pool replace it if the ping fails. A connection in steady use is
    not pinged: SQLAlchemy's `pool_pre_ping` pings on every checkout, a round trip more for
    every statement `Prepared` runs (a Beacon count query makes four). The price: after a
    server restart under steady load, a connection that was in use fails one request before
    it is replaced (the pool drops every connection once SQLAlchemy sees a disconnect in a
    session; a `Prepared` read drops only its own), where `pool_pre_ping` would have
    replaced it unseen."""
    if time.monotonic() - record.info.get("checked_in", 0.0) < IDLE_PING_SECONDS:
        return
    try:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("SELECT 1")
        finally:
            cursor.close()
        dbapi_connection.rollback()
    except Exception as error:  # any failure: the pool opens a new connection in its place
        raise exc.DisconnectionError(f"a pooled connection failed its ping: {error}") from error
