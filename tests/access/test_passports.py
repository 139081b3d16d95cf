"""GA4GH Passport visas: key stores, issuing, verifying, and every forgery we know of."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import stat
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from genecommons.access.keys import (
    FileKeyStore,
    InMemoryKeyStore,
    KeyStore,
    b64url,
    jwk_thumbprint,
    public_jwk,
)
from genecommons.access.passports import (
    TrustedIssuers,
    Visa,
    VisaBy,
    VisaRejection,
    VisaType,
    conditions_met,
    controlled_access_datasets,
    issue_visa,
    passport_claim,
    verify_passport,
    verify_visa,
)
from genecommons.errors import AccessDeniedError, ConfigurationError, InvalidInputError

NODE = "https://node-a.example"
OTHER_NODE = "https://node-b.example"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DATASET = f"{NODE}/datasets/GCD00000001"
DOI = "https://doi.org/10.1038/s41431-018-0219-y"
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}

EXAMPLES: dict[VisaType, tuple[str, VisaBy | None]] = {
    VisaType.CONTROLLED_ACCESS_GRANTS: (DATASET, VisaBy.DAC),
    VisaType.AFFILIATION_AND_ROLE: ("faculty@med.stanford.edu", VisaBy.SO),
    VisaType.ACCEPTED_TERMS_AND_POLICIES: (DOI, VisaBy.SELF),
    VisaType.RESEARCHER_STATUS: (DOI, VisaBy.SO),
}


# -- helpers -------------------------------------------------------------------------------


def make_visa(
    keys: KeyStore,
    *,
    issuer: str = NODE,
    subject: str = "researcher-1",
    visa_type: VisaType = VisaType.CONTROLLED_ACCESS_GRANTS,
    value: str = DATASET,
    by: VisaBy | None = VisaBy.DAC,
    expires: datetime = NOW + timedelta(days=30),
    conditions: list[list[dict[str, str]]] | None = None,
    now: datetime = NOW,
) -> str:
    return issue_visa(
        keys=keys,
        issuer=issuer,
        subject=subject,
        visa_type=visa_type,
        value=value,
        source=f"{issuer}/dacs/GCC00000001",
        by=by,
        asserted=now - timedelta(days=1),
        expires=expires,
        conditions=conditions,
        now=now,
    )


def segments(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    header, payload, signature = token.split(".")
    return decode_segment(header), decode_segment(payload), signature


def decode_segment(part: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return result


def encode_segment(data: dict[str, Any]) -> str:
    return b64url(json.dumps(data, separators=(",", ":")).encode())


def rs256(private_key: rsa.RSAPrivateKey, header: dict[str, Any], payload: dict[str, Any]) -> str:
    """A token signed by hand, so headers and claims can be anything."""
    signing_input = f"{encode_segment(header)}.{encode_segment(payload)}"
    signature = private_key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64url(signature)}"


def valid_payload(**changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "iss": NODE,
        "sub": "researcher-1",
        "iat": int(NOW.timestamp()),
        "exp": int((NOW + timedelta(days=1)).timestamp()),
        "jti": "jti-1",
        "ga4gh_visa_v1": {
            "type": "ControlledAccessGrants",
            "asserted": int(NOW.timestamp()) - 60,
            "value": DATASET,
            "source": f"{NODE}/dacs/GCC00000001",
            "by": "dac",
        },
    }
    payload.update(changes)
    return payload


def reason(excinfo: pytest.ExceptionInfo[AccessDeniedError]) -> VisaRejection:
    return VisaRejection(excinfo.value.details["reason"])


@pytest.fixture
def node_keys() -> InMemoryKeyStore:
    return InMemoryKeyStore()


@pytest.fixture
def trusted(node_keys: InMemoryKeyStore) -> TrustedIssuers:
    return TrustedIssuers({NODE: node_keys.jwks()})


@pytest.fixture
def node_private_key(node_keys: InMemoryKeyStore) -> rsa.RSAPrivateKey:
    signer = node_keys.signer()
    key: rsa.RSAPrivateKey = signer.private_key  # type: ignore[attr-defined]
    return key


# -- key stores: one contract, every implementation ----------------------------------------


@pytest.fixture(params=["memory", "file", "file-encrypted"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KeyStore]:
    if request.param == "memory":
        yield InMemoryKeyStore()
    elif request.param == "file":
        yield _initialised(FileKeyStore(tmp_path / "keys"))
    else:
        yield _initialised(
            FileKeyStore(tmp_path / "keys", passphrase=b"correct horse battery staple")
        )


def _initialised(store: FileKeyStore) -> FileKeyStore:
    """A file store with its first key, as `genecommons init` makes it."""
    store.create_first_key()
    return store


def test_a_file_store_without_its_first_key_refuses_reads_and_makes_nothing(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "keys"
    store = FileKeyStore(directory, passphrase=b"correct horse battery staple")
    for read in (store.signer, store.jwks):
        with pytest.raises(ConfigurationError) as refused:
            read()
        assert "genecommons init" in refused.value.message
        assert "genecommons init" in refused.value.message_zh
    assert not directory.exists()
    kid = store.create_first_key()
    assert store.create_first_key() == kid == store.signer().kid  # made once


def test_store_names_its_key_by_its_thumbprint(store: KeyStore) -> None:
    signer = store.signer()
    jwks = store.jwks()
    assert [key["kid"] for key in jwks["keys"]] == [signer.kid] == store.kids()
    (jwk,) = jwks["keys"]
    assert jwk_thumbprint(jwk) == signer.kid
    assert jwk["kty"] == "RSA" and jwk["alg"] == "RS256" and jwk["use"] == "sig"
    assert store.signer().kid == signer.kid  # stable


def test_jwks_publishes_public_keys_only(store: KeyStore) -> None:
    store.signer()
    store.rotate()
    jwks = store.jwks()
    assert len(jwks["keys"]) == 2
    for jwk in jwks["keys"]:
        assert set(jwk) == {"kty", "n", "e", "kid", "use", "alg"}
        assert not PRIVATE_MEMBERS & set(jwk)
        public = RSAKey.import_key(jwk).raw_value
        assert isinstance(public, rsa.RSAPublicKey) and public.key_size == 2048
    json.dumps(jwks)  # servable as is


def test_rotation_publishes_old_keys_until_removed(store: KeyStore) -> None:
    old = store.signer().kid
    new = store.rotate()
    assert new != old and store.signer().kid == new
    assert store.kids() == [new, old]
    store.remove(old)
    assert store.kids() == [new]
    with pytest.raises(InvalidInputError):
        store.remove(old)  # already gone
    with pytest.raises(InvalidInputError):
        store.remove(new)  # the current key cannot be removed


def test_rfc7638_thumbprint_example() -> None:
    # RFC 7638 section 3.1
    jwk = {
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSo"
        "c_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0"
        "_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI"
        "4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
    }
    assert jwk_thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_file_store_protects_and_keeps_its_keys(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    kid = _initialised(FileKeyStore(directory)).signer().kid
    private = directory / f"{kid}.key.pem"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert b"PRIVATE KEY" in private.read_bytes()
    assert FileKeyStore(directory).signer().kid == kid  # a second worker reads the same key


def test_file_store_encrypts_with_the_passphrase(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    kid = _initialised(FileKeyStore(directory, passphrase=b"s3cret-pass")).signer().kid
    pem = (directory / f"{kid}.key.pem").read_bytes()
    assert b"ENCRYPTED PRIVATE KEY" in pem
    serialization.load_pem_private_key(pem, password=b"s3cret-pass")
    assert FileKeyStore(directory, passphrase=b"s3cret-pass").signer().kid == kid
    with pytest.raises(ConfigurationError):
        FileKeyStore(directory, passphrase=b"wrong").signer()
    with pytest.raises(ConfigurationError):
        FileKeyStore(directory).signer()


def test_file_store_refuses_a_key_others_can_read(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    kid = _initialised(FileKeyStore(directory)).signer().kid
    os.chmod(directory / f"{kid}.key.pem", 0o644)
    with pytest.raises(ConfigurationError):
        FileKeyStore(directory).signer()


def test_file_store_rotation_deletes_the_old_private_key(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    store = _initialised(FileKeyStore(directory))
    old = store.signer().kid
    new = store.rotate()
    assert not (directory / f"{old}.key.pem").exists()
    assert (directory / f"{old}.pub.pem").exists()
    assert FileKeyStore(directory).kids() == [new, old]


# -- issuing and verifying -----------------------------------------------------------------


@pytest.mark.parametrize("visa_type", list(VisaType))
def test_round_trip_for_each_visa_type(
    visa_type: VisaType, node_keys: InMemoryKeyStore, trusted: TrustedIssuers
) -> None:
    value, by = EXAMPLES[visa_type]
    token = make_visa(node_keys, visa_type=visa_type, value=value, by=by)
    header, payload, _ = segments(token)
    assert header == {
        "typ": "JWT",
        "alg": "RS256",
        "kid": node_keys.signer().kid,
        "jku": f"{NODE}/.well-known/jwks.json",
    }
    assert set(payload) == {"iss", "sub", "iat", "exp", "jti", "ga4gh_visa_v1"}
    assert set(payload["ga4gh_visa_v1"]) == {"type", "asserted", "value", "source", "by"}
    visa = verify_visa(token, trusted=trusted, now=NOW)
    assert visa == Visa(
        issuer=NODE,
        subject="researcher-1",
        jti=payload["jti"],
        issued_at=NOW,
        expires=NOW + timedelta(days=30),
        type=visa_type,
        asserted=NOW - timedelta(days=1),
        value=value,
        source=f"{NODE}/dacs/GCC00000001",
        by=by,
        conditions=None,
        key_id=node_keys.signer().kid,
        token=token,
        key_thumbprint=node_keys.signer().kid,  # this node's kids are RFC 7638 thumbprints
    )


def test_passport_claim_shape(node_keys: InMemoryKeyStore) -> None:
    tokens = [make_visa(node_keys), make_visa(node_keys, value=f"{NODE}/datasets/GCD00000002")]
    assert passport_claim(tokens) == {"ga4gh_passport_v1": tokens}
    with pytest.raises(InvalidInputError):
        passport_claim(["not-a-jws"])


@pytest.mark.parametrize(
    ("visa_type", "value"),
    [
        (VisaType.CONTROLLED_ACCESS_GRANTS, "GCD00000001"),
        (VisaType.CONTROLLED_ACCESS_GRANTS, "https://"),
        (VisaType.CONTROLLED_ACCESS_GRANTS, "https://node.example/data sets/1"),
        (VisaType.AFFILIATION_AND_ROLE, "faculty"),
        (VisaType.AFFILIATION_AND_ROLE, "Faculty@med.stanford.edu"),
        (VisaType.AFFILIATION_AND_ROLE, "faculty@localhost"),
        (VisaType.AFFILIATION_AND_ROLE, "nih.researcher@"),
        (VisaType.ACCEPTED_TERMS_AND_POLICIES, "urn:doi:10.1038/s41431-018-0219-y"),
        (VisaType.RESEARCHER_STATUS, "bona fide"),
        (VisaType.RESEARCHER_STATUS, "https://doi.org/" + "x" * 300),
    ],
)
def test_issue_refuses_values_that_do_not_fit_the_type(
    visa_type: VisaType, value: str, node_keys: InMemoryKeyStore
) -> None:
    with pytest.raises(InvalidInputError) as excinfo:
        make_visa(node_keys, visa_type=visa_type, value=value)
    assert excinfo.value.details["field"] == "value"
    assert excinfo.value.message_zh != excinfo.value.message


@pytest.mark.parametrize(
    ("visa_type", "value"),
    [
        (VisaType.CONTROLLED_ACCESS_GRANTS, "urn:ega:dataset:EGAD00000000432"),
        (VisaType.CONTROLLED_ACCESS_GRANTS, "https://ega-archive.org/datasets/EGAD00000000432"),
        (VisaType.AFFILIATION_AND_ROLE, "nih.researcher@med.stanford.edu"),
        (VisaType.AFFILIATION_AND_ROLE, "public.citizen-scientist@no.organization"),
        (VisaType.AFFILIATION_AND_ROLE, "student@pku.edu.cn"),
    ],
)
def test_issue_accepts_spec_examples(
    visa_type: VisaType, value: str, node_keys: InMemoryKeyStore, trusted: TrustedIssuers
) -> None:
    token = make_visa(node_keys, visa_type=visa_type, value=value)
    assert verify_visa(token, trusted=trusted, now=NOW).value == value


def test_issue_requires_by_for_grants_and_terms(node_keys: InMemoryKeyStore) -> None:
    with pytest.raises(InvalidInputError):
        make_visa(node_keys, by=None)
    make_visa(node_keys, visa_type=VisaType.RESEARCHER_STATUS, value=DOI, by=None)


def test_issue_refuses_naive_or_inconsistent_times(node_keys: InMemoryKeyStore) -> None:
    with pytest.raises(InvalidInputError):
        make_visa(node_keys, now=datetime(2026, 3, 1))  # naive
    with pytest.raises(InvalidInputError):
        make_visa(node_keys, expires=NOW - timedelta(seconds=1))


# -- forgeries -----------------------------------------------------------------------------


def test_alg_none_is_refused(trusted: TrustedIssuers, node_keys: InMemoryKeyStore) -> None:
    header = {"typ": "JWT", "alg": "none", "kid": node_keys.signer().kid}
    token = f"{encode_segment(header)}.{encode_segment(valid_payload())}."
    with pytest.raises(AccessDeniedError) as excinfo:
        verify_visa(token, trusted=trusted, now=NOW)
    assert reason(excinfo) is VisaRejection.ALG_NONE
    for variant in ("None", "NONE"):
        header["alg"] = variant
        forged = f"{encode_segment(header)}.{encode_segment(valid_payload())}."
        with pytest.raises(AccessDeniedError) as excinfo:
            verify_visa(forged, trusted=trusted, now=NOW)
        assert reason(excinfo) is VisaRejection.ALG_NONE


def test_hs256_signed_with_the_public_key_is_refused(
    trusted: TrustedIssuers, node_keys: InMemoryKeyStore, node_private_key: rsa.RSAPrivateKey
) -> None:
    """The classic key-confusion attack: HMAC keyed with the issuer's public key PEM."""
    public_pem = node_private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"typ": "JWT", "alg": "HS256", "kid": node_keys.signer().kid}
    signing_input = f"{encode_segment(header)}.{encode_segment(valid_payload())}"
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    with pytest.raises(AccessDeniedError) as excinfo:
        verify_visa(f"{signing_input}.{b64url(mac)}", trusted=trusted, now=NOW)
    assert reason(excinfo) is VisaRejection.SYMMETRIC_ALG
    assert excinfo.value.message_zh != excinfo.value.message


