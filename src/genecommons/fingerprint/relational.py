"""Recipient fingerprints in phenotype and individual tables, and reading them back.

After Agrawal and Kiernan 2002 ("Watermarking relational databases", VLDB) and Li, Swarup and
Jajodia 2005 ("Fingerprinting relational databases: schemes and specialties", IEEE TDSC): a
keyed hash of the node's secret, the dataset and a row's primary key (its alias or accession) selects
about one row in `1 / fraction` and, in it, one of the marked numeric columns (by name, so a
reordering of rows or columns changes nothing). The selected cell's least significant digit (in
the precision it is written with) gets the parity `mask XOR f[l]`, where `f` is the recipient's
keyed `bits`-bit fingerprint and `mask` and `l` come from the same hash; so a value moves by at
most one unit of its last digit, and only when its parity was wrong (half the selected cells).

Tracing recomputes, for every selected cell present in a leaked table, `parity XOR mask`: a
vote for bit `l` of the fingerprint. The majority of each bit's votes is the recovered
fingerprint; a recipient's score is the number of voted bits it agrees with, and its p-value is
the binomial tail of that score under "the leak is independent of this recipient's bits"
(each bit agrees with probability 1/2), times the number of recipients (Bonferroni).

No web framework, no database: rows are mappings of column names to cell values.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from genecommons.fingerprint.trace import DEFAULT_ALPHA, Score, Verdict

MARKED_COLUMNS = ("age", "birth_year", "onset_age", "value")  # numeric, where ±1 ulp is noise


@dataclass(frozen=True, slots=True)
class TableScheme:
    """The relational scheme's parameters: the share of rows marked and the fingerprint's
    length in bits."""

    fraction: float = 0.25
    bits: int = 128

    def as_json(self) -> dict[str, object]:
        """JSON-ready form (stored with each delivery)."""
        return {"name": "relational-parity-1", "fraction": self.fraction, "bits": self.bits}


@dataclass(frozen=True, slots=True)
class TableUtility:
    """What marking cost: cells eligible, selected and changed, the largest change."""

    eligible: int
    selected: int
    changed: int
    largest_change: float

    def as_json(self) -> dict[str, float | int]:
        """JSON-ready form."""
        return {
            "cells_eligible": self.eligible,
            "cells_selected": self.selected,
            "cells_changed": self.changed,
            "changed_share": self.changed / self.eligible if self.eligible else 0.0,
            "largest_change": self.largest_change,
        }


def _digest(secret: bytes, *parts: str) -> int:
    message = "\x1f".join(parts).encode("utf-8")
    return int.from_bytes(hmac.new(secret, message, hashlib.sha256).digest()[:16], "big")


def recipient_fingerprint(secret: bytes, *, dataset: str, recipient: str, bits: int) -> list[int]:
    """The recipient's keyed fingerprint, `bits` bits."""
    value = _digest(secret, "table-fingerprint", dataset, recipient.strip().lower())
    stream = hashlib.shake_256(value.to_bytes(16, "big")).digest(-(-bits // 8))
    return [(stream[i // 8] >> (i % 8)) & 1 for i in range(bits)]


@dataclass(frozen=True, slots=True)
class _Selection:
    column: str
    mask: int
    position: int
    up: bool  # which way a value of the wrong parity moves (keyed: no bias)


def _select(
    secret: bytes, dataset: str, key: str, columns: Sequence[str], scheme: TableScheme
) -> _Selection | None:
    """Whether the row keyed `key` is marked, and where (`columns`: the table's marked columns,
    taken in sorted order so that the file's column order does not matter)."""
    if not columns:
        return None
    value = _digest(secret, "table-cell", dataset, key)
    if (value & 0xFFFFFFFF) / 2**32 >= scheme.fraction:
        return None
    value >>= 32
    ordered = sorted(columns)
    column = ordered[value % len(ordered)]
    value //= len(ordered)
    return _Selection(
        column=column,
        mask=(value >> 1) & 1,
        position=(value >> 2) % scheme.bits,
        up=bool(value & 1),
    )


def _number(cell: Any) -> Decimal | None:
    """A cell as a finite decimal written with its precision (None: not a number)."""
    if cell is None or isinstance(cell, bool):
        return None
    text = str(cell).strip()
    if not text:
        return None
    try:
        number = Decimal(text)
    except InvalidOperation:
        return None
    if not number.is_finite() or "e" in text.lower():
        return None
    return number


def _marked_cell(
    row: Mapping[str, Any],
    *,
    key: str,
    secret: bytes,
    dataset: str,
    columns: Sequence[str],
    scheme: TableScheme,
) -> tuple[_Selection, Decimal] | None:
    """The row's selected cell and its number, or None when the row carries no mark."""
    if not row.get(key):
        return None
    where = _select(secret, dataset, str(row[key]), columns, scheme)
    if where is None or where.column not in row:
        return None
    number = _number(row[where.column])
    return None if number is None else (where, number)


def _units(number: Decimal) -> tuple[int, int]:
    """(the number in units of its last digit, the count of decimals)."""
    exponent = number.as_tuple().exponent
    assert isinstance(exponent, int)
    decimals = max(0, -exponent)
    return int(number.scaleb(decimals)), decimals


def _write(units: int, decimals: int, like: Any) -> Any:
    if decimals == 0:
        return units if isinstance(like, int) else str(units)
    text = str(Decimal(units).scaleb(-decimals))
    return float(text) if isinstance(like, float) else text


def mark_rows(
    rows: Sequence[Mapping[str, Any]],
    *,
    key: str,
    secret: bytes,
    dataset: str,
    recipient: str,
    scheme: TableScheme | None = None,
    columns: Sequence[str] = MARKED_COLUMNS,
) -> tuple[list[dict[str, Any]], TableUtility]:
    """The recipient's copy of a table and its cost. Rows without `key` are left as they are;
    a selected cell that is not a number is skipped. `columns` are the table's marked columns
    (those of its schema, whether or not a row fills them): tracing needs the same."""
    scheme = scheme or TableScheme()
    fingerprint = recipient_fingerprint(
        secret, dataset=dataset, recipient=recipient, bits=scheme.bits
    )
    out: list[dict[str, Any]] = []
    eligible = selected = changed = 0
    largest = 0.0
    for row in rows:
        copy = dict(row)
        out.append(copy)
        eligible += sum(_number(row.get(c)) is not None for c in columns)
        marked = _marked_cell(
            row, key=key, secret=secret, dataset=dataset, columns=columns, scheme=scheme
        )
        if marked is None:
            continue
        where, number = marked
        selected += 1
        units, decimals = _units(number)
        want = where.mask ^ fingerprint[where.position]
        if units % 2 != want:
            # up or down by the key; a value of 0 only up, so that nothing turns negative
            units += 1 if where.up or units == 0 else -1
            changed += 1
            largest = max(largest, 10.0**-decimals)
            copy[where.column] = _write(units, decimals, row[where.column])
    return out, TableUtility(eligible, selected, changed, largest)


@dataclass(frozen=True, slots=True)
class Votes:
    """Votes for each fingerprint bit from a leaked table: ones[l], zeros[l]."""

    ones: tuple[int, ...]
    zeros: tuple[int, ...]
    cells: int  # selected cells found in the leak


def read_votes(
    rows: Sequence[Mapping[str, Any]],
    *,
    key: str,
    secret: bytes,
    dataset: str,
    scheme: TableScheme | None = None,
    columns: Sequence[str] = MARKED_COLUMNS,
) -> Votes:
    """What a leaked table's selected cells say of the fingerprint's bits."""
    scheme = scheme or TableScheme()
    ones, zeros = [0] * scheme.bits, [0] * scheme.bits
    cells = 0
    for row in rows:
        marked = _marked_cell(
            row, key=key, secret=secret, dataset=dataset, columns=columns, scheme=scheme
        )
        if marked is None:
            continue
        where, number = marked
        cells += 1
        if (_units(number)[0] % 2) ^ where.mask:
            ones[where.position] += 1
        else:
            zeros[where.position] += 1
    return Votes(tuple(ones), tuple(zeros), cells)


def _binomial_tail(n: int, k: int) -> float:
    """P(X >= k) for X ~ Binomial(n, 1/2)."""
    return sum(math.comb(n, i) for i in range(k, n + 1)) / 2.0**n


def accuse(
    votes: Votes,
    *,
    secret: bytes,
    dataset: str,
    recipients: Sequence[str],
    scheme: TableScheme | None = None,
    alpha: float = DEFAULT_ALPHA,
) -> Verdict:
    """Every recipient scored against the majority of the votes, best first."""
    scheme = scheme or TableScheme()
    recovered = [
        (1 if one > zero else 0) if one != zero else None
        for one, zero in zip(votes.ones, votes.zeros, strict=True)
    ]
    voted = sum(bit is not None for bit in recovered)
    scores = []
    for recipient in recipients:
        bits = recipient_fingerprint(secret, dataset=dataset, recipient=recipient, bits=scheme.bits)
        agree = sum(
            1
            for mine, seen in zip(bits, recovered, strict=True)
            if seen is not None and mine == seen
        )
        p_value = min(1.0, _binomial_tail(voted, agree) * max(1, len(recipients)))
        z = (agree - voted / 2) / math.sqrt(voted / 4) if voted else 0.0
        scores.append(Score(recipient, float(agree), z, p_value, voted > 0 and p_value <= alpha))
    scores.sort(key=lambda s: (s.p_value, -s.score, s.recipient))
    return Verdict(tuple(scores), positions=voted, variance=voted / 4, alpha=alpha)
