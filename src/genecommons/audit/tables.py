"""SQLAlchemy mapping of the audit event log."""

from __future__ import annotations

from sqlalchemy import JSON, Column, DateTime, Integer, String, Table

from genecommons.db import Base

audit_events = Table(
    "audit_events",
    Base.metadata,
    Column("id", Integer, primary_key=True),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("tag", String(64), nullable=False, index=True),
    Column("actor", String(200), nullable=False),
    Column("subject", String(200), nullable=True),
    Column("details", JSON, nullable=False),
)
