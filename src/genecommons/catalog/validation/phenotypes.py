"""The phenotype rows and phenopackets: parsing and checking each row (reusing the checked result
of an earlier identical row), finding its individual, and attaching phenopackets.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from genecommons.catalog import vocabularies as vocab
from genecommons.catalog.bundle import Row
from genecommons.catalog.models import (
    ALIAS_PATTERN,
    ENTITIES,
    PHENOTYPES_SHEET,
    Phenotype,
    Record,
)
from genecommons.catalog.phenopackets import read_phenopacket
from genecommons.catalog.report import Severity
from genecommons.catalog.validation.context import _lookup
from genecommons.catalog.validation.placement import RecordPlacement, _present
from genecommons.catalog.validation.plan import Node, PhenotypeSet
from genecommons.catalog.validation.problems import _p, _pydantic_problems
from genecommons.catalog.validation.references import ReferenceRules

_CURIE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*:\S+$")


class PhenotypeRules(RecordPlacement, ReferenceRules):
    """Collects every individual's phenotypes from the rows and the phenopackets."""

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
