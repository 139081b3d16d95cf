"""Compliance reports: provisions abroad, grants by institution and country, expiries."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta
from typing import Any

import pytest

from genecommons.access import committees, workflow
from genecommons.access import service as access
from genecommons.access.duo_models import ResearchPurpose
from genecommons.catalog import service as catalog
from genecommons.compliance import service
from genecommons.compliance.reports import check_period
from genecommons.errors import AccessDeniedError, InvalidInputError
from genecommons.policy.models import Subject

OPERATOR = Subject.operator("auditor")


def test_report_of_a_period(factory: Any, make_bundle: Any, sheets: Any) -> None:
    today = date.today()
    data = sheets()
    data["consents"][0]["abroad_allowed"] = "yes"
    data["institutions"].append(
        {"alias": "OXF", "name_en": "Oxford", "country": "GB", "kind": "university"}
    )
    data["hgr_records"].append(
        {
            "alias": "H2",
            "study": "ST1",
            "category": "provision_abroad",
            "record_type": "filing",
            "number": "2025BA0001",
            "issued_on": "2025-01-01",
        }
    )
    data["ethics_approvals"][0]["valid_until"] = (today + timedelta(days=10)).isoformat()
    result = catalog.submit(factory, make_bundle(data), subject=OPERATOR)
    dataset = result.accessions["datasets"]["DS1"]
    committees.create_dac(factory, alias="BGC DAC", name="BGC", actor=OPERATOR)
    access.add_user(
        factory, email="dac@example.org", roles=["dac_member"], institution=None, actor=OPERATOR
    )
    committees.add_member(
        factory, dac="BGC DAC", email="dac@example.org", chair=True, actor=OPERATOR
    )
    member = Subject.user("dac@example.org", roles=frozenset({"dac_member"}), institution=None)
    for email, inst, country in (("uk@example.org", "OXF", "GB"), ("cn@example.org", "BGC", "CN")):
        access.add_user(
            factory,
            email=email,
            roles=["researcher"],
            institution=result.accessions["institutions"][inst],
            actor=OPERATOR,
        )
        researcher = Subject.user(
            email,
            roles=frozenset({"researcher"}),
            institution=result.accessions["institutions"][inst],
        )
        request_id, _ = workflow.request_access(
            factory,
            actor=researcher,
            agreement_version="v1",
            # provision abroad needs the backup copy that archiving the data here provides
            archived_here=lambda session, dataset_id: True,
            datasets=[dataset],
            purpose=ResearchPurpose(
                title="t",
                summary="s",
                institution=inst,
                country=country,
                biomedical=True,
                ethics_approval=True,
            ),
        )
        item = workflow.get_request(factory, request_id, actor=OPERATOR)["datasets"][0]["id"]
        workflow.decide_request(
            factory,
            item_id=item,
            approve=True,
            reason="ok",
            actor=member,
            expires=today + timedelta(days=20),
        )
    report = service.report(factory, start=today - timedelta(days=1), end=today, actor=OPERATOR)
    abroad = report.sections["provisions_abroad"]
    assert [(r["grantee"], r["country"], r["filing_numbers"]) for r in abroad] == [
        ("uk@example.org", "GB", ["2025BA0001"])
    ]
    by_institution = {r["country"]: r["grants"] for r in report.sections["grants_by_institution"]}
    assert by_institution == {"GB": 1, "CN": 1}
    kinds = sorted(r["kind"] for r in report.sections["expiring"])
    assert kinds == ["ethics_approval", "grant", "grant"]
    rows = list(csv.DictReader(io.StringIO(report.to_csv("provisions_abroad"))))
    assert rows[0]["grantee"] == "uk@example.org"
    assert report.to_json()["period"]["end"] == today.isoformat()
    empty = service.report(
        factory, start=today - timedelta(days=30), end=today - timedelta(days=2), actor=OPERATOR
    )
    assert empty.sections["provisions_abroad"] == []
    assert empty.to_csv("provisions_abroad").startswith("grant,dataset")


def test_report_is_for_auditors_only(factory: Any) -> None:
    researcher = Subject.user("r@example.org", roles=frozenset({"researcher"}), institution=None)
    with pytest.raises(AccessDeniedError):
        service.report(factory, start=date(2026, 1, 1), end=date(2026, 2, 1), actor=researcher)
    auditor = Subject.user("a@example.org", roles=frozenset({"auditor"}), institution=None)
    assert service.report(factory, start=date(2026, 1, 1), end=date(2026, 2, 1), actor=auditor)


def test_bad_periods() -> None:
    with pytest.raises(InvalidInputError):
        check_period(date(2026, 2, 1), date(2026, 1, 1))
    with pytest.raises(InvalidInputError):
        check_period(date(2000, 1, 1), date(2026, 1, 1))
