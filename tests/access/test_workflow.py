"""The data access workflow: request, automatic consent match, DAC decision, grant, revocation,
notifications through the outbox (and its SMTP delivery against a real SMTP server)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from genecommons.access import committees, notify, service, workflow
from genecommons.access.duo_models import ResearchPurpose
from genecommons.archive.holdings import archived_here
from genecommons.catalog import service as catalog
from genecommons.errors import AccessDeniedError, ConflictError, NotFoundError
from genecommons.policy.models import Subject

OPERATOR = Subject.operator("tester")


INSTITUTION: dict[str, str] = {}


def ARCHIVED(session: Any, dataset_id: int) -> bool:  # noqa: N802 (a constant answer)
    """As if this node's archive held every dataset's backup copy (provision abroad needs it)."""
    return True


def user(email: str, *roles: str) -> Subject:
    return Subject.user(email, roles=frozenset(roles), institution=INSTITUTION.get("BGC"))


@pytest.fixture
def world(factory: Any, make_bundle: Any) -> dict[str, Any]:
    result = catalog.submit(factory, make_bundle(), subject=OPERATOR)
    institution = result.accessions["institutions"]["BGC"]
    INSTITUTION["BGC"] = institution
    for email, roles in (
        ("res@example.org", ["researcher"]),
        ("dac@example.org", ["dac_member"]),
        ("other@example.org", ["researcher"]),
    ):
        service.add_user(factory, email=email, roles=roles, institution=institution, actor=OPERATOR)
    committees.create_dac(factory, alias="BGC DAC", name="BGC access committee", actor=OPERATOR)
    committees.add_member(
        factory, dac="BGC DAC", email="dac@example.org", chair=True, actor=OPERATOR
    )
    return {"dataset": result.accessions["datasets"]["DS1"]}


def purpose(**changes: Any) -> ResearchPurpose:
    base: dict[str, Any] = {
        "title": "Hearing loss genetics",
        "summary": "Find variants.",
        "institution": "BGC",
        "country": "CN",
        "biomedical": True,
        "genetic_research": True,
        "ethics_approval": True,
    }
    base.update(changes)
    return ResearchPurpose(**base)


def test_request_review_grant_and_revoke(factory: Any, world: dict[str, Any]) -> None:
    researcher = user("res@example.org", "researcher")
    request_id, outcomes = workflow.request_access(
        factory,
        actor=researcher,
        purpose=purpose(),
        datasets=[world["dataset"]],
        agreement_version="DAA v1",
        archived_here=archived_here,
    )
    assert outcomes[0].status == "pending"
    member = user("dac@example.org", "dac_member")
    queue = workflow.review_queue(factory, actor=member)
    assert [q["dataset"] for q in queue] == [world["dataset"]]
    grant_id = workflow.decide_request(
        factory,
        item_id=queue[0]["item"],
        approve=True,
        reason="Fits the consent.",
        actor=member,
        expires=date.today() + timedelta(days=30),
    )
    assert grant_id is not None
    grants = workflow.active_grants(factory, email="res@example.org")
    assert [g["dataset"] for g in grants] == [world["dataset"]]
    messages = notify.pending(factory)
    assert messages[0].recipient == "res@example.org" and "approved" in messages[0].subject
    with pytest.raises(ConflictError):  # decided once only
        workflow.decide_request(
            factory, item_id=queue[0]["item"], approve=False, reason="again", actor=member
        )
    workflow.revoke_grant(factory, grant_id=grant_id, reason="Breach of terms.", actor=member)
    assert workflow.active_grants(factory, email="res@example.org") == []
    shown = workflow.get_request(factory, request_id, actor=researcher)
    assert shown["datasets"][0]["status"] == "approved"


def test_incompatible_purpose_is_refused_at_once(factory: Any, world: dict[str, Any]) -> None:
    # DS1 carries HMB + NPU: a for-profit institution violates NPU
    _, outcomes = workflow.request_access(
        factory,
        actor=user("res@example.org", "researcher"),
        purpose=purpose(for_profit_institution=True),
        datasets=[world["dataset"]],
        agreement_version="DAA v1",
        archived_here=archived_here,
    )
    assert outcomes[0].verdict == "incompatible" and outcomes[0].status == "rejected"
    assert any("NPU" in v for v in outcomes[0].violated)
    assert workflow.review_queue(factory, actor=user("dac@example.org", "dac_member")) == []


def test_other_people_cannot_see_or_decide(factory: Any, world: dict[str, Any]) -> None:
    request_id, _ = workflow.request_access(
        factory,
        actor=user("res@example.org", "researcher"),
        purpose=purpose(),
        datasets=[world["dataset"]],
        agreement_version="DAA v1",
        archived_here=archived_here,
    )
    with pytest.raises(NotFoundError):  # not "forbidden": existence is not confirmed
        workflow.get_request(factory, request_id, actor=user("other@example.org", "researcher"))
    item = workflow.get_request(factory, request_id, actor=OPERATOR)["datasets"][0]["id"]
    with pytest.raises(NotFoundError):  # someone else's item, as a missing one
        workflow.decide_request(
            factory,
            item_id=item,
            approve=True,
            reason="me",
            actor=user("other@example.org", "researcher"),
        )
    with pytest.raises(AccessDeniedError):  # the requester sees the item, may not decide it
        workflow.decide_request(
            factory,
            item_id=item,
            approve=True,
            reason="me",
            actor=user("res@example.org", "researcher"),
        )
    with pytest.raises(NotFoundError):  # a dac_member role is not enough: membership is
        workflow.decide_request(
            factory,
            item_id=item,
            approve=True,
            reason="me",
            actor=user("stranger@example.org", "dac_member"),
        )
    with pytest.raises(AccessDeniedError):
        workflow.request_access(
            factory,
            actor=user("dac@example.org", "dac_member"),
            purpose=purpose(),
            datasets=[world["dataset"]],
            agreement_version="DAA v1",
            archived_here=archived_here,
        )


def test_outbox_delivered_over_smtp(factory: Any, world: dict[str, Any]) -> None:
    aiosmtpd = pytest.importorskip("aiosmtpd.controller")
    from aiosmtpd.handlers import Sink

    class Recorder(Sink):
        def __init__(self) -> None:
            self.seen: list[str] = []

        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
            self.seen.extend(envelope.rcpt_tos)
            return "250 OK"

    import socket

    with socket.socket() as probe:  # a free port on loopback
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    handler = Recorder()
    controller = aiosmtpd.Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        with factory() as session, session.begin():
            notify.enqueue(session, recipient="res@example.org", subject="hello 你好", body="x")
        transport = notify.SmtpTransport(
            host="127.0.0.1", port=port, sender="noreply@genecommons.example", starttls=False
        )
        assert notify.deliver_pending(factory, transport) == 1
        assert handler.seen == ["res@example.org"]
        assert notify.pending(factory) == []
    finally:
        controller.stop()


def test_workflow_over_http(settings: Any, make_bundle: Any) -> None:
    from fastapi.testclient import TestClient

    from genecommons.app import create_app
    from genecommons.db import Base, node_engine

    engine = node_engine(settings)
    Base.metadata.create_all(engine)
    engine.dispose()
    app = create_app(settings)
    with TestClient(app) as client:
        factory = app.state.services.factory
        result = catalog.submit(factory, make_bundle(), subject=OPERATOR)
        dataset = result.accessions["datasets"]["DS1"]
        tokens = {}
        for email, role in (
            ("res@example.org", "researcher"),
            ("dac@example.org", "dac_member"),
            ("eve@example.org", "researcher"),
        ):
            service.add_user(
                factory,
                email=email,
                roles=[role],
                institution=result.accessions["institutions"]["BGC"],
                actor=OPERATOR,
            )
            issued = service.create_token(factory, email=email, actor=OPERATOR)
            tokens[email] = {"Authorization": f"Bearer {issued.token}"}
        committees.create_dac(factory, alias="BGC DAC", name="BGC", actor=OPERATOR)
        committees.add_member(
            factory, dac="BGC DAC", email="dac@example.org", chair=False, actor=OPERATOR
        )
        body = {
            "purpose": {
                "title": "t",
                "summary": "s",
                "institution": "BGC",
                "country": "CN",
                "biomedical": True,
                "ethics_approval": True,
            },
            "datasets": [dataset],
            "agreement_version": "DAA v1",
        }
        assert client.post("/api/v1/requests", json=body).status_code == 403  # anonymous
        created = client.post("/api/v1/requests", json=body, headers=tokens["res@example.org"])
        assert created.status_code == 201, created.text
        request_id = created.json()["id"]
        assert (
            client.get(
                f"/api/v1/requests/{request_id}", headers=tokens["eve@example.org"]
            ).status_code
            == 404
        )
        queue = client.get("/api/v1/dac/queue", headers=tokens["dac@example.org"]).json()
        decision = {"item": queue[0]["item"], "approve": True, "reason": "ok"}
        assert (  # not her request, not her DAC: the item does not exist for her
            client.post(
                "/api/v1/dac/decisions", json=decision, headers=tokens["eve@example.org"]
            ).status_code
            == 404
        )
        decided = client.post(
            "/api/v1/dac/decisions", json=decision, headers=tokens["dac@example.org"]
        )
        assert decided.status_code == 200 and decided.json()["grant"]
        grants = client.get("/api/v1/grants", headers=tokens["res@example.org"]).json()
        assert [g["dataset"] for g in grants] == [dataset]
    app.state.services.engine.dispose()


def test_jurisdiction_refuses_a_foreign_party(factory: Any, make_bundle: Any, sheets: Any) -> None:
    data = sheets()
    data["institutions"].append(
        {"alias": "OXF", "name_en": "Oxford", "country": "GB", "kind": "university"}
    )
    result = catalog.submit(factory, make_bundle(data), subject=OPERATOR)
    dataset = result.accessions["datasets"]["DS1"]
    committees.create_dac(factory, alias="BGC DAC", name="BGC", actor=OPERATOR)
    oxford = result.accessions["institutions"]["OXF"]
    foreigner = Subject.user("uk@example.org", roles=frozenset({"researcher"}), institution=oxford)
    service.add_user(
        factory, email="uk@example.org", roles=["researcher"], institution=oxford, actor=OPERATOR
    )
    _, outcomes = workflow.request_access(
        factory,
        actor=foreigner,
        purpose=purpose(),
        datasets=[dataset],
        agreement_version="DAA v1",
        archived_here=archived_here,
    )
    # the consent forbids provision abroad and no provision-abroad filing is recorded
    assert outcomes[0].status == "rejected"
    assert "consent-no-abroad" in outcomes[0].jurisdiction_rules
    chinese = Subject.user(
        "cn@example.org",
        roles=frozenset({"researcher"}),
        institution=result.accessions["institutions"]["BGC"],
    )
    service.add_user(
        factory,
        email="cn@example.org",
        roles=["researcher"],
        institution=result.accessions["institutions"]["BGC"],
        actor=OPERATOR,
    )
    _, outcomes = workflow.request_access(
        factory,
        actor=chinese,
        purpose=purpose(),
        datasets=[dataset],
        agreement_version="DAA v1",
        archived_here=ARCHIVED,
    )
    assert outcomes[0].status == "pending"
    assert "hgr-chinese-party" in outcomes[0].jurisdiction_rules


def test_security_review_and_filing_records_in_force_open_provision_abroad(
    factory: Any, make_bundle: Any, sheets: Any
) -> None:
    data = sheets()
    data["studies"][0].update(important_pedigree="yes", collection_licence="2024CJ0001")
    data["consents"][0]["abroad_allowed"] = "yes"
    data["institutions"].append(
        {"alias": "OXF", "name_en": "Oxford", "country": "GB", "kind": "university"}
    )
    filing = {
        "alias": "H2",
        "study": "ST1",
        "category": "provision_abroad",
        "record_type": "filing",
        "number": "2025BA0001",
        "issued_on": "2025-01-01",
        "valid_until": "2025-06-30",  # lapsed: not in force
    }
    data["hgr_records"].append(filing)
    result = catalog.submit(factory, make_bundle(data), subject=OPERATOR)
    dataset = result.accessions["datasets"]["DS1"]
    committees.create_dac(factory, alias="BGC DAC", name="BGC", actor=OPERATOR)
    oxford = result.accessions["institutions"]["OXF"]
    foreigner = Subject.user("uk@example.org", roles=frozenset({"researcher"}), institution=oxford)
    service.add_user(
        factory, email="uk@example.org", roles=["researcher"], institution=oxford, actor=OPERATOR
    )

    def ask() -> Any:
        _, outcomes = workflow.request_access(
            factory,
            actor=foreigner,
            purpose=purpose(institution="OXF", country="GB"),
            datasets=[dataset],
            agreement_version="DAA v1",
            archived_here=ARCHIVED,
        )
        return outcomes[0]

    lapsed = ask()
    assert lapsed.status == "rejected" and "hgr-filing-required" in lapsed.jurisdiction_rules
    filing["valid_until"] = ""
    catalog.submit(factory, make_bundle(data), subject=OPERATOR)
    unreviewed = ask()  # an important family: the filing alone is not enough
    assert unreviewed.status == "rejected"
    assert "hgr-security-review" in unreviewed.jurisdiction_rules
    data["hgr_records"].append(
        {
            "alias": "H3",
            "study": "ST1",
            "category": "security_review",
            "record_type": "approval",
            "number": "SR-2025-007",
            "issued_on": "2025-03-01",
        }
    )
    catalog.submit(factory, make_bundle(data), subject=OPERATOR)
    reviewed = ask()
    assert reviewed.status == "pending", reviewed


def test_the_http_purpose_states_every_field_of_the_purpose() -> None:
    """The request body (with its length limits) and the matching's purpose stay in step."""
    import dataclasses

    from genecommons.access.routes import PurposeBody

    fields = {f.name for f in dataclasses.fields(ResearchPurpose)} - {"project_type"}
    assert set(PurposeBody.model_fields) == fields


