"""Database engine and session factory: SQLite by default, PostgreSQL in production.

An SQLite database file is encrypted with SQLCipher (AES-256 pages, each with an HMAC): the
node's own is keyed by a raw 256-bit key the node key store derives for it (`node_engine`), so
that no copy of it on disk (the file, its WAL, a backup's copy) holds individual-level data in
the clear. An in-memory SQLite database is never on disk and takes no key. PostgreSQL is
encrypted at rest by its server (an encrypted disk or volume, or the server's TDE), if at all.

Its modules: `engine` (the engines), `encryption` (SQLCipher keys, encrypting a database in
place), `locking` (SQLite's pragmas and write lock), `failures` (a busy or full database's
errors), `sessions` (transactions, group commit), `prepared` (reads run without the ORM); the
names callers use are published here.
"""

from __future__ import annotations

from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

from genecommons.db.encryption import (
    ENCRYPTING,
    PLAINTEXT_HEADER,
    DatabaseKey,
    check_node_key_present,
    connect_encrypted,
    database_key_error,
    encrypt_in_place,
    is_plaintext,
    node_database_key,
    plaintext_database_error,
    sqlite_file,
)
from genecommons.db.engine import IDLE_PING_SECONDS, make_engine, node_engine
from genecommons.db.failures import DATABASE_HEADROOM
from genecommons.db.locking import BUSY_SECONDS, IMMEDIATE, RETRY_AFTER_SECONDS, busy_error
from genecommons.db.prepared import Prepared, prepared
from genecommons.db.sessions import (
    GroupCommit,
    make_session_factory,
    snapshot_transaction,
    transaction,
    write_transaction,
)

__all__ = [
    "BUSY_SECONDS",
    "DATABASE_HEADROOM",
    "ENCRYPTING",
    "IDLE_PING_SECONDS",
    "IMMEDIATE",
    "NAMING_CONVENTION",
    "PLAINTEXT_HEADER",
    "RETRY_AFTER_SECONDS",
    "Base",
    "DatabaseKey",
    "GroupCommit",
    "Prepared",
    "busy_error",
    "check_node_key_present",
    "connect_encrypted",
    "database_key_error",
    "encrypt_in_place",
    "is_plaintext",
    "make_engine",
    "make_session_factory",
    "node_database_key",
    "node_engine",
    "plaintext_database_error",
    "prepared",
    "snapshot_transaction",
    "sqlite_file",
    "transaction",
    "write_transaction",
]

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
