"""SQLAlchemy mappings of the archive: archived objects and resumable uploads."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Table,
)

import genecommons.catalog.tables  # noqa: F401  (objects reference catalog files)
from genecommons.db import Base

# One row per archived catalog file. The Crypt4GH header (readable with the archive's secret
# key only) is kept here and the encrypted body in the object store, so that a delivery only
# re-encrypts this header and streams the body unchanged.
archive_objects = Table(
    "archive_objects",
    Base.metadata,
    Column("id", Integer, primary_key=True),
    Column("file_id", ForeignKey("files.id"), nullable=False, unique=True),
    Column("object_key", String(200), nullable=False, unique=True),
    Column("header", LargeBinary, nullable=False),
    Column("body_size", BigInteger, nullable=False),
    Column("body_sha256", String(64), nullable=False),
    Column("plain_size", BigInteger, nullable=False),
    Column("md5", String(32), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("format", String(16), nullable=False),
    Column("summary", JSON, nullable=False),  # what the format check found
    # the index (BAI/TBI/CSI), encrypted as an object of its own, for htsget
    Column("index_key", String(200), nullable=True),
    Column("index_kind", String(8), nullable=True),
    Column("index_header", LargeBinary, nullable=True),
    Column("index_body_size", BigInteger, nullable=True),
    Column("index_body_sha256", String(64), nullable=True),
    Column("state", String(16), nullable=False),  # archived | damaged
    Column("encrypted_upload", Boolean, nullable=False),
    Column("archived_at", DateTime(timezone=True), nullable=False),
    Column("archived_by", String(200), nullable=False),
    Column("verified_at", DateTime(timezone=True), nullable=True),
)

# An upload in progress: bytes received so far wait in the staging directory.
uploads = Table(
    "uploads",
    Base.metadata,
    Column("id", String(36), primary_key=True),
    Column("file_id", ForeignKey("files.id"), nullable=False, index=True),
    Column("uploader", String(200), nullable=False),
    Column("encrypted", Boolean, nullable=False),
    Column("expected_size", BigInteger, nullable=True),
    Column("received", BigInteger, nullable=False),
    Column("state", String(16), nullable=False),  # open | archived | failed
    Column("error", JSON, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# The Crypt4GH public key each user registered: deliveries to them are encrypted for it.
recipient_keys = Table(
    "recipient_keys",
    Base.metadata,
    Column("subject_id", String(200), primary_key=True),
    Column("public_key", LargeBinary(32), nullable=False),
    Column("registered_at", DateTime(timezone=True), nullable=False),
)
