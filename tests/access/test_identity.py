"""Accounts, API tokens, sign-in and throttling; the bearer token at the HTTP edge."""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from genecommons.access import (
    identity,
    institution_service,
    listings,
    second_factor,
    service,
    throttle,
)
from genecommons.access.tables import api_tokens
from genecommons.app import create_app
from genecommons.catalog import service as catalog
from genecommons.config import Settings
from genecommons.db import Base, node_engine
from genecommons.errors import (
    AccessDeniedError,
    AuthenticationError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    TooManyAttemptsError,
)
from genecommons.ledger.tables import audit_events
from genecommons.policy.models import Action, Role, Subject

OPERATOR = Subject.operator("tester")


@pytest.fixture
def institution(factory: Any, make_bundle: Any) -> str:
    result = catalog.submit(factory, make_bundle(), subject=OPERATOR)
    accession: str = result.accessions["institutions"]["BGC"]
    return accession


def test_password_hashing_and_tokens() -> None:
    stored = identity.hash_password("correct horse battery")
    assert stored.startswith("$argon2id$")
    assert identity.verify_password(stored, "correct horse battery")
    assert not identity.verify_password(stored, "wrong")
    assert not identity.verify_password("not a hash", "x")
    token = identity.new_token()
    assert identity.TOKEN_RE.match(token) and token != identity.new_token()
    assert len(identity.token_digest(token)) == 64


def test_throttle_policy() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    policy = identity.ThrottlePolicy(max_failures=3, window=timedelta(minutes=10))
    recent = [now - timedelta(minutes=m) for m in (1, 2, 3)]
    assert policy.blocked(recent, now=now) == now - timedelta(minutes=3) + timedelta(minutes=10)
    assert policy.blocked(recent[:2], now=now) is None
    assert policy.blocked([now - timedelta(minutes=30)] * 5, now=now) is None


def test_add_user_token_and_authenticate(factory: Any, institution: str) -> None:
    created = service.add_user(
        factory,
        email="Wang@Example.org",
        roles=["researcher"],
        institution=institution,
        actor=OPERATOR,
        generate_password=True,
    )
    assert created.email == "wang@example.org" and created.password
    with pytest.raises(ConflictError):
        service.add_user(
            factory, email="wang@example.org", roles=[], institution=None, actor=OPERATOR
        )
    issued = service.create_token(factory, email="wang@example.org", actor=OPERATOR, days=7)
    subject = service.authenticate(factory, issued.token)
    assert subject.id == "user:wang@example.org"
    assert subject.roles == {"researcher"} and subject.institution == institution
    service.revoke_token(factory, token_id=issued.id, actor=OPERATOR)
    with pytest.raises(AuthenticationError):
        service.authenticate(factory, issued.token)


