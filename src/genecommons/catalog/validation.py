"""Validation of a submission against the metadata model, the vocabularies and the catalog.

`plan_submission` reads every row, checks types, vocabularies, dates, references, duplicates,
pedigrees and the consent, ethics and HGR rules, and returns a `Plan`: every record resolved to
its study, its existing catalog version (if any) and its references, plus a report that lists
every problem found in one pass. Nothing here writes; `service.py` commits a plan.
"""

from __future__ import annotations

import difflib
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol

from pydantic import ValidationError

from genecommons.catalog import vocabularies as vocab
from genecommons.catalog.bundle import Bundle, Row
from genecommons.catalog.models import (
    ALIAS_PATTERN,
    ENTITIES,
    ENTITY_ORDER,
    PHENOTYPES_SHEET,
    EntitySpec,
    Phenotype,
    Record,
    entity_for_accession,
    is_accession,
    study_scoped,
)
from genecommons.catalog.phenopackets import read_phenopacket
from genecommons.catalog.report import Problem, Report, Severity

HUMAN = {"homo sapiens", "human", "ncbitaxon:9606", "人"}
LICENCE_THRESHOLD = 3000
# consent and approvals only cover the study they were given for
SAME_STUDY = frozenset({"consents", "ethics_approvals", "hgr_records"})
_CURIE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*:\S+$")


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


def _p(
    rule: str,
    en: str,
    zh: str,
    row: Row | None = None,
    column: str | None = None,
    value: Any = None,
    suggestion: str | None = None,
    severity: Severity = Severity.ERROR,
) -> Problem:
    return Problem(
        rule=rule,
        message=en,
        message_zh=zh,
        file=row.file if row else None,
        row=row.number if row else None,
        column=column,
        value=None if value is None else str(value)[:200],
        suggestion=suggestion,
        severity=severity,
    )


_PYDANTIC_ZH = {
    "missing": "必填项为空或缺失。",
    "string_pattern_mismatch": "标识符只能包含字母、数字及 . _ : -，且以字母或数字开头，最长 128 个字符。",
    "string_too_long": "文本过长。",
    "string_too_short": "文本不能为空。",
    "int_parsing": "应为整数。",
    "int_from_float": "应为整数。",
    "float_parsing": "应为数字。",
    "bool_parsing": "应为是/否（yes/no）。",
    "date_parsing": "应为日期，格式为 YYYY-MM-DD。",
    "date_from_datetime_parsing": "应为日期，格式为 YYYY-MM-DD。",
    "date_from_datetime_inexact": "应为日期，不应包含时间。",
    "enum": "不是允许的取值之一。",
    "literal_error": "不是允许的取值之一。",
    "greater_than_equal": "数值过小。",
    "less_than_equal": "数值过大。",
    "extra_forbidden": "未知的列。",
    "value_error": "取值无效。",
    "list_type": "应为列表。",
    "string_type": "应为文本。",
}


def _pydantic_problems(error: ValidationError, row: Row, skip: set[str]) -> list[Problem]:
    problems = []
    for item in error.errors():
        column = ".".join(str(part) for part in item["loc"]) or None
        if column in skip:
            continue
        kind = item["type"]
        value = item.get("input")
        if kind == "string_type" and value is None:
            kind = "missing"
        message = "Required value is empty or missing." if kind == "missing" else item["msg"]
        if kind == "string_pattern_mismatch":
            message = (
                "Identifiers may use letters, digits, '.', '_', ':' and '-', start with a "
                "letter or digit and be at most 128 characters long."
            )
        suggestion = None
        if kind == "enum":
            expected = [
                v.strip(" '")
                for v in str(item.get("ctx", {}).get("expected", ""))
                .replace(" or ", ",")
                .split(",")
                if v.strip()
            ]
            close = difflib.get_close_matches(str(value), expected, n=1, cutoff=0.3)
            suggestion = (f"Did you mean {close[0]!r}? Allowed: " if close else "Allowed: ") + (
                ", ".join(expected)
            )
        problems.append(
            _p(
                f"type.{kind}",
                message,
                _PYDANTIC_ZH.get(kind, item["msg"]),
                row,
                column,
                None if kind == "missing" else value,
                suggestion,
            )
        )
    return problems


