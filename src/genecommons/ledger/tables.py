"""SQLAlchemy mappings of the audit log (events as Merkle leaves, tree nodes, signed heads), its
queue, the early-warning watcher's cursor and its alerts."""

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
    Text,
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

# Events of high-rate paths (token use, Beacon queries) wait here, committed with the action
# that caused them, until the sequencer appends them to the tree in batches (events.sequence).
audit_queue = Table(
    "audit_queue",
    Base.metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("leaf", LargeBinary, nullable=False),
)

# The early-warning watcher's durable cursor: the first leaf it has not read, and the state of
# its rules (windows, addresses seen, a grant's past volume) as JSON.
audit_watch = Table(
    "audit_watch",
    Base.metadata,
    Column("name", String(64), primary_key=True),
    Column("position", BigInteger, nullable=False),
    Column("state", JSON, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# Alerts the watcher raised: the rule, what it is about, the leaves behind it, and the state of
# its delivery to the configured webhook.
audit_alerts = Table(
    "audit_alerts",
    Base.metadata,
    Column("id", Integer, primary_key=True),
    Column("rule", String(64), nullable=False, index=True),
    Column("rule_set", String(64), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("key", String(400), nullable=False),
    Column("summary", Text, nullable=False),
    Column("summary_zh", Text, nullable=False),
    Column("details", JSON, nullable=False),
    Column("leaf_indices", JSON, nullable=False),
    Column("first_at", DateTime(timezone=True), nullable=False),
    Column("last_at", DateTime(timezone=True), nullable=False),
    Column("raised_at", DateTime(timezone=True), nullable=False, index=True),
    Column("delivery", String(16), nullable=False),  # none | pending | delivered | failed
    Column("delivery_attempts", Integer, nullable=False),
    Column("delivered_at", DateTime(timezone=True), nullable=True),
    Column("delivery_error", String(500), nullable=True),
)
