"""Writing a validated plan into the catalog tables for the service (no transactions opened
here); the catalog as validation reads it is `sql_view`, accession numbers `accessions`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, and_, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from genecommons.catalog.accessions import Reservation, allocate_accessions
from genecommons.catalog.bulk import WRITE_CHUNK, _chunks, _encoded, _encoded_fields, bulk_insert
from genecommons.catalog.models import ENTITIES, EntitySpec, study_scoped
from genecommons.catalog.phenopackets import phenopacket_from_rows, read_phenopacket
from genecommons.catalog.sql_view import SqlCatalogView
from genecommons.catalog.tables import (
    ENTITY_TABLES,
    LINK_TABLES,
    TYPED_COLUMNS,
    phenotype_records,
    phenotype_terms,
    record_history,
)
from genecommons.catalog.validation import Node, PhenotypeSet, Plan, Target
from genecommons.errors import ConflictError


@dataclass(slots=True)
class CommitCounts:
    """What a committed submission changed."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0


def _target_accession(target: Target, accessions: dict[int, str]) -> str:
    if target.existing is not None:
        return target.existing.accession
    assert target.node is not None
    return accessions[id(target.node)]


def _target_id(target: Target, ids: dict[int, int]) -> int | None:
    if target.existing is not None:
        return target.existing.id
    assert target.node is not None
    return ids.get(id(target.node))


@dataclass(frozen=True, slots=True)
class _Layout:
    """Where an entity's record goes in its table's row."""

    references: tuple[tuple[str, bool], ...]  # field, many: written as accessions in `doc`
    typed: tuple[str, ...]  # fields that have a column of their own
    id_columns: tuple[tuple[str, str], ...]  # field, column: a single reference's row id
    needs_study_id: bool  # a study-scoped record that does not name its study itself


def _layout_of(spec: EntitySpec) -> _Layout:
    id_columns = tuple(
        (ref.field, f"{ref.field}_id")
        for ref in spec.references
        # parents may be written after their children: linked last (_write_parents)
        if not ref.many and ref.field not in ("father", "mother")
    )
    return _Layout(
        references=tuple((ref.field, ref.many) for ref in spec.references),
        typed=tuple(TYPED_COLUMNS.get(spec.name, {})),
        id_columns=id_columns,
        needs_study_id=study_scoped(spec) and "study_id" not in {c for _, c in id_columns},
    )


_LAYOUTS = {name: _layout_of(spec) for name, spec in ENTITIES.items()}


