"""What validation reads and produces: the catalog view it reads, and the plan it returns
(every submitted record resolved to its namespace, existing version and references).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from genecommons.catalog.bundle import Row
from genecommons.catalog.models import (
    EntitySpec,
    Phenotype,
    Record,
)
from genecommons.catalog.report import Report


@dataclass(frozen=True, slots=True)
class Existing:
    """A record already in the catalog."""

    entity: str
    id: int
    accession: str
    alias: str
    namespace: str | None  # institution alias for studies, study key for scoped records
    revision: int
    doc: dict[str, Any]


class CatalogView(Protocol):
    """What validation needs to know about the catalog (read only)."""

    def institutions(self, aliases: Iterable[str]) -> dict[str, Existing]:
        """Existing institutions by alias."""
        ...

    def studies(self) -> list[Existing]:
        """Every existing study; namespace is its institution's alias."""
        ...

    def records_in(self, entity: str, study_keys: Iterable[str]) -> list[Existing]:
        """Existing records of `entity` in the given studies."""
        ...

    def by_accessions(self, accessions: Iterable[str]) -> dict[str, Existing]:
        """Existing records by accession (any entity)."""
        ...

    def count_in(self, entity: str, study_key: str) -> int:
        """How many records of `entity` an existing study holds."""
        ...


class EmptyCatalog:
    """A `CatalogView` of a catalog holding nothing: a bundle validated as the first
    submission to a new node would be (nothing is read or written)."""

    def institutions(self, aliases: Iterable[str]) -> dict[str, Existing]:
        """No institution exists."""
        return {}

    def studies(self) -> list[Existing]:
        """No study exists."""
        return []

    def records_in(self, entity: str, study_keys: Iterable[str]) -> list[Existing]:
        """No record exists."""
        return []

    def by_accessions(self, accessions: Iterable[str]) -> dict[str, Existing]:
        """No accession is known."""
        return {}

    def count_in(self, entity: str, study_key: str) -> int:
        """Every study is empty."""
        return 0


@dataclass(slots=True)
class Node:
    """One submitted record, resolved."""

    spec: EntitySpec
    row: Row
    record: Record
    namespace: str | None
    existing: Existing | None = None
    refs: dict[str, list[Target]] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str | None, str]:
        """The record's identity: entity, namespace, alias."""
        return (self.spec.name, self.namespace, self.record.alias)


@dataclass(frozen=True, slots=True)
class Target:
    """What a reference points at: a record of this submission or one already in the catalog."""

    node: Node | None = None
    existing: Existing | None = None

    @property
    def namespace(self) -> str | None:
        """The target's namespace."""
        if self.node is not None:
            return self.node.namespace
        return self.existing.namespace if self.existing else None


@dataclass(slots=True)
class PhenotypeSet:
    """The phenotype record to store for one individual."""

    individual: Node
    rows: list[Phenotype] = field(default_factory=list)
    document: dict[str, Any] | None = None  # a submitted phenopacket
    place: str = ""


@dataclass(slots=True)
class Plan:
    """A validated submission, ready to commit if the report has no errors."""

    report: Report
    nodes: dict[str, list[Node]] = field(default_factory=dict)
    phenotypes: dict[tuple[str | None, str], PhenotypeSet] = field(default_factory=dict)
