"""SQLAlchemy mappings of the audit log: events as Merkle leaves, tree nodes, signed heads."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    String,
    Table,
)

from genecommons.db import Base

# One row per event. `leaf` is the exact canonical JSON (RFC 8785) that was hashed into the
# tree as leaf number `leaf_index`; the other columns are the same facts, for querying.
audit_events = Table(
    "audit_events",
    Base.metadata,
    Column("id", Integer, primary_key=True),
    Column("leaf_index", BigInteger, nullable=False, unique=True),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("tag", String(64), nullable=False, index=True),
    Column("actor", String(200), nullable=False, index=True),
    Column("subject", String(200), nullable=True),
    Column("details", JSON, nullable=False),
    Column("leaf", LargeBinary, nullable=False),
)

# Complete-subtree hashes of the RFC 9162 tree: level 0 holds the leaf hashes.
merkle_nodes = Table(
    "merkle_nodes",
    Base.metadata,
    Column("level", Integer, nullable=False),
    Column("idx", BigInteger, nullable=False),
    Column("hash", LargeBinary(32), nullable=False),
    PrimaryKeyConstraint("level", "idx"),
)

# The single row whose lock serialises appends (there is one writer at a time of the tree).
audit_head = Table(
    "audit_head",
    Base.metadata,
    Column("id", Integer, primary_key=True),
    Column("size", BigInteger, nullable=False),
)

tree_heads = Table(
    "tree_heads",
    Base.metadata,
    Column("tree_size", BigInteger, primary_key=True),
    Column("root_hash", LargeBinary(32), nullable=False),
    Column("timestamp_ms", BigInteger, nullable=False),
    Column("signature", LargeBinary(64), nullable=False),
)
