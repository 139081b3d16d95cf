"""Reading the sheets into records and placing each in its namespace: the headers, row parsing,
the catalog records the submission touches, a record's institution or study, duplicate aliases.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError

from genecommons.catalog.bundle import Row
from genecommons.catalog.models import (
    ENTITIES,
    EntitySpec,
    Record,
    is_accession,
    sheet_model,
    study_scoped,
)
from genecommons.catalog.validation.context import ValidationContext
from genecommons.catalog.validation.plan import Existing, Node
from genecommons.catalog.validation.problems import _p, _pydantic_problems


class RecordPlacement(ValidationContext):
    """Parses the sheets and places every record in its namespace."""

    def _check_headers(self) -> None:
        self.unknown_columns: dict[str, set[str]] = {}
        self.missing_columns: dict[str, set[str]] = {}
        for sheet, (file, columns) in self.bundle.headers.items():
            model = sheet_model(sheet)
            known = set(model.model_fields)
            unknown = {c for c in columns if c not in known}
            missing = {n for n, f in model.model_fields.items() if f.is_required()} - set(columns)
            self.unknown_columns[sheet] = unknown
            self.missing_columns[sheet] = missing
            header_row = Row(sheet=sheet, file=file, number=1, values={})
            for column in sorted(unknown):
                close = difflib.get_close_matches(column, sorted(known), n=1)
                self.add(
                    _p(
                        "sheet.column.unknown",
                        f"Unknown column {column!r}.",
                        f"未知的列 {column!r}。",
                        header_row,
                        column,
                        column,
                        f"Did you mean {close[0]!r}?"
                        if close
                        else f"Columns are: {', '.join(model.model_fields)}",
                    )
                )
            for column in sorted(missing):
                self.add(
                    _p(
                        "sheet.column.missing",
                        f"Required column {column!r} is missing.",
                        f"缺少必填列 {column!r}。",
                        header_row,
                        column,
                        suggestion="Start from `genecommons template` / 请使用模板",
                    )
                )

    def _parse(self, name: str) -> list[tuple[Row, Record]]:
        model = ENTITIES[name].model
        unknown = self.unknown_columns.get(name, set())
        missing = self.missing_columns.get(name, set())
        parsed = []
        for row in self.bundle.sheet(name):
            values = _present(row.values, unknown)
            row.values.clear()  # parsed: the record holds the values now; free the raw cells
            try:
                parsed.append((row, model.model_validate(values)))
            except ValidationError as error:
                for problem in _pydantic_problems(error, row, missing):
                    self.add(problem)
                alias = values.get("alias")
                if isinstance(alias, str):
                    self.refused.add((name, alias.strip()))
        return parsed

    def _load_existing(self, parsed: Mapping[str, list[tuple[Row, Record]]]) -> None:
        wanted = {r.alias for _, r in parsed["institutions"]}
        for _, record in parsed["studies"]:
            wanted.add(getattr(record, "institution", ""))
        self.institutions = self.view.institutions(a for a in wanted if not is_accession(a))
        for existing in self.view.studies():
            assert existing.namespace is not None
            self.studies_existing[(existing.namespace, existing.alias)] = existing
        refs = {
            str(v)
            for rows in parsed.values()
            for _, record in rows
            for v in _reference_values(record)
            if is_accession(str(v))
        }
        self.accessions = self.view.by_accessions(refs) if refs else {}
        for existing in self.accessions.values():
            if existing.entity == "institutions":
                self.institutions.setdefault(existing.alias, existing)

    def _load_namespace(self, study_key: str) -> None:
        if ("_loaded", study_key, "") in self.existing:
            return
        self.existing[("_loaded", study_key, "")] = Existing("", 0, "", "", None, 0, {})
        for name, spec in ENTITIES.items():
            if study_scoped(spec):
                for existing in self.view.records_in(name, [study_key]):
                    self.existing[(name, study_key, existing.alias)] = existing
                    self.existing_by_alias[(name, existing.alias)].append(existing)

    def _study_key_for(self, value: str, row: Row, column: str) -> str | None:
        """Resolve a study reference to its key "INSTITUTION/STUDY", reporting problems."""
        if is_accession(value):
            existing = self.accessions.get(value)
            if existing is None or existing.entity != "studies":
                self.add(
                    _p(
                        "reference.dangling",
                        f"No study has accession {value}.",
                        f"不存在登记号为 {value} 的研究。",
                        row,
                        column,
                        value,
                    )
                )
                return None
            return f"{existing.namespace}/{existing.alias}"
        keys = {
            key
            for (inst, alias) in self.studies_existing
            if alias == value
            for key in [f"{inst}/{alias}"]
        }
        keys |= {
            f"{n.namespace}/{n.record.alias}"
            for n in self.plan.nodes.get("studies", [])
            if n.record.alias == value
        }
        if len(keys) == 1:
            return keys.pop()
        if not keys:
            known = [n.record.alias for n in self.plan.nodes.get("studies", [])]
            known += [alias for _, alias in self.studies_existing]
            close = difflib.get_close_matches(value, known, n=1)
            self.add(
                _p(
                    "reference.dangling",
                    f"No study {value!r} in this submission or the catalog.",
                    f"提交内容和目录中都没有研究 {value!r}。",
                    row,
                    column,
                    value,
                    f"Did you mean {close[0]!r}?"
                    if close
                    else "Add it to the studies sheet / 请在 studies 表中添加该研究",
                )
            )
        else:
            self.add(
                _p(
                    "reference.ambiguous",
                    f"Several institutions have a study {value!r}.",
                    f"多个机构都有名为 {value!r} 的研究。",
                    row,
                    column,
                    value,
                    "Use the study's accession (GCS…) / 请使用研究登记号",
                )
            )
        return None

    def _namespace(self, spec: EntitySpec, row: Row, record: Record) -> tuple[bool, str | None]:
        if spec.name == "institutions":
            return True, None
        if spec.name == "studies":
            inst = str(field_value(record, "institution"))
            if is_accession(inst):
                existing = self.accessions.get(inst)
                if existing is None or existing.entity != "institutions":
                    self.add(
                        _p(
                            "reference.dangling",
                            f"No institution has accession {inst}.",
                            f"不存在登记号为 {inst} 的机构。",
                            row,
                            "institution",
                            inst,
                        )
                    )
                    return False, None
                return True, existing.alias
            return True, inst
        if any(r.field == "study" for r in spec.references):
            key = self._study_key_for(str(field_value(record, "study")), row, "study")
            return key is not None, key
        assert spec.parent is not None
        for parent_field in spec.parent.split("|"):
            value = getattr(record, parent_field)
            if value is None:
                continue
            target_entity = next(r.target for r in spec.references if r.field == parent_field)
            if is_accession(value):
                existing = self.accessions.get(value)
                if existing is not None and existing.entity == target_entity:
                    return True, existing.namespace
                self.add(
                    _p(
                        "reference.dangling",
                        f"No {ENTITIES[target_entity].label_en} has accession {value}.",
                        f"不存在登记号为 {value} 的{ENTITIES[target_entity].label_zh}。",
                        row,
                        parent_field,
                        value,
                    )
                )
                return False, None
            candidates = self.by_alias.get((target_entity, value), [])
            if len(candidates) == 1:
                return True, candidates[0].namespace
            if len(candidates) > 1:
                self.add(
                    _p(
                        "reference.ambiguous",
                        f"Several {target_entity} are called {value!r} in this submission.",
                        f"本次提交中有多个名为 {value!r} 的记录。",
                        row,
                        parent_field,
                        value,
                        "Use its accession / 请使用登记号",
                    )
                )
                return False, None
            keys = {e.namespace for e in self.existing_by_alias.get((target_entity, value), [])}
            if len(keys) == 1:
                return True, keys.pop()
            if (target_entity, value) in self.refused:
                self.refused.add((spec.name, record.alias))
                return False, None
            self.add(
                _p(
                    "reference.dangling",
                    f"No {ENTITIES[target_entity].label_en} {value!r} in this submission.",
                    f"本次提交中没有{ENTITIES[target_entity].label_zh} {value!r}。",
                    row,
                    parent_field,
                    value,
                    self._close_alias(target_entity, value),
                )
            )
            return False, None
        if spec.name == "files":
            self.add(
                _p(
                    "file.owner",
                    "A file must belong to a run or an analysis.",
                    "文件必须属于一个测序运行（run）或一个分析（analysis）。",
                    row,
                    "run",
                )
            )
        return False, None

    def _place(self, spec: EntitySpec, row: Row, record: Record) -> None:
        ok, namespace = self._namespace(spec, row, record)
        if not ok:
            return
        if study_scoped(spec) and namespace is not None:
            self._load_namespace(namespace)
        node = Node(spec=spec, row=row, record=record, namespace=namespace)
        if node.key in self.index:
            first = self.index[node.key].row
            self.add(
                _p(
                    "duplicate.alias",
                    f"Alias {record.alias!r} is used twice for a "
                    f"{spec.label_en} (first at {first.file}, row {first.number}).",
                    f"别名 {record.alias!r} 重复（首次出现于 {first.file} 第 {first.number} 行）。",
                    row,
                    "alias",
                    record.alias,
                    "Give each record its own alias / 每条记录使用唯一别名",
                )
            )
            return
        if spec.name == "institutions":
            node.existing = self.institutions.get(record.alias)
        elif spec.name == "studies":
            assert namespace is not None
            node.existing = self.studies_existing.get((namespace, record.alias))
        else:
            node.existing = self.existing.get((spec.name, namespace, record.alias))
        self.index[node.key] = node
        self.by_alias[(spec.name, record.alias)].append(node)
        self.plan.nodes.setdefault(spec.name, []).append(node)


def _present(values: Mapping[str, Any], unknown: set[str]) -> dict[str, Any]:
    """The non-blank cells of a row: a blank cell takes the column's default."""
    return {
        k: v
        for k, v in values.items()
        if v is not None
        and (not isinstance(v, str) or (v and not v.isspace()))
        and k not in unknown
    }


def field_value(record: Record, name: str) -> Any:
    """The value of a record's field by name (records are of many entity types)."""
    return getattr(record, name)


_SPEC_OF_MODEL = {spec.model: spec for spec in ENTITIES.values()}


def _reference_values(record: Record) -> Iterable[Any]:
    spec = _SPEC_OF_MODEL.get(type(record)) or next(
        s for s in ENTITIES.values() if isinstance(record, s.model)
    )
    for ref in spec.references:
        value = getattr(record, ref.field)
        if ref.many:
            yield from value
        elif value is not None:
            yield value
