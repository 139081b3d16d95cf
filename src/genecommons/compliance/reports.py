"""Compliance reports: provisions abroad, grants by institution and country, what expires soon.

Pure: the service gathers the rows; this module shapes them into the report and its CSV.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from genecommons.catalog.export import spreadsheet_safe
from genecommons.errors import InvalidInputError

EXPIRY_WINDOW_DAYS = 30
SECTIONS = ("provisions_abroad", "grants_by_institution", "expiring")


@dataclass(frozen=True, slots=True)
class GrantFact:
    """One grant, with what the report needs of its dataset and grantee."""

    grant: int
    dataset: str
    study: str
    hgr_information: bool
    grantee: str
    institution: str | None
    institution_name: str | None
    country: str | None
    foreign_party: bool
    granted_on: date
    expires_on: date
    revoked: bool
    filing_numbers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ApprovalFact:
    """An ethics approval or HGR approval/filing with its validity."""

    kind: str  # ethics_approval | hgr_record
    accession: str
    study: str
    number: str
    valid_until: date | None


@dataclass(slots=True)
class ComplianceReport:
    """The report of one period."""

    start: date
    end: date
    today: date
    sections: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        return {
            "period": {"start": self.start.isoformat(), "end": self.end.isoformat()},
            "generated_on": self.today.isoformat(),
            **self.sections,
        }

    def to_csv(self, section: str) -> str:
        """One section as CSV, cells made safe for spreadsheets."""
        rows = self.sections[section]
        buffer = io.StringIO()
        columns = list(rows[0]) if rows else _COLUMNS[section]
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([spreadsheet_safe(row.get(c)) for c in columns])
        return buffer.getvalue()


_COLUMNS = {
    "provisions_abroad": [
        "grant",
        "dataset",
        "study",
        "grantee",
        "institution",
        "institution_name",
        "country",
        "granted_on",
        "expires_on",
        "filing_numbers",
    ],
    "grants_by_institution": [
        "institution",
        "institution_name",
        "country",
        "foreign_party",
        "grants",
    ],
    "expiring": ["kind", "id", "study", "number", "expires_on"],
}


def build_report(
    *,
    start: date,
    end: date,
    today: date,
    grants: Sequence[GrantFact],
    approvals: Sequence[ApprovalFact],
) -> ComplianceReport:
    """The compliance report of [start, end] as of `today`."""
    in_period = [g for g in grants if start <= g.granted_on <= end]
    abroad = [
        {
            "grant": g.grant,
            "dataset": g.dataset,
            "study": g.study,
            "grantee": g.grantee,
            "institution": g.institution,
            "institution_name": g.institution_name,
            "country": g.country,
            "granted_on": g.granted_on.isoformat(),
            "expires_on": g.expires_on.isoformat(),
            "filing_numbers": list(g.filing_numbers),
        }
        for g in in_period
        if g.foreign_party and g.hgr_information
    ]
    counts: Counter[tuple[str | None, str | None, str | None, bool]] = Counter(
        (g.institution, g.institution_name, g.country, g.foreign_party) for g in in_period
    )
    by_institution = [
        {"institution": i, "institution_name": n, "country": c, "foreign_party": f, "grants": count}
        for (i, n, c, f), count in sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))
    ]
    horizon = date.fromordinal(today.toordinal() + EXPIRY_WINDOW_DAYS)
    expiring: list[dict[str, Any]] = [
        {
            "kind": a.kind,
            "id": a.accession,
            "study": a.study,
            "number": a.number,
            "expires_on": a.valid_until.isoformat(),
        }
        for a in approvals
        if a.valid_until is not None and today <= a.valid_until <= horizon
    ]
    expiring += [
        {
            "kind": "grant",
            "id": str(g.grant),
            "study": g.study,
            "number": g.dataset,
            "expires_on": g.expires_on.isoformat(),
        }
        for g in grants
        if not g.revoked and today <= g.expires_on <= horizon
    ]
    expiring.sort(key=lambda row: (row["expires_on"], row["kind"], row["id"]))
    return ComplianceReport(
        start,
        end,
        today,
        {
            "provisions_abroad": abroad,
            "grants_by_institution": by_institution,
            "expiring": expiring,
        },
    )


def check_period(start: date, end: date) -> None:
    """Refuse a period that ends before it starts or spans more than ten years."""
    if end < start or (end - start).days > 3660:
        raise InvalidInputError(
            "The period must start before it ends and span at most ten years.",
            message_zh="报告期须开始于结束之前，且不超过十年。",
        )
