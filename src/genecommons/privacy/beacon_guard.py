"""The defended Beacon's rule: what the open and registered tiers are told of a dataset's alleles.

An allele is said to exist only when its count in the dataset clears a threshold, and the
threshold is drawn for each variant from a window of allele copies by a keyed PRF (HMAC-SHA256
of the dataset and the normalised variant under a node secret), with the chances of a
discretised Beta(alpha, beta) on the window (alpha = beta = 1 is uniform). Because the threshold
is a function of the variant, asking again, from another account or another address, or
spelling the variant differently gets the same answer: there is no fresh noise to average away.
Because the key is secret, an attacker cannot tell where inside its window a variant's
threshold lies; it can know the window and the chances (`ThresholdRule.thresholds`), and the
attack tool's rule-aware attacker does.

Where the window lies:

- Without a public reference, every variant's window is [low, high]: alleles seen fewer than
  `low - 2` times (the rare ones that re-identify) never influence an answer.
- With a public reference (allele counts of people outside the dataset, like gnomAD's or
  ChinaMAP's: `PublicCounts`), each variant's window is the `window_size` thresholds within
  [1, high] that the belief about its count in the dataset, from its public count
  (privacy/belief.py), weighs least (`window_start`): a common allele of the reference gets a
  window near 1, a rare or unseen one a window near `high`. A member decides an answer only
  when the dataset's count sits at the window, and the window is where the public counts, which
  the attacker holds too, say the count is unlikely to be. Any stateless rule whose answer
  depends on the count alone is a threshold with some chances, and what one member changes,
  summed over the counts of the others, is the same for every such rule; the windows put that
  change where no one expects the count (docs/privacy.md gives the argument and the attacks).

Either way alleles seen `high` times or more are always answered yes (with `high` <= 1% of the
alleles called, every allele of frequency >= 1% is answered correctly) and an absent allele
(count 0) is never said to exist. Answers that are not "exists" are marked withheld whether the
allele is absent or rare, so that the mark itself says nothing.
"""

from __future__ import annotations

import bisect
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Protocol

from genecommons.privacy.belief import count_chances
from genecommons.variants.answers import DatasetAnswer, Granularity
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
INSTITUTION_SPENT_NOTE = (
    "Not disclosed: your institution's accounts together have used the institution's privacy "
    "budget for the dataset (every account of an institution draws on one budget); ask for "
    "access to the dataset for further answers."
)
INSTITUTION_SPENT_NOTE_ZH = (
    "未披露：贵机构的所有账号合计已用尽本机构在此数据集上的隐私预算（同一机构的账号共用一份预算）；"
    "如需更多答案，请申请该数据集的访问权限。"
)
PERIOD_SPENT_NOTE = (
    "Not disclosed: count answers about this dataset have used the privacy budget all "
    "registered users share in the current period; they resume in the next period. Ask for "
    "access to the dataset for exact answers now."
)
PERIOD_SPENT_NOTE_ZH = (
    "未披露：本期内所有注册用户共用的此数据集隐私预算已用尽，计数回答将在下一期恢复；"
    "如需立即获得确切答案，请申请该数据集的访问权限。"
)
# the note of a withheld answer, by the kind of the party whose budget is spent
SPENT_NOTES = {
    "account": (SPENT_NOTE, SPENT_NOTE_ZH),
    "address": (SPENT_NOTE, SPENT_NOTE_ZH),
    "institution": (INSTITUTION_SPENT_NOTE, INSTITUTION_SPENT_NOTE_ZH),
    "period": (PERIOD_SPENT_NOTE, PERIOD_SPENT_NOTE_ZH),
}


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


class PublicCounts(Protocol):
    """Allele counts of a public reference (people outside the dataset), by normalised
    variant key."""

    alleles: int  # the reference's allele number, for the variants it does not list

    def get(self, key: str) -> tuple[int, int] | None:
        """(AC, AN) of the variant `key` (CHROM-POS-REF-ALT, normalised), None if not listed."""
        ...


