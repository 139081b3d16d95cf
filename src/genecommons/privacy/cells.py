"""Counts of people below record granularity: consistent noise, then small cells suppressed.

A Beacon asked how many individuals (or biosamples) of a dataset match some filters (HPO terms,
sex, population, ethnic group) answers open and registered callers with a count or a yes/no. The
exact count would let anyone find the lone person with a rare combination of traits ("one woman
of this ethnic group with this disease"), and, by differencing two queries, learn one person's
traits. Two measures, after the cell-key method of statistical agencies (Australian Bureau of
Statistics TableBuilder; Thompson, Broadfoot & Elazar 2013):

- **Consistent noise.** Each record (an individual's or biosample's accession) gets a keyed
  64-bit record key; a cell's key is the sum of its records' keys modulo 2**64 (so it depends on
  the set, not on how it was found); the cell's noise is a discrete Laplace draw read off a keyed
  hash of the cell key by the inverse distribution function. The same set of people always gets
  the same noise, however the filters that select it are spelled or however often it is asked,
  so repeats cannot average the noise away; two different sets get independent-looking noise,
  so the difference of two answers does not give the difference of the true counts.
- **Small cells.** A noisy count under `minimum` is not disclosed (count 0, exists false, marked
  withheld), and a set with nobody in it is answered the same way, so the mark says nothing.

What this is not: differential privacy across queries. An attacker who can build many different
sets that differ by one person averages their independent noise; the filter vocabulary (terms,
sex, population, ethnic group) bounds how many such sets exist, and every query is audited.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Iterable
from dataclasses import dataclass

from genecommons.variants.answers import DatasetAnswer, Granularity

MODULUS = 2**64

SMALL_CELL_NOTE = (
    "Not disclosed: fewer people than the smallest count this Beacon shows match, or none; "
    "counts of people are perturbed slightly to protect them. Ask for access to the dataset for "
    "exact answers."
)
SMALL_CELL_NOTE_ZH = (
    "未披露：符合条件的人数少于本 Beacon 显示的最小计数，或无人符合；人数计数经过轻微扰动以保护参与者。"
    "如需确切答案，请申请该数据集的访问权限。"
)
PERTURBED_NOTE = "Counts of people are perturbed slightly to protect them."
PERTURBED_NOTE_ZH = "人数计数经过轻微扰动以保护参与者。"


@dataclass(frozen=True, slots=True)
class CellRule:
    """The keyed noise and the smallest count shown, for counts of people."""

    key: bytes
    minimum: int = 10
    scale: float = 2.0  # of the discrete Laplace noise

    def __post_init__(self) -> None:
        if len(self.key) < 16:
            raise ValueError("the cell key needs at least 16 bytes")
        if self.minimum < 1:
            raise ValueError(f"the smallest count shown must be at least 1, not {self.minimum}")
        if not self.scale > 0:
            raise ValueError(f"the noise scale must be positive, not {self.scale}")

    def record_key(self, record: str) -> int:
        """The keyed 64-bit key of one record (an accession)."""
        digest = hmac.new(self.key, f"cell\x00{record}".encode(), hashlib.sha256).digest()
        return int.from_bytes(digest[:8], "big")

    def cell_key(self, records: Iterable[str]) -> int:
        """The key of the set `records` (duplicates count once): the sum of its record keys."""
        return sum(self.record_key(r) for r in set(records)) % MODULUS

    def noise(self, cell_key: int) -> int:
        """The discrete Laplace draw at `scale` that `cell_key` reads off (inverse CDF)."""
        # the sum is hashed again: read off directly, S and S + {one person} would have keys a
        # fixed distance apart, and their noise would mostly be equal (the difference exact)
        digest = hmac.new(self.key, cell_key.to_bytes(8, "big"), hashlib.sha256).digest()
        return discrete_laplace_quantile(
            (int.from_bytes(digest[:8], "big") + 0.5) / MODULUS, self.scale
        )

    def released(self, records: Iterable[str]) -> int:
        """The noisy count of `records` (0 for an empty set, never below 0)."""
        unique = set(records)
        if not unique:
            return 0
        return max(0, len(unique) + self.noise(self.cell_key(unique)))


def discrete_laplace_quantile(u: float, scale: float) -> int:
    """The integer k at which the CDF of the discrete Laplace distribution
    P(k) proportional to exp(-|k| / scale) first reaches `u` (0 < u < 1)."""
    if not 0.0 < u < 1.0:
        raise ValueError(f"a quantile needs 0 < u < 1, not {u}")
    r = math.exp(-1.0 / scale)
    # P(X <= -m) = r**m / (1 + r) for m >= 0, and P(X <= k) = 1 - r**(k + 1) / (1 + r) for k >= 0
    if u <= 1.0 / (1.0 + r):
        # the smallest k = -m <= 0 with r**m / (1 + r) >= u
        m = math.floor(math.log(u * (1.0 + r)) / math.log(r))
        return -max(m, 0)
    # k >= 1: P(X <= k) = 1 - r**(k + 1) / (1 + r) >= u
    k = math.ceil(math.log((1.0 - u) * (1.0 + r)) / math.log(r)) - 1
    return max(k, 1)


def people_answer(
    rule: CellRule, granularity: Granularity, records: Iterable[str]
) -> DatasetAnswer:
    """What a caller below record granularity is told of the people `records` of a dataset."""
    shown = rule.released(records)
    count = None if granularity is Granularity.BOOLEAN else shown
    if shown >= rule.minimum:
        return DatasetAnswer(
            exists=True, count=count, withheld=False, note=PERTURBED_NOTE, note_zh=PERTURBED_NOTE_ZH
        )
    return DatasetAnswer(
        exists=False,
        count=None if granularity is Granularity.BOOLEAN else 0,
        withheld=True,
        note=SMALL_CELL_NOTE,
        note_zh=SMALL_CELL_NOTE_ZH,
    )
