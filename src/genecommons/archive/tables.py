"""SQLAlchemy mappings of the archive: archived objects and resumable uploads."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Table,
    UniqueConstraint,
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

# A recipient's fingerprinted copy of an archived VCF (DRS and htsget serve it in place of the
# archived file when the file's dataset is fingerprinted): its own DRS id, checksums and size,
# its body and index encrypted for the archive key like every archived object. A copy made with
# no marks (too few samples or common sites) has no object: the archived file is served.
fingerprint_copies = Table(
    "fingerprint_copies",
    Base.metadata,
    Column("id", Integer, primary_key=True),
    Column("copy_id", String(80), nullable=False, unique=True),
    Column("file_id", ForeignKey("files.id"), nullable=False),
    Column("recipient", String(200), nullable=False),
    Column("dataset", String(64), nullable=False),
    Column("key_id", String(32), nullable=False),
    Column("marked_positions", Integer, nullable=False),
    Column("utility", JSON, nullable=False),
    Column("object_key", String(200), nullable=True),
    Column("header", LargeBinary, nullable=True),
    Column("body_size", BigInteger, nullable=True),
    Column("plain_size", BigInteger, nullable=True),
    Column("md5", String(32), nullable=True),
    Column("sha256", String(64), nullable=True),
    Column("index_key", String(200), nullable=True),
    Column("index_header", LargeBinary, nullable=True),
    Column("index_body_size", BigInteger, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("file_id", "recipient", "key_id"),
)

# The durable job that builds a recipient's copy in the background: made by the first request
# (one per file, recipient and fingerprint secret, whoever asks first), claimed by a builder
# (`genecommons serve`'s, or `genecommons fingerprint build-pending`), which writes the objects of
# its attempt under `attempt_copy_id` and keeps `heartbeat_at` fresh while it works; an attempt
# whose heartbeat stopped (its builder was killed) is removed and tried again, up to a limit.
fingerprint_copy_jobs = Table(
    "fingerprint_copy_jobs",
    Base.metadata,
    Column("id", Integer, primary_key=True),
    Column("file_id", ForeignKey("files.id"), nullable=False),
    Column("accession", String(40), nullable=False),
    Column("recipient", String(200), nullable=False),
    Column("dataset", String(64), nullable=False),
    Column("key_id", String(32), nullable=False),
    Column("state", String(16), nullable=False),  # pending | building | done | failed
    Column("attempts", Integer, nullable=False),
    Column("attempt_copy_id", String(80), nullable=True),  # what the current attempt writes
    Column("progress", Float, nullable=False),  # share of the current attempt done
    Column("error", JSON, nullable=True),  # {code, message, message_zh} of the last failure
    Column("not_before", DateTime(timezone=True), nullable=False),  # retried no sooner
    Column("started_at", DateTime(timezone=True), nullable=True),  # of the current attempt
    Column("heartbeat_at", DateTime(timezone=True), nullable=True),
    Column("requested_by", String(200), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("file_id", "recipient", "key_id"),
)