def test_expired_and_forged_tokens(factory: Any, institution: str) -> None:
    service.add_user(
        factory,
        email="li@example.org",
        roles=["researcher"],
        institution=institution,
        actor=OPERATOR,
    )
    issued = service.create_token(factory, email="li@example.org", actor=OPERATOR)
    with factory() as session, session.begin():
        session.execute(
            update(api_tokens).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    for token in (issued.token, identity.new_token(), "gct_short", "", "' OR 1=1 --"):
        with pytest.raises(AuthenticationError):
            service.authenticate(factory, token)


def test_bad_input_is_refused(factory: Any, institution: str) -> None:
    with pytest.raises(InvalidInputError):
        service.add_user(
            factory, email="not-an-address", roles=[], institution=None, actor=OPERATOR
        )
    with pytest.raises(InvalidInputError):
        service.add_user(
            factory, email="a@example.org", roles=["wizard"], institution=None, actor=OPERATOR
        )
    with pytest.raises(NotFoundError):
        service.add_user(
            factory, email="a@example.org", roles=[], institution="GCO99999999", actor=OPERATOR
        )
    with pytest.raises(InvalidInputError):
        service.add_user(
            factory,
            email="a@example.org",
            roles=[],
            institution=None,
            actor=OPERATOR,
            password="short",
        )


def test_only_admins_manage_accounts(factory: Any, institution: str) -> None:
    researcher = Subject.user("r@example.org", roles=frozenset({"researcher"}), institution=None)
    with pytest.raises(AccessDeniedError):
        service.add_user(
            factory, email="x@example.org", roles=[], institution=None, actor=researcher
        )
    admin = Subject.user("a@example.org", roles=frozenset({"admin"}), institution=None)
    service.add_user(
        factory, email="x@example.org", roles=["submitter"], institution=institution, actor=admin
    )
    with pytest.raises(AccessDeniedError):  # a user may not mint tokens for someone else
        service.create_token(factory, email="x@example.org", actor=researcher)


def test_init_creates_one_administrator(factory: Any) -> None:
    password = service.ensure_admin(factory)
    assert password and len(password) >= identity.MIN_PASSWORD_LENGTH
    assert service.ensure_admin(factory) is None
    admins = [
        u for u in listings.list_users(factory, actor=OPERATOR).items if "admin" in u["roles"]
    ]
    assert [u["email"] for u in admins] == [service.ADMIN_EMAIL]


def test_sign_in_and_brute_force_throttling(
    factory: Any, settings: Settings, institution: str
) -> None:
    service.add_user(
        factory,
        email="zhao@example.org",
        roles=["researcher"],
        institution=institution,
        actor=OPERATOR,
        password="a long passphrase",
    )
    issued = service.sign_in(
        factory,
        settings,
        email="zhao@example.org",
        password="a long passphrase",
        address="10.0.0.1",
    )
    assert service.authenticate(factory, issued.token).id == "user:zhao@example.org"
    for _ in range(throttle.THROTTLE.max_failures):
        with pytest.raises(AuthenticationError):
            service.sign_in(
                factory, settings, email="zhao@example.org", password="guess", address="10.0.0.2"
            )
    with pytest.raises(TooManyAttemptsError) as raised:
        service.sign_in(
            factory,
            settings,
            email="zhao@example.org",
            password="a long passphrase",
            address="10.0.0.3",
        )
    assert raised.value.details["retry_after"]


@pytest.fixture
def client(settings: Settings) -> Any:
    engine = node_engine(settings)
    Base.metadata.create_all(engine)
    engine.dispose()
    app = create_app(settings)
    with TestClient(app) as test_client:
        yield test_client
    app.state.services.engine.dispose()


def _zip(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in folder.iterdir():
            archive.write(path, path.name)
    return buffer.getvalue()


def test_bearer_tokens_over_http(client: Any, make_bundle: Any) -> None:
    factory = client.app.state.services.factory
    institution = catalog.submit(factory, make_bundle(), subject=OPERATOR).accessions[
        "institutions"
    ]["BGC"]
    service.add_user(
        factory,
        email="steward@example.org",
        roles=[Role.DATA_STEWARD],
        institution=institution,
        actor=OPERATOR,
        password="a long passphrase",
    )
    service.add_user(
        factory,
        email="sub@example.org",
        roles=[Role.SUBMITTER],
        institution=institution,
        actor=OPERATOR,
    )
    signed = client.post(
        "/api/v1/auth/token",
        data={"username": "steward@example.org", "password": "a long passphrase"},
    )
    assert signed.status_code == 200
    steward = {"Authorization": f"Bearer {signed.json()['access_token']}"}
    me = client.get("/api/v1/auth/me", headers=steward).json()
    assert me["roles"] == ["data_steward"] and me["institution"] == institution
    assert client.get("/api/v1/individuals", headers=steward).json()["total"] == 3
    assert client.get("/api/v1/individuals").status_code == 403
    bad = client.get("/api/v1/individuals", headers={"Authorization": "Bearer gct_forged"})
    assert bad.status_code == 401 and bad.json()["message_zh"]
    assert client.get("/api/v1/studies", headers={"Authorization": "Basic abc"}).status_code == 401
    submitter_token = service.create_token(factory, email="sub@example.org", actor=OPERATOR).token
    submitter = {"Authorization": f"Bearer {submitter_token}"}
    response = client.post(
        "/api/v1/submissions",
        headers=submitter,
        params={"dry_run": True},
        files={"file": ("bundle.zip", _zip(make_bundle()), "application/zip")},
    )
    assert response.status_code == 201, response.text
    assert response.json()["report"]["valid"] is True
    assert client.get("/api/v1/individuals", headers=submitter).status_code == 403
    created = client.post("/api/v1/tokens", headers=steward, json={"days": 1}).json()
    other = {"Authorization": f"Bearer {created['token']}"}
    assert client.get("/api/v1/auth/me", headers=other).status_code == 200
    assert client.delete(f"/api/v1/tokens/{created['id']}", headers=steward).status_code == 204
    assert client.get("/api/v1/auth/me", headers=other).status_code == 401
    wrong = client.post(
        "/api/v1/auth/token", data={"username": "steward@example.org", "password": "nope"}
    )
    assert wrong.status_code == 401


@pytest.mark.parametrize(
    ("country", "controlled", "foreign"),
    [("CN", False, False), ("CN", True, True), ("GB", False, True), ("HK", False, True)],
)
def test_institution_verification_decides_foreign_party(
    factory: Any, make_bundle: Any, sheets: Any, country: str, controlled: bool, foreign: bool
) -> None:
    data = sheets()
    data["institutions"][0]["country"] = country
    if country != "CN":
        data["institutions"][0]["province"] = None
    institution = catalog.submit(factory, make_bundle(data), subject=OPERATOR).accessions[
        "institutions"
    ]["BGC"]
    service.add_user(
        factory,
        email="u@example.org",
        roles=["researcher"],
        institution=institution,
        actor=OPERATOR,
    )
    token = service.create_token(factory, email="u@example.org", actor=OPERATOR).token
    before = service.authenticate(factory, token)
    assert not before.institution_verified and not before.foreign_party
    with pytest.raises(InvalidInputError):
        institution_service.verify_institution(
            factory,
            institution=institution,
            foreign_controlled=False,
            attestation=" ",
            actor=OPERATOR,
        )
    with pytest.raises(AccessDeniedError):
        institution_service.verify_institution(
            factory,
            institution=institution,
            foreign_controlled=False,
            attestation="x",
            actor=before,
        )
    result = institution_service.verify_institution(
        factory,
        institution=institution,
        foreign_controlled=controlled,
        attestation="Signed declaration of 2026-01-05",
        actor=OPERATOR,
    )
    assert result["foreign_party"] is foreign
    after = service.authenticate(factory, token)
    assert after.institution_verified and after.institution_country == country
    assert after.foreign_party is foreign


def test_administrators_need_a_second_factor(factory: Any, settings: Settings) -> None:
    import pyotp

    service.add_user(
        factory,
        email="boss@example.org",
        roles=["admin"],
        institution=None,
        actor=OPERATOR,
        password="a long passphrase",
    )
    with pytest.raises(AuthenticationError) as raised:  # no TOTP enrolled yet
        service.sign_in(
            factory,
            settings,
            email="boss@example.org",
            password="a long passphrase",
            address="10.1.0.1",
        )
    assert "one-time code" in raised.value.message
    secret, uri = second_factor.enrol(factory, settings, email="boss@example.org", actor=OPERATOR)
    assert uri.startswith("otpauth://totp/") and secret in uri
    with pytest.raises(AuthenticationError):
        service.sign_in(
            factory,
            settings,
            email="boss@example.org",
            password="a long passphrase",
            address="10.1.0.2",
            otp="000000",
        )
    code = pyotp.TOTP(secret).now()
    issued = service.sign_in(
        factory,
        settings,
        email="boss@example.org",
        password="a long passphrase",
        address="10.1.0.3",
        otp=code,
    )
    assert service.authenticate(factory, issued.token).has_role(Role.ADMIN)
    with pytest.raises(AuthenticationError):  # the right code with the wrong password
        service.sign_in(
            factory,
            settings,
            email="boss@example.org",
            password="wrong passphrase",
            address="10.1.0.4",
            otp=code,
        )


def test_a_token_makes_no_token_worth_more_than_itself(client: Any) -> None:
    """The outside tester's escalation: a token scoped to access:token:manage asked
    POST /api/v1/tokens for an unscoped token valid 366 days, and got it."""
    factory = client.app.state.services.factory
    service.add_user(
        factory,
        email="li@example.org",
        roles=["researcher"],
        institution=None,
        actor=OPERATOR,
        password="a long passphrase",
    )
    manage = service.create_token(
        factory, email="li@example.org", actor=OPERATOR, scopes=[str(Action.MANAGE_TOKENS)]
    )  # `genecommons tokens create li@example.org --scope access:token:manage` (90 days)
    scoped = {"Authorization": f"Bearer {manage.token}"}
    for body in (
        {"days": 366},  # the escalation as reported: unscoped and longer-lived
        {"days": 30},  # unscoped, even short-lived
        {"days": 30, "scopes": [str(Action.MANAGE_TOKENS), str(Action.READ_RECORDS)]},
        {"days": 91, "scopes": [str(Action.MANAGE_TOKENS)]},  # outlives the token
    ):
        refused = client.post("/api/v1/tokens", json=body, headers=scoped)
        assert refused.status_code == 403, (body, refused.text)
        assert refused.json()["message_zh"]
    made = client.post(
        "/api/v1/tokens", json={"days": 30, "scopes": [str(Action.MANAGE_TOKENS)]}, headers=scoped
    )
    assert made.status_code == 201, made.text
    child = service.authenticate(factory, made.json()["token"])
    assert child.scopes == {str(Action.MANAGE_TOKENS)}
    # and that one in turn cannot outlive itself
    grandchild = client.post(
        "/api/v1/tokens",
        json={"days": 31, "scopes": [str(Action.MANAGE_TOKENS)]},
        headers={"Authorization": f"Bearer {made.json()['token']}"},
    )
    assert grandchild.status_code == 403
    # an unscoped API token makes scoped or unscoped tokens, none outliving it
    plain = service.create_token(factory, email="li@example.org", actor=OPERATOR, days=10)
    plain_headers = {"Authorization": f"Bearer {plain.token}"}
    assert (
        client.post("/api/v1/tokens", json={"days": 11}, headers=plain_headers).status_code == 403
    )
    assert client.post("/api/v1/tokens", json={"days": 9}, headers=plain_headers).status_code == 201
    # a sign-in (the person, with their password) makes API tokens of any allowed lifetime
    signed = client.post(
        "/api/v1/auth/token", data={"username": "li@example.org", "password": "a long passphrase"}
    ).json()
    session = {"Authorization": f"Bearer {signed['access_token']}"}
    assert client.post("/api/v1/tokens", json={"days": 366}, headers=session).status_code == 201
    # a token that names itself "sign-in" is still an API token
    labelled = client.post(
        "/api/v1/tokens", json={"days": 5, "label": "sign-in"}, headers=plain_headers
    ).json()
    relabelled = {"Authorization": f"Bearer {labelled['token']}"}
    assert client.post("/api/v1/tokens", json={"days": 6}, headers=relabelled).status_code == 403


def test_sign_in_refusals_do_not_tell_a_right_password_from_a_wrong_one(client: Any) -> None:
    """For an account with a second factor, the answer is the same until both are right: the
    right password without the code (or with a wrong one) is refused exactly as a wrong
    password is, byte for byte, as is an unknown account."""
    import pyotp

    factory = client.app.state.services.factory
    settings = client.app.state.services.settings
    for email in ("boss@example.org", "plain@example.org"):
        service.add_user(
            factory,
            email=email,
            roles=["admin"] if email.startswith("boss") else ["researcher"],
            institution=None,
            actor=OPERATOR,
            password="a long passphrase",
        )
    secret, _ = second_factor.enrol(factory, settings, email="boss@example.org", actor=OPERATOR)
    code = pyotp.TOTP(secret).now()
    wrong_code = f"{(int(code) + 500_000) % 1_000_000:06d}"
    attempts = [
        ("boss@example.org", "a long passphrase", None),  # right password, no code
        ("boss@example.org", "a long passphrase", wrong_code),  # right password, wrong code
        ("boss@example.org", "wrong passphrase!", None),
        ("boss@example.org", "wrong passphrase!", code),  # right code, wrong password
        ("nobody@example.org", "a long passphrase", None),  # no such account
        ("plain@example.org", "wrong passphrase!", None),  # an account without a code
    ]
    answers = []
    for number, (email, password, otp) in enumerate(attempts):
        # each from its own address, so that the throttle counts none of them twice
        caller = TestClient(client.app, client=(f"10.9.0.{number + 1}", 50000))
        form = {"username": email, "password": password, **({"otp": otp} if otp else {})}
        answers.append(caller.post("/api/v1/auth/token", data=form))
    first = answers[0]
    assert first.status_code == 401 and first.json()["message_zh"]
    assert "one-time code" in first.json()["message"]
    for answer in answers[1:]:
        assert answer.status_code == first.status_code
        assert answer.content == first.content
        # the same headers, but the date and the request's own id (new for every request)
        unique = {"date", "x-request-id"}
        assert {k: v for k, v in answer.headers.items() if k not in unique} == {
            k: v for k, v in first.headers.items() if k not in unique
        }
    # both factors: signed in (four failures: the account's throttle allows one more try)
    done = TestClient(client.app, client=("10.9.1.1", 50000)).post(
        "/api/v1/auth/token",
        data={"username": "boss@example.org", "password": "a long passphrase", "otp": code},
    )
    assert done.status_code == 200, done.text
    # the audit log, not the caller, is told what was wrong
    with factory() as session:
        whys = [
            details["why"]
            for details in session.execute(
                select(audit_events.c.details).where(audit_events.c.tag == "access:session:fail")
            ).scalars()
        ]
    assert sorted(set(whys)) == ["one-time code", "password", "unknown account"]
