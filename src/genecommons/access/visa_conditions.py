"""The conditions of GA4GH Passport visas: their format, and whether another visa meets a clause.

A visa's `conditions` are in disjunctive normal form: a list of lists of clauses, each clause
naming a visa type and matching fields with `const:`, `pattern:` or `split_pattern:`. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from genecommons.access.visas import ConditionClause, Visa

_CONDITION_FIELDS = ("value", "source", "by")


def parse_conditions(raw: object) -> tuple[tuple[ConditionClause, ...], ...] | None:
    """The conditions as clauses, or None if they break the spec's format."""
    if not isinstance(raw, Sequence) or isinstance(raw, str) or not raw:
        return None
    groups: list[tuple[ConditionClause, ...]] = []
    for group in raw:
        if not isinstance(group, Sequence) or isinstance(group, str) or not group:
            return None
        clauses: list[ConditionClause] = []
        for clause in group:
            if not isinstance(clause, Mapping):
                return None
            clause_type = clause.get("type")
            fields = {name: text for name, text in clause.items() if name != "type"}
            if (
                not isinstance(clause_type, str)
                or not fields
                or {"conditions", "asserted"} & set(fields)
                or not all(isinstance(n, str) and isinstance(t, str) for n, t in fields.items())
            ):
                return None
            clauses.append(ConditionClause(type=clause_type, fields=tuple(sorted(fields.items()))))
        groups.append(tuple(clauses))
    return tuple(groups)


def clause_matches(clause: ConditionClause, visa: Visa) -> bool:
    """Whether `visa` is of the clause's type and every field of the clause matches it."""
    if visa.type.value != clause.type:
        return False
    actual_fields = {"value": visa.value, "source": visa.source, "by": visa.by}
    for name, matcher in clause.fields:
        actual = actual_fields.get(name)
        if actual is None:
            return False  # unknown field, or "by" absent: it cannot match
        prefix, colon, text = matcher.partition(":")
        if not colon:
            return False
        if prefix == "const":
            matched = actual == text
        elif prefix == "pattern":
            matched = _pattern(text).fullmatch(actual) is not None
        elif prefix == "split_pattern":
            regex = _pattern(text)
            matched = any(regex.fullmatch(part) for part in actual.split(";"))
        else:
            return False  # unknown match type: the spec says it fails
        if not matched:
            return False
    return True


def _pattern(text: str) -> re.Pattern[str]:
    """The spec's pattern: `?` any one character, `*` any run; everything else literal."""
    translated = "".join(
        "." if char == "?" else ".*" if char == "*" else re.escape(char) for char in text
    )
    return re.compile(translated, re.DOTALL)
