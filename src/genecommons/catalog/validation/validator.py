"""The entry point: one pass over a bundle, running the rule groups in order."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from genecommons.catalog.bundle import Bundle
from genecommons.catalog.models import (
    ENTITIES,
    ENTITY_ORDER,
)
from genecommons.catalog.validation.identifiers import IdentifierRules
from genecommons.catalog.validation.pedigrees import PedigreeRules
from genecommons.catalog.validation.phenotypes import PhenotypeRules
from genecommons.catalog.validation.plan import CatalogView, Plan
from genecommons.catalog.validation.problems import _p
from genecommons.catalog.validation.records import RecordRules
from genecommons.catalog.validation.studies import StudyRules
from genecommons.progress import SILENT, Progress


class _Validator(PhenotypeRules, RecordRules, PedigreeRules, StudyRules, IdentifierRules):
    """One pass over a bundle; collects problems and resolved nodes."""

    def run(self) -> Plan:
        self._check_headers()
        self._scan_identifiers()  # before parsing: records hold only treated values
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


def plan_submission(
    bundle: Bundle,
    view: CatalogView,
    *,
    today: date,
    max_problems: int = 10_000,
    identifier_key: Callable[[], bytes] | None = None,
    progress: Progress = SILENT,
) -> Plan:
    """Validate `bundle` against the model, vocabularies and `view`; every problem in one pass.
    `identifier_key` gives the node's key for keyed pseudonyms (asked for only when a column
    declares that treatment); `progress` hears the identifier scan, row by row of each sheet."""
    validator = _Validator(bundle, view, today=today, max_problems=max_problems)
    validator.identifier_key = identifier_key
    validator.progress = progress
    return validator.run()
