"""A dataset's privacy report: whether a measurement still describes the dataset (pure), and the
report as stewards read it, through the service and over HTTP, on SQLite and PostgreSQL.
(The attack tool recording a real measurement, and `reassess`, run end to end in
test_commands.py.)"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import insert, select

from genecommons.access import service as access_service
from genecommons.app import create_app
from genecommons.catalog import service as catalog
from genecommons.config import Settings
from genecommons.errors import AccessDeniedError, NotFoundError
from genecommons.ledger.tables import audit_events
from genecommons.policy.models import Subject
from genecommons.privacy import assessments
from genecommons.privacy.report_model import MATERIAL_CHANGE, judge, measurement_of
from genecommons.privacy.tables import privacy_budgets

OPERATOR = Subject.operator("tester")
DEFENCE = {"guard": "defended", "budget": 100.0, "rule": {"low": 10.0}, "reference_windows": True}
FIGURES = {
    "beacon_size": 200,
    "curves": {
        "undefended": [{"name": "SB, one account", "queries": [1, 50], "power": [0.2, 0.9]}],
        "defended": [
            {"name": "SB, one account", "queries": [1, 50], "power": [0.02, 0.06]},
            {"name": "knows the rule", "queries": [1, 50], "power": [0.03, 0.08]},
        ],
    },
    "correctness": {
        "defended": {
            "common_correct": 0.91,
            "common_asked": 900,
            "absent_present": 0,
            "absent_asked": 1000,
        }
    },
}


def test_an_unmeasured_dataset_is_said_to_be_so() -> None:
    found = judge(members_now=100, members_then=None, defence_now=DEFENCE, defence_then=None)
    assert found.freshness == "missing"
    assert "attack-beacon" in found.reasons[0] and "attack-beacon" in found.reasons_zh[0]


@given(
    then=st.integers(1, 100_000),
    change=st.floats(-0.99, 3.0, allow_nan=False),
)
def test_a_measurement_holds_while_the_members_change_by_less_than_the_material_share(
    then: int, change: float
) -> None:
    now = max(0, round(then * (1 + change)))
    found = judge(members_now=now, members_then=then, defence_now=DEFENCE, defence_then=DEFENCE)
    material = abs(now - then) / then >= MATERIAL_CHANGE
    assert found.freshness == ("stale" if material else "current")
    assert bool(found.reasons) == material == bool(found.reasons_zh)


@pytest.mark.parametrize(
    ("changed", "named"),
    [
        ({"guard": "exact"}, "guard"),
        ({"budget": 50.0}, "budget"),
        ({"rule": {"low": 12.0}}, "rule"),
        ({"reference_windows": False}, "reference_windows"),
    ],
)
def test_another_defence_makes_a_measurement_stale(changed: dict[str, Any], named: str) -> None:
    found = judge(
        members_now=200, members_then=200, defence_now={**DEFENCE, **changed}, defence_then=DEFENCE
    )
    assert found.freshness == "stale"
    assert named in found.reasons[0] and named in found.reasons_zh[0]


def test_a_dataset_without_its_store_has_no_measurement_that_holds() -> None:
    found = judge(members_now=None, members_then=200, defence_now=DEFENCE, defence_then=DEFENCE)
    assert found.freshness == "stale"
    assert "no variant store" in found.reasons[0]


def test_the_worst_power_is_that_against_what_the_node_serves() -> None:
    measured = measurement_of(
        measured_at=datetime(2026, 12, 1, tzinfo=UTC),
        measured_by="operator:x",
        members=200,
        parameters={"defence": DEFENCE},
        figures=FIGURES,
    )
    assert measured.served_worst == 0.08  # not the undefended baseline's 0.9
    assert {(p.beacon, p.attacker) for p in measured.powers} == {
        ("undefended", "SB, one account"),
        ("defended", "SB, one account"),
        ("defended", "knows the rule"),
    }


@pytest.fixture
def dataset(factory: Any, make_bundle: Any, sheets: Any) -> str:
    result = catalog.submit(factory, make_bundle(sheets()), subject=OPERATOR)
    return str(result.accessions["datasets"]["DS1"])


def test_the_report_shows_the_latest_measurement_budgets_and_freshness(
    factory: Any, settings: Settings, dataset: str
) -> None:
    for members in (150, 200):  # the later one is the report's
        assessments.record_assessment(
            factory,
            dataset=dataset,
            members=members,
            parameters={"victims": 30, "defence": DEFENCE},
            figures=FIGURES,
            actor=OPERATOR,
        )
    now = datetime.now(UTC)
    with factory.begin() as session:
        for party, spent, warned in [
            ("account:user:a@example.org", 100.0, True),
            ("account:user:b@example.org", 20.0, False),
            ("address:10.0.0.1", 40.0, False),
        ]:
            session.execute(
                insert(privacy_budgets).values(
                    party=party, dataset=dataset, spent=spent, warned=warned, updated_at=now
                )
            )
        session.execute(  # another dataset's spending is not this one's
            insert(privacy_budgets).values(
                party="address:10.0.0.9",
                dataset="GCD99999999",
                spent=5.0,
                warned=False,
                updated_at=now,
            )
        )
    steward = Subject.user(
        "steward@example.org", roles=frozenset({"data_steward"}), institution=None
    )
    report = assessments.privacy_report(factory, settings, subject=steward, dataset=dataset)
    assert report.measurement is not None and report.measurement.members == 200
    assert report.measurement.served_worst == 0.08
    # the catalog's dataset has no variant store: the measurement no longer holds
    assert report.members is None and report.judgement.freshness == "stale"
    uses = {u.kind: u for u in report.budgets}
    assert set(uses) == {"account", "address"}
    assert (uses["account"].parties, uses["account"].spent, uses["account"].most) == (
        2,
        120.0,
        100.0,
    )
    assert (uses["account"].exhausted, uses["account"].warned) == (1, 1)
    assert (uses["address"].parties, uses["address"].spent) == (1, 40.0)
    assert report.releases.variants == 0 and report.releases.closed_at is None
    assert report.releases.detection_spent == 0.0 and report.releases.detection_limit > 0
    assert report.releases.detection_power == pytest.approx(settings.frequency_detection_fpr)
    with factory() as session:  # the measurements and the read are audit events
        tags = set(session.execute(select(audit_events.c.tag)).scalars())
    assert {"privacy:assessment:record", "privacy:report:read"} <= tags


def test_only_stewards_auditors_and_administrators_read_it(
    factory: Any, settings: Settings, dataset: str
) -> None:
    researcher = Subject.user("r@example.org", roles=frozenset({"researcher"}), institution=None)
    with pytest.raises(AccessDeniedError):
        assessments.privacy_report(factory, settings, subject=researcher, dataset=dataset)
    auditor = Subject.user("a@example.org", roles=frozenset({"auditor"}), institution=None)
    with pytest.raises(NotFoundError):
        assessments.privacy_report(factory, settings, subject=auditor, dataset="GCD99999999")
    report = assessments.privacy_report(factory, settings, subject=auditor, dataset=dataset)
    assert report.judgement.freshness == "missing"


def test_a_measurement_of_an_unknown_dataset_is_refused(factory: Any) -> None:
    with pytest.raises(NotFoundError):
        assessments.record_assessment(
            factory,
            dataset="GCD99999999",
            members=10,
            parameters={},
            figures=FIGURES,
            actor=OPERATOR,
        )


def test_the_report_over_http(factory: Any, settings: Settings, dataset: str) -> None:
    assessments.record_assessment(
        factory,
        dataset=dataset,
        members=200,
        parameters={"defence": DEFENCE},
        figures=FIGURES,
        actor=OPERATOR,
    )
    for email, roles in (("s@example.org", ["data_steward"]), ("r@example.org", ["researcher"])):
        access_service.add_user(factory, email=email, roles=roles, institution=None, actor=OPERATOR)
    tokens = {
        email: access_service.create_token(factory, email=email, actor=OPERATOR).token
        for email in ("s@example.org", "r@example.org")
    }
    app = create_app(settings)
    with TestClient(app) as client:
        answered = client.get(
            f"/api/v1/privacy/reports/{dataset}",
            headers={"Authorization": f"Bearer {tokens['s@example.org']}"},
        )
        assert answered.status_code == 200, answered.text
        body = answered.json()
        assert body["dataset"] == dataset
        assert body["measurement"]["served_worst_power"] == 0.08
        assert body["freshness"] == "stale" and body["reasons_zh"]
        refused = client.get(
            f"/api/v1/privacy/reports/{dataset}",
            headers={"Authorization": f"Bearer {tokens['r@example.org']}"},
        )
        assert refused.status_code == 403
        assert client.get(f"/api/v1/privacy/reports/{dataset}").status_code == 403  # anonymous
    app.state.services.engine.dispose()
