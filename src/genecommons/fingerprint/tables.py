"""SQLAlchemy mappings of fingerprinting: datasets' fingerprint settings, recorded deliveries
(what leak tracing scores), recipients' fingerprinted copies of archived VCFs and the jobs that
build them. The table names are those of the migrations that made them (0011, 0013, 0015)."""

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

import genecommons.catalog.tables  # noqa: F401  (copies and their jobs reference catalog files)
from genecommons.db import Base

# One row per delivery of genotypes that tracing may need to score: who received which dataset,
# when, through which channel, what exactly (`what`: format, sites, samples, region, digest),
# and the fingerprint secret (`key_id`) and scheme (`scheme`) that marked it.
fingerprint_deliveries = Table(
    "fingerprint_deliveries",
    Base.metadata,
    Column("id", Integer, primary_key=True),
    Column("delivery_id", String(36), nullable=False, unique=True),
    Column("recipient", String(200), nullable=False, index=True),
    Column("dataset", String(64), nullable=False, index=True),
    Column("delivered_at", DateTime(timezone=True), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("fingerprinted", Boolean, nullable=False),
    Column("what", JSON, nullable=False),
    Column("key_id", String(32), nullable=False),
    Column("scheme", JSON, nullable=False),
    Column("utility", JSON, nullable=False),
    Column("actor", String(200), nullable=False),
)

# A dataset's fingerprint setting: whether record-level genotype deliveries carry a recipient's
# fingerprint. No row means yes (the decision point's `fingerprint-delivery` obligation).
fingerprint_policies = Table(
    "fingerprint_policies",
    Base.metadata,
    Column("dataset", String(64), primary_key=True),
    Column("fingerprint", Boolean, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("updated_by", String(200), nullable=False),
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
