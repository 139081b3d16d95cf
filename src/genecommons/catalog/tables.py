"""SQLAlchemy mappings of the catalog, kept apart from the domain types in models.py.

Every entity gets one table named after it. Each row keeps the common columns (accession,
alias, study, version, who and when), the validated record as JSON (`doc`, references written
as accessions), typed columns for the fields one filters on, a foreign key per single reference
and an association table per list reference.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    UniqueConstraint,
)
from sqlalchemy.types import TypeEngine

from genecommons.catalog.models import ENTITIES, EntitySpec, study_scoped
from genecommons.db import Base

metadata = Base.metadata

# Columns copied out of `doc` so that listings can filter and sort on them.
_S = String(200)
TYPED_COLUMNS: dict[str, dict[str, TypeEngine[Any]]] = {
    "institutions": {
        "name_en": _S,
        "name_zh": _S,
        "country": String(2),
        "province": String(6),
        "kind": String(32),
    },
    "studies": {"title": String(500), "study_type": String(32), "public": Boolean()},
    "consents": {"version": _S, "permission": String(16), "abroad_allowed": Boolean()},
    "ethics_approvals": {"number": _S, "approved_on": Date(), "valid_until": Date()},
    "hgr_records": {
        "category": String(32),
        "record_type": String(16),
        "number": _S,
        "issued_on": Date(),
        "valid_until": Date(),
    },
    "individuals": {
        "sex": String(16),
        "birth_year": Integer(),
        "age": Float(),
        "ethnic_group": String(16),
        "population": String(100),
        "country": String(2),
        "province": String(6),
    },
    "samples": {"tissue": _S, "collection_date": Date()},
    "experiments": {"library_strategy": String(16), "platform": String(32)},
    "runs": {"run_date": Date()},
    "analyses": {"analysis_type": String(32), "reference_assembly": String(16)},
    "files": {"format": String(16), "md5": String(32), "sha256": String(64), "size": BigInteger()},
    "datasets": {"title": String(500), "access_tier": String(16)},
}


def _entity_table(spec: EntitySpec) -> Table:
    columns: list[Column[object]] = [
        Column("id", Integer, primary_key=True),
        Column("accession", String(11), nullable=False, unique=True),
        Column("alias", String(128), nullable=False),
        Column("revision", Integer, nullable=False),
        Column("doc", JSON, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False),
        Column("created_by", String(200), nullable=False),
        Column("updated_by", String(200), nullable=False),
        Column("submission_id", ForeignKey("submissions.id"), nullable=True, index=True),
    ]
    constraints: list[UniqueConstraint | Index] = []
    if study_scoped(spec):
        has_study_ref = any(r.field == "study" for r in spec.references)
        if not has_study_ref:
            columns.append(Column("study_id", ForeignKey("studies.id"), nullable=False, index=True))
        constraints.append(UniqueConstraint("study_id", "alias"))
    elif spec.name == "studies":
        constraints.append(UniqueConstraint("institution_id", "alias"))
    else:
        constraints.append(UniqueConstraint("alias"))
    for name, type_ in TYPED_COLUMNS.get(spec.name, {}).items():
        columns.append(Column(name, type_, nullable=True))
    for ref in spec.references:
        if ref.many:
            continue
        target = ENTITIES[ref.target].name
        nullable = not spec.model.model_fields[ref.field].is_required()
        columns.append(
            Column(f"{ref.field}_id", ForeignKey(f"{target}.id"), nullable=nullable, index=True)
        )
    return Table(spec.name, metadata, *columns, *constraints)


submissions = Table(
    "submissions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("submitter", String(200), nullable=False),
    Column("source", String(500), nullable=False),
    Column("created", Integer, nullable=False),
    Column("updated", Integer, nullable=False),
    Column("unchanged", Integer, nullable=False),
    Column("report", JSON, nullable=False),
)

ENTITY_TABLES: dict[str, Table] = {name: _entity_table(spec) for name, spec in ENTITIES.items()}


def _link_table(spec: EntitySpec, field: str, target: str) -> Table:
    return Table(
        f"{spec.name}_{field}",
        metadata,
        Column(
            f"{spec.name}_id", ForeignKey(f"{spec.name}.id", ondelete="CASCADE"), primary_key=True
        ),
        Column("target_id", ForeignKey(f"{target}.id"), primary_key=True, index=True),
    )


LINK_TABLES: dict[tuple[str, str], Table] = {
    (spec.name, ref.field): _link_table(spec, ref.field, ref.target)
    for spec in ENTITIES.values()
    for ref in spec.references
    if ref.many
}

record_history = Table(
    "record_history",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("entity", String(32), nullable=False),
    Column("accession", String(11), nullable=False),  # looked up by the unique index below
    Column("revision", Integer, nullable=False),
    Column("change", String(16), nullable=False),  # created | updated
    Column("changed_fields", JSON, nullable=False),
    Column("doc", JSON, nullable=False),
    Column("changed_at", DateTime(timezone=True), nullable=False),
    Column("changed_by", String(200), nullable=False),
    Column("submission_id", ForeignKey("submissions.id"), nullable=True),
    UniqueConstraint("accession", "revision"),
)

accession_counters = Table(
    "accession_counters",
    metadata,
    Column("prefix", String(3), primary_key=True),
    Column("last_number", Integer, nullable=False),
)

phenotype_records = Table(
    "phenotype_records",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "individual_id",
        ForeignKey("individuals.id", ondelete="CASCADE"),
        nullable=False,
        unique=True,
    ),
    Column("document", JSON, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

phenotype_terms = Table(
    "phenotype_terms",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "individual_id",
        ForeignKey("individuals.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("kind", String(16), nullable=False),
    Column("term_id", String(64), nullable=False, index=True),
    Column("excluded", Boolean, nullable=False),
)

__all__ = [
    "ENTITY_TABLES",
    "LINK_TABLES",
    "accession_counters",
    "phenotype_records",
    "phenotype_terms",
    "record_history",
    "submissions",
]
