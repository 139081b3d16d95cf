"""Resolving a record's references to records of the submission or of the catalog."""

from __future__ import annotations

from genecommons.catalog.models import (
    ENTITIES,
    entity_for_accession,
    is_accession,
)
from genecommons.catalog.validation.context import ValidationContext
from genecommons.catalog.validation.plan import Node, Target
from genecommons.catalog.validation.problems import _p

# consent and approvals only cover the study they were given for
SAME_STUDY = frozenset({"consents", "ethics_approvals", "hgr_records"})


class ReferenceRules(ValidationContext):
    """Resolves references; a dangling, ambiguous or cross-study one is a problem."""

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


def _split_study(key: str | None) -> tuple[str | None, str]:
    inst, _, alias = (key or "").partition("/")
    return inst or None, alias


def _split_study_tuple(key: str | None) -> tuple[str, str]:
    inst, _, alias = (key or "").partition("/")
    return inst, alias