class _Validator:
    """One pass over a bundle; collects problems and resolved nodes."""

    def __init__(
        self, bundle: Bundle, view: CatalogView, *, today: date, max_problems: int
    ) -> None:
        self.bundle = bundle
        self.view = view
        self.today = today
        self.max_problems = max_problems
        self.report = Report()
        self.plan = Plan(report=self.report)
        self.index: dict[tuple[str, str | None, str], Node] = {}
        self.by_alias: dict[tuple[str, str], list[Node]] = defaultdict(list)
        self.existing_by_alias: dict[tuple[str, str], list[Existing]] = defaultdict(list)
        # aliases of rows refused for their own errors: references to them are not reported
        # again as dangling (one typo gives one error, not ten)
        self.refused: set[tuple[str, str]] = set()
        self.institutions: dict[str, Existing] = {}
        self.studies_existing: dict[tuple[str, str], Existing] = {}
        self.existing: dict[tuple[str, str | None, str], Existing] = {}
        self.accessions: dict[str, Existing] = {}
        self.suppressed = 0
        self.errors = 0  # the errors listed in the report so far

    # -- reporting ------------------------------------------------------------------------
    def add(self, problem: Problem) -> None:
        if len(self.report.problems) >= self.max_problems:
            self.suppressed += 1
            return
        self.report.add(problem)
        if problem.severity is Severity.ERROR:
            self.errors += 1

    # -- entry point ----------------------------------------------------------------------
    def run(self) -> Plan:
        self._check_headers()
        parsed = {name: self._parse(name) for name in ENTITY_ORDER}
        self._load_existing(parsed)
        for name in ENTITY_ORDER:
            for row, record in parsed[name]:
                self._place(ENTITIES[name], row, record)
        for name in ENTITY_ORDER:
            for node in self.plan.nodes.get(name, []):
                self._resolve_references(node)
                self._check_record(node)
        self._check_pedigrees()
        self._check_studies()
        self._collect_phenotypes()
        if self.suppressed:
            self.report.add(
                _p(
                    "report.truncated",
                    f"{self.suppressed} further problems were not listed.",
                    f"另有 {self.suppressed} 个问题未列出。",
                    suggestion="Fix the problems above and validate again / 请先修正上述问题后重新验证",
                )
            )
        self.report.counts = {name: len(nodes) for name, nodes in self.plan.nodes.items()}
        self.report.counts["phenotype_records"] = len(self.plan.phenotypes)
        return self.plan

    # -- structure ------------------------------------------------------------------------
    def _check_headers(self) -> None:
        self.unknown_columns: dict[str, set[str]] = {}
        self.missing_columns: dict[str, set[str]] = {}
        for sheet, (file, columns) in self.bundle.headers.items():
            model = Phenotype if sheet == PHENOTYPES_SHEET else ENTITIES[sheet].model
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

    # -- catalog state --------------------------------------------------------------------
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

    # -- namespaces -------------------------------------------------------------------------
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

    # -- references -------------------------------------------------------------------------
    def _close_alias(self, entity: str, value: str) -> str | None:
        known = [n.record.alias for n in self.plan.nodes.get(entity, [])][:5000]
        close = difflib.get_close_matches(value, known, n=1, cutoff=0.5)
        if close:
            return f"Did you mean {close[0]!r}? / 是否应为 {close[0]!r}？"
        return f"Add it to the {entity} sheet or use its accession / 请在 {entity} 表中添加或使用登记号"

    def _resolve(self, node: Node, field_name: str, target: str, value: str) -> Target | None:
        row = node.row
        target_spec = ENTITIES[target]
        if is_accession(value):
            spec = entity_for_accession(value)
            existing = self.accessions.get(value)
            if spec is None or spec.name != target:
                self.add(
                    _p(
                        "reference.kind",
                        f"{value} is not the accession of a {target_spec.label_en}.",
                        f"{value} 不是{target_spec.label_zh}的登记号。",
                        row,
                        field_name,
                        value,
                    )
                )
                return None
            if existing is None:
                self.add(
                    _p(
                        "reference.dangling",
                        f"No {target_spec.label_en} has accession {value}.",
                        f"不存在登记号为 {value} 的{target_spec.label_zh}。",
                        row,
                        field_name,
                        value,
                    )
                )
                return None
            return Target(existing=existing)
        if target == "institutions":
            namespace: str | None = None
        elif target == "studies":
            namespace = node.namespace if node.spec.name != "studies" else None
            found = self.index.get(("studies", *_split_study(namespace)))
            if found is not None:
                return Target(node=found)
            existing_study = self.studies_existing.get(_split_study_tuple(namespace))
            return Target(existing=existing_study) if existing_study else None
        else:
            namespace = node.namespace
        found = self.index.get((target, namespace, value))
        if found is not None:
            return Target(node=found)
        existing = (
            self.institutions.get(value)
            if target == "institutions"
            else self.existing.get((target, namespace, value))
        )
        if existing is not None:
            return Target(existing=existing)
        if (target, value) in self.refused:
            return None
        self.add(
            _p(
                "reference.dangling",
                f"{field_name} refers to {target_spec.label_en} {value!r}, which is neither "
                "in this submission nor in the catalog.",
                f"{field_name} 引用的{target_spec.label_zh} {value!r} 既不在本次提交中，也不在目录中。",
                row,
                field_name,
                value,
                self._close_alias(target, value),
            )
        )
        return None

    def _resolve_references(self, node: Node) -> None:
        for ref in node.spec.references:
            raw = getattr(node.record, ref.field)
            values = raw if ref.many else ([] if raw is None else [raw])
            targets = []
            for value in values:
                target = self._resolve(node, ref.field, ref.target, str(value))
                if target is None:
                    continue
                if ref.target in SAME_STUDY and target.namespace != node.namespace:
                    self.add(
                        _p(
                            "reference.study",
                            f"{value} belongs to another study; a record's "
                            f"{ENTITIES[ref.target].label_en} must be of its own study.",
                            f"{value} 属于其他研究；记录引用的{ENTITIES[ref.target].label_zh}"
                            "必须属于同一研究。",
                            node.row,
                            ref.field,
                            value,
                        )
                    )
                    continue
                targets.append(target)
            node.refs[ref.field] = targets

    # -- per-record rules -----------------------------------------------------------------
    def _term(
        self,
        node: Node,
        column: str,
        value: str | None,
        vocabulary: vocab.Vocabulary,
    ) -> str | None:
        if value is None:
            return None
        term = _lookup(vocabulary, value)
        if term is None:
            hints = vocabulary.suggest(value, limit=3)
            suggestion = (
                "Did you mean " + ", ".join(f"{t.id} ({t.label})" for t in hints) + "?"
                if hints
                else None
            )
            self.add(
                _p(
                    f"vocabulary.{_slug(vocabulary.name)}",
                    f"{value!r} is not a {vocabulary.name} term.",
                    f"{value!r} 不是 {vocabulary.name} 中的术语。",
                    node.row,
                    column,
                    value,
                    suggestion,
                )
            )
            return None
        return term.id

    def _past(self, node: Node, column: str, when: date | None) -> None:
        if when is not None and when > self.today:
            self.add(
                _p(
                    "date.future",
                    f"{column} {when.isoformat()} is in the future.",
                    f"{column} {when.isoformat()} 晚于今天。",
                    node.row,
                    column,
                    when,
                    "Dates must not be later than the submission date / 日期不能晚于提交日期",
                )
            )

    def _check_record(self, node: Node) -> None:
        record: Any = node.record
        name = node.spec.name
        normalised: dict[str, Any] = {}
        if name == "institutions":
            normalised["country"] = self._term(node, "country", record.country, vocab.countries())
            normalised["province"] = self._term(
                node, "province", record.province, vocab.provinces()
            )
            if normalised["country"] == "CN" and record.province is None:
                self.add(
                    _p(
                        "institution.province",
                        "An institution in China needs its province (GB/T 2260).",
                        "中国境内机构须填写所在省份（GB/T 2260）。",
                        node.row,
                        "province",
                        suggestion="e.g. 110000 or 北京市",
                    )
                )
        elif name == "individuals":
            normalised["ethnic_group"] = self._term(
                node, "ethnic_group", record.ethnic_group, vocab.ethnic_groups()
            )
            normalised["country"] = self._term(node, "country", record.country, vocab.countries())
            normalised["province"] = self._term(
                node, "province", record.province, vocab.provinces()
            )
            if record.birth_year is not None and record.birth_year > self.today.year:
                self._past(node, "birth_year", date(record.birth_year, 1, 1))
            if record.alias in (record.father, record.mother):
                self.add(
                    _p(
                        "pedigree.self",
                        "An individual cannot be their own parent.",
                        "个体不能是自己的父母。",
                        node.row,
                        "father",
                        record.alias,
                    )
                )
        elif name == "consents":
            permission = self._term(node, "permission", record.permission, vocab.duo())
            if permission is not None and permission not in vocab.DUO_PERMISSIONS:
                self.add(
                    _p(
                        "consent.permission",
                        f"{record.permission} is a DUO modifier, not a permission.",
                        f"{record.permission} 是 DUO 限制条件，不是许可类型。",
                        node.row,
                        "permission",
                        record.permission,
                        "Use one of GRU, HMB, DS, POA, NRES",
                    )
                )
            normalised["permission"] = permission
            normalised["modifiers"] = self._modifiers(node, "modifiers", record.modifiers)
            normalised["diseases"] = [
                t for t in (self._disease(node, "diseases", d) for d in record.diseases) if t
            ]
            if permission == "DUO:0000007" and not record.diseases:
                self.add(
                    _p(
                        "consent.disease",
                        "A disease-specific (DS) consent must name its diseases.",
                        "疾病特定研究（DS）的知情同意必须列出疾病。",
                        node.row,
                        "diseases",
                        suggestion="e.g. MONDO:0005148 or ICD10:E11",
                    )
                )
            self._past(node, "signed_from", record.signed_from)
        elif name == "ethics_approvals" or name == "hgr_records":
            start = record.approved_on if name == "ethics_approvals" else record.issued_on
            self._past(node, "approved_on" if name == "ethics_approvals" else "issued_on", start)
            if record.valid_until is not None and record.valid_until < start:
                self.add(
                    _p(
                        "date.order",
                        "valid_until is before the start date.",
                        "有效期截止日期早于批准/签发日期。",
                        node.row,
                        "valid_until",
                        record.valid_until,
                    )
                )
        elif name == "samples":
            self._past(node, "collection_date", record.collection_date)
            self._check_human_sample(node)
        elif name == "runs":
            self._past(node, "run_date", record.run_date)
        elif name == "files":
            if record.run is not None and record.analysis is not None:
                self.add(
                    _p(
                        "file.owner",
                        "A file belongs to a run or an analysis, not both.",
                        "文件只能属于一个测序运行或一个分析，不能同时属于两者。",
                        node.row,
                        "analysis",
                    )
                )
        elif name == "datasets":
            normalised["duo_codes"] = self._modifiers(
                node, "duo_codes", record.duo_codes, permissions_too=True
            )
            if not record.runs and not record.analyses:
                self.add(
                    _p(
                        "dataset.empty",
                        "A dataset must contain runs or analyses.",
                        "数据集必须包含测序运行或分析。",
                        node.row,
                        "runs",
                    )
                )
            if record.access_tier == "controlled" and not record.dac:
                self.add(
                    _p(
                        "dataset.dac",
                        "A controlled dataset needs a data access committee.",
                        "受控数据集必须指定数据访问委员会（DAC）。",
                        node.row,
                        "dac",
                    )
                )
        for key, value in normalised.items():
            if value is not None:
                object.__setattr__(record, key, value)

    def _modifiers(
        self, node: Node, column: str, codes: Sequence[str], *, permissions_too: bool = False
    ) -> list[str]:
        out = []
        for code in codes:
            term = self._term(node, column, code, vocab.duo())
            if term is None:
                continue
            if not permissions_too and term in vocab.DUO_PERMISSIONS:
                self.add(
                    _p(
                        "consent.modifier",
                        f"{code} is a DUO permission, not a modifier.",
                        f"{code} 是 DUO 许可类型，不是限制条件。",
                        node.row,
                        column,
                        code,
                        "Put it in the permission column / 请填写在 permission 列",
                    )
                )
                continue
            out.append(term)
        return out

    def _disease(self, node: Node, column: str, value: str) -> str | None:
        term = vocab.disease_term(value)
        if term is None:
            hints = vocab.icd10().suggest(value, limit=3)
            self.add(
                _p(
                    "vocabulary.disease",
                    f"{value!r} is not a known disease term (MONDO, ICD-10, OMIM or ORPHA).",
                    f"{value!r} 不是可识别的疾病术语（MONDO、ICD-10、OMIM 或 ORPHA）。",
                    node.row,
                    column,
                    value,
                    ("Did you mean " + ", ".join(f"{t.id} ({t.label})" for t in hints) + "?")
                    if hints
                    else "Write MONDO:0005148 or ICD10:E11.9",
                )
            )
            return None
        return term.id

    def _check_human_sample(self, node: Node) -> None:
        record: Any = node.record
        if str(record.organism).strip().lower() not in HUMAN:
            return
        consent = record.consent
        if consent is None:
            individual = node.refs.get("individual", [])
            if individual:
                target = individual[0]
                consent = (
                    getattr(target.node.record, "consent", None)
                    if target.node
                    else target.existing.doc.get("consent")
                    if target.existing
                    else None
                )
        if consent is None:
            self.add(
                _p(
                    "sample.consent",
                    "A human sample must carry an informed consent (on "
                    "the sample or its individual).",
                    "人类样本必须有知情同意（在样本或其个体上）。",
                    node.row,
                    "consent",
                    suggestion="Add a consents row and reference it / 请添加知情同意记录并引用",
                )
            )
        if record.ethics_approval is None:
            self.add(
                _p(
                    "sample.ethics",
                    "A human sample must carry an ethics approval.",
                    "人类样本必须有伦理批件。",
                    node.row,
                    "ethics_approval",
                    suggestion="Add an ethics_approvals row and reference it / 请添加伦理批件并引用",
                )
            )

    # -- cross-record rules ---------------------------------------------------------------
    def _check_pedigrees(self) -> None:
        nodes = self.plan.nodes.get("individuals", [])
        parents: dict[str, list[str]] = {}

        def ident(target: Target) -> str:
            if target.node is not None:
                return f"new:{target.node.namespace}/{target.node.record.alias}"
            assert target.existing is not None
            return target.existing.accession

        for node in nodes:
            me = f"new:{node.namespace}/{node.record.alias}"
            if node.existing is not None:
                parents.setdefault(node.existing.accession, [])
            parents[me] = []
            for column, forbidden in (("father", "female"), ("mother", "male")):
                for target in node.refs.get(column, []):
                    parents[me].append(ident(target))
                    sex = (
                        getattr(target.node.record, "sex", None)
                        if target.node
                        else target.existing.doc.get("sex")
                        if target.existing
                        else None
                    )
                    if sex == forbidden:
                        self.add(
                            _p(
                                "pedigree.sex",
                                f"The {column} is recorded as {sex}.",
                                f"{'父亲' if column == 'father' else '母亲'}的性别记录为"
                                f"{'女' if sex == 'female' else '男'}。",
                                node.row,
                                column,
                                getattr(node.record, column),
                            )
                        )
                    if target.namespace != node.namespace:
                        self.add(
                            _p(
                                "pedigree.study",
                                "Parents must be in the same study.",
                                "父母必须属于同一研究。",
                                node.row,
                                column,
                                getattr(node.record, column),
                            )
                        )
            for target_list in node.refs.values():
                for target in target_list:
                    if target.existing is not None and target.existing.entity == "individuals":
                        parents.setdefault(
                            target.existing.accession,
                            [
                                v
                                for v in (
                                    target.existing.doc.get("father"),
                                    target.existing.doc.get("mother"),
                                )
                                if v
                            ],
                        )
        by_id = {f"new:{n.namespace}/{n.record.alias}": n for n in nodes}
        state: dict[str, int] = {}
        reported: set[str] = set()
        for start in parents:
            if state.get(start):
                continue
            stack: list[tuple[str, int]] = [(start, 0)]
            path: list[str] = []
            while stack:
                current, index = stack.pop()
                if index == 0:
                    state[current] = 1
                    path.append(current)
                kids = parents.get(current, [])
                if index < len(kids):
                    stack.append((current, index + 1))
                    nxt = kids[index]
                    if state.get(nxt) == 1:
                        cycle = path[path.index(nxt) :]
                        culprit = next((by_id[c] for c in cycle if c in by_id), None)
                        if culprit is not None and culprit.record.alias not in reported:
                            reported.add(culprit.record.alias)
                            names = " -> ".join(c.split("/")[-1] for c in [*cycle, nxt])
                            self.add(
                                _p(
                                    "pedigree.cycle",
                                    f"The pedigree has a cycle: {names}.",
                                    f"家系关系存在循环：{names}。",
                                    culprit.row,
                                    "father",
                                    culprit.record.alias,
                                    "An individual cannot be their own ancestor / 个体不能是自己的祖先",
                                )
                            )
                    elif not state.get(nxt):
                        stack.append((nxt, 0))
                else:
                    state[current] = 2
                    path.pop()

    def _check_studies(self) -> None:
        members: dict[str | None, int] = defaultdict(int)
        for node in self.plan.nodes.get("individuals", []):
            if node.existing is None:
                members[node.namespace] += 1
        for node in self.plan.nodes.get("studies", []):
            record: Any = node.record
            key = f"{node.namespace}/{record.alias}"
            count = members.get(key, 0) + (
                self.view.count_in("individuals", key) if node.existing else 0
            )
            size = max(count, record.participants_planned or 0)
            reasons = []
            if size > LICENCE_THRESHOLD:
                reasons.append(f"more than {LICENCE_THRESHOLD} persons ({size})")
            if record.important_pedigree:
                reasons.append("an important pedigree")
            if record.specific_region_population:
                reasons.append("a specific-region population")
            if reasons and record.hgr_information and not record.collection_licence:
                self.add(
                    _p(
                        "hgr.collection_licence",
                        "The study collects from "
                        + " and ".join(reasons)
                        + ", so the HGR collection licence number is required.",
                        "该研究涉及超过 3000 人、重要家系或特定地区人群，须填写人类遗传资源采集行政许可编号。",
                        node.row,
                        "collection_licence",
                        suggestion="Enter the licence number of the collection approval / "
                        "请填写采集审批的许可编号",
                    )
                )

    def _collect_phenotypes(self) -> None:
        individuals = {
            (n.namespace, n.record.alias): n for n in self.plan.nodes.get("individuals", [])
        }
        by_alias: dict[str, list[Node]] = defaultdict(list)
        for node in individuals.values():
            by_alias[node.record.alias].append(node)
        missing = self.missing_columns.get(PHENOTYPES_SHEET, set())
        unknown = self.unknown_columns.get(PHENOTYPES_SHEET, set())
        # rows that differ from an earlier row only in their individual: that row's checked
        # phenotype with this individual (a large submission repeats a few dozen terms)
        checked: dict[tuple[Any, ...], Phenotype] = {}
        for row in self.bundle.sheet(PHENOTYPES_SHEET):
            phenotype, key = _repeated_phenotype(row.values, checked)
            if phenotype is None:
                values = _present(row.values, unknown)
                row.values.clear()
                try:
                    phenotype = Phenotype.model_validate(values)
                except ValidationError as error:
                    for problem in _pydantic_problems(error, row, missing):
                        self.add(problem)
                    continue
                where = Node(
                    spec=ENTITIES["individuals"], row=row, record=_NO_RECORD, namespace=None
                )
                listed = len(self.report.problems) + self.suppressed
                term_ok = self._check_phenotype(where, phenotype)
                if key is not None and len(self.report.problems) + self.suppressed == listed:
                    checked[key] = phenotype  # valid, and nothing said about it
            else:
                row.values.clear()
                term_ok = True
            owners = by_alias.get(phenotype.individual, [])
            if len(owners) != 1:
                if not owners and ("individuals", phenotype.individual) in self.refused:
                    continue  # its individual was refused with its own error already
                self.add(
                    _p(
                        "reference.dangling" if not owners else "reference.ambiguous",
                        f"Phenotype row for individual {phenotype.individual!r}, which is not "
                        "(or not uniquely) in the individuals sheet.",
                        f"表型行引用的个体 {phenotype.individual!r} 不在 individuals 表中（或不唯一）。",
                        row,
                        "individual",
                        phenotype.individual,
                        self._close_alias("individuals", phenotype.individual),
                    )
                )
                continue
            if not term_ok:
                continue
            key = (owners[0].namespace, owners[0].record.alias)
            entry = self.plan.phenotypes.setdefault(key, PhenotypeSet(individual=owners[0]))
            entry.rows.append(phenotype)
        self._attach_phenopackets(by_alias)

    def _check_phenotype(self, node: Node, phenotype: Phenotype) -> bool:
        before = self.errors
        if phenotype.kind == "feature":
            term = _lookup(vocab.hpo(), phenotype.term)
            if term is None:
                self._term(node, "term", phenotype.term, vocab.hpo())
            else:
                if term.obsolete:
                    self.add(
                        _p(
                            "vocabulary.hpo.obsolete",
                            f"{term.id} is obsolete.",
                            f"{term.id} 已废弃。",
                            node.row,
                            "term",
                            phenotype.term,
                            f"Use {term.replaced_by}" if term.replaced_by else None,
                            Severity.WARNING,
                        )
                    )
                phenotype.term = term.id
                if phenotype.label is None:
                    phenotype.label = term.label
                elif phenotype.label.casefold() != term.label.casefold():
                    self.add(
                        _p(
                            "vocabulary.hpo.label",
                            f"The label {phenotype.label!r} is not {term.id}'s label "
                            f"{term.label!r}; the term id is what is stored.",
                            f"标签 {phenotype.label!r} 与 {term.id} 的标准名称 {term.label!r} 不符；"
                            "系统以术语编号为准。",
                            node.row,
                            "label",
                            phenotype.label,
                            f"Check the term id, or write {term.label!r}",
                            Severity.WARNING,
                        )
                    )
                    phenotype.label = term.label
        elif phenotype.kind == "disease":
            disease = self._disease(node, "term", phenotype.term)
            if disease is not None:
                phenotype.term = disease
        elif not _CURIE.match(phenotype.term):
            self.add(
                _p(
                    "phenotype.measurement",
                    "A measurement's term must be a prefixed code such as LOINC:8302-2.",
                    "测量项须为带前缀的编码，例如 LOINC:8302-2。",
                    node.row,
                    "term",
                    phenotype.term,
                )
            )
        elif phenotype.value is None:
            self.add(
                _p(
                    "phenotype.measurement.value",
                    "A measurement needs a value.",
                    "测量项必须有数值。",
                    node.row,
                    "value",
                )
            )
        return self.errors == before

    def _attach_phenopackets(self, by_alias: Mapping[str, list[Node]]) -> None:
        for place, document in self.bundle.phenopackets:
            result = read_phenopacket(document, source=place)
            for problem in result.problems:
                self.add(problem)
            if result.document is None or any(
                p.severity is Severity.ERROR for p in result.problems
            ):
                continue
            packet_id = str(result.document.get("id", ""))
            owners = by_alias.get(result.subject_id or "", []) or by_alias.get(packet_id, [])
            where = Row(sheet="phenopackets", file=place, number=1, values={})
            if len(owners) != 1:
                owner = self._individual_from_packet(result, packet_id, where)
                if owner is None:
                    continue
            else:
                owner = owners[0]
            key = (owner.namespace, owner.record.alias)
            if key in self.plan.phenotypes:
                self.add(
                    _p(
                        "phenotype.twice",
                        f"Individual {owner.record.alias!r} has both "
                        "phenotype rows and a phenopacket (or two phenopackets).",
                        f"个体 {owner.record.alias!r} 同时有表型行和表型包（或两个表型包）。",
                        where,
                        "id",
                        packet_id,
                        "Give one or the other / 只能提供其中一种",
                    )
                )
                continue
            self.plan.phenotypes[key] = PhenotypeSet(
                individual=owner, document=result.document, place=place
            )

    def _individual_from_packet(self, result: Any, packet_id: str, where: Row) -> Node | None:
        studies = self.plan.nodes.get("studies", [])
        if len(studies) != 1:
            self.add(
                _p(
                    "phenopacket.individual",
                    f"Phenopacket {packet_id!r} names no individual "
                    "of this submission, and the submission does not have exactly one study "
                    "to add it to.",
                    f"表型包 {packet_id!r} 未对应本次提交中的个体，且提交中并非恰好一个研究。",
                    where,
                    "subject.id",
                    result.subject_id,
                    "Add the individual to the individuals sheet / 请在 individuals 表中添加该个体",
                )
            )
            return None
        alias = re.sub(r"[^A-Za-z0-9._:-]", "_", packet_id)[:128].lstrip("._:-") or "packet"
        study = studies[0]
        record = ENTITIES["individuals"].model.model_validate(
            {
                "alias": alias,
                "study": study.record.alias,
                "sex": result.sex,
                "age": result.age_years,
            }
        )
        node_row = Row(sheet="individuals", file=where.file, number=1, values={})
        self._place(ENTITIES["individuals"], node_row, record)
        node = self.index.get(("individuals", f"{study.namespace}/{study.record.alias}", alias))
        if node is None or node.row is not node_row:
            return None
        self._resolve_references(node)
        return node