def _granted(factory: Any, dataset: str) -> int:
    """A grant to res@example.org for `dataset`, approved by its DAC."""
    workflow.request_access(
        factory,
        actor=user("res@example.org", "researcher"),
        purpose=purpose(),
        datasets=[dataset],
        agreement_version="DAA v1",
        archived_here=archived_here,
    )
    member = user("dac@example.org", "dac_member")
    queue = workflow.review_queue(factory, actor=member)
    grant_id = workflow.decide_request(
        factory, item_id=queue[0]["item"], approve=True, reason="Fits.", actor=member
    )
    assert grant_id is not None
    return grant_id


@pytest.mark.parametrize("reason", ["", "   ", "\t\n", "x" * (workflow.MAX_REASON_LENGTH + 1)])
def test_a_revocation_needs_a_reason(
    factory: Any,
    world: dict[str, Any],
    reason: str,
    database_url: str,
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from typer.testing import CliRunner

    from genecommons import runtime
    from genecommons.cli import app
    from genecommons.errors import InvalidInputError

    grant_id = _granted(factory, world["dataset"])
    with pytest.raises(InvalidInputError) as refused:
        workflow.revoke_grant(
            factory, grant_id=grant_id, reason=reason, actor=user("dac@example.org", "dac_member")
        )
    assert refused.value.message_zh and refused.value.details == {"place": "reason"}
    # the operator's CLI says so too, and exits non-zero
    monkeypatch.setenv("GENECOMMONS_DATABASE_URL", database_url)
    monkeypatch.setenv("GENECOMMONS_DATA_DIR", str(tmp_path / "data"))
    runtime.reset()
    try:
        done = CliRunner().invoke(app, ["grants", "revoke", str(grant_id), "--reason", reason])
    finally:
        runtime.reset()
    assert isinstance(done.exception, InvalidInputError)  # main() prints it, exits with its code
    assert [g["id"] for g in workflow.active_grants(factory, email="res@example.org")] == [grant_id]


def test_a_revocation_keeps_its_reason_in_the_audit_log(
    factory: Any, world: dict[str, Any]
) -> None:
    from sqlalchemy import select

    from genecommons.ledger.tables import audit_events

    grant_id = _granted(factory, world["dataset"])
    workflow.revoke_grant(
        factory,
        grant_id=grant_id,
        reason="  Data shared outside the project.  ",
        actor=user("dac@example.org", "dac_member"),
    )
    with factory() as session:
        (details,) = session.execute(
            select(audit_events.c.details).where(audit_events.c.tag == "access:grant:revoke")
        ).scalars()
    assert details == {"grant": grant_id, "reason": "Data shared outside the project."}
