"""Validation reports: every problem of a submission, each with its place, rule and a fix."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    """An error rejects the submission; a warning is reported and the submission goes on."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem found in a submission, located as precisely as the input allows."""

    rule: str  # a stable identifier, e.g. "vocabulary.hpo", "reference.dangling"
    message: str  # English
    message_zh: str  # Chinese
    file: str | None = None  # file (or file:sheet) the problem is in
    row: int | None = None  # 1-based row as a spreadsheet shows it (header is row 1)
    column: str | None = None
    value: str | None = None
    suggestion: str | None = None
    severity: Severity = Severity.ERROR

    @property
    def place(self) -> str:
        """Where the problem is, e.g. `individuals.tsv, row 5, column sex`."""
        parts = []
        if self.file:
            parts.append(self.file)
        if self.row is not None:
            parts.append(f"row {self.row}")
        if self.column:
            parts.append(f"column {self.column}")
        return ", ".join(parts) or "submission"

    @property
    def place_zh(self) -> str:
        """Where the problem is, in Chinese."""
        parts = []
        if self.file:
            parts.append(self.file)
        if self.row is not None:
            parts.append(f"第 {self.row} 行")
        if self.column:
            parts.append(f"列 {self.column}")
        return "，".join(parts) or "提交内容"


@dataclass(slots=True)
class Report:
    """The outcome of validating a submission."""

    problems: list[Problem] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, problem: Problem) -> None:
        """Record a problem."""
        self.problems.append(problem)

    def extend(self, problems: list[Problem]) -> None:
        """Record several problems."""
        self.problems.extend(problems)

    @property
    def errors(self) -> list[Problem]:
        """The problems that reject the submission."""
        return [p for p in self.problems if p.severity is Severity.ERROR]

    @property
    def warnings(self) -> list[Problem]:
        """The problems that are only reported."""
        return [p for p in self.problems if p.severity is Severity.WARNING]

    @property
    def ok(self) -> bool:
        """Whether the submission may be committed."""
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        return {
            "valid": self.ok,
            "error_count": len(self.errors),
            "warning_count": len(self.warnings),
            "counts": dict(self.counts),
            "problems": [
                {k: v for k, v in asdict(p).items() if v is not None} for p in self.problems
            ],
        }

    def to_text(self) -> str:
        """The report as bilingual text, one problem per paragraph."""
        lines = []
        verdict = (
            "Valid submission. / 提交内容有效。"
            if self.ok
            else f"Rejected: {len(self.errors)} error(s). / 已拒绝：{len(self.errors)} 个错误。"
        )
        lines.append(verdict)
        for p in self.problems:
            tag = "ERROR 错误" if p.severity is Severity.ERROR else "WARNING 警告"
            lines.append(f"[{tag}] {p.place} [{p.rule}]")
            value = f" (value: {p.value!r})" if p.value is not None else ""
            lines.append(f"  {p.message}{value}")
            lines.append(f"  {p.place_zh}：{p.message_zh}")
            if p.suggestion:
                lines.append(f"  Suggestion / 建议: {p.suggestion}")
        return "\n".join(lines)
