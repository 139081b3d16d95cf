"""The direct-identifier rule: every free-text and identifier-like cell is scanned; a finding in
an undeclared column is an error (its value masked in the report), and a column declared in the
identifier_columns sheet has its treatment applied before the row is parsed, so that only the
treated value is ever stored.
"""

from __future__ import annotations

import csv
import io
import typing
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any, BinaryIO

from pydantic import BaseModel, StringConstraints, ValidationError

from genecommons.catalog import identifiers as ids
from genecommons.catalog.bundle import Row
from genecommons.catalog.models import (
    ALIAS_PATTERN,
    IDENTIFIER_COLUMNS_SHEET,
    READABLE_SHEETS,
    IdentifierColumn,
    sheet_model,
)
from genecommons.catalog.report import Problem, Severity
from genecommons.catalog.validation.context import ValidationContext
from genecommons.catalog.validation.problems import _p, _pydantic_problems
from genecommons.progress import SILENT, Progress, Stage

_PROGRESS_EVERY = 10_000  # rows between two progress reports

# code columns whose values come from a vocabulary: checked against it, never scanned
VOCABULARY_COLUMNS = frozenset(
    {
        "country",
        "province",
        "ethnic_group",
        "population",
        "term",
        "unit",
        "permission",
        "modifiers",
        "diseases",
        "duo_codes",
    }
)
_SUGGESTION = (
    "Remove it, or declare the column in the identifier_columns sheet with a treatment "
    "(drop, mask, generalise, pseudonym) / 请删除该信息，或在 identifier_columns 表中声明该列并"
    "选择处理方式（drop、mask、generalise、pseudonym）"
)


def _constraints(annotation: Any) -> list[StringConstraints]:
    found = []
    for part in typing.get_args(annotation):
        if isinstance(part, StringConstraints):
            found.append(part)
        else:
            found.extend(_constraints(part))
    return found


@cache
def scanned_columns(sheet: str) -> dict[str, tuple[ids.Level, bool]]:
    """The columns of `sheet` that are scanned: column -> (level, whether it names a record).
    Free text gets every detector; aliases, references and codes outside a vocabulary the
    patterned ones; numbers, dates, flags, enumerations, checksums and vocabularies none."""
    model: type[BaseModel] = sheet_model(sheet)
    columns: dict[str, tuple[ids.Level, bool]] = {}
    for name, info in model.model_fields.items():
        if name in VOCABULARY_COLUMNS:
            continue
        constraints = _constraints(info.annotation) + [
            m for m in info.metadata if isinstance(m, StringConstraints)
        ]
        for constraint in constraints:
            if constraint.pattern == ALIAS_PATTERN:
                columns[name] = (ids.Level.PATTERNED, True)
            elif (constraint.max_length or 0) >= 500:
                columns[name] = (ids.Level.FULL, False)
            elif constraint.max_length == 100:
                columns[name] = (ids.Level.PATTERNED, False)
    return columns


class IdentifierRules(ValidationContext):
    """Scans the sheets for direct identifiers and applies the declared treatments."""

    identifier_key: Callable[[], bytes] | None = None
    progress: Progress = SILENT

    def _declared_treatments(self) -> dict[tuple[str, str], ids.Treatment]:
        declared: dict[tuple[str, str], ids.Treatment] = {}
        for row in self.bundle.sheet(IDENTIFIER_COLUMNS_SHEET):
            try:
                item = IdentifierColumn.model_validate(row.values)
            except ValidationError as error:
                for problem in _pydantic_problems(error, row, set()):
                    self.add(problem)
                continue
            sheet, column = item.sheet.lower(), item.column
            level = (
                scanned_columns(sheet).get(column)
                if sheet in READABLE_SHEETS and sheet != IDENTIFIER_COLUMNS_SHEET
                else None
            )
            treatment = ids.Treatment(item.treatment)
            if level is None:
                self.add(
                    _p(
                        "identifier.declaration",
                        f"{sheet}.{column} is not a text or identifier column that can hold "
                        "direct identifiers.",
                        f"{sheet}.{column} 不是可能含有直接标识符的文本或标识列。",
                        row,
                        "column",
                        column,
                        "Declare a free-text column of a sheet / 请声明某个表的自由文本列",
                    )
                )
            elif level[1]:
                self.add(
                    _p(
                        "identifier.declaration",
                        f"{sheet}.{column} names records; it cannot be treated without breaking "
                        "the references to them.",
                        f"{sheet}.{column} 用于标识记录，处理后将破坏对这些记录的引用。",
                        row,
                        "column",
                        column,
                        "Use codes that identify no one as aliases / 请使用不指向个人的编码作为别名",
                    )
                )
            elif treatment is ids.Treatment.PSEUDONYM and self.identifier_key is None:
                self.add(
                    _p(
                        "identifier.no_key",
                        "A keyed pseudonym needs the node's key, which this submission path "
                        "does not have.",
                        "键控假名需要节点密钥，当前提交方式无法使用。",
                        row,
                        "treatment",
                        treatment.value,
                        "Run `genecommons init` on the node, or choose mask / 请先运行 "
                        "`genecommons init`，或改用 mask",
                    )
                )
            else:
                declared[(sheet, column)] = treatment
        return declared

    def _scan_identifiers(self) -> None:
        declared = self._declared_treatments()
        key = None
        if any(t is ids.Treatment.PSEUDONYM for t in declared.values()):
            assert self.identifier_key is not None
            key = self.identifier_key()
        treated: dict[tuple[str, str], int] = {}
        total = sum(len(rows) for rows in self.bundle.rows.values())
        with self.progress.stage("scanning for identifiers", total=total, unit="rows") as stage:
            for sheet, rows in self.bundle.rows.items():
                self._scan_sheet(sheet, rows, declared, treated, key, stage)
        self._report_treated(declared, treated)

    def _scan_sheet(
        self,
        sheet: str,
        rows: list[Row],
        declared: dict[tuple[str, str], ids.Treatment],
        treated: dict[tuple[str, str], int],
        key: bytes | None,
        stage: Stage,
    ) -> None:
        columns = scanned_columns(sheet) if sheet != IDENTIFIER_COLUMNS_SHEET else {}
        if not columns:
            stage.advance(len(rows))
            return
        to_treat = {c: t for (s, c), t in declared.items() if s == sheet}
        # each column with its level and that level's one-search pre-check, bound once
        plan = [(c, level, ids.prefilter(level)) for c, (level, _) in columns.items()]
        # a value is scanned once per level: a large submission repeats its few texts
        clean: set[tuple[str, ids.Level]] = set()
        for number, row in enumerate(rows, start=1):
            if number % _PROGRESS_EVERY == 0:
                stage.advance(_PROGRESS_EVERY)
            values = row.values
            for column, level, may_hold in plan:
                value = values.get(column)
                if value.__class__ is not str:
                    continue
                if to_treat and column in to_treat:
                    new = ids.treat(value, to_treat[column], level=level, key=key)
                    if new != value:
                        values[column] = new
                        treated[(sheet, column)] = treated.get((sheet, column), 0) + 1
                    continue
                if may_hold(value) is None or (value, level) in clean:
                    continue
                findings = ids.scan(value, level)
                if not findings:
                    if len(clean) >= 1 << 16:
                        clean.clear()
                    clean.add((value, level))
                for finding in findings:
                    en, zh = ids.LABELS[finding.kind]
                    self.add(
                        _p(
                            f"identifier.{finding.kind.value}",
                            f"{sheet}.{column} holds what looks like a {en}.",
                            f"{sheet}.{column} 中含有疑似{zh}。",
                            row,
                            column,
                            ids.report_excerpt(value, findings, finding),
                            _SUGGESTION,
                        )
                    )

        stage.advance(len(rows) % _PROGRESS_EVERY)

    def _report_treated(
        self, declared: dict[tuple[str, str], ids.Treatment], treated: dict[tuple[str, str], int]
    ) -> None:
        for (sheet, column), count in sorted(treated.items()):
            treatment = declared[(sheet, column)]
            self.add(
                _p(
                    "identifier.treated",
                    f"{count} value(s) of {sheet}.{column} were treated ({treatment.value}) "
                    "before storing.",
                    f"{sheet}.{column} 中的 {count} 个值在保存前已处理（{treatment.value}）。",
                    column=column,
                    severity=Severity.WARNING,
                )
            )