@pytest.mark.parametrize("alg", ["HS384", "HS512", "PS256", "RS512", "ES512", "EdDSA"])
def test_other_algorithms_are_refused(
    alg: str, trusted: TrustedIssuers, node_keys: InMemoryKeyStore
) -> None:
    header = {"typ": "JWT", "alg": alg, "kid": node_keys.signer().kid}
    token = f"{encode_segment(header)}.{encode_segment(valid_payload())}.{b64url(b'x' * 64)}"
    with pytest.raises(AccessDeniedError) as excinfo:
        verify_visa(token, trusted=trusted, now=NOW)
    expected = (
        VisaRejection.SYMMETRIC_ALG if alg.startswith("HS") else VisaRejection.UNSUPPORTED_ALG
    )
    assert reason(excinfo) is expected


def test_visa_signed_by_an_unknown_key_is_refused(trusted: TrustedIssuers) -> None:
    intruder = InMemoryKeyStore()
    token = make_visa(intruder)  # claims to be NODE, signed by another key with its own kid
    with pytest.raises(AccessDeniedError) as excinfo:
        verify_visa(token, trusted=trusted, now=NOW)
    assert reason(excinfo) is VisaRejection.UNKNOWN_KID


def test_visa_resigned_with_another_key_under_the_trusted_kid_is_refused(
    trusted: TrustedIssuers, node_keys: InMemoryKeyStore
) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    header, payload, _ = segments(make_visa(node_keys))
    with pytest.raises(AccessDeniedError) as excinfo:
        verify_visa(rs256(other, header, payload), trusted=trusted, now=NOW)
    assert reason(excinfo) is VisaRejection.BAD_SIGNATURE


