"""The defended Beacon's rule: what the open and registered tiers are told of a dataset's alleles.

An allele is said to exist only when its count in the dataset clears a threshold, and the
threshold is drawn for each variant from [low, high] allele copies by a keyed PRF (HMAC-SHA256
of the dataset and the normalised variant under a node secret). Because the threshold is a
function of the variant, asking again, from another account or another address, or spelling the
variant differently gets the same answer: there is no fresh noise to average away. Because the
key is secret, an attacker cannot tell where inside [low, high] a variant's threshold lies.

What an answer can reveal about one member: a member carrying g <= 2 copies changes the answer
only when the threshold falls in (count - g, count], which the uniform draw does with probability
at most 2 / (high - low + 1); alleles seen fewer than `low - 2` times (the rare ones that
re-identify) never influence an answer, and alleles seen `high` times or more are always
answered yes (with `high` <= 1% of the alleles called, every allele of frequency >= 1% is
answered correctly). An absent allele (count 0) is never said to exist. Answers that are not
"exists" are marked withheld whether the allele is absent or rare, so that the mark itself says
nothing. docs/privacy.md gives the argument and the measured attacks.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass

from genecommons.privacy.answers import DatasetAnswer, Granularity
from genecommons.variants.store import ALL, SiteCounts

WITHHELD_NOTE = (
    "Not disclosed: alleles seen in few participants are not revealed, to protect them; an "
    "absent allele is answered the same way. Ask for access to the dataset for exact answers."
)
WITHHELD_NOTE_ZH = (
    "未披露：为保护参与者，仅在少数参与者中出现的等位基因不予披露；不存在的等位基因也以同样方式回答。"
    "如需确切答案，请申请该数据集的访问权限。"
)
SPENT_NOTE = (
    "Not disclosed: this account or address has used its privacy budget for the dataset; ask "
    "for access to the dataset for further answers."
)
SPENT_NOTE_ZH = (
    "未披露：该账号或地址在此数据集上的隐私预算已用尽；如需更多答案，请申请该数据集的访问权限。"
)


@dataclass(frozen=True, slots=True)
class ThresholdRule:
    """The keyed threshold of each variant, and what an answer can reveal about a member."""

    key: bytes
    low: int
    high: int

    def __post_init__(self) -> None:
        if not 1 <= self.low <= self.high:
            raise ValueError(f"need 1 <= low <= high, not [{self.low}, {self.high}]")
        if len(self.key) < 16:
            raise ValueError("the threshold key needs at least 16 bytes")

    @property
    def width(self) -> int:
        """How many thresholds the PRF draws from."""
        return self.high - self.low + 1

    def threshold(self, dataset: str, key: str) -> int:
        """The threshold of the variant `key` (CHROM-POS-REF-ALT, normalised) in `dataset`."""
        message = f"{dataset}\x00{key}".encode()
        digest = hmac.new(self.key, message, hashlib.sha256).digest()
        # 2**64 draws onto at most a few hundred values: the modulo bias is below 1e-16
        return self.low + int.from_bytes(digest[:8], "big") % self.width

    def disclosed(self, dataset: str, site: SiteCounts) -> bool:
        """Whether `site` is said to exist: its count clears the variant's threshold."""
        count = site.counts.get(ALL, {}).get("ac", 0)
        return count > 0 and count >= self.threshold(dataset, site.variant.key)

    def exposure(self, site: SiteCounts) -> float:
        """The chance, over the key, that one member decides the answer about `site`: the
        share of thresholds in (count - 2, count] (a member carries at most two copies)."""
        count = site.counts.get(ALL, {}).get("ac", 0)
        if count <= 0:
            return 0.0
        pivotal = {count - 1, count} & set(range(self.low, self.high + 1))
        return len(pivotal) / self.width


def rule_answer(
    rule: ThresholdRule,
    *,
    dataset: str,
    granularity: Granularity,
    matches: Sequence[SiteCounts],
) -> DatasetAnswer:
    """The answer the rule gives (boolean or count granularity), stateless."""
    shown = sum(1 for m in matches if rule.disclosed(dataset, m))
    count = None if granularity is Granularity.BOOLEAN else shown
    if shown:
        return DatasetAnswer(exists=True, count=count)
    return DatasetAnswer(
        exists=False, count=count, withheld=True, note=WITHHELD_NOTE, note_zh=WITHHELD_NOTE_ZH
    )


def spent_answer(granularity: Granularity) -> DatasetAnswer:
    """The answer once a budget is spent: nothing, whatever the truth."""
    count = None if granularity is Granularity.BOOLEAN else 0
    return DatasetAnswer(
        exists=False, count=count, withheld=True, note=SPENT_NOTE, note_zh=SPENT_NOTE_ZH
    )
