"""The rules on one record at a time, by entity: vocabulary terms, dates, consent permissions and
modifiers, file owners, datasets, and the consent and ethics approval of a human sample.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from genecommons.catalog import vocabularies as vocab
from genecommons.catalog.validation.context import ValidationContext
from genecommons.catalog.validation.plan import Node
from genecommons.catalog.validation.problems import _p

HUMAN = {"homo sapiens", "human", "ncbitaxon:9606", "人"}


class RecordRules(ValidationContext):
    """Checks each record on its own and stores its normalised terms."""

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
