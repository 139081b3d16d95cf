"""SQLAlchemy mappings of the variant stores: each dataset's store as the catalog binds it."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, ForeignKey, Integer, String, Table

import genecommons.catalog.tables  # noqa: F401  (stores reference catalog datasets)
from genecommons.db import Base

# One row per dataset that has a variant store: the store it may serve (a random id, sealed
# inside the store with its name and the source's SHA-256). The name (`store`, also its
# directory) is the dataset's accession, or the accessions of the datasets it was built for
# joined by "+": datasets that release the same VCF with the same samples share one store, and
# a store serves only a dataset its name names. A store on disk that no committed row names is
# a leftover; a store whose sealed binding differs is refused.
variant_stores = Table(
    "variant_stores",
    Base.metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "dataset_id",
        ForeignKey("datasets.id", ondelete="CASCADE"),
        nullable=False,
        unique=True,
    ),
    Column("dataset", String(64), nullable=False),
    Column("store", String(255), nullable=False),
    Column("store_id", String(32), nullable=False, index=True),
    Column("source_sha256", String(64), nullable=False),
    Column("source_name", String(500), nullable=False),
    Column("samples", Integer, nullable=False),
    Column("records", Integer, nullable=False),
    Column("sites", Integer, nullable=False),
    Column("built_at", DateTime(timezone=True), nullable=False),
    Column("built_by", String(200), nullable=False),
)