def test_tampered_claims_are_refused(trusted: TrustedIssuers, node_keys: InMemoryKeyStore) -> None:
    token = make_visa(node_keys)
    header_part, _, signature = token.split(".")
    _, payload, _ = segments(token)
    payload["ga4gh_visa_v1"]["value"] = f"{NODE}/datasets/GCD99999999"
    forged = f"{header_part}.{encode_segment(payload)}.{signature}"
    with pytest.raises(AccessDeniedError) as excinfo:
        verify_visa(forged, trusted=trusted, now=NOW)
    assert reason(excinfo) is VisaRejection.BAD_SIGNATURE
    # extending the expiry is tampering too
    _, payload, _ = segments(token)
    payload["exp"] += 365 * 86400
    with pytest.raises(AccessDeniedError) as excinfo:
        verify_visa(
            f"{header_part}.{encode_segment(payload)}.{signature}", trusted=trusted, now=NOW
        )
    assert reason(excinfo) is VisaRejection.BAD_SIGNATURE


def test_expired_visa_is_refused(trusted: TrustedIssuers, node_keys: InMemoryKeyStore) -> None:
    token = make_visa(node_keys, expires=NOW + timedelta(hours=1))
    verify_visa(token, trusted=trusted, now=NOW + timedelta(hours=1, seconds=30))  # in leeway
    with pytest.raises(AccessDeniedError) as excinfo:
        verify_visa(token, trusted=trusted, now=NOW + timedelta(hours=1, seconds=61))
    assert reason(excinfo) is VisaRejection.EXPIRED
    with pytest.raises(AccessDeniedError):
        verify_visa(token, trusted=trusted, now=NOW + timedelta(hours=1), leeway=0)


