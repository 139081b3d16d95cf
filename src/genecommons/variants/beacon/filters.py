"""Beacon filters: checking them into criteria (HPO and disease terms, sex, population,
GB/T 3304 ethnic group) and testing an individual against them."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from genecommons.catalog.vocabularies import (
    disease_term,
    ethnic_groups,
    hpo,
    hpo_is_descendant,
)
from genecommons.errors import InvalidInputError
from genecommons.variants.beacon.requests import Filter
from genecommons.variants.store import ALL

SEX_TERMS: dict[str, tuple[str, str]] = {
    "female": ("NCIT:C16576", "female"),
    "male": ("NCIT:C20197", "male"),
    "other": ("NCIT:C45908", "intersex"),
    "unknown": ("NCIT:C17998", "unknown"),
}
SEX_BY_TERM = {term: sex for sex, (term, _label) in SEX_TERMS.items()}
FIELDS = ("sex", "population", "ethnic_group")


_POPULATION = re.compile(r"[A-Za-z0-9][A-Za-z0-9_:\-]{0,99}")
_TERM = re.compile(r"[A-Za-z][A-Za-z0-9._\-]{0,30}:[A-Za-z0-9._\-]{1,60}")


@dataclass(frozen=True, slots=True)
class TermCriterion:
    """An individual has (not excluded) this phenotypic feature or disease; HPO terms match
    their descendants too unless `descendants` is off."""

    term: str
    label: str
    descendants: bool = True


@dataclass(frozen=True, slots=True)
class FieldCriterion:
    """An individual's sex, population or ethnic group is (or, negated, is not) `value`."""

    field: str
    value: str
    negated: bool = False


Criterion = TermCriterion | FieldCriterion


def _unknown_filter(spec: Filter, hint: str, hint_zh: str) -> InvalidInputError:
    return InvalidInputError(
        f"Unknown filter {spec.id[:80]!r}: {hint} GET /beacon/filtering_terms lists them.",
        message_zh=f"未知的筛选条件 {spec.id[:80]!r}：{hint_zh}可用条件见 GET /beacon/filtering_terms。",
        details={"place": "query.filters", "value": spec.id[:80]},
    )


def criterion(spec: Filter) -> Criterion:
    """The checked criterion of one filter."""
    if spec.id in FIELDS:
        if spec.value is None or spec.operator not in (None, "=", "!"):
            raise _unknown_filter(
                spec,
                f"{spec.id} filters compare with = or ! against a value.",
                f"{spec.id} 筛选条件须用 = 或 ! 与一个值比较。",
            )
        value = spec.value.strip()
        if spec.id == "sex":
            value = value.lower()
            if value not in SEX_TERMS:
                raise _unknown_filter(
                    spec,
                    "sex is female, male, other or unknown.",
                    "性别须为 female、male、other 或 unknown。",
                )
        elif spec.id == "ethnic_group":
            term = ethnic_groups().lookup(value)
            if term is None:
                raise _unknown_filter(
                    spec,
                    f"{value[:40]!r} is not a GB/T 3304 ethnic group (code, e.g. 01, or name).",
                    f"{value[:40]!r} 不是 GB/T 3304 民族（代码如 01，或名称）。",
                )
            value = term.id
        elif not _POPULATION.fullmatch(value):
            raise _unknown_filter(
                spec, "a population is a code such as CHB.", "群体须为代码，如 CHB。"
            )
        return FieldCriterion(spec.id, value, negated=spec.operator == "!")
    if spec.id in SEX_BY_TERM:
        return FieldCriterion("sex", SEX_BY_TERM[spec.id])
    if spec.value is not None or not _TERM.fullmatch(spec.id):
        raise _unknown_filter(
            spec,
            "filters are HPO or disease terms (HP:0000365, MONDO:…, ICD10:…), NCIT sex terms, "
            "or sex, population and ethnic_group with a value.",
            "筛选条件为 HPO 或疾病术语、NCIT 性别术语，或带值的 sex、population、ethnic_group。",
        )
    if spec.id.upper().startswith("HP:"):
        found = hpo().lookup(spec.id)
        if found is None:
            raise _unknown_filter(spec, "no such HPO term.", "HPO 中没有该术语。")
        return TermCriterion(found.id, found.label, spec.includeDescendantTerms)
    disease = disease_term(spec.id)
    if disease is None:
        raise _unknown_filter(
            spec, "no such HPO, MONDO, ICD-10, OMIM or Orphanet term.", "不是已知的术语。"
        )
    return TermCriterion(disease.id, disease.label, descendants=False)


def criteria(filters: Sequence[Filter]) -> tuple[Criterion, ...]:
    """The checked criteria of a request's filters."""
    return tuple(criterion(f) for f in filters)


@dataclass(frozen=True, slots=True)
class Person:
    """What the filters ask of an individual."""

    accession: str
    sex: str | None
    population: str | None
    ethnic_group: str | None
    terms: frozenset[str]  # phenotypic features and diseases present (not excluded)


@functools.lru_cache(maxsize=100_000)
def _below(term: str, ancestor: str) -> bool:
    try:
        return hpo_is_descendant(term, ancestor)
    except InvalidInputError:
        return False  # a stored term the bundled HPO no longer knows


def person_matches(person: Person, wanted: Iterable[Criterion]) -> bool:
    """Whether an individual satisfies every criterion."""
    for item in wanted:
        if isinstance(item, FieldCriterion):
            value = getattr(person, item.field)
            if (value == item.value) == item.negated:
                return False
        elif item.term not in person.terms and not (
            item.descendants
            and item.term.startswith("HP:")
            and any(t.startswith("HP:") and _below(t, item.term) for t in person.terms)
        ):
            return False
    return True


def index_group(wanted: Sequence[Criterion]) -> str | None:
    """The sites-index group that answers these criteria directly (all, a population, a sex,
    or population:sex), or None when they need the individual genotypes."""
    if any(not isinstance(c, FieldCriterion) or c.negated for c in wanted):
        return None
    fields = {c.field: c.value for c in wanted if isinstance(c, FieldCriterion)}
    if len(fields) != len(wanted) or "ethnic_group" in fields:
        return None
    if not fields:
        return ALL
    if set(fields) == {"population", "sex"}:
        return f"{fields['population']}:{fields['sex']}"
    return next(iter(fields.values()))


def filter_ids(wanted: Sequence[Filter]) -> list[str]:
    """The filters as the request summary lists them (strings)."""
    return [f.id if f.value is None else f"{f.id}{f.operator or '='}{f.value}" for f in wanted]