@lru_cache(maxsize=65_536)
def window_start(
    public_count: int, public_alleles: int, cohort_alleles: int, *, width: int, high: int
) -> int:
    """The first threshold of the window of `width` thresholds within [1, high] where a member
    carrying one copy is least likely to decide the answer, as the public count (of
    `public_alleles`) says of the count among the dataset's `cohort_alleles`: the window
    [a, a + width - 1] is weighed by the chance that the others' count is a - 1 .. a + width - 2
    (ties go to the lower window, which answers more)."""
    chances = count_chances(
        [public_count],
        panel_alleles=max(public_alleles, 1),
        cohort_alleles=max(cohort_alleles, 0),
        high=high,
    )[:, 0]
    weights = [(float(chances[a - 1 : a - 1 + width].sum()), a) for a in range(1, high - width + 2)]
    return min(weights)[1]


WINDOWS_KEPT = 200_000  # windows (and thresholds) a rule remembers; past it, it forgets


@dataclass(frozen=True, slots=True)
class ThresholdRule:
    """The keyed threshold of each variant, and what an answer can reveal about a member."""

    key: bytes
    low: int
    high: int
    alpha: float = 1.0  # the Beta shape of the thresholds' chances on a window
    beta: float = 1.0
    reference: PublicCounts | None = None  # windows placed by public counts, when given
    window_size: int = 3  # thresholds in a window placed by the reference
    # the datasets whose windows the reference places (None: every dataset); the others get
    # [low, high] (a reference that does not suit a dataset is not used for it: privacy/fit.py)
    placed: frozenset[str] | None = None
    # the windows placed so far, by (variant, alleles): each costs a read of the reference and
    # a weighing of every window, and depends on nothing that changes while the rule lives
    _windows: dict[tuple[str, int], tuple[int, int]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    # the thresholds drawn so far, by (dataset, variant, alleles): a function of the key and
    # the window, kept beside them in this process
    _thresholds: dict[tuple[str, str, int], int] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if not 1 <= self.low <= self.high:
            raise ValueError(f"need 1 <= low <= high, not [{self.low}, {self.high}]")
        if self.reference is not None and not 1 <= self.window_size <= self.high:
            raise ValueError(f"need 1 <= window size <= high ({self.high}), not {self.window_size}")
        if not (0 < self.alpha <= 100 and 0 < self.beta <= 100):
            raise ValueError(f"need Beta shapes in (0, 100], not {self.alpha}, {self.beta}")
        if len(self.key) < 16:
            raise ValueError("the threshold key needs at least 16 bytes")

    @property
    def width(self) -> int:
        """How many thresholds the PRF draws from without a reference ([low, high])."""
        return self.high - self.low + 1

    @property
    def pmf(self) -> tuple[float, ...]:
        """The chance of each threshold low, low + 1, ..., high over the key, without a
        reference (what an attacker who knows the rule but not the key knows); they sum to 1."""
        return _pmf(self.low, self.high, self.alpha, self.beta)

    def places(self, dataset: str | None) -> bool:
        """Whether the reference places the windows of `dataset` (None: a dataset of any)."""
        if self.reference is None:
            return False
        return self.placed is None or (dataset is not None and dataset in self.placed)

    def window(self, key: str, alleles: int, dataset: str | None = None) -> tuple[int, int]:
        """The first and last threshold the variant `key` may have in `dataset`, of `alleles`
        called alleles (AN): [low, high] unless the reference places the dataset's windows."""
        if self.reference is None or not self.places(dataset):
            return self.low, self.high
        placed = self._windows.get((key, alleles))
        if placed is None:
            found = self.reference.get(key)
            count, called = found if found is not None else (0, self.reference.alleles)
            first = window_start(count, called, alleles, width=self.window_size, high=self.high)
            placed = (first, first + self.window_size - 1)
            if len(self._windows) >= WINDOWS_KEPT:
                self._windows.clear()
            self._windows[(key, alleles)] = placed
        return placed

    def thresholds(
        self, key: str, alleles: int, dataset: str | None = None
    ) -> tuple[tuple[int, ...], tuple[float, ...]]:
        """The thresholds the variant `key` may have in `dataset` and the chance of each over
        the key."""
        first, last = self.window(key, alleles, dataset)
        return tuple(range(first, last + 1)), _pmf(first, last, self.alpha, self.beta)

    def threshold(self, dataset: str, key: str, alleles: int = 0) -> int:
        """The threshold of the variant `key` (CHROM-POS-REF-ALT, normalised) in `dataset`, of
        `alleles` called alleles (needed only to place a window by the reference)."""
        drawn = self._thresholds.get((dataset, key, alleles))
        if drawn is None:
            message = f"{dataset}\x00{key}".encode()
            digest = hmac.new(self.key, message, hashlib.sha256).digest()
            draw = int.from_bytes(digest[:8], "big")
            first, last = self.window(key, alleles, dataset)
            drawn = first + bisect.bisect_right(_cuts(first, last, self.alpha, self.beta), draw)
            if len(self._thresholds) >= WINDOWS_KEPT:
                self._thresholds.clear()
            self._thresholds[(dataset, key, alleles)] = drawn
        return drawn

    def disclosed(self, dataset: str, site: SiteCounts) -> bool:
        """Whether `site` is said to exist: its count clears the variant's threshold."""
        counts = site.counts.get(ALL, {})
        count = counts.get("ac", 0)
        if count <= 0:
            return False
        return count >= self.threshold(dataset, site.variant.key, counts.get("an", 0))

    def exposure(self, site: SiteCounts, dataset: str | None = None) -> float:
        """The chance, over the key, that one member decides the answer about `site` of
        `dataset`: the chance of a threshold in (count - 2, count] (a member carries at most
        two copies)."""
        counts = site.counts.get(ALL, {})
        count = counts.get("ac", 0)
        if count <= 0:
            return 0.0
        values, chances = self.thresholds(site.variant.key, counts.get("an", 0), dataset)
        return sum(p for t, p in zip(values, chances, strict=True) if count - 2 < t <= count)


@lru_cache(maxsize=1024)
def _pmf(low: int, high: int, alpha: float, beta: float) -> tuple[float, ...]:
    cuts = _cuts(low, high, alpha, beta)
    return tuple((b - a) / DRAWS for a, b in zip((0, *cuts[:-1]), cuts, strict=True))


def rule_answer(
    rule: ThresholdRule,
    *,
    dataset: str,
    granularity: Granularity,
    matches: Sequence[SiteCounts],
) -> DatasetAnswer:
    """The answer the rule gives (boolean or count granularity), stateless."""
    if granularity is Granularity.BOOLEAN:  # whether any is disclosed: the first one says
        shown = int(any(rule.disclosed(dataset, m) for m in matches))
    else:
        shown = sum(1 for m in matches if rule.disclosed(dataset, m))
    count = None if granularity is Granularity.BOOLEAN else shown
    if shown:
        return DatasetAnswer(exists=True, count=count)
    return DatasetAnswer(
        exists=False, count=count, withheld=True, note=WITHHELD_NOTE, note_zh=WITHHELD_NOTE_ZH
    )


def spent_answer(granularity: Granularity, spent_by: str = "account") -> DatasetAnswer:
    """The answer once a budget is spent (by the party of kind `spent_by`: account, address,
    institution or period): nothing, whatever the truth, and which budget is spent."""
    count = None if granularity is Granularity.BOOLEAN else 0
    note, note_zh = SPENT_NOTES.get(spent_by, SPENT_NOTES["account"])
    return DatasetAnswer(exists=False, count=count, withheld=True, note=note, note_zh=note_zh)


def is_spent(answer: DatasetAnswer) -> bool:
    """Whether `answer` was withheld because a budget is spent (not by the rule)."""
    return any(answer.note == note for note, _ in SPENT_NOTES.values())
