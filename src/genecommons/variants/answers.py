"""The seam between the Beacon and the re-identification defence.

A Beacon (variants/beacon/) finds, for each dataset a query reaches, the variants that match
it; what the caller is then *told* of them at boolean or count granularity is decided by a
`VariantGuard`. The defended guard lives in privacy/ (budgets, withheld rare alleles, noise);
`exact_answer` tells the truth and is what record granularity (a grant in force) gets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from genecommons.policy.models import Subject
from genecommons.variants.store import SiteCounts


class Granularity(StrEnum):
    """Beacon v2 granularities, from least to most revealing."""

    BOOLEAN = "boolean"
    COUNT = "count"
    RECORD = "record"


@dataclass(frozen=True, slots=True)
class DatasetAnswer:
    """What a caller is told of one dataset for one query."""

    exists: bool
    count: int | None = None  # matching variants, at count granularity and above
    withheld: bool = False  # part of the true answer was hidden to protect participants
    note: str | None = None  # why, in English
    note_zh: str | None = None  # why, in Chinese


class VariantGuard(Protocol):
    """Decides what a caller is told of the variants of one dataset that match a query."""

    def __call__(
        self,
        *,
        subject: Subject,
        address: str,
        dataset: str,
        granularity: Granularity,
        matches: Sequence[SiteCounts],
    ) -> DatasetAnswer:
        """The answer for `dataset` (`matches` are its variants that the query matched)."""
        ...


def exact_answer(
    *,
    subject: Subject,
    address: str,
    dataset: str,
    granularity: Granularity,
    matches: Sequence[SiteCounts],
) -> DatasetAnswer:
    """The true answer, undefended: for record granularity, and for measuring the attacks."""
    present = [m for m in matches if m.counts.get("all", {}).get("ac", 0) > 0]
    count = None if granularity is Granularity.BOOLEAN else len(present)
    return DatasetAnswer(exists=bool(present), count=count)


class PeopleGuard(Protocol):
    """Decides what a caller is told of the individuals or biosamples of one dataset that match
    a query, below record granularity."""

    def __call__(self, granularity: Granularity, records: Sequence[str]) -> DatasetAnswer:
        """The answer about the people `records` (accessions) of one dataset."""
        ...


def exact_people(granularity: Granularity, records: Sequence[str]) -> DatasetAnswer:
    """The true count of people, undefended: for measuring, and for record granularity."""
    unique = set(records)
    count = None if granularity is Granularity.BOOLEAN else len(unique)
    return DatasetAnswer(exists=bool(unique), count=count)


HIDE_RARE_BELOW = 0.05


def hide_rare_answer(
    *,
    subject: Subject,
    address: str,
    dataset: str,
    granularity: Granularity,
    matches: Sequence[SiteCounts],
) -> DatasetAnswer:
    """A baseline, not a defence: the true answer for alleles of frequency >= 5% in the dataset
    (AC / AN), every rarer one withheld (after Raisaro et al. 2017's hiding of rare alleles), to
    measure the linkage attack against; the attack tool uses it, the Beacon never does."""
    present = [m for m in matches if m.counts.get("all", {}).get("ac", 0) > 0]
    shown = [
        m
        for m in present
        if m.counts["all"]["ac"] >= HIDE_RARE_BELOW * m.counts["all"].get("an", 0)
    ]
    count = None if granularity is Granularity.BOOLEAN else len(shown)
    withheld = len(shown) < len(present)
    return DatasetAnswer(exists=bool(shown), count=count, withheld=withheld)
