"""Self-registration of researchers: e-mail verification through the outbox, activation once
the institution is verified, no account enumeration, throttling."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from genecommons.access import (
    affiliation,
    institution_service,
    listings,
    notify,
    registration,
    service,
)
from genecommons.access.tables import users
from genecommons.app import create_app
from genecommons.catalog import service as catalog
from genecommons.config import Settings
from genecommons.db import Base, node_engine
from genecommons.errors import AccessDeniedError, InvalidInputError
from genecommons.ledger.tables import audit_events
from genecommons.policy.models import Subject

OPERATOR = Subject.operator("tester")
PASSWORD = "a long enough passphrase"


@pytest.fixture
def world(settings: Settings, make_bundle: Any) -> Iterator[dict[str, Any]]:
    engine = node_engine(settings)
    Base.metadata.create_all(engine)
    engine.dispose()
    app = create_app(settings)
    with TestClient(app) as client:
        factory = app.state.services.factory
        result = catalog.submit(factory, make_bundle(), subject=OPERATOR)
        yield {
            "client": client,
            "factory": factory,
            "institution": result.accessions["institutions"]["BGC"],
        }
    app.state.services.engine.dispose()


def code_for(factory: Any, email: str) -> str:
    """The code of the newest verification e-mail to `email`, read from the outbox."""
    mails = [m for m in notify.pending(factory) if m.recipient == email and "Verify" in m.subject]
    found = re.search(r"^    (\S+)$", mails[-1].body, re.MULTILINE)
    assert found, mails[-1].body
    return found.group(1)


def register(client: TestClient, at: str, **changes: Any) -> Any:
    body = {
        "email": "Zhang@Example.org",
        "name": "Zhang San 张三",
        "password": PASSWORD,
        "institution": at,
        **changes,
    }
    return client.post("/api/v1/auth/register", json=body)


def sign_in(client: TestClient, email: str = "zhang@example.org") -> Any:
    return client.post("/api/v1/auth/token", data={"username": email, "password": PASSWORD})


def test_register_verify_and_wait_for_the_institution(world: dict[str, Any]) -> None:
    client, factory, institution = world["client"], world["factory"], world["institution"]
    answer = register(client, institution, roles=["admin"])  # extra fields grant nothing
    assert answer.status_code == 202, answer.text
    assert answer.json()["status"] == "verification_sent"
    assert answer.json()["email"] == "zhang@example.org"
    waiting = sign_in(client)
    assert waiting.status_code == 403 and "Verify your e-mail" in waiting.json()["message"]
    code = code_for(factory, "zhang@example.org")
    wrong = client.post(
        "/api/v1/auth/register/verify",
        json={"email": "zhang@example.org", "code": "nope", "password": PASSWORD},
    )
    assert wrong.status_code == 422 and wrong.json()["message_zh"]
    verified = client.post(
        "/api/v1/auth/register/verify",
        json={"email": "ZHANG@example.org", "code": code, "password": PASSWORD},
    )
    # the institution declared no e-mail domain: its data steward confirms the claim
    assert verified.json() == {"email": "zhang@example.org", "status": "awaiting_affiliation"}
    pending = sign_in(client)
    assert pending.status_code == 403 and "confirmed" in pending.json()["message"]
    assert "机构" in pending.json()["message_zh"]
    service.add_user(
        factory,
        email="steward@example.org",
        roles=["data_steward"],
        institution=institution,
        actor=OPERATOR,
    )
    steward = {
        "Authorization": "Bearer "
        + service.create_token(factory, email="steward@example.org", actor=OPERATOR).token
    }
    (claim,) = client.get("/api/v1/affiliations", headers=steward).json()
    assert claim["email"] == "zhang@example.org" and claim["institution"] == institution
    assert claim["email_verified"] is True
    confirmed = client.post(f"/api/v1/affiliations/{claim['id']}/confirm", headers=steward)
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json() == {
        "email": "zhang@example.org",
        "institution": institution,
        "active": False,  # the institution itself is not verified yet
    }
    again = client.post(
        "/api/v1/auth/register/verify",
        json={"email": "zhang@example.org", "code": code, "password": PASSWORD},
    )
    assert again.json()["status"] == "awaiting_institution"
    pending = sign_in(client)
    assert pending.status_code == 403 and "institution" in pending.json()["message"]
    institution_service.verify_institution(
        factory,
        institution=institution,
        foreign_controlled=False,
        attestation="ownership letter, 2026-01-05",
        actor=OPERATOR,
    )
    signed_in = sign_in(client)
    assert signed_in.status_code == 200, signed_in.text
    token = signed_in.json()["access_token"]
    subject = service.authenticate(factory, token)
    assert subject.roles == {"researcher"}
    assert subject.institution == institution and subject.institution_verified
    with factory() as session:
        events = session.execute(
            select(audit_events.c.tag, audit_events.c.subject).order_by(audit_events.c.leaf_index)
        ).all()
    mine = [tag for tag, subject in events if subject == "user:zhang@example.org"]
    assert mine[:1] == ["access:user:register"]
    assert "access:email:verify" in mine and "access:user:update" in mine
    assert "access:affiliation:confirm" in mine
    # the code cannot be used again
    again = client.post(
        "/api/v1/auth/register/verify",
        json={"email": "zhang@example.org", "code": code, "password": PASSWORD},
    )
    assert again.status_code == 422


def test_an_address_at_a_declared_domain_of_a_verified_institution_activates_at_once(
    world: dict[str, Any],
) -> None:
    client, factory, institution = world["client"], world["factory"], world["institution"]
    institution_service.verify_institution(
        factory, institution=institution, foreign_controlled=False, attestation="a", actor=OPERATOR
    )
    affiliation.set_email_domains(
        factory, institution=institution, domains=["Example.ORG"], actor=OPERATOR
    )
    register(client, institution)
    code = code_for(factory, "zhang@example.org")
    verified = client.post(
        "/api/v1/auth/register/verify",
        json={"email": "zhang@example.org", "code": code, "password": PASSWORD},
    )
    assert verified.json()["status"] == "active"
    assert sign_in(client).status_code == 200


def test_an_existing_address_is_not_revealed(world: dict[str, Any]) -> None:
    client, factory, institution = world["client"], world["factory"], world["institution"]
    service.add_user(
        factory, email="zhang@example.org", roles=["admin"], institution=None, actor=OPERATOR
    )
    answer = register(client, institution)
    assert answer.status_code == 202 and answer.json()["status"] == "verification_sent"
    mails = [m for m in notify.pending(factory) if m.recipient == "zhang@example.org"]
    assert [m.subject for m in mails] == ["Registration attempt / 注册尝试"]
    listed = listings.list_users(factory, actor=OPERATOR).items
    assert [u["roles"] for u in listed if u["email"] == "zhang@example.org"] == [["admin"]]


def test_registering_again_sends_a_fresh_code(world: dict[str, Any]) -> None:
    client, factory, institution = world["client"], world["factory"], world["institution"]
    register(client, institution)
    first = code_for(factory, "zhang@example.org")
    register(client, institution, name="Zhang San")
    second = code_for(factory, "zhang@example.org")
    assert first != second
    old = client.post(
        "/api/v1/auth/register/verify",
        json={"email": "zhang@example.org", "code": first, "password": PASSWORD},
    )
    assert old.status_code == 422
    new = client.post(
        "/api/v1/auth/register/verify",
        json={"email": "zhang@example.org", "code": second, "password": PASSWORD},
    )
    assert new.status_code == 200
    with factory() as session:
        count = session.execute(select(func.count()).select_from(users)).scalar_one()
    assert count == 1


def test_a_stranger_cannot_set_the_password_of_a_pending_address(world: dict[str, Any]) -> None:
    client, factory, institution = world["client"], world["factory"], world["institution"]
    register(client, institution)  # the owner
    register(client, institution, password="the stranger's password")  # someone else
    newest = code_for(factory, "zhang@example.org")  # in the owner's mailbox
    confirmed = client.post(
        "/api/v1/auth/register/verify",
        json={"email": "zhang@example.org", "code": newest, "password": PASSWORD},
    )
    assert confirmed.status_code == 422  # the owner notices, and registers again
    register(client, institution)
    again = client.post(
        "/api/v1/auth/register/verify",
        json={
            "email": "zhang@example.org",
            "code": code_for(factory, "zhang@example.org"),
            "password": PASSWORD,
        },
    )
    assert again.status_code == 200
    stranger = client.post(
        "/api/v1/auth/token",
        data={"username": "zhang@example.org", "password": "the stranger's password"},
    )
    assert stranger.status_code == 401


def test_bad_registrations_are_refused_and_leave_nothing(world: dict[str, Any]) -> None:
    client, factory, institution = world["client"], world["factory"], world["institution"]
    cases = [
        ({"email": "not an address"}, "email"),
        ({"password": "short"}, "password"),
        ({"name": "   "}, "name"),
        ({"institution": "GCO99999999"}, "institution"),
    ]
    for changes, place in cases:
        answer = register(client, institution, **changes)
        assert answer.status_code == 422, answer.text
        assert answer.json()["details"]["place"] == place
        assert answer.json()["message_zh"] != answer.json()["message"]
    with factory() as session:
        assert session.execute(select(func.count()).select_from(users)).scalar_one() == 0
    assert notify.pending(factory) == []


def test_registration_and_verification_are_throttled(world: dict[str, Any]) -> None:
    client, institution = world["client"], world["institution"]
    for i in range(registration.THROTTLE.max_failures):
        assert register(client, institution, email=f"r{i}@example.org").status_code == 202
    blocked = register(client, institution, email="late@example.org")
    assert blocked.status_code == 429 and "retry_after" in blocked.json()["details"]
    for _ in range(registration.THROTTLE.max_failures):
        wrong = client.post(
            "/api/v1/auth/register/verify",
            json={"email": "r0@example.org", "code": "guess", "password": PASSWORD},
        )
        assert wrong.status_code == 422
    guessing = client.post(
        "/api/v1/auth/register/verify",
        json={"email": "r0@example.org", "code": "guess", "password": PASSWORD},
    )
    assert guessing.status_code == 429


def test_registration_can_be_closed(settings: Settings, factory: Any) -> None:
    closed = settings.model_copy(update={"registration_open": False})
    with pytest.raises(AccessDeniedError):
        registration.register(
            factory,
            closed,
            email="a@example.org",
            name="A",
            password=PASSWORD,
            institution="GCO00000001",
            address="127.0.0.1",
        )


def test_verifying_an_unknown_address_says_nothing_more(factory: Any) -> None:
    with pytest.raises(InvalidInputError) as caught:
        registration.verify_email(
            factory, email="nobody@example.org", code="x", password=PASSWORD, address="a"
        )
    assert "wrong" in caught.value.message


class _Mailbox:
    """A transport that keeps what it delivers (the local counterpart of SMTP)."""

    def __init__(self) -> None:
        self.delivered: list[notify.Message] = []

    def deliver(self, messages: Any) -> None:
        self.delivered.extend(messages)


def test_a_sent_code_does_not_stay_in_the_outbox(world: dict[str, Any]) -> None:
    client, factory, institution = world["client"], world["factory"], world["institution"]
    register(client, institution)
    code = code_for(factory, "zhang@example.org")
    mailbox = _Mailbox()
    assert notify.deliver_pending(factory, mailbox) == 1
    assert code in mailbox.delivered[0].body
    from genecommons.access.tables import outbox, registrations

    with factory() as session:
        kept = session.execute(select(outbox.c.body)).scalars().all()
        digests = session.execute(select(registrations.c.code_digest)).scalars().all()
    assert not any(code in body for body in kept)
    assert digests and code not in digests  # the code is kept only as its digest
    verified = client.post(
        "/api/v1/auth/register/verify",
        json={"email": "zhang@example.org", "code": code, "password": PASSWORD},
    )
    assert verified.status_code == 200, verified.text
