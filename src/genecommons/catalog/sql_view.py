"""The catalog as validation sees it, read through one session."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from genecommons.catalog.bulk import _chunks
from genecommons.catalog.models import entity_for_accession
from genecommons.catalog.tables import ENTITY_TABLES
from genecommons.catalog.validation import Existing


class SqlCatalogView:
    """The catalog as validation sees it, read through one session."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._study_keys: dict[int, str] | None = None
        self._inst_alias: dict[int, str] = {}

    def _keys(self) -> dict[int, str]:
        if self._study_keys is None:
            institutions = ENTITY_TABLES["institutions"]
            studies = ENTITY_TABLES["studies"]
            rows = self.session.execute(
                select(studies.c.id, studies.c.alias, institutions.c.alias.label("inst")).join(
                    institutions, studies.c.institution_id == institutions.c.id
                )
            ).all()
            self._study_keys = {r.id: f"{r.inst}/{r.alias}" for r in rows}
        return self._study_keys

    def study_id(self, key: str) -> int | None:
        """The id of the study with key INSTITUTION/ALIAS."""
        for study_id, study_key in self._keys().items():
            if study_key == key:
                return study_id
        return None

    def _existing(self, entity: str, row: Any) -> Existing:
        if entity == "institutions":
            namespace = None
        elif entity == "studies":
            namespace = self._institution_alias(row.institution_id)
        else:
            namespace = self._keys().get(row.study_id)
        return Existing(
            entity, row.id, row.accession, row.alias, namespace, row.revision, dict(row.doc)
        )

    def _institution_alias(self, institution_id: int) -> str:
        if institution_id not in self._inst_alias:
            table = ENTITY_TABLES["institutions"]
            self._inst_alias[institution_id] = self.session.execute(
                select(table.c.alias).where(table.c.id == institution_id)
            ).scalar_one()
        return self._inst_alias[institution_id]

    def institutions(self, aliases: Iterable[str]) -> dict[str, Existing]:
        """Existing institutions by alias."""
        table = ENTITY_TABLES["institutions"]
        out: dict[str, Existing] = {}
        for chunk in _chunks(sorted(set(aliases))):
            for row in self.session.execute(select(table).where(table.c.alias.in_(chunk))):
                out[row.alias] = self._existing("institutions", row)
        return out

    def studies(self) -> list[Existing]:
        """Every existing study."""
        table = ENTITY_TABLES["studies"]
        return [self._existing("studies", r) for r in self.session.execute(select(table))]

    def records_in(self, entity: str, study_keys: Iterable[str]) -> list[Existing]:
        """Existing records of `entity` in the given studies."""
        ids = [i for i in (self.study_id(k) for k in study_keys) if i is not None]
        if not ids:
            return []
        table = ENTITY_TABLES[entity]
        rows = self.session.execute(select(table).where(table.c.study_id.in_(ids)))
        return [self._existing(entity, r) for r in rows]

    def by_accessions(self, accessions: Iterable[str]) -> dict[str, Existing]:
        """Existing records by accession."""
        grouped: dict[str, list[str]] = defaultdict(list)
        for accession in accessions:
            spec = entity_for_accession(accession)
            if spec is not None:
                grouped[spec.name].append(accession)
        out: dict[str, Existing] = {}
        for entity, values in grouped.items():
            table = ENTITY_TABLES[entity]
            for chunk in _chunks(sorted(values)):
                for row in self.session.execute(select(table).where(table.c.accession.in_(chunk))):
                    out[row.accession] = self._existing(entity, row)
        return out

    def count_in(self, entity: str, study_key: str) -> int:
        """How many records of `entity` an existing study holds."""
        study_id = self.study_id(study_key)
        if study_id is None:
            return 0
        table = ENTITY_TABLES[entity]
        return int(
            self.session.execute(
                select(func.count()).select_from(table).where(table.c.study_id == study_id)
            ).scalar_one()
        )
