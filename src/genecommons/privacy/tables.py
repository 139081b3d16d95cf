"""SQLAlchemy mappings of the privacy ledger: what each account and address has learnt."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    Integer,
    String,
    Table,
    UniqueConstraint,
)

from genecommons.db import Base

# One row per party (an account "account:<subject id>", an address "address:<ip>", an
# institution "institution:<accession>" or a period "period:<first day>", every registered
# caller together) and dataset: the exposure its count-granularity answers have spent, and
# whether it was warned.
privacy_budgets = Table(
    "privacy_budgets",
    Base.metadata,
    Column("id", Integer, primary_key=True),
    Column("party", String(300), nullable=False),
    Column("dataset", String(64), nullable=False),
    Column("spent", Float, nullable=False),
    Column("warned", Boolean, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("party", "dataset"),
)

# One row per variant a party was answered about: asking again costs nothing more (the answer
# is the same), so each variant is charged once.
privacy_charges = Table(
    "privacy_charges",
    Base.metadata,
    Column("id", Integer, primary_key=True),
    Column("party", String(300), nullable=False),
    Column("dataset", String(64), nullable=False),
    Column("variant", String(600), nullable=False),
    Column("exposure", Float, nullable=False),
    Column("charged_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("party", "dataset", "variant"),
)

# Open-tier frequency releases (privacy/dp.py): each noisy table is drawn once and kept, so
# that asking again returns the same noise instead of a fresh draw to average.
privacy_releases = Table(
    "privacy_releases",
    Base.metadata,
    Column("id", Integer, primary_key=True),
    Column("dataset", String(64), nullable=False),
    Column("variant", String(600), nullable=False),
    Column("epsilon", Float, nullable=False),
    Column("counts", JSON, nullable=False),  # group -> {"ac", "an", "hom"}, noisy
    Column("released_at", DateTime(timezone=True), nullable=False),
    # what the release told a membership test (privacy/detection.py); None before 0018
    Column("detection", Float, nullable=True),
    UniqueConstraint("dataset", "variant"),
)

# Re-identification attacks measured on a dataset (`genecommons privacy attack-beacon`), one row
# per measurement: how big the dataset was, under which settings and inputs, and the figures.
# The privacy report shows the latest, and says when the dataset has changed too much since.
privacy_assessments = Table(
    "privacy_assessments",
    Base.metadata,
    Column("id", Integer, primary_key=True),
    Column("dataset", String(64), nullable=False, index=True),
    Column("members", Integer, nullable=False),  # the Beacon's members when measured
    Column("parameters", JSON, nullable=False),  # victims, queries, seed, inputs, settings
    Column("figures", JSON, nullable=False),  # evaluation.Figures as JSON
    Column("measured_by", String(300), nullable=False),
    Column("measured_at", DateTime(timezone=True), nullable=False),
)

# One row per dataset: the detection budget its open frequency releases have spent
# (privacy/detection.py), and when it closed to new releases.
privacy_frequency_budgets = Table(
    "privacy_frequency_budgets",
    Base.metadata,
    Column("id", Integer, primary_key=True),
    Column("dataset", String(64), nullable=False, unique=True),
    Column("spent", Float, nullable=False),
    Column("released", Integer, nullable=False),
    Column("closed_at", DateTime(timezone=True), nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
