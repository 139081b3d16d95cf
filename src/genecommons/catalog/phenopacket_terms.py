"""The terms a phenopacket names, resolved through the vocabularies, and its codes for sex.

The lookups are cached: a submission repeats the same few terms across many documents. Pure.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from genecommons.catalog.models import Sex
from genecommons.catalog.vocabularies import Term, disease_term, hpo

SEX_FROM_PACKET = {
    "UNKNOWN_SEX": Sex.UNKNOWN,
    "FEMALE": Sex.FEMALE,
    "MALE": Sex.MALE,
    "OTHER_SEX": Sex.OTHER,
}


def fold(text: str) -> str:
    """Case-folded, whitespace-collapsed text, to compare labels."""
    return " ".join(text.casefold().split())


@functools.lru_cache(maxsize=65536)
def hpo_lookup(value: str) -> Term | None:
    """The HPO term `value` names, or None."""
    return hpo().lookup(value)


@functools.lru_cache(maxsize=4096)
def hpo_suggest(value: str) -> tuple[Term, ...]:
    """The HPO terms nearest to an unknown `value`."""
    return tuple(hpo().suggest(value, limit=3))


@functools.lru_cache(maxsize=16384)
def disease_lookup(value: str) -> Term | None:
    """The disease term `value` names, or None."""
    return disease_term(value)


def did_you_mean(terms: Sequence[Term]) -> str | None:
    """A "did you mean" hint naming `terms`, or None if there are none."""
    if not terms:
        return None
    return "; ".join(f"{t.id} ({t.label})" for t in terms)
