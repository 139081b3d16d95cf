"""ISO 3166-1 alpha-2 country codes, as the jurisdiction rules and the country policies take them."""

from __future__ import annotations

import re

from genecommons.catalog.vocabularies import countries
from genecommons.errors import InvalidInputError

__all__ = ["country_code"]

_ALPHA_2 = re.compile(r"[A-Z]{2}")


def country_code(value: str, *, field_name: str = "country") -> str:
    """The ISO 3166-1 alpha-2 code `value` names (case-insensitive, e.g. "hk" -> "HK").

    Raises InvalidInputError, in English and Chinese with a "did you mean" hint, for anything
    that is not an assigned alpha-2 code; names ("China") and alpha-3 codes are refused so that a
    policy never silently means something else than it says.
    """
    cleaned = value.strip().upper() if isinstance(value, str) else ""
    term = countries().lookup(cleaned) if _ALPHA_2.fullmatch(cleaned) else None
    if term is not None and term.id == cleaned:
        return cleaned
    hints = [t.id for t in countries().suggest(str(value), limit=3)]
    hint_en = f"; did you mean {', '.join(hints)}?" if hints else ""
    hint_zh = f"；是否指 {'、'.join(hints)}？" if hints else ""
    raise InvalidInputError(
        f"{field_name}: {value!r} is not an ISO 3166-1 alpha-2 country code (e.g. CN, HK, US)"
        f"{hint_en}",
        message_zh=f"{field_name}：{value!r} 不是 ISO 3166-1 两字母国家或地区代码"
        f"（例如 CN、HK、US）{hint_zh}",
        details={"field": field_name, "value": str(value), "suggestions": hints},
    )
