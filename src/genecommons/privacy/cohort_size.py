"""What a small dataset's Beacon may answer, decided by its size and the public reference.

The keyed threshold rule (privacy/beacon_guard.py) holds the attacks at the goal (power <= 0.10
at 5% false positives, up to 5,000 queries per victim) on large cohorts; on small ones its
window of [1, 40] copies covers frequencies where one member often decides an answer, and the
attacks pass the goal (docs/privacy.md, "Small cohorts"). So a dataset's Beacon members decide
its answers' scope:

- `FULL`, from `common_below` members: the threshold rule.
- `COMMON`, from `none_below` to `common_below` members, where the public reference places the
  dataset's windows: an allele is said to exist only when it is present in the dataset and the
  reference makes its presence among the other members near certain, whoever they are: the
  belief about its count among the 2 (members - 1) other alleles (privacy/belief.py) gives a
  count of 0 a chance of at most `miss`. A member then decides such an answer only when the
  others hold none of it (chance <= `miss`), and every other allele is withheld whatever the
  dataset holds. An absent allele is never said to exist.
- `NONE`, under `none_below` members, or under `common_below` without a suitable reference
  (nothing is then known to be near certain): no variant is said to exist.

A withheld answer of a dataset answered in `COMMON` or `NONE` scope carries a note giving the
reason; the note depends on the dataset's size alone, never on the allele asked about.
docs/privacy.md gives the figures the cut points come from.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

from genecommons.privacy.beacon_guard import PublicCounts, ThresholdRule, rule_answer
from genecommons.privacy.belief import count_chances
from genecommons.variants.answers import DatasetAnswer, Granularity
from genecommons.variants.store import ALL, SiteCounts


class Scope(StrEnum):
    """What a dataset's Beacon answers below record granularity."""

    FULL = "full"  # the threshold rule
    COMMON = "common"  # only alleles whose presence the public reference makes near certain
    NONE = "none"  # no variant


@dataclass(frozen=True, slots=True)
class SizeRule:
    """The cut points, in Beacon members, and the chance of absence a common-only answer
    tolerates."""

    none_below: int = 45
    common_below: int = 500
    miss: float = 1e-4

    def __post_init__(self) -> None:
        if not 1 <= self.none_below <= self.common_below:
            raise ValueError(
                f"need 1 <= none_below <= common_below, not {self.none_below}, {self.common_below}"
            )
        if not 0 < self.miss < 1:
            raise ValueError(f"need 0 < miss < 1, not {self.miss}")

    def scope(self, members: int, *, placed: bool) -> Scope:
        """The scope of a dataset of `members` Beacon members; `placed`: whether the public
        reference was checked to suit it (privacy/fit.py)."""
        if members >= self.common_below:
            return Scope.FULL
        if members < self.none_below or not placed:
            return Scope.NONE
        return Scope.COMMON

    def certain(self, public_count: int, public_alleles: int, others: int) -> bool:
        """Whether an allele the reference holds `public_count` times of `public_alleles` is
        near certain to be present among `others` alleles of the dataset (those of every
        member but one): the belief gives a count of 0 a chance of at most `miss`."""
        return _absent_chance(public_count, max(public_alleles, 1), max(others, 0)) <= self.miss


def useful_floor(miss: float, frequency: float) -> int:
    """The fewest members whose other members' alleles make an allele of `frequency` present
    with chance at least 1 - `miss` (binomially: (1 - f)^(2 (n - 1)) <= miss)."""
    if not (0 < miss < 1 and 0 < frequency < 1):
        raise ValueError("need 0 < miss < 1 and 0 < frequency < 1")
    return 1 + math.ceil(math.log(miss) / (2 * math.log1p(-frequency)))


@lru_cache(maxsize=65_536)
def _absent_chance(public_count: int, public_alleles: int, others: int) -> float:
    """The belief's chance that the allele is absent among `others` alleles."""
    return float(
        count_chances([public_count], panel_alleles=public_alleles, cohort_alleles=others, high=0)[
            0, 0
        ]
    )


def size_notes(scope: Scope, rule: SizeRule) -> tuple[str, str]:
    """Why a withheld answer of a dataset in `scope` is withheld, in English and Chinese."""
    if scope is Scope.COMMON:
        return (
            f"Not disclosed: this dataset has fewer than {rule.common_below} participants, too "
            "few for rarer alleles to be revealed without revealing who takes part; only alleles "
            "common enough in the public reference to be present whoever takes part are "
            "answered. Ask for access to the dataset for exact answers.",
            f"未披露：该数据集参与者少于 {rule.common_below} 人，披露较罕见的等位基因会暴露谁参与其中；"
            "仅回答在公共参考中足够常见、无论谁参与都几乎必然存在的等位基因。如需确切答案，请申请该数据集的访问权限。",
        )
    return (
        f"Not disclosed: this dataset has fewer than {rule.none_below} participants (or fewer "
        f"than {rule.common_below} and no public reference checked to suit it), too few for "
        "any answer about a variant to be safe; its Beacon answers no variant. Ask for access to "
        "the dataset for exact answers.",
        f"未披露：该数据集参与者少于 {rule.none_below} 人（或少于 {rule.common_below} 人且没有经检查"
        "适用的公共参考），任何关于变异的回答都不安全，其 Beacon 不回答任何变异。"
        "如需确切答案，请申请该数据集的访问权限。",
    )


def common_disclosed(rule: SizeRule, reference: PublicCounts, site: SiteCounts) -> bool:
    """Whether `site` is said to exist in `COMMON` scope: present, and near certain to be
    present among the other members' alleles by the reference."""
    counts = site.counts.get(ALL, {})
    if counts.get("ac", 0) <= 0:
        return False
    found = reference.get(site.variant.key)
    if found is None:
        return False
    public_count, public_alleles = found
    return rule.certain(public_count, public_alleles, counts.get("an", 0) - 2)


def sized_answer(
    rule: ThresholdRule,
    sizes: SizeRule,
    *,
    dataset: str,
    members: int,
    granularity: Granularity,
    matches: Sequence[SiteCounts],
) -> DatasetAnswer:
    """The answer about `matches` of `dataset`, of `members` Beacon members, at boolean or
    count granularity: the threshold rule's in `FULL` scope, stateless otherwise."""
    scope = sizes.scope(members, placed=rule.places(dataset))
    if scope is Scope.FULL:
        return rule_answer(rule, dataset=dataset, granularity=granularity, matches=matches)
    reference = rule.reference
    shown = 0
    if scope is Scope.COMMON and reference is not None:
        said = [m for m in matches if common_disclosed(sizes, reference, m)]
        shown = int(bool(said)) if granularity is Granularity.BOOLEAN else len(said)
    count = None if granularity is Granularity.BOOLEAN else shown
    if shown:
        return DatasetAnswer(exists=True, count=count)
    note, note_zh = size_notes(scope, sizes)
    return DatasetAnswer(exists=False, count=count, withheld=True, note=note, note_zh=note_zh)
