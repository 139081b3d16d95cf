"""The defended Beacon's rule: what the open and registered tiers are told of a dataset's alleles.

An allele is said to exist only when its count in the dataset clears a threshold, and the
threshold is drawn for each variant from [low, high] allele copies by a keyed PRF (HMAC-SHA256
of the dataset and the normalised variant under a node secret), with the chances of a
discretised Beta(alpha, beta) on that range (alpha = beta = 1 is uniform). Because the threshold
is a function of the variant, asking again, from another account or another address, or
spelling the variant differently gets the same answer: there is no fresh noise to average away.
Because the key is secret, an attacker cannot tell where inside [low, high] a variant's
threshold lies; it can know the chances (`ThresholdRule.pmf`), and the attack tool's rule-aware
attacker does.

What an answer can reveal about one member: a member carrying g <= 2 copies changes the answer
only when the threshold falls in (count - g, count], which happens with the chance
`ThresholdRule.exposure`; alleles seen fewer than `low - 2` times (the rare ones that
re-identify) never influence an answer, and alleles seen `high` times or more are always
answered yes (with `high` <= 1% of the alleles called, every allele of frequency >= 1% is
answered correctly). An absent allele (count 0) is never said to exist. Answers that are not
"exists" are marked withheld whether the allele is absent or rare, so that the mark itself says
nothing. Any stateless rule whose answer depends on the count alone is such a threshold with
some chances, so the shape is the whole design space; docs/privacy.md gives the argument, the
shape chosen and the measured attacks.
"""

from __future__ import annotations

import bisect
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

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


DRAWS = 1 << 64  # the PRF's 64-bit draw, mapped onto thresholds by integer cut points


@lru_cache(maxsize=64)
def _cuts(low: int, high: int, alpha: float, beta: float) -> tuple[int, ...]:
    """The integer cut points of the draws: threshold low + i takes the draws in
    [cuts[i - 1], cuts[i]), so that its chance is exactly (cuts[i] - cuts[i - 1]) / 2**64."""
    width = high - low + 1
    # the Beta density at the middle of each threshold's cell of [0, 1]
    weights = [
        ((i + 0.5) / width) ** (alpha - 1) * (1 - (i + 0.5) / width) ** (beta - 1)
        for i in range(width)
    ]
    total = sum(weights)
    cuts, running = [], 0.0
    for w in weights:
        running += w
        cuts.append(min(DRAWS, round(running / total * DRAWS)))
    cuts[-1] = DRAWS
    return tuple(cuts)


@dataclass(frozen=True, slots=True)
class ThresholdRule:
    """The keyed threshold of each variant, and what an answer can reveal about a member."""

    key: bytes
    low: int
    high: int
    alpha: float = 1.0  # the Beta shape of the thresholds' chances on [low, high]
    beta: float = 1.0

    def __post_init__(self) -> None:
        if not 1 <= self.low <= self.high:
            raise ValueError(f"need 1 <= low <= high, not [{self.low}, {self.high}]")
        if not (0 < self.alpha <= 100 and 0 < self.beta <= 100):
            raise ValueError(f"need Beta shapes in (0, 100], not {self.alpha}, {self.beta}")
        if len(self.key) < 16:
            raise ValueError("the threshold key needs at least 16 bytes")

    @property
    def width(self) -> int:
        """How many thresholds the PRF draws from."""
        return self.high - self.low + 1

    @property
    def pmf(self) -> tuple[float, ...]:
        """The chance of each threshold low, low + 1, ..., high over the key (what an attacker
        who knows the rule but not the key knows); they sum to 1."""
        cuts = _cuts(self.low, self.high, self.alpha, self.beta)
        return tuple((b - a) / DRAWS for a, b in zip((0, *cuts[:-1]), cuts, strict=True))

    def threshold(self, dataset: str, key: str) -> int:
        """The threshold of the variant `key` (CHROM-POS-REF-ALT, normalised) in `dataset`."""
        message = f"{dataset}\x00{key}".encode()
        digest = hmac.new(self.key, message, hashlib.sha256).digest()
        draw = int.from_bytes(digest[:8], "big")
        return self.low + bisect.bisect_right(
            _cuts(self.low, self.high, self.alpha, self.beta), draw
        )

    def disclosed(self, dataset: str, site: SiteCounts) -> bool:
        """Whether `site` is said to exist: its count clears the variant's threshold."""
        count = site.counts.get(ALL, {}).get("ac", 0)
        return count > 0 and count >= self.threshold(dataset, site.variant.key)

    def exposure(self, site: SiteCounts) -> float:
        """The chance, over the key, that one member decides the answer about `site`: the
        chance of a threshold in (count - 2, count] (a member carries at most two copies)."""
        count = site.counts.get(ALL, {}).get("ac", 0)
        if count <= 0:
            return 0.0
        pmf = self.pmf
        return sum(pmf[t - self.low] for t in (count - 1, count) if self.low <= t <= self.high)


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