def test_visa_from_the_future_is_refused(
    trusted: TrustedIssuers, node_private_key: rsa.RSAPrivateKey, node_keys: InMemoryKeyStore
) -> None:
    header = {"typ": "JWT", "alg": "RS256", "kid": node_keys.signer().kid}
    token = make_visa(node_keys, now=NOW + timedelta(minutes=10))
    with pytest.raises(AccessDeniedError) as excinfo:
        verify_visa(token, trusted=trusted, now=NOW)
    assert reason(excinfo) is VisaRejection.NOT_YET_VALID
    nbf = valid_payload(nbf=int((NOW + timedelta(hours=1)).timestamp()))
    with pytest.raises(AccessDeniedError) as excinfo:
        verify_visa(rs256(node_private_key, header, nbf), trusted=trusted, now=NOW)
    assert reason(excinfo) is VisaRejection.NOT_YET_VALID


def test_untrusted_issuer_is_refused(node_keys: InMemoryKeyStore) -> None:
    token = make_visa(node_keys, issuer="https://rogue.example")
    with pytest.raises(AccessDeniedError) as excinfo:
        verify_visa(token, trusted=TrustedIssuers({NODE: node_keys.jwks()}), now=NOW)
    assert reason(excinfo) is VisaRejection.UNTRUSTED_ISSUER
    # the same key trusted for another issuer does not make it trusted for this one
    with pytest.raises(AccessDeniedError) as excinfo:
        verify_visa(token, trusted=TrustedIssuers({}), now=NOW)
    assert reason(excinfo) is VisaRejection.UNTRUSTED_ISSUER


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda p: p.pop("ga4gh_visa_v1"), VisaRejection.NOT_A_VISA),
        (lambda p: p.update(ga4gh_visa_v1="yes"), VisaRejection.NOT_A_VISA),
        (lambda p: p["ga4gh_visa_v1"].update(type="LinkedIdentities"), VisaRejection.UNKNOWN_TYPE),
        (
            lambda p: p["ga4gh_visa_v1"].update(type="controlledaccessgrants"),
            VisaRejection.UNKNOWN_TYPE,
        ),
        (lambda p: p["ga4gh_visa_v1"].update(value="GCD00000001"), VisaRejection.BAD_VALUE),
        (lambda p: p["ga4gh_visa_v1"].update(value=42), VisaRejection.BAD_VALUE),
        (lambda p: p["ga4gh_visa_v1"].pop("by"), VisaRejection.BAD_VISA),
        (lambda p: p["ga4gh_visa_v1"].update(by="boss"), VisaRejection.BAD_VISA),
        (lambda p: p["ga4gh_visa_v1"].update(source="GCC1"), VisaRejection.BAD_VISA),
        (lambda p: p["ga4gh_visa_v1"].update(asserted="yesterday"), VisaRejection.BAD_VISA),
        (lambda p: p["ga4gh_visa_v1"].update(conditions=[]), VisaRejection.BAD_VISA),
        (
            lambda p: p["ga4gh_visa_v1"].update(conditions=[[{"value": "const:x"}]]),
            VisaRejection.BAD_VISA,
        ),
        (lambda p: p.pop("sub"), VisaRejection.MALFORMED),
        (lambda p: p.pop("jti"), VisaRejection.MALFORMED),
        (lambda p: p.pop("exp"), VisaRejection.MALFORMED),
        (lambda p: p.update(iat=True), VisaRejection.MALFORMED),
    ],
)
def test_signed_but_invalid_claims_are_refused(
    change: Callable[[dict[str, Any]], object],
    expected: VisaRejection,
    trusted: TrustedIssuers,
    node_private_key: rsa.RSAPrivateKey,
    node_keys: InMemoryKeyStore,
) -> None:
    payload = valid_payload()
    change(payload)
    header = {"typ": "JWT", "alg": "RS256", "kid": node_keys.signer().kid}
    with pytest.raises(AccessDeniedError) as excinfo:
        verify_visa(rs256(node_private_key, header, payload), trusted=trusted, now=NOW)
    assert reason(excinfo) is expected


