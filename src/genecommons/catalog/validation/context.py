"""The state every rule shares during one pass: the submission, the catalog records it touches,
the records placed so far, the refused aliases and the problems collected; plus the checks
several rule groups use (vocabulary terms, diseases, dates, close aliases).
"""

from __future__ import annotations

import difflib
import re
from collections import defaultdict
from datetime import date

from genecommons.catalog import vocabularies as vocab
from genecommons.catalog.bundle import Bundle
from genecommons.catalog.report import Problem, Report, Severity
from genecommons.catalog.validation.plan import CatalogView, Existing, Node, Plan
from genecommons.catalog.validation.problems import _p


class ValidationContext:
    """The shared state of one validation pass and the checks the rule groups share."""

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

    def add(self, problem: Problem) -> None:
        if len(self.report.problems) >= self.max_problems:
            self.suppressed += 1
            return
        self.report.add(problem)
        if problem.severity is Severity.ERROR:
            self.errors += 1

    def _close_alias(self, entity: str, value: str) -> str | None:
        known = [n.record.alias for n in self.plan.nodes.get(entity, [])][:5000]
        close = difflib.get_close_matches(value, known, n=1, cutoff=0.5)
        if close:
            return f"Did you mean {close[0]!r}? / 是否应为 {close[0]!r}？"
        return f"Add it to the {entity} sheet or use its accession / 请在 {entity} 表中添加或使用登记号"

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


_LOOKUPS: dict[tuple[str, str], vocab.Term | None] = {}


def _lookup(vocabulary: vocab.Vocabulary, value: str) -> vocab.Term | None:
    """A vocabulary look-up, memoised: a large submission repeats the same few codes."""
    key = (vocabulary.name, value)
    if key not in _LOOKUPS:
        if len(_LOOKUPS) >= 1 << 16:
            _LOOKUPS.clear()
        _LOOKUPS[key] = vocabulary.lookup(value)
    return _LOOKUPS[key]


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