class PlanWriter:
    """Writes a validated plan into the catalog inside the caller's transaction."""

    def __init__(
        self,
        session: Session,
        view: SqlCatalogView,
        *,
        actor: str,
        submission_id: int,
        now: datetime,
        reservation: Reservation | None = None,
    ) -> None:
        self.session = session
        self.reservation = reservation
        self.view = view
        self.actor = actor
        self.submission_id = submission_id
        self.now = now
        self.accessions: dict[int, str] = {}
        self.ids: dict[int, int] = {}
        self.counts = CommitCounts()
        self.history: list[dict[str, Any]] = []
        self.history_by_accession: dict[str, dict[str, Any]] = {}
        self.study_ids: dict[str, int] = {}

    def write(self, plan: Plan) -> CommitCounts:
        """Create and update every record of the plan; conflicts raise ConflictError."""
        for nodes in plan.nodes.values():
            for node in nodes:
                if node.existing is not None:
                    self.accessions[id(node)] = node.existing.accession
                    self.ids[id(node)] = node.existing.id
        for entity in ENTITIES:
            nodes = plan.nodes.get(entity, [])
            new = [n for n in nodes if n.existing is None]
            prefix = ENTITIES[entity].prefix
            numbers = (
                self.reservation.take(prefix, len(new))
                if self.reservation is not None
                else allocate_accessions(self.session, prefix, len(new))
            )
            for node, accession in zip(new, numbers, strict=True):
                self.accessions[id(node)] = accession
            # in chunks, so that memory stays flat however large the submission
            for chunk in _chunks(nodes, WRITE_CHUNK):
                self._write_entity(entity, list(chunk))
            if entity == "individuals":  # parents may sit in any chunk: link them last
                self._write_parents(nodes)
            if entity == "studies":
                self.study_ids.update(
                    {f"{n.namespace}/{n.record.alias}": self.ids[id(n)] for n in nodes}
                )
            self._flush_history(keep_individual_updates=True)
        self._write_phenotypes(plan)
        self._flush_history(keep_individual_updates=False)
        return self.counts

    def _flush_history(self, *, keep_individual_updates: bool) -> None:
        """Write the history rows gathered so far; an individual's update waits until its
        phenopacket is compared, which may add to the same revision."""
        keep = [
            h
            for h in self.history
            if keep_individual_updates and h["entity"] == "individuals" and h["change"] == "updated"
        ]
        kept = {id(h) for h in keep}
        write = [h for h in self.history if id(h) not in kept]
        for entry in write:  # most entries share a field list: encode each list once
            entry["changed_fields"] = _encoded_fields(tuple(entry["changed_fields"]))
        for chunk in _chunks(write, 5000):
            bulk_insert(self.session, record_history, chunk)
        self.history = keep
        self.history_by_accession = {h["accession"]: h for h in keep}

    def _doc(self, node: Node) -> dict[str, Any]:
        doc = node.record.model_dump(mode="json")
        refs = node.refs
        for field_name, many in _LAYOUTS[node.spec.name].references:
            targets = refs.get(field_name)
            if many:
                doc[field_name] = [_target_accession(t, self.accessions) for t in targets or ()]
            else:
                doc[field_name] = (
                    _target_accession(targets[0], self.accessions) if targets else None
                )
        return doc

    def _columns(self, node: Node, doc: dict[str, Any]) -> dict[str, Any]:
        record = node.record
        layout = _LAYOUTS[node.spec.name]
        columns: dict[str, Any] = {"doc": _encoded(doc)}
        for name in layout.typed:
            columns[name] = getattr(record, name, None)  # scalars: as model_dump() gives them
        refs = node.refs
        for field_name, column in layout.id_columns:
            targets = refs.get(field_name)
            columns[column] = _target_id(targets[0], self.ids) if targets else None
        if layout.needs_study_id:
            assert node.namespace is not None
            columns["study_id"] = self._study_id(node.namespace)
        return columns

    def _study_id(self, key: str) -> int:
        study_id = self.study_ids.get(key) or self.view.study_id(key)
        if study_id is None:
            raise ConflictError(
                f"Study {key} disappeared while the submission was written.",
                message_zh=f"研究 {key} 在写入过程中被删除。",
            )
        return study_id

    def _write_entity(self, entity: str, nodes: list[Node]) -> None:
        table = ENTITY_TABLES[entity]
        inserts: list[tuple[Node, dict[str, Any]]] = []
        updates: list[dict[str, Any]] = []
        for node in nodes:
            doc = self._doc(node)
            if node.existing is None:
                row = self._columns(node, doc)
                row.update(
                    accession=self.accessions[id(node)],
                    alias=node.record.alias,
                    revision=1,
                    created_at=self.now,
                    updated_at=self.now,
                    created_by=self.actor,
                    updated_by=self.actor,
                    submission_id=self.submission_id,
                )
                inserts.append((node, row))
                self._history(entity, row["accession"], 1, "created", sorted(doc), row["doc"])
                self.counts.created += 1
            elif doc != node.existing.doc:
                changed = sorted(
                    k
                    for k in set(doc) | set(node.existing.doc)
                    if doc.get(k) != node.existing.doc.get(k)
                )
                row = self._columns(node, doc)
                row.update(
                    b_id=node.existing.id,
                    b_revision=node.existing.revision,
                    revision=node.existing.revision + 1,
                    updated_at=self.now,
                    updated_by=self.actor,
                    submission_id=self.submission_id,
                )
                row["doc"] = doc  # updates go through SQLAlchemy's own JSON binding
                updates.append(row)
                self._history(
                    entity,
                    node.existing.accession,
                    node.existing.revision + 1,
                    "updated",
                    changed,
                    doc,
                )
                self.counts.updated += 1
            else:
                self.counts.unchanged += 1
        if inserts:
            self._insert(table, inserts)
        if updates:
            self._update(table, updates)
        self._write_links(entity, nodes)

    def _insert(self, table: Table, inserts: list[tuple[Node, dict[str, Any]]]) -> None:
        try:
            for chunk in _chunks(inserts, 5000):
                bulk_insert(self.session, table, [row for _, row in chunk])
        except IntegrityError as error:
            raise _conflict(table.name) from error
        # executemany without RETURNING is several times faster; read the new ids back once
        accessions = [row["accession"] for _, row in inserts]
        ids: dict[str, int] = {}
        for chunk in _chunks(accessions, 5000):
            found = self.session.execute(
                select(table.c.accession, table.c.id).where(table.c.accession.in_(chunk))
            )
            ids.update((row[0], row[1]) for row in found)
        for node, row in inserts:
            self.ids[id(node)] = ids[row["accession"]]

    def _update(self, table: Table, updates: list[dict[str, Any]]) -> None:
        from sqlalchemy import bindparam

        columns = [k for k in updates[0] if not k.startswith("b_")]
        statement = (
            update(table)
            .where(
                and_(table.c.id == bindparam("b_id"), table.c.revision == bindparam("b_revision"))
            )
            .values({c: bindparam(c) for c in columns})
        )
        matched = 0
        for chunk in _chunks(updates, 2000):
            try:
                result = self.session.connection().execute(statement, list(chunk))
            except IntegrityError as error:
                raise _conflict(table.name) from error
            matched += result.rowcount
        if matched != len(updates):
            raise _conflict(table.name)

    def _write_parents(self, nodes: list[Node]) -> None:
        from sqlalchemy import bindparam

        table = ENTITY_TABLES["individuals"]
        rows = []
        for node in nodes:
            father = node.refs.get("father", [])
            mother = node.refs.get("mother", [])
            rows.append(
                {
                    "b_id": self.ids[id(node)],
                    "father_id": _target_id(father[0], self.ids) if father else None,
                    "mother_id": _target_id(mother[0], self.ids) if mother else None,
                }
            )
        rows = [r for r in rows if r["father_id"] or r["mother_id"]]
        if rows:
            self.session.connection().execute(
                update(table)
                .where(table.c.id == bindparam("b_id"))
                .values(father_id=bindparam("father_id"), mother_id=bindparam("mother_id")),
                rows,
            )

    def _write_links(self, entity: str, nodes: list[Node]) -> None:
        for (source, field_name), link in LINK_TABLES.items():
            if source != entity:
                continue
            owner = link.c[f"{entity}_id"]
            touched = [self.ids[id(n)] for n in nodes if n.existing is not None]
            for chunk in _chunks(touched):
                self.session.execute(delete(link).where(owner.in_(chunk)))
            rows = [
                {f"{entity}_id": self.ids[id(n)], "target_id": _target_id(t, self.ids)}
                for n in nodes
                for t in {id(t.node or t.existing): t for t in n.refs.get(field_name, [])}.values()
            ]
            for chunk in _chunks(rows, 5000):
                bulk_insert(self.session, link, chunk)

    def _history(
        self,
        entity: str,
        accession: str,
        revision: int,
        change: str,
        changed: list[str],
        doc: dict[str, Any],
    ) -> None:
        entry = {
            "entity": entity,
            "accession": accession,
            "revision": revision,
            "change": change,
            "changed_fields": changed,
            "doc": doc,
            "changed_at": self.now,
            "changed_by": self.actor,
            "submission_id": self.submission_id,
        }
        self.history.append(entry)
        self.history_by_accession[accession] = entry

    def _write_phenotypes(self, plan: Plan) -> None:
        """Store each individual's phenopacket; a changed one is a new revision of them."""
        existing_ids = [
            self.ids[id(e.individual)] for e in plan.phenotypes.values() if e.individual.existing
        ]
        current: dict[int, Any] = {}
        for chunk in _chunks(existing_ids):
            rows = self.session.execute(
                select(phenotype_records.c.individual_id, phenotype_records.c.document).where(
                    phenotype_records.c.individual_id.in_(chunk)
                )
            )
            current.update((row[0], row[1]) for row in rows)
        entries = list(plan.phenotypes.values())
        for chunk in _chunks(entries, WRITE_CHUNK):
            self._write_phenotype_chunk(chunk, current)

    def _write_phenotype_chunk(
        self, entries: Sequence[PhenotypeSet], current: dict[int, Any]
    ) -> None:
        records: list[dict[str, Any]] = []
        terms: list[dict[str, Any]] = []
        replaced: list[int] = []
        for entry in entries:
            individual_id = self.ids[id(entry.individual)]
            accession = self.accessions[id(entry.individual)]
            document, features, diseases = self._phenopacket(entry, accession)
            if entry.individual.existing is not None:
                if _same_packet(current.get(individual_id), document):
                    continue
                replaced.append(individual_id)
                self._phenotype_revision(entry.individual, individual_id)
            records.append(
                {"individual_id": individual_id, "document": document, "updated_at": self.now}
            )
            terms.extend(
                {"individual_id": individual_id, "kind": kind, "term_id": t, "excluded": excluded}
                for kind, pairs in (("feature", features), ("disease", diseases))
                for t, excluded in pairs
            )
        for chunk in _chunks(replaced):
            self.session.execute(
                delete(phenotype_terms).where(phenotype_terms.c.individual_id.in_(chunk))
            )
            self.session.execute(
                delete(phenotype_records).where(phenotype_records.c.individual_id.in_(chunk))
            )
        bulk_insert(self.session, phenotype_records, records)
        for chunk in _chunks(terms, 10000):
            bulk_insert(self.session, phenotype_terms, chunk)

    def _phenopacket(
        self, entry: PhenotypeSet, accession: str
    ) -> tuple[dict[str, Any], list[tuple[str, bool]], list[tuple[str, bool]]]:
        record: Any = entry.individual.record
        if entry.document is not None:
            document = dict(entry.document)
            document["id"] = accession
            subject = dict(document.get("subject") or {})
            subject["id"] = accession  # the submitter's own id stays out: pseudonymous
            document["subject"] = subject
            result = read_phenopacket(entry.document, source=entry.place)
            return document, result.features, result.diseases
        document = phenopacket_from_rows(
            packet_id=accession,
            subject_id=accession,
            sex=record.sex,
            age_years=record.age,
            rows=entry.rows,
            created_by=self.actor,
            created=self.now,
        )
        features = [(r.term, r.excluded) for r in entry.rows if r.kind == "feature"]
        diseases = [(r.term, r.excluded) for r in entry.rows if r.kind == "disease"]
        return document, features, diseases

    def _phenotype_revision(self, node: Node, individual_id: int) -> None:
        assert node.existing is not None
        accession = node.existing.accession
        entry = self.history_by_accession.get(accession)
        if entry is not None:  # the individual's own fields changed too: one revision
            entry["changed_fields"] = sorted([*entry["changed_fields"], "phenopacket"])
            return
        table = ENTITY_TABLES["individuals"]
        result = self.session.execute(
            update(table)
            .where(table.c.id == individual_id, table.c.revision == node.existing.revision)
            .values(
                revision=node.existing.revision + 1,
                updated_at=self.now,
                updated_by=self.actor,
                submission_id=self.submission_id,
            )
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise _conflict("individuals")
        self._history(
            "individuals",
            accession,
            node.existing.revision + 1,
            "updated",
            ["phenopacket"],
            node.existing.doc,
        )
        self.counts.updated += 1
        self.counts.unchanged -= 1


def _same_packet(old: Any, new: dict[str, Any]) -> bool:
    """Whether two phenopackets say the same (who made them and when aside)."""
    if old is None:
        return False

    def strip(document: Any) -> Any:
        document = dict(document)
        meta = dict(document.get("metaData") or {})
        meta.pop("created", None)
        meta.pop("createdBy", None)
        document["metaData"] = meta
        return document

    return bool(strip(old) == strip(new))


def _conflict(table: str) -> ConflictError:
    return ConflictError(
        f"Another submission created or changed the same {table} records at the same time; "
        "nothing from yours was stored. Submit again to apply your version on top of it.",
        message_zh=f"另一次提交同时创建或修改了相同的 {table} 记录；您的提交未被保存。请重新提交以在其基础上更新。",
    )