@pytest.mark.parametrize(
    "extra_header",
    [{"crit": ["exp"]}, {"b64": False, "crit": ["b64"]}, {"typ": "at+jwt"}],
)
def test_unsupported_headers_are_refused(
    extra_header: dict[str, Any],
    trusted: TrustedIssuers,
    node_private_key: rsa.RSAPrivateKey,
    node_keys: InMemoryKeyStore,
) -> None:
    header = {"typ": "JWT", "alg": "RS256", "kid": node_keys.signer().kid, **extra_header}
    with pytest.raises(AccessDeniedError) as excinfo:
        verify_visa(rs256(node_private_key, header, valid_payload()), trusted=trusted, now=NOW)
    assert reason(excinfo) is VisaRejection.MALFORMED


@pytest.mark.parametrize(
    "token", ["", "abc", "a.b", "a.b.c.d", "!!.!!.!!", "e30.e30.", "W10.e30.", "x" * 20000]
)
def test_garbage_is_refused_as_malformed(token: str, trusted: TrustedIssuers) -> None:
    with pytest.raises(AccessDeniedError) as excinfo:
        verify_visa(token, trusted=trusted, now=NOW)
    assert reason(excinfo) in {VisaRejection.MALFORMED, VisaRejection.ALG_NONE}


def test_duplicate_claims_are_refused(
    trusted: TrustedIssuers, node_private_key: rsa.RSAPrivateKey, node_keys: InMemoryKeyStore
) -> None:
    header = encode_segment({"typ": "JWT", "alg": "RS256", "kid": node_keys.signer().kid})
    body = json.dumps(valid_payload(), separators=(",", ":"))
    doubled = b64url(body[:-1].encode() + b',"iss":"https://rogue.example"}')
    signing_input = f"{header}.{doubled}"
    signature = node_private_key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    with pytest.raises(AccessDeniedError) as excinfo:
        verify_visa(f"{signing_input}.{b64url(signature)}", trusted=trusted, now=NOW)
    assert reason(excinfo) is VisaRejection.MALFORMED


