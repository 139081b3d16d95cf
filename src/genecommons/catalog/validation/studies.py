"""The study rules across records: the HGR collection licence a large or special study needs."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from genecommons.catalog.validation.context import ValidationContext
from genecommons.catalog.validation.problems import _p

LICENCE_THRESHOLD = 3000


class StudyRules(ValidationContext):
    """Checks each study against the individuals it holds."""

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