_NO_RECORD = Record(alias="phenotype-row")
_ALIAS = re.compile(ALIAS_PATTERN)


def _repeated_phenotype(
    values: Mapping[str, Any], checked: Mapping[tuple[Any, ...], Phenotype]
) -> tuple[Phenotype | None, tuple[Any, ...] | None]:
    """For a phenotype row whose cells other than `individual` equal those of a row already
    validated and checked without any problem: that row's phenotype with this row's individual
    (None when the individual is not a plain valid alias: the row is then validated in full).
    Also the row's key into `checked`, None for cells that cannot be a key."""
    key = tuple(item for item in values.items() if item[0] != "individual")
    try:
        template = checked.get(key)
    except TypeError:  # unhashable: a JSON document's list or mapping as a cell
        return None, None
    if template is None:
        return None, key
    individual = values.get("individual")
    if (
        not isinstance(individual, str)
        or individual != individual.strip()
        or not _ALIAS.fullmatch(individual)
    ):
        return None, key
    return template.model_copy(update={"individual": individual}), key


_LOOKUPS: dict[tuple[str, str], vocab.Term | None] = {}


def _lookup(vocabulary: vocab.Vocabulary, value: str) -> vocab.Term | None:
    """A vocabulary look-up, memoised: a large submission repeats the same few codes."""
    key = (vocabulary.name, value)
    if key not in _LOOKUPS:
        if len(_LOOKUPS) >= 1 << 16:
            _LOOKUPS.clear()
        _LOOKUPS[key] = vocabulary.lookup(value)
    return _LOOKUPS[key]


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


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def _split_study(key: str | None) -> tuple[str | None, str]:
    inst, _, alias = (key or "").partition("/")
    return inst or None, alias


def _split_study_tuple(key: str | None) -> tuple[str, str]:
    inst, _, alias = (key or "").partition("/")
    return inst, alias


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


def plan_submission(
    bundle: Bundle,
    view: CatalogView,
    *,
    today: date,
    max_problems: int = 10_000,
) -> Plan:
    """Validate `bundle` against the model, vocabularies and `view`; every problem in one pass."""
    return _Validator(bundle, view, today=today, max_problems=max_problems).run()