# -- rotation and federation ---------------------------------------------------------------


def test_rotation_keeps_old_visas_verifiable_until_the_key_is_removed(tmp_path: Path) -> None:
    keys = _initialised(FileKeyStore(tmp_path / "keys"))
    old_token = make_visa(keys)
    old_kid = keys.signer().kid
    keys.rotate()
    new_token = make_visa(keys)
    trusted = TrustedIssuers({NODE: keys.jwks()})
    assert verify_visa(old_token, trusted=trusted, now=NOW).key_id == old_kid
    assert verify_visa(new_token, trusted=trusted, now=NOW).key_id == keys.signer().kid
    keys.remove(old_kid)
    trusted = TrustedIssuers({NODE: keys.jwks()})
    with pytest.raises(AccessDeniedError) as excinfo:
        verify_visa(old_token, trusted=trusted, now=NOW)
    assert reason(excinfo) is VisaRejection.UNKNOWN_KID
    verify_visa(new_token, trusted=trusted, now=NOW)


def test_another_nodes_visa_verifies_when_its_jwks_is_trusted(node_keys: InMemoryKeyStore) -> None:
    other_keys = InMemoryKeyStore()
    foreign = make_visa(other_keys, issuer=OTHER_NODE, value=f"{OTHER_NODE}/datasets/GCD00000007")
    alone = TrustedIssuers({NODE: node_keys.jwks()})
    with pytest.raises(AccessDeniedError):
        verify_visa(foreign, trusted=alone, now=NOW)
    federated = TrustedIssuers({NODE: node_keys.jwks(), OTHER_NODE: other_keys.jwks()})
    visa = verify_visa(foreign, trusted=federated, now=NOW)
    assert visa.issuer == OTHER_NODE and visa.value == f"{OTHER_NODE}/datasets/GCD00000007"
    # node B's key cannot speak for node A
    impostor = make_visa(other_keys, issuer=NODE)
    with pytest.raises(AccessDeniedError) as excinfo:
        verify_visa(impostor, trusted=federated, now=NOW)
    assert reason(excinfo) is VisaRejection.UNKNOWN_KID


