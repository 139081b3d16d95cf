"""Sign-in through an OpenID Connect provider, against a real provider on loopback."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pyotp
import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from joserfc import jwt
from joserfc.jwk import RSAKey
from sqlalchemy import select

from genecommons.access import institution_service, notify, oidc, second_factor, service
from genecommons.app import create_app
from genecommons.catalog import service as catalog
from genecommons.config import Settings
from genecommons.db import Base, node_engine
from genecommons.errors import AuthenticationError, ConfigurationError
from genecommons.ledger.tables import audit_events
from genecommons.policy.models import Subject

OPERATOR = Subject.operator("tester")
CLIENT_ID = "genecommons"


@pytest.fixture
def client(oidc_settings: Settings) -> Iterator[TestClient]:
    engine = node_engine(oidc_settings)
    Base.metadata.create_all(engine)
    engine.dispose()
    app = create_app(oidc_settings)
    with TestClient(app) as client:
        yield client
    app.state.services.engine.dispose()


def login(client: TestClient, provider: Any, sub: str, **headers: str) -> httpx.Response:
    """The browser's round trip: our login, the provider's consent, our callback."""
    start = client.get("/api/v1/auth/oidc/login", headers=headers, follow_redirects=False)
    assert start.status_code == 302, start.text
    back = urlsplit(provider.authorize(start.headers["location"], sub))
    return client.get(f"{back.path}?{back.query}")


def tags(client: TestClient) -> list[tuple[str, str, str | None]]:
    factory = client.app.state.services.factory  # type: ignore[attr-defined]
    with factory() as session:
        rows = session.execute(
            select(audit_events.c.tag, audit_events.c.actor, audit_events.c.subject).order_by(
                audit_events.c.leaf_index
            )
        ).all()
    return [tuple(r) for r in rows]


def test_the_authorization_request_uses_pkce_state_and_nonce(
    client: TestClient, oidc_provider: Any
) -> None:
    start = client.get("/api/v1/auth/oidc/login", follow_redirects=False)
    query = parse_qs(urlsplit(start.headers["location"]).query)
    assert query["response_type"] == ["code"] and query["client_id"] == [CLIENT_ID]
    assert query["code_challenge_method"] == ["S256"] and len(query["code_challenge"][0]) == 43
    assert "openid" in query["scope"][0].split()
    assert len(query["state"][0]) >= 43 and len(query["nonce"][0]) >= 43
    assert query["redirect_uri"] == ["http://127.0.0.1:8000/api/v1/auth/oidc/callback"]
    cookie = start.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "path=/api/v1/auth/oidc" in cookie


def test_a_first_time_identity_becomes_an_untrusted_researcher(
    client: TestClient, oidc_provider: Any, make_bundle: Any
) -> None:
    oidc_provider.user("alice", email="Alice@Example.org", email_verified=True, name="Alice")
    signed_in = login(client, oidc_provider, "alice")
    assert signed_in.status_code == 200, signed_in.text
    assert signed_in.json()["account_created"] is True
    token = signed_in.json()["access_token"]
    assert token.startswith("gct_") and signed_in.json()["token_type"] == "bearer"
    me = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"}).json()
    assert me["id"] == "user:alice@example.org"
    assert me["roles"] == ["researcher"] and me["institution"] is None
    # not trusted: it may not request access until an administrator sets its institution
    refused = client.post(
        "/api/v1/requests",
        headers={"Authorization": f"Bearer {token}"},
        json={
            "purpose": {"title": "t", "summary": "s", "institution": "X", "country": "CN"},
            "datasets": ["GCD00000001"],
            "agreement_version": "DAA v1",
        },
    )
    assert refused.status_code == 422 and "no institution" in refused.json()["message"]
    events = tags(client)
    assert ("access:user:create", f"oidc:{oidc_provider.issuer}", "user:alice@example.org") in (
        events
    )
    assert ("access:identity:link", "user:alice@example.org", "user:alice@example.org") in events
    assert ("access:session:sign-in", "user:alice@example.org", "address:testclient") in events
    # the second time, the same account, whatever e-mail the provider now asserts
    oidc_provider.user("alice", email="alice@new.example.org", email_verified=True)
    again = login(client, oidc_provider, "alice")
    assert again.status_code == 200 and again.json()["account_created"] is False
    me = client.get(
        "/api/v1/auth/me", headers={"Authorization": f"Bearer {again.json()['access_token']}"}
    ).json()
    assert me["id"] == "user:alice@example.org"
    # an administrator puts it at an institution; nothing else about it changes
    factory = client.app.state.services.factory  # type: ignore[attr-defined]
    result = catalog.submit(factory, make_bundle(), subject=OPERATOR)
    bgc = result.accessions["institutions"]["BGC"]
    institution_service.set_institution(
        factory, email="alice@example.org", institution=bgc, actor=OPERATOR
    )
    institution_service.verify_institution(
        factory, institution=bgc, foreign_controlled=False, attestation="letter", actor=OPERATOR
    )
    subject = service.authenticate(factory, again.json()["access_token"])
    assert subject.institution == bgc and subject.institution_verified
    assert subject.roles == {"researcher"}


def test_provider_claims_never_grant_roles(client: TestClient, oidc_provider: Any) -> None:
    oidc_provider.user(
        "mallory",
        email="mallory@example.org",
        email_verified=True,
        roles=["admin"],
        groups=["admin", "dac_member"],
    )
    signed_in = login(client, oidc_provider, "mallory")
    assert signed_in.status_code == 200 and "ticket" not in signed_in.json()
    me = client.get(
        "/api/v1/auth/me", headers={"Authorization": f"Bearer {signed_in.json()['access_token']}"}
    ).json()
    assert me["roles"] == ["researcher"]


def test_an_existing_address_is_linked_only_by_its_holder(
    client: TestClient, oidc_provider: Any
) -> None:
    factory = client.app.state.services.factory  # type: ignore[attr-defined]
    service.add_user(
        factory, email="wang@example.org", roles=["submitter"], institution=None, actor=OPERATOR
    )
    oidc_provider.user("wang-at-idp", email="wang@example.org", email_verified=True)
    taken = login(client, oidc_provider, "wang-at-idp")
    assert taken.status_code == 409 and "link" in taken.json()["message"]
    narrow = service.create_token(
        factory, email="wang@example.org", actor=OPERATOR, scopes=["catalog:metadata:read"]
    ).token
    scoped = client.get(
        "/api/v1/auth/oidc/login",
        headers={"Authorization": f"Bearer {narrow}"},
        follow_redirects=False,
    )
    assert scoped.status_code == 403  # a narrowly scoped token may not add a way in
    own = service.create_token(factory, email="wang@example.org", actor=OPERATOR).token
    linked = login(client, oidc_provider, "wang-at-idp", Authorization=f"Bearer {own}")
    assert linked.status_code == 200, linked.text
    assert linked.json()["account_created"] is False
    told = [m.subject for m in notify.pending(factory) if m.recipient == "wang@example.org"]
    assert told == ["A sign-in was linked to your account / 您的账号关联了新的登录方式"]
    plain = login(client, oidc_provider, "wang-at-idp")  # from now on, no token needed
    me = client.get(
        "/api/v1/auth/me", headers={"Authorization": f"Bearer {plain.json()['access_token']}"}
    ).json()
    assert me["id"] == "user:wang@example.org" and me["roles"] == ["submitter"]
    # the same identity cannot be moved to another account
    service.add_user(factory, email="other@example.org", roles=[], institution=None, actor=OPERATOR)
    other = service.create_token(factory, email="other@example.org", actor=OPERATOR).token
    moved = login(client, oidc_provider, "wang-at-idp", Authorization=f"Bearer {other}")
    assert moved.status_code == 409


def test_administrators_still_give_their_totp_code(client: TestClient, oidc_provider: Any) -> None:
    factory = client.app.state.services.factory  # type: ignore[attr-defined]
    service.add_user(
        factory, email="boss@example.org", roles=["admin"], institution=None, actor=OPERATOR
    )
    secret, _ = second_factor.enrol(
        factory,
        client.app.state.services.settings,  # type: ignore[attr-defined]
        email="boss@example.org",
        actor=OPERATOR,
    )
    own = service.create_token(factory, email="boss@example.org", actor=OPERATOR).token
    oidc_provider.user("boss", email="boss@example.org", email_verified=True)
    first = login(client, oidc_provider, "boss", Authorization=f"Bearer {own}")
    assert first.status_code == 200 and "access_token" not in first.json()
    assert first.json()["second_factor"] == "totp"
    ticket = first.json()["ticket"]
    wrong = client.post("/api/v1/auth/oidc/second-factor", data={"ticket": ticket, "otp": "000000"})
    assert wrong.status_code == 401 and wrong.json()["details"]["check"] == "otp"
    forged = client.post(
        "/api/v1/auth/oidc/second-factor",
        data={"ticket": "x" * 43, "otp": pyotp.TOTP(secret).now()},
    )
    assert forged.status_code == 401
    done = client.post(
        "/api/v1/auth/oidc/second-factor",
        data={"ticket": ticket, "otp": pyotp.TOTP(secret).now()},
    )
    assert done.status_code == 200, done.text
    me = client.get(
        "/api/v1/auth/me", headers={"Authorization": f"Bearer {done.json()['access_token']}"}
    ).json()
    assert me["roles"] == ["admin"]
    replayed = client.post(
        "/api/v1/auth/oidc/second-factor",
        data={"ticket": ticket, "otp": pyotp.TOTP(secret).now()},
    )
    assert replayed.status_code == 401  # a ticket is used once


def test_state_mismatch_and_replays_are_refused(client: TestClient, oidc_provider: Any) -> None:
    oidc_provider.user("bob", email="bob@example.org", email_verified=True)
    start = client.get("/api/v1/auth/oidc/login", follow_redirects=False)
    back = urlsplit(oidc_provider.authorize(start.headers["location"], "bob"))
    query = parse_qs(back.query)
    # a callback for a sign-in this browser did not start (login CSRF): the state differs
    client.cookies.clear()
    client.cookies.set("gc_oidc_state", "another-state", path="/api/v1/auth/oidc")
    forged = client.get(back.path, params={"state": query["state"][0], "code": query["code"][0]})
    assert forged.status_code == 401 and forged.json()["details"]["check"] == "state"
    client.cookies.clear()
    no_cookie = client.get(back.path, params={"state": query["state"][0], "code": "x"})
    assert no_cookie.status_code == 401 and no_cookie.json()["details"]["check"] == "state"
    # the genuine callback, then the same callback again: the state is consumed
    client.cookies.set("gc_oidc_state", query["state"][0], path="/api/v1/auth/oidc")
    genuine = client.get(f"{back.path}?{back.query}")
    assert genuine.status_code == 200, genuine.text
    client.cookies.set("gc_oidc_state", query["state"][0], path="/api/v1/auth/oidc")
    replayed = client.get(f"{back.path}?{back.query}")
    assert replayed.status_code == 401 and replayed.json()["details"]["check"] == "state"
    # the used code with a fresh state: the provider refuses it
    fresh = client.get("/api/v1/auth/oidc/login", follow_redirects=False)
    state = parse_qs(urlsplit(fresh.headers["location"]).query)["state"][0]
    reused = client.get(back.path, params={"state": state, "code": query["code"][0]})
    assert reused.status_code == 401 and reused.json()["details"]["check"] == "code"
    # the provider's own refusal is passed on, and the pending sign-in is gone after it
    denied = client.get("/api/v1/auth/oidc/login", follow_redirects=False)
    state = parse_qs(urlsplit(denied.headers["location"]).query)["state"][0]
    refusal = client.get(back.path, params={"state": state, "error": "access_denied"})
    assert refusal.status_code == 401 and "access_denied" in refusal.json()["message"]
    failed = [t for t in tags(client) if t[0] == "access:session:fail"]
    assert len(failed) == 5 and all(t[1] == "address:testclient" for t in failed)
    # five refusals from one address: the sixth attempt is throttled
    throttled = client.get(back.path, params={"state": state, "code": "x"})
    assert throttled.status_code == 429


def test_an_unverified_email_is_refused(client: TestClient, oidc_provider: Any) -> None:
    oidc_provider.user("carol", email="carol@example.org", email_verified=False)
    refused = login(client, oidc_provider, "carol")
    assert refused.status_code == 401
    assert refused.json()["details"]["check"] == "email_verified"
    assert "验证" in refused.json()["message_zh"]
    oidc_provider.user("dave", email="dave@example.org")  # no email_verified claim at all
    assert login(client, oidc_provider, "dave").status_code == 401


def test_a_provider_claiming_another_issuer_is_refused(
    oidc_settings: Settings, oidc_provider: Any
) -> None:
    wrong = oidc.Provider(
        issuer=oidc_provider.issuer + "/",  # issuers compare exactly (Discovery 4.3)
        client_id=CLIENT_ID,
        client_secret=None,
        redirect_uri="http://127.0.0.1:8000/cb",
        scopes="openid email",
    )
    with pytest.raises(ConfigurationError, match="issuer"):
        wrong.metadata()


def test_off_when_unset(settings: Settings) -> None:
    app = create_app(settings)
    with TestClient(app) as client:
        response = client.get("/api/v1/auth/oidc/login", follow_redirects=False)
        assert response.status_code == 404 and "OIDC_ISSUER" in response.json()["message"]
        assert client.get("/api/v1/auth/oidc/callback").status_code == 404
    app.state.services.engine.dispose()
    assert not settings.oidc_enabled


def test_settings_refuse_insecure_provider_configuration() -> None:
    with pytest.raises(ConfigurationError):
        oidc.Provider(
            issuer="http://idp.example.org",
            client_id="x",
            client_secret=None,
            redirect_uri="https://gc.example.org/cb",
            scopes="openid",
        )
    with pytest.raises(ConfigurationError):
        oidc.Provider(
            issuer="https://idp.example.org",
            client_id="x",
            client_secret=None,
            redirect_uri="https://gc.example.org/cb",
            scopes="email profile",
        )


# -- the ID token check, on tokens the real provider issued -----------------------------------


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@pytest.fixture
def issued(oidc_provider: Any) -> dict[str, Any]:
    oidc_provider.user("erin", email="erin@example.org", email_verified=True, name="Erin")
    return {
        "token": oidc_provider.id_token("erin", client_id=CLIENT_ID, nonce="n-1"),
        "jwks": oidc_provider.jwks(),
        "issuer": oidc_provider.issuer,
    }


def check(issued: dict[str, Any], token: str | None = None, **changes: Any) -> Any:
    arguments: dict[str, Any] = {
        "jwks": issued["jwks"],
        "issuer": issued["issuer"],
        "client_id": CLIENT_ID,
        "nonce": "n-1",
        "now": datetime.now(UTC),
    }
    arguments.update(changes)
    return oidc.verify_id_token(token or issued["token"], **arguments)


def refused_check(issued: dict[str, Any], token: str | None = None, **changes: Any) -> str:
    with pytest.raises(AuthenticationError) as caught:
        check(issued, token, **changes)
    reason: str = caught.value.details["check"]
    return reason


def test_a_genuine_id_token_verifies(issued: dict[str, Any]) -> None:
    found = check(issued)
    assert found == oidc.ExternalIdentity(issued["issuer"], "erin", "erin@example.org", "Erin")


def test_wrong_issuer_audience_nonce_and_expiry_are_refused(issued: dict[str, Any]) -> None:
    assert refused_check(issued, issuer="https://other.example.org") == "iss"
    assert refused_check(issued, client_id="another-client") == "aud"
    assert refused_check(issued, nonce="n-2") == "nonce"  # a token of another sign-in
    later = datetime.now(UTC) + timedelta(hours=2)
    assert refused_check(issued, now=later) == "exp"
    earlier = datetime.now(UTC) - timedelta(hours=1)
    assert refused_check(issued, now=earlier) == "iat"  # issued "in the future"


def test_a_token_for_another_client_is_refused(issued: dict[str, Any], oidc_provider: Any) -> None:
    theirs = oidc_provider.id_token("erin", client_id="another-client", nonce="n-1")
    assert refused_check(issued, theirs) == "aud"


def test_forged_tokens_are_refused(issued: dict[str, Any]) -> None:
    header, payload, signature = issued["token"].split(".")
    claims = json.loads(unb64(payload))
    # alg none
    none = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    assert refused_check(issued, f"{none}.{payload}.") == "signature"
    # HS256 keyed with the provider's public key (algorithm confusion)
    hs = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    public = json.dumps(issued["jwks"]["keys"][0]).encode()
    for secret in (public, unb64(issued["jwks"]["keys"][0]["n"])):
        mac = hmac.new(secret, f"{hs}.{payload}".encode(), hashlib.sha256).digest()
        assert refused_check(issued, f"{hs}.{payload}.{b64(mac)}") == "signature"
    # tampered claims under the genuine signature
    forged = b64(json.dumps({**claims, "sub": "admin", "email": "admin@localhost"}).encode())
    assert refused_check(issued, f"{header}.{forged}.{signature}") == "signature"
    # a tampered signature, and any single changed character of the token
    flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
    assert refused_check(issued, f"{header}.{payload}.{flipped}") == "signature"
    token = issued["token"]
    for position in range(0, len(token), max(1, len(token) // 40)):
        if token[position] == ".":
            continue
        changed = (
            token[:position] + ("x" if token[position] != "x" else "y") + token[position + 1 :]
        )
        with pytest.raises(AuthenticationError):
            check(issued, changed)
    # a key set without the provider's key, or none at all
    stranger = RSAKey.generate_key(2048).as_dict(private=False)
    assert refused_check(issued, jwks={"keys": [stranger]}) == "signature"
    assert refused_check(issued, jwks={"keys": "none"}) == "jwks"


def test_discovery_documents_are_checked() -> None:
    good = {
        "issuer": "https://idp.example.org",
        "authorization_endpoint": "https://idp.example.org/authorize",
        "token_endpoint": "https://idp.example.org/token",
        "jwks_uri": "https://idp.example.org/jwks",
        "response_types_supported": ["code", "id_token"],
    }
    assert oidc.parse_metadata(good, issuer="https://idp.example.org").jwks_uri.endswith("/jwks")
    for bad in (
        {**good, "issuer": "https://evil.example.org"},
        {**good, "token_endpoint": "http://idp.example.org/token"},
        {**good, "jwks_uri": None},
        {**good, "response_types_supported": ["id_token"]},
    ):
        with pytest.raises(ConfigurationError):
            oidc.parse_metadata(bad, issuer="https://idp.example.org")
    assert oidc.secure_url("http://127.0.0.1:8080/x") and oidc.secure_url("http://[::1]/x")
    assert not oidc.secure_url("http://10.0.0.1/x") and not oidc.secure_url("ftp://idp/x")


def test_the_client_secret_comes_from_the_environment_or_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "oidc-secret"
    secret.write_text("s3cret\n", encoding="utf-8")
    configured = Settings(oidc_issuer="https://idp.example.org", oidc_client_id="gc")
    assert configured.oidc_enabled and configured.oidc_secret() is None
    from_file = configured.model_copy(update={"oidc_client_secret_file": secret})
    assert from_file.oidc_secret() == "s3cret"
    missing = configured.model_copy(update={"oidc_client_secret_file": tmp_path / "absent"})
    with pytest.raises(ConfigurationError, match="CLIENT_SECRET_FILE"):
        missing.oidc_secret()
    assert not Settings(oidc_client_id="gc").oidc_enabled


# -- property tests: the ID token check against an obviously correct reference ----------------

KEY = RSAKey.generate_key(2048, parameters={"kid": "k1"})
JWKS = {"keys": [KEY.as_dict(private=False)]}
ISSUER = "https://idp.example.org"
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def accepted_by_reference(claims: dict[str, Any]) -> bool:
    """OpenID Connect Core 3.1.3.7, the checks this node makes, written out plainly."""
    moment = int(NOW.timestamp())
    aud = claims.get("aud")
    audiences = aud if isinstance(aud, list) else [aud]
    return (
        claims.get("iss") == ISSUER
        and CLIENT_ID in audiences
        and (len(audiences) == 1 or claims.get("azp") == CLIENT_ID)
        and isinstance(claims.get("sub"), str)
        and claims["sub"] != ""
        and isinstance(claims.get("exp"), int)
        and claims["exp"] > moment - oidc.LEEWAY_SECONDS
        and isinstance(claims.get("iat"), int)
        and moment - oidc.MAX_TOKEN_AGE_SECONDS - oidc.LEEWAY_SECONDS
        <= claims["iat"]
        <= moment + oidc.LEEWAY_SECONDS
        and claims.get("nonce") == "n-1"
        and isinstance(claims.get("email"), str)
        and claims.get("email_verified") is True
    )


GOOD = {
    "iss": ISSUER,
    "aud": CLIENT_ID,
    "sub": "u-1",
    "exp": int(NOW.timestamp()) + 600,
    "iat": int(NOW.timestamp()) - 10,
    "nonce": "n-1",
    "email": "u@example.org",
    "email_verified": True,
}
MOMENT = int(NOW.timestamp())
WRONG: dict[str, list[Any]] = {
    "iss": ["https://evil.example.org", ISSUER + "/", 7],
    "aud": ["other", [CLIENT_ID, "other"], [CLIENT_ID], [], 7],
    "azp": [CLIENT_ID, "other"],
    "sub": ["", 7],
    "exp": [MOMENT - 61, MOMENT - 59, MOMENT + 1, "soon"],
    "iat": [MOMENT + 59, MOMENT + 61, MOMENT - 3661, MOMENT - 3659, "then"],
    "nonce": ["n-2", "", 7],
    "email": [7, ["u@example.org"]],
    "email_verified": [False, "true", 1],
}
DROPPED = object()


@st.composite
def claim_sets(draw: st.DrawFn) -> dict[str, Any]:
    """Good claims with up to three of them changed or left out."""
    claims = dict(GOOD)
    for name in draw(st.lists(st.sampled_from(sorted(WRONG)), max_size=3, unique=True)):
        value = draw(st.sampled_from([*WRONG[name], DROPPED]))
        if value is DROPPED:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims


@settings(max_examples=200, deadline=None, derandomize=True)
@given(claims=claim_sets())
def test_the_id_token_check_agrees_with_the_reference(claims: dict[str, Any]) -> None:
    token = jwt.encode({"alg": "RS256", "kid": "k1"}, claims, KEY)
    expected = accepted_by_reference(claims)
    try:
        found = oidc.verify_id_token(
            token, jwks=JWKS, issuer=ISSUER, client_id=CLIENT_ID, nonce="n-1", now=NOW
        )
    except AuthenticationError:
        assert not expected, claims
    else:
        assert expected, claims
        assert found.subject == claims["sub"] and found.email == claims["email"]


@settings(max_examples=200, deadline=None, derandomize=True)
@given(token=st.text(max_size=300) | st.binary(max_size=300).map(lambda b: b64(b) + "." + b64(b)))
def test_any_garbage_is_refused_cleanly(token: str) -> None:
    with pytest.raises(AuthenticationError):
        oidc.verify_id_token(
            token, jwks=JWKS, issuer=ISSUER, client_id=CLIENT_ID, nonce="n-1", now=NOW
        )