@dataclass(slots=True)
class SheetScan:
    """What a scan of one sheet found: how many of each kind in each column, and the first
    findings as located problems (their values masked)."""

    rows: int = 0
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)  # (column, kind)
    problems: list[Problem] = field(default_factory=list)


def scan_sheet_file(
    handle: BinaryIO,
    *,
    sheet: str,
    delimiter: str,
    name: str,
    size: int | None = None,
    progress: Progress = SILENT,
    keep: int = 100,
) -> SheetScan:
    """Scan a delimited sheet (UTF-8) read from `handle` row by row, for a sheet of any size:
    memory holds one row, the counts and the first `keep` problems. A sheet of the model has
    its scanned columns; any other sheet has every column scanned as free text. `progress`
    hears the bytes read (of `size`, when given)."""
    text = io.TextIOWrapper(handle, encoding="utf-8-sig", newline="")
    reader = csv.reader(text, delimiter=delimiter)
    header = next(reader, None)
    result = SheetScan()
    if header is None:
        return result
    known = sheet in READABLE_SHEETS and sheet != IDENTIFIER_COLUMNS_SHEET
    columns = scanned_columns(sheet) if known else {}
    plan = [
        (i, column, columns[column][0] if known else ids.Level.FULL)
        for i, column in enumerate(header)
        if not known or column in columns
    ]
    checks = {level: ids.prefilter(level) for level in ids.Level}
    number = 1
    with progress.stage(f"scanning {name} for identifiers", total=size, unit="bytes") as stage:
        try:
            rows = enumerate(reader, start=2)
            for number, cells in rows:
                result.rows += 1
                if number % _PROGRESS_EVERY == 0:
                    stage.update(handle.tell())
                for i, column, level in plan:
                    if i >= len(cells) or checks[level](cells[i]) is None:
                        continue
                    value = cells[i]
                    findings = ids.scan(value, level)
                    for finding in findings:
                        result.counts[(column, finding.kind.value)] += 1
                        if len(result.problems) < keep:
                            en, zh = ids.LABELS[finding.kind]
                            result.problems.append(
                                Problem(
                                    rule=f"identifier.{finding.kind.value}",
                                    message=f"{sheet}.{column} holds what looks like a {en}.",
                                    message_zh=f"{sheet}.{column} 中含有疑似{zh}。",
                                    file=name,
                                    row=number,
                                    column=column,
                                    value=ids.report_excerpt(value, findings, finding)[:200],
                                    suggestion=_SUGGESTION,
                                )
                            )
        except (csv.Error, UnicodeDecodeError) as error:
            result.problems.append(
                Problem(
                    rule="sheet.syntax",
                    message=f"The sheet cannot be read on from row {number + 1}: {error}.",
                    message_zh=f"表格自第 {number + 1} 行起无法读取：{error}。",
                    file=name,
                    row=number + 1,
                    suggestion="Save it as UTF-8 TSV or CSV / 请保存为 UTF-8 编码的 TSV 或 CSV",
                )
            )
        stage.update(handle.tell())
    text.detach()
    return result