def _es256_jwks() -> tuple[ec.EllipticCurvePrivateKey, dict[str, Any]]:
    private = ec.generate_private_key(ec.SECP256R1())
    jwk = dict(ECKey.import_key(private.public_key()).as_dict())
    jwk["kid"] = jwk_thumbprint(jwk)
    return private, {"keys": [jwk]}


def test_es256_visa_from_a_trusted_issuer_is_accepted() -> None:
    private, jwks = _es256_jwks()
    kid = jwks["keys"][0]["kid"]
    token = jwt.encode(
        {"alg": "ES256", "kid": kid}, valid_payload(iss=OTHER_NODE), ECKey.import_key(private)
    )
    trusted = TrustedIssuers({OTHER_NODE: jwks})
    visa = verify_visa(token, trusted=trusted, now=NOW)
    assert visa.key_id == kid and visa.key_thumbprint == kid  # the JWK's RFC 7638 thumbprint
    # whatever kid the JWKS gives the key, the thumbprint names the key itself
    renamed = TrustedIssuers({OTHER_NODE: {"keys": [{**jwks["keys"][0], "kid": "k1"}]}})
    retagged = jwt.encode(
        {"alg": "ES256", "kid": "k1"}, valid_payload(iss=OTHER_NODE), ECKey.import_key(private)
    )
    assert verify_visa(retagged, trusted=renamed, now=NOW).key_thumbprint == kid
    # the same key under an RS256 header is an algorithm mismatch
    header, payload, signature = token.split(".")
    swapped = encode_segment({**decode_segment(header), "alg": "RS256"})
    with pytest.raises(AccessDeniedError) as excinfo:
        verify_visa(f"{swapped}.{payload}.{signature}", trusted=trusted, now=NOW)
    assert reason(excinfo) is VisaRejection.UNSUPPORTED_ALG


