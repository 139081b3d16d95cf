"""SQLAlchemy mappings of identities: users, their roles, API tokens, failed sign-ins."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Table,
    UniqueConstraint,
)

import genecommons.catalog.tables  # noqa: F401  (users reference catalog institutions)
from genecommons.db import Base

users = Table(
    "users",
    Base.metadata,
    Column("id", Integer, primary_key=True),
    Column("email", String(200), nullable=False, unique=True),
    Column("display_name", String(200), nullable=True),
    Column("institution_id", ForeignKey("institutions.id"), nullable=True, index=True),
    Column("password_hash", String(200), nullable=True),
    Column("active", Boolean, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(200), nullable=False),
)

user_roles = Table(
    "user_roles",
    Base.metadata,
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("role", String(32), primary_key=True),
)

api_tokens = Table(
    "api_tokens",
    Base.metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("digest", String(64), nullable=False),
    Column("label", String(200), nullable=True),
    Column("scopes", JSON, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    Column("last_used_at", DateTime(timezone=True), nullable=True),
    UniqueConstraint("digest"),
)

login_failures = Table(
    "login_failures",
    Base.metadata,
    Column("id", Integer, primary_key=True),
    Column("key", String(250), nullable=False, index=True),  # "account:EMAIL" or "address:IP"
    Column("failed_at", DateTime(timezone=True), nullable=False),
)
