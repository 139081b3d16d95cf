"""ISO 8601 durations as ages in years, and back: "P6Y3M" is 6.25 years.

Phenopackets write ages as ISO 8601 durations; the sheets give them in years. Pure.
"""

from __future__ import annotations

import math
import re

__all__ = ["age_to_years", "years_to_duration"]

_DURATION = re.compile(
    r"P(?!$)"
    r"(?:(?P<Y>\d+(?:[.,]\d+)?)Y)?"
    r"(?:(?P<M>\d+(?:[.,]\d+)?)M)?"
    r"(?:(?P<W>\d+(?:[.,]\d+)?)W)?"
    r"(?:(?P<D>\d+(?:[.,]\d+)?)D)?"
    r"(?:T(?!$)"
    r"(?:(?P<h>\d+(?:[.,]\d+)?)H)?"
    r"(?:(?P<m>\d+(?:[.,]\d+)?)M)?"
    r"(?:(?P<s>\d+(?:[.,]\d+)?)S)?)?"
)
_YEARS_PER_UNIT = {
    "Y": 1.0,
    "M": 1 / 12,
    "W": 7 / 365.25,
    "D": 1 / 365.25,
    "h": 1 / (365.25 * 24),
    "m": 1 / (365.25 * 24 * 60),
    "s": 1 / (365.25 * 24 * 3600),
}


def age_to_years(duration: str) -> float | None:
    """The ISO 8601 duration `duration` ("P6Y3M", "P2W", "PT36H") in years; None if malformed.

    Months are 1/12 year and days 1/365.25 year.
    """
    match = _DURATION.fullmatch(duration)
    if match is None:
        return None
    years = 0.0
    for unit, per in _YEARS_PER_UNIT.items():
        amount = match.group(unit)
        if amount is not None:
            years += float(amount.replace(",", ".")) * per
    return years if math.isfinite(years) else None


def years_to_duration(years: float) -> str:
    """An ISO 8601 duration for an age in `years`: whole years, months, then days ("P6Y6M")."""
    if not math.isfinite(years) or years < 0:
        raise ValueError(f"an age in years must be finite and not negative: {years!r}")
    total_months = years * 12
    months = math.floor(total_months + 1e-9)
    days = round((total_months - months) * 365.25 / 12)
    if days >= 30:  # rounds up to a whole month
        months, days = months + 1, 0
    whole_years, months = divmod(months, 12)
    parts = [(whole_years, "Y"), (months, "M"), (days, "D")]
    text = "".join(f"{n}{unit}" for n, unit in parts if n)
    return f"P{text or '0D'}"