@pytest.mark.parametrize(
    "jwks",
    [
        {"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "shared"}]},
        {"keys": "none"},
        {},
    ],
)
def test_trusted_issuers_refuse_unsafe_jwks(jwks: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        TrustedIssuers({OTHER_NODE: jwks})


def test_trusted_issuers_refuse_private_keys_and_weak_rsa() -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    leaked = dict(RSAKey.import_key(private).as_dict(private=True))
    leaked["kid"] = "leaked"
    with pytest.raises(ConfigurationError):
        TrustedIssuers({OTHER_NODE: {"keys": [leaked]}})
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - the point
    jwk = public_jwk(weak.public_key())  # joserfc would only warn about its size
    jwk["kid"] = "weak"
    with pytest.raises(ConfigurationError):
        TrustedIssuers({OTHER_NODE: {"keys": [jwk]}})


# -- passports, conditions, datasets -------------------------------------------------------


def test_verify_passport_keeps_good_visas_and_reports_bad_ones(
    node_keys: InMemoryKeyStore, trusted: TrustedIssuers
) -> None:
    good = make_visa(node_keys)
    expired = make_visa(node_keys, expires=NOW + timedelta(minutes=5))
    rogue = make_visa(InMemoryKeyStore(), issuer="https://rogue.example")
    passport = {"ga4gh_passport_v1": [good, expired, rogue, "junk"]}
    visas, rejected = verify_passport(passport, trusted=trusted, now=NOW + timedelta(hours=1))
    assert [visa.token for visa in visas] == [good]
    assert [(r.index, r.reason) for r in rejected] == [
        (1, VisaRejection.EXPIRED),
        (2, VisaRejection.UNTRUSTED_ISSUER),
        (3, VisaRejection.MALFORMED),
    ]
    assert all(r.message and r.message_zh and r.message != r.message_zh for r in rejected)
    with pytest.raises(AccessDeniedError):
        verify_passport({"sub": "x"}, trusted=trusted, now=NOW)


AFFILIATION_CONDITION = [
    [
        {
            "type": "AffiliationAndRole",
            "value": "const:faculty@med.stanford.edu",
            "by": "const:so",
        }
    ],
    [{"type": "AffiliationAndRole", "value": "pattern:*@pku.edu.?n"}],
]


def test_conditions_are_met_only_by_a_matching_visa_of_the_same_identity(
    node_keys: InMemoryKeyStore, trusted: TrustedIssuers
) -> None:
    grant = make_visa(node_keys, conditions=AFFILIATION_CONDITION)
    faculty = make_visa(
        node_keys,
        visa_type=VisaType.AFFILIATION_AND_ROLE,
        value="faculty@med.stanford.edu",
        by=VisaBy.SO,
    )
    student = make_visa(
        node_keys, visa_type=VisaType.AFFILIATION_AND_ROLE, value="student@pku.edu.cn", by=None
    )
    faculty_by_self = make_visa(
        node_keys,
        visa_type=VisaType.AFFILIATION_AND_ROLE,
        value="faculty@med.stanford.edu",
        by=VisaBy.SELF,
    )
    someone_else = make_visa(
        node_keys,
        subject="researcher-2",
        visa_type=VisaType.AFFILIATION_AND_ROLE,
        value="faculty@med.stanford.edu",
        by=VisaBy.SO,
    )

    def accepted(*tokens: str) -> set[str]:
        visas, _ = verify_passport(passport_claim(list(tokens)), trusted=trusted, now=NOW)
        return controlled_access_datasets(visas, now=NOW)

    assert accepted(grant, faculty) == {DATASET}
    assert accepted(grant, student) == {DATASET}
    assert accepted(grant) == set()
    assert accepted(grant, faculty_by_self) == set()
    assert accepted(grant, someone_else) == set()
    visas, rejected = verify_passport(passport_claim([grant]), trusted=trusted, now=NOW)
    assert visas == [] and [r.reason for r in rejected] == [VisaRejection.CONDITIONS_NOT_MET]


def test_controlled_access_datasets_uses_only_grants_in_force(
    node_keys: InMemoryKeyStore, trusted: TrustedIssuers
) -> None:
    second = f"{NODE}/datasets/GCD00000002"
    tokens = [
        make_visa(node_keys),
        make_visa(node_keys, value=second, expires=NOW + timedelta(days=1)),
        make_visa(node_keys, visa_type=VisaType.RESEARCHER_STATUS, value=DOI, by=VisaBy.SO),
    ]
    visas = [verify_visa(token, trusted=trusted, now=NOW) for token in tokens]
    assert controlled_access_datasets(visas, now=NOW) == {DATASET, second}
    assert controlled_access_datasets(visas, now=NOW + timedelta(days=2)) == {DATASET}
    conditional = verify_visa(
        make_visa(node_keys, conditions=AFFILIATION_CONDITION), trusted=trusted, now=NOW
    )
    assert not conditions_met(conditional, visas, now=NOW)
    assert controlled_access_datasets([conditional], now=NOW) == set()


# -- property: any one-byte change breaks the token ----------------------------------------


@pytest.fixture(scope="module")
def signed() -> tuple[str, TrustedIssuers]:
    keys = InMemoryKeyStore()
    token = make_visa(keys, conditions=AFFILIATION_CONDITION)
    return token, TrustedIssuers({NODE: keys.jwks()})


ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/! "


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_any_single_byte_change_breaks_verification(
    signed: tuple[str, TrustedIssuers], data: st.DataObject
) -> None:
    token, trusted = signed
    verify_visa(token, trusted=trusted, now=NOW)
    header_end = token.index(".")
    position = data.draw(st.integers(min_value=header_end + 1, max_value=len(token) - 1))
    replacement = data.draw(st.sampled_from(ALPHABET).filter(lambda c: c != token[position]))
    forged = token[:position] + replacement + token[position + 1 :]
    with pytest.raises(AccessDeniedError):
        verify_visa(forged, trusted=trusted, now=NOW)
