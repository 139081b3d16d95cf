"""GA4GH Passports: issuing visas on approval, and verifying visas from trusted issuers.

A visa is a JWS-signed JWT (GA4GH Passport v1 "Passport Visa", an AAI Embedded Document Token):

    header  {"typ": "JWT", "alg": "RS256", "kid": <thumbprint>, "jku": <issuer>/.well-known/jwks.json}
    payload {"iss", "sub", "iat", "exp", "jti",
             "ga4gh_visa_v1": {"type", "asserted", "value", "source", ["by"], ["conditions"]}}

This node signs with RS256 (keys from `genecommons.access.keys`). It accepts RS256 and ES256 from
the issuers configured in `TrustedIssuers`, whose JWKS is given to it: the `jku` header is never
fetched (an attacker chooses it), and `none` and the symmetric HS* algorithms are always refused.
The passport is `{"ga4gh_passport_v1": [visa, ...]}` as the userinfo endpoint returns it.

Pure functions over a key store and a clock value; no web, database or network.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeGuard
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc import jwk, jws
from joserfc.errors import BadSignatureError, JoseError

from genecommons import bounded
from genecommons.access.keys import KeyStore, b64url, jwk_thumbprint, public_jwk
from genecommons.errors import (
    AccessDeniedError,
    ConfigurationError,
    InvalidInputError,
    NestingTooDeepError,
)

PASSPORT_CLAIM = "ga4gh_passport_v1"
VISA_CLAIM = "ga4gh_visa_v1"
ACCEPTED_ALGORITHMS = frozenset({"RS256", "ES256"})
MAX_TOKEN_LENGTH = 16 * 1024
MAX_VISAS = 500
MAX_URL_LENGTH = 255
MIN_RSA_BITS = 2048
NO_ORGANIZATION = "https://no.organization"
_PRIVATE_JWK_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_CONDITION_FIELDS = ("value", "source", "by")
_B64URL_RE = re.compile(r"^[A-Za-z0-9_-]*$")
_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*$")
_ROLE_RE = re.compile(r"^(faculty|student|member|[a-z][a-z0-9_-]*\.[a-z][a-z0-9_-]*)$")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN_RE = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})+$")


class VisaType(StrEnum):
    """The GA4GH standard visa types this node issues and accepts."""

    CONTROLLED_ACCESS_GRANTS = "ControlledAccessGrants"
    AFFILIATION_AND_ROLE = "AffiliationAndRole"
    ACCEPTED_TERMS_AND_POLICIES = "AcceptedTermsAndPolicies"
    RESEARCHER_STATUS = "ResearcherStatus"


class VisaBy(StrEnum):
    """Who in the `source` organisation made the assertion (the visa's `by` field)."""

    SELF = "self"
    PEER = "peer"
    SYSTEM = "system"
    SO = "so"
    DAC = "dac"


# the passport spec says these two types MUST carry "by"
_BY_REQUIRED = frozenset({VisaType.CONTROLLED_ACCESS_GRANTS, VisaType.ACCEPTED_TERMS_AND_POLICIES})


class VisaRejection(StrEnum):
    """Why a visa was refused; `AccessDeniedError.details["reason"]` holds one of these."""

    MALFORMED = "malformed"  # not a compact JWS of JSON objects, or a standard claim is wrong
    ALG_NONE = "alg_none"  # unsigned token
    SYMMETRIC_ALG = "symmetric_alg"  # HS256/384/512: a shared secret cannot prove the issuer
    UNSUPPORTED_ALG = "unsupported_alg"  # any other algorithm, or one that does not fit the key
    UNTRUSTED_ISSUER = "untrusted_issuer"
    UNKNOWN_KID = "unknown_kid"  # the issuer publishes no key of that id
    BAD_SIGNATURE = "bad_signature"  # wrong key, or header/payload changed after signing
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    NOT_A_VISA = "not_a_visa"  # no ga4gh_visa_v1 object
    UNKNOWN_TYPE = "unknown_type"
    BAD_VALUE = "bad_value"  # value does not fit the type
    BAD_VISA = "bad_visa"  # asserted, source, by or conditions malformed
    CONDITIONS_NOT_MET = "conditions_not_met"


@dataclass(frozen=True, slots=True)
class ConditionClause:
    """One clause of a visa's `conditions`: another visa of `type` whose fields match."""

    type: str
    fields: tuple[tuple[str, str], ...]  # (field name, "<const|pattern|split_pattern>:<text>")

    def to_json(self) -> dict[str, str]:
        """The clause as it is written in a visa."""
        return {"type": self.type, **dict(self.fields)}


@dataclass(frozen=True, slots=True)
class Visa:
    """The verified claims of one visa (times are aware UTC datetimes)."""

    issuer: str
    subject: str
    jti: str
    issued_at: datetime
    expires: datetime
    type: VisaType
    asserted: datetime
    value: str
    source: str
    by: VisaBy | None
    # disjunctive normal form: any inner tuple whose clauses all match; None when unconditional
    conditions: tuple[tuple[ConditionClause, ...], ...] | None
    key_id: str
    token: str = field(repr=False)
    # the RFC 7638 thumbprint of the public key that verified the signature (whatever kid the
    # issuer's JWKS gives it): who really signed, whichever issuer the visa names
    key_thumbprint: str = ""

    @property
    def identity(self) -> tuple[str, str]:
        """The Passport Visa Identity: the (iss, sub) pair."""
        return (self.issuer, self.subject)

    def valid_at(self, now: datetime) -> bool:
        """Whether the visa is in force at `now` (issued and not expired)."""
        return self.issued_at <= now < self.expires


@dataclass(frozen=True, slots=True)
class RejectedVisa:
    """A visa of a passport that was not accepted, and why (in English and Chinese)."""

    index: int
    reason: VisaRejection
    message: str
    message_zh: str


@dataclass(frozen=True, slots=True)
class _TrustedKey:
    kid: str
    algorithm: str
    key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey = field(repr=False)
    verifier: jwk.Key = field(repr=False)  # the same key, as joserfc verifies with it
    thumbprint: str = ""


class TrustedIssuers:
    """The visa issuers this node believes, each with its JWKS (as served at its jwks_uri).

    Give this node's own issuer URL and `KeyStore.jwks()` too, so that its own visas verify;
    rebuild after a rotation. Only public RSA (>= 2048 bits, RS256) and EC P-256 (ES256)
    signing keys are taken; a JWKS holding private or symmetric key material is refused.
    """

    def __init__(self, jwks_by_issuer: Mapping[str, Mapping[str, Any]]) -> None:
        self._keys: dict[str, dict[str, _TrustedKey]] = {
            issuer: _parse_jwks(issuer, jwks) for issuer, jwks in jwks_by_issuer.items()
        }

    @property
    def issuers(self) -> frozenset[str]:
        """The trusted issuer URLs."""
        return frozenset(self._keys)

    def _key(self, issuer: str, kid: str) -> _TrustedKey | None:
        return self._keys.get(issuer, {}).get(kid)


def _parse_jwks(issuer: str, jwks: Mapping[str, Any]) -> dict[str, _TrustedKey]:
    def bad(problem: str, problem_zh: str) -> ConfigurationError:
        return ConfigurationError(
            f"The JWKS configured for trusted issuer {issuer} {problem}; "
            "configure the issuer's published public JWKS.",
            message_zh=f"为受信任签发方 {issuer} 配置的 JWKS {problem_zh}；请配置该签发方公开发布的公钥 JWKS。",
        )

    entries = jwks.get("keys")
    if not _is_url(issuer, schemes=("https", "http")):
        raise bad("is for an issuer that is not an http(s) URL", "对应的签发方不是 http(s) URL")
    if not isinstance(entries, list):
        raise bad('has no "keys" list', '缺少 "keys" 列表')
    keys: dict[str, _TrustedKey] = {}
    for entry in entries:
        if not isinstance(entry, Mapping):
            raise bad("holds an entry that is not an object", "包含非对象条目")
        if _PRIVATE_JWK_MEMBERS & set(entry):
            raise bad(
                "holds private or symmetric key material (remove it: it must stay secret)",
                "包含私钥或对称密钥材料（请删除：这些必须保密）",
            )
        if entry.get("use", "sig") != "sig":
            continue  # an encryption key: not for verifying signatures
        kid = entry.get("kid")
        if not isinstance(kid, str) or not kid:
            raise bad("holds a key without a kid", "包含没有 kid 的密钥")
        if kid in keys:
            raise bad(f"holds kid {kid!r} twice", f"重复包含 kid {kid!r}")
        trusted = _trusted_key(entry, kid)
        if trusted is None:
            raise bad(
                f"holds key {kid!r}, which is neither RSA >= 2048 bits for RS256 nor EC P-256 "
                "for ES256",
                f"包含密钥 {kid!r}，它既不是用于 RS256 的 ≥2048 位 RSA 密钥，也不是用于 ES256 的 EC P-256 密钥",
            )
        keys[kid] = trusted
    return keys


def _trusted_key(entry: Mapping[str, Any], kid: str) -> _TrustedKey | None:
    if entry.get("kty") == "RSA" and _modulus_bits(entry.get("n")) < MIN_RSA_BITS:
        return None  # refused before joserfc sees it (it would only warn)
    try:
        parsed = jwk.import_key(dict(entry))
    except (JoseError, ValueError, TypeError, KeyError):
        return None
    key = parsed.raw_value
    if isinstance(key, rsa.RSAPublicKey) and key.key_size >= MIN_RSA_BITS:
        algorithm = "RS256"
    elif isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        algorithm = "ES256"
    else:
        return None
    if entry.get("alg", algorithm) != algorithm:
        return None
    return _TrustedKey(
        kid=kid, algorithm=algorithm, key=key, verifier=parsed, thumbprint=key_thumbprint(key)
    )


def _modulus_bits(encoded: object) -> int:
    """The size of an RSA JWK's modulus `n` (base64url), 0 when it is not one."""
    if not isinstance(encoded, str) or not _B64URL_RE.match(encoded):
        return 0
    try:
        modulus = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    except ValueError:
        return 0
    return int.from_bytes(modulus, "big").bit_length()


def key_thumbprint(key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey) -> str:
    """The RFC 7638 thumbprint of a public signing key, from its numbers (not from how a JWKS
    happened to encode them)."""
    if isinstance(key, rsa.RSAPublicKey):
        return public_jwk(key)["kid"]
    numbers = key.public_numbers()
    size = (key.curve.key_size + 7) // 8
    return jwk_thumbprint(
        {
            "kty": "EC",
            "crv": "P-256",
            "x": b64url(numbers.x.to_bytes(size, "big")),
            "y": b64url(numbers.y.to_bytes(size, "big")),
        }
    )


# -- issuing -------------------------------------------------------------------------------


def issue_visa(
    *,
    keys: KeyStore,
    issuer: str,
    subject: str,
    visa_type: VisaType,
    value: str,
    source: str,
    by: VisaBy | None,
    asserted: datetime,
    expires: datetime,
    conditions: Sequence[Sequence[Mapping[str, str]]] | None = None,
    now: datetime,
    jwks_url: str | None = None,
) -> str:
    """A visa signed with the key store's current key (RS256), as a compact JWS string.

    `issuer` is this node's issuer URL; `jwks_url` (the `jku` header) defaults to
    `<issuer>/.well-known/jwks.json`. Raises InvalidInputError if a field breaks the passport
    spec: the value must fit the type, ControlledAccessGrants and AcceptedTermsAndPolicies need
    `by`, times must be aware, `asserted <= now < expires`.
    """
    for name, moment in (("asserted", asserted), ("expires", expires), ("now", now)):
        _require_aware(name, moment)
    visa_type = VisaType(visa_type)
    by = VisaBy(by) if by is not None else None
    if not _is_url(issuer, schemes=("https", "http")):
        raise _invalid("issuer", issuer, "an http(s) URL", "http(s) URL")
    if not subject or len(subject) > MAX_URL_LENGTH:
        raise _invalid("subject", subject, "1 to 255 characters", "1 至 255 个字符")
    if not _is_url(source, schemes=("https", "http")):
        raise _invalid(
            "source",
            source,
            f"an http(s) URL of the organisation ({NO_ORGANIZATION} if none)",
            f"机构的 http(s) URL（若无机构则为 {NO_ORGANIZATION}）",
        )
    problem = _value_problem(visa_type, value)
    if problem is not None:
        raise _invalid("value", value, *problem)
    if by is None and visa_type in _BY_REQUIRED:
        raise _invalid("by", None, "given for this visa type", "对此类型的签证必须提供")
    if not asserted <= now < expires:
        raise InvalidInputError(
            "A visa needs asserted <= now < expires; "
            f"got asserted {asserted.isoformat()}, now {now.isoformat()}, expires {expires.isoformat()}.",
            message_zh="签证要求 asserted ≤ now < expires；"
            f"实际为 asserted {asserted.isoformat()}，now {now.isoformat()}，expires {expires.isoformat()}。",
        )
    visa_object: dict[str, Any] = {
        "type": visa_type.value,
        "asserted": _epoch(asserted),
        "value": value,
        "source": source,
    }
    if by is not None:
        visa_object["by"] = by.value
    if conditions is not None:
        parsed = _parse_conditions(conditions)
        if parsed is None:
            raise _invalid(
                "conditions",
                conditions,
                "a non-empty list of non-empty lists of clauses, each with a type and at least one "
                "of value/source/by as '<const|pattern|split_pattern>:<text>'",
                "由非空子句列表组成的非空列表，每个子句含 type 以及至少一个 value/source/by，"
                "格式为 '<const|pattern|split_pattern>:<文本>'",
            )
        visa_object["conditions"] = [[clause.to_json() for clause in group] for group in parsed]
    signer = keys.signer()
    header = {
        "typ": "JWT",
        "alg": signer.algorithm,
        "kid": signer.kid,
        "jku": jwks_url or f"{issuer.rstrip('/')}/.well-known/jwks.json",
    }
    payload = {
        "iss": issuer,
        "sub": subject,
        "iat": _epoch(now),
        "exp": _epoch(expires),
        "jti": secrets.token_urlsafe(16),
        VISA_CLAIM: visa_object,
    }
    signing_input = f"{_b64json(header)}.{_b64json(payload)}"
    signature = signer.sign(signing_input.encode("ascii"))
    return f"{signing_input}.{b64url(signature)}"


def passport_claim(visas: Sequence[str]) -> dict[str, list[str]]:
    """The userinfo claim carrying `visas`: {"ga4gh_passport_v1": [...]}."""
    for visa in visas:
        if not isinstance(visa, str) or visa.count(".") != 2:
            raise InvalidInputError(
                "A passport holds visas as compact JWS strings (header.payload.signature).",
                message_zh="护照中的签证必须是紧凑 JWS 字符串（header.payload.signature）。",
            )
    return {PASSPORT_CLAIM: list(visas)}


# -- verifying -----------------------------------------------------------------------------


def verify_visa(token: str, *, trusted: TrustedIssuers, now: datetime, leeway: float = 60) -> Visa:
    """The verified claims of `token`, or AccessDeniedError saying why it is refused.

    `details["reason"]` is a `VisaRejection`. Checks, in order: form; algorithm (RS256/ES256
    only); issuer trusted; kid known; signature; standard claims and times (with `leeway`
    seconds of clock skew); the ga4gh_visa_v1 object. Conditions are not evaluated here, since
    they refer to other visas: use `verify_passport` or `conditions_met`.
    """
    _require_aware("now", now)
    header, payload = _decode_unverified(token)
    algorithm = header.get("alg")
    if not isinstance(algorithm, str) or algorithm.lower() == "none":
        raise _denied(
            VisaRejection.ALG_NONE,
            "The visa is not signed (alg none); only RS256 and ES256 visas are accepted.",
            "签证未签名（alg 为 none）；仅接受 RS256 和 ES256 签名的签证。",
        )
    if algorithm.upper().startswith("HS"):
        raise _denied(
            VisaRejection.SYMMETRIC_ALG,
            f"The visa is signed with the symmetric algorithm {algorithm}, which cannot prove "
            "who issued it; only RS256 and ES256 visas are accepted.",
            f"签证使用对称算法 {algorithm} 签名，无法证明签发方；仅接受 RS256 和 ES256 签名的签证。",
        )
    if algorithm not in ACCEPTED_ALGORITHMS:
        raise _denied(
            VisaRejection.UNSUPPORTED_ALG,
            f"The visa's algorithm {algorithm!r} is not accepted; only RS256 and ES256 are.",
            f"不接受签证的算法 {algorithm!r}；仅接受 RS256 和 ES256。",
        )
    if "crit" in header or "b64" in header:
        raise _malformed(
            "the header carries critical extensions, which are not supported",
            "头部含有不支持的关键扩展（crit）",
        )
    if str(header.get("typ", "JWT")).upper() != "JWT":
        raise _malformed(
            f"the header typ is {header.get('typ')!r}, not JWT",
            f"头部 typ 为 {header.get('typ')!r}，而不是 JWT",
        )
    issuer = payload.get("iss")
    if not isinstance(issuer, str) or issuer not in trusted.issuers:
        raise _denied(
            VisaRejection.UNTRUSTED_ISSUER,
            f"The visa's issuer {issuer!r} is not trusted by this node; ask the node operator to "
            "add the issuer and its JWKS to the trusted issuers.",
            f"本节点不信任签证的签发方 {issuer!r}；请联系节点管理员将该签发方及其 JWKS 加入受信任签发方。",
        )
    kid = header.get("kid")
    key = trusted._key(issuer, kid) if isinstance(kid, str) else None
    if key is None:
        raise _denied(
            VisaRejection.UNKNOWN_KID,
            f"The issuer {issuer} publishes no key with kid {kid!r}; the key may have been "
            "retired: ask for a new visa.",
            f"签发方 {issuer} 未发布 kid 为 {kid!r} 的密钥；该密钥可能已停用，请重新申请签证。",
            issuer=issuer,
        )
    if key.algorithm != algorithm:
        raise _denied(
            VisaRejection.UNSUPPORTED_ALG,
            f"The visa says {algorithm} but key {kid} is for {key.algorithm}.",
            f"签证声明的算法为 {algorithm}，但密钥 {kid} 用于 {key.algorithm}。",
            issuer=issuer,
        )
    # unknown header members are allowed, as RFC 7515 says they are to be ignored
    registry = jws.JWSRegistry(algorithms=[key.algorithm], strict_check_header=False)
    try:
        jws.deserialize_compact(token, key.verifier, algorithms=[key.algorithm], registry=registry)
    except BadSignatureError:
        raise _denied(
            VisaRejection.BAD_SIGNATURE,
            f"The visa's signature does not verify with {issuer}'s key {kid}: it was signed by "
            "another key or changed after signing.",
            f"签证签名无法用 {issuer} 的密钥 {kid} 验证：它由其他密钥签名，或签名后被篡改。",
            issuer=issuer,
        ) from None
    except (JoseError, ValueError, TypeError) as error:
        raise _malformed(str(error), f"无法解析（{error}）") from None
    visa = _visa_from_claims(payload, token=token, kid=key.kid, now=now, leeway=leeway)
    return replace(visa, key_thumbprint=key.thumbprint)


def verify_passport(
    passport: Mapping[str, Any],
    *,
    trusted: TrustedIssuers,
    now: datetime,
    leeway: float = 60,
) -> tuple[list[Visa], list[RejectedVisa]]:
    """The accepted visas of a userinfo `passport`, and the refused ones with reasons.

    A visa with conditions is accepted only if they are met by other accepted, unconditional
    visas of the same identity (LinkedIdentities are not followed). Raises AccessDeniedError
    (reason malformed) if `passport` has no ga4gh_passport_v1 list.
    """
    tokens = passport.get(PASSPORT_CLAIM)
    if not isinstance(tokens, list) or len(tokens) > MAX_VISAS:
        raise _malformed(
            f"the passport has no {PASSPORT_CLAIM} list of at most {MAX_VISAS} visas",
            f"护照中没有最多含 {MAX_VISAS} 个签证的 {PASSPORT_CLAIM} 列表",
        )
    accepted: list[tuple[int, Visa]] = []
    rejected: list[RejectedVisa] = []
    for index, token in enumerate(tokens):
        try:
            if not isinstance(token, str):
                raise _malformed("a visa is not a string", "签证不是字符串")
            accepted.append((index, verify_visa(token, trusted=trusted, now=now, leeway=leeway)))
        except AccessDeniedError as error:
            rejected.append(_rejection(index, error))
    pool = [visa for _, visa in accepted]
    good: list[Visa] = []
    for index, visa in accepted:
        if visa.conditions is None or conditions_met(visa, pool, now=now):
            good.append(visa)
        else:
            rejected.append(
                RejectedVisa(
                    index=index,
                    reason=VisaRejection.CONDITIONS_NOT_MET,
                    message=f"The {visa.type} visa for {visa.value} has conditions that no other "
                    "valid visa of the same identity meets.",
                    message_zh=f"{visa.value} 的 {visa.type} 签证附有条件，但同一身份的其他有效签证均不满足这些条件。",
                )
            )
    rejected.sort(key=lambda r: r.index)
    return good, rejected


def passport_of_tokens(tokens: Sequence[object]) -> dict[str, list[object]]:
    """The passport `{"ga4gh_passport_v1": [...]}` of passports sent as JWTs (DRS's
    PassportAuth, a `passports` list in a request body): a passport JWT gives the visas it
    carries, any other token is taken as a visa. Only visas are trusted, each one verified by
    `verify_passport`; the envelope's own signature would add nothing they do not say."""
    visas: list[object] = []
    for token in tokens:
        try:
            _, payload = _decode_unverified(token)
        except AccessDeniedError:
            visas.append(token)  # refused by verify_passport, as a visa
            continue
        carried = payload.get(PASSPORT_CLAIM)
        if isinstance(carried, list) and VISA_CLAIM not in payload:
            visas.extend(carried)
        else:
            visas.append(token)
    return {PASSPORT_CLAIM: visas}


def conditions_met(visa: Visa, visas: Iterable[Visa], *, now: datetime) -> bool:
    """Whether `visa`'s conditions are met by `visas` (true when it has none).

    Only unconditional visas of the same (iss, sub) that are in force at `now` can meet a clause;
    every clause of one inner list must be met (each by some visa), and one inner list suffices.
    """
    if visa.conditions is None:
        return True
    candidates = [
        other
        for other in visas
        if other.conditions is None and other.identity == visa.identity and other.valid_at(now)
    ]
    return any(
        all(any(_clause_matches(clause, other) for other in candidates) for clause in group)
        for group in visa.conditions
    )


def controlled_access_datasets(visas: Iterable[Visa], *, now: datetime) -> set[str]:
    """The dataset URIs of the ControlledAccessGrants visas in force at `now` whose conditions
    (if any) are met by the other visas given."""
    pool = list(visas)
    return {
        visa.value
        for visa in pool
        if visa.type is VisaType.CONTROLLED_ACCESS_GRANTS
        and visa.valid_at(now)
        and conditions_met(visa, pool, now=now)
    }


# -- helpers -------------------------------------------------------------------------------


def _visa_from_claims(
    payload: Mapping[str, Any], *, token: str, kid: str, now: datetime, leeway: float
) -> Visa:
    subject, jti = payload.get("sub"), payload.get("jti")
    if not isinstance(subject, str) or not subject:
        raise _malformed("the sub claim is missing", "缺少 sub 声明")
    if not isinstance(jti, str) or not jti:
        raise _malformed("the jti claim is missing", "缺少 jti 声明")
    issued_at = _time_claim(payload, "iat", required=True)
    expires = _time_claim(payload, "exp", required=True)
    not_before = _time_claim(payload, "nbf", required=False)
    assert issued_at is not None and expires is not None
    if expires <= issued_at:
        raise _malformed("exp is not after iat", "exp 不晚于 iat")
    skew = float(leeway)
    if expires.timestamp() <= now.timestamp() - skew:
        raise _denied(
            VisaRejection.EXPIRED,
            f"The visa expired at {expires.isoformat()}; ask its issuer for a new one.",
            f"签证已于 {expires.isoformat()} 过期；请向签发方申请新的签证。",
        )
    starts = max(issued_at, not_before or issued_at)
    if starts.timestamp() > now.timestamp() + skew:
        raise _denied(
            VisaRejection.NOT_YET_VALID,
            f"The visa is not valid before {starts.isoformat()}; check the clocks and retry then.",
            f"签证在 {starts.isoformat()} 之前无效；请检查时钟并届时重试。",
        )
    visa_object = payload.get(VISA_CLAIM)
    if not isinstance(visa_object, Mapping):
        raise _denied(
            VisaRejection.NOT_A_VISA,
            f"The token has no {VISA_CLAIM} object, so it is not a passport visa.",
            f"该令牌没有 {VISA_CLAIM} 对象，不是护照签证。",
        )
    try:
        visa_type = VisaType(str(visa_object.get("type")))
    except ValueError:
        raise _denied(
            VisaRejection.UNKNOWN_TYPE,
            f"The visa type {visa_object.get('type')!r} is not one this node accepts "
            f"({', '.join(VisaType)}).",
            f"本节点不接受签证类型 {visa_object.get('type')!r}（可接受：{', '.join(VisaType)}）。",
        ) from None
    value = visa_object.get("value")
    problem = _value_problem(visa_type, value)
    if problem is not None:
        raise _denied(
            VisaRejection.BAD_VALUE,
            f"The {visa_type} visa's value {value!r} must be {problem[0]}.",
            f"{visa_type} 签证的值 {value!r} 必须是{problem[1]}。",
        )
    assert isinstance(value, str)
    source = visa_object.get("source")
    if not isinstance(source, str) or not _is_url(source, schemes=("https", "http")):
        raise _bad_visa(
            f"source {source!r} is not an http(s) URL", f"source {source!r} 不是 http(s) URL"
        )
    asserted_raw = visa_object.get("asserted")
    if not _is_number(asserted_raw):
        raise _bad_visa(
            "asserted is not a time in seconds since the epoch", "asserted 不是以秒计的纪元时间"
        )
    asserted = datetime.fromtimestamp(asserted_raw, tz=UTC)
    if asserted.timestamp() > issued_at.timestamp() + skew:
        raise _bad_visa("asserted is after the visa was issued", "asserted 晚于签证签发时间")
    by_raw = visa_object.get("by")
    by: VisaBy | None = None
    if by_raw is not None:
        try:
            by = VisaBy(by_raw)
        except ValueError:
            raise _bad_visa(
                f"by {by_raw!r} is not one of {', '.join(VisaBy)}",
                f"by {by_raw!r} 不是 {', '.join(VisaBy)} 之一",
            ) from None
    elif visa_type in _BY_REQUIRED:
        raise _bad_visa(
            f"a {visa_type} visa must say by whom it was asserted",
            f"{visa_type} 签证必须注明由谁作出声明（by）",
        )
    conditions: tuple[tuple[ConditionClause, ...], ...] | None = None
    if "conditions" in visa_object:
        conditions = _parse_conditions(visa_object["conditions"])
        if conditions is None:
            raise _bad_visa(
                "its conditions are not a non-empty list of lists of clauses",
                "其 conditions 不是由子句列表组成的非空列表",
            )
    return Visa(
        issuer=str(payload["iss"]),
        subject=subject,
        jti=jti,
        issued_at=issued_at,
        expires=expires,
        type=visa_type,
        asserted=asserted,
        value=value,
        source=source,
        by=by,
        conditions=conditions,
        key_id=kid,
        token=token,
    )


def _decode_unverified(token: object) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and payload of a compact JWS, not yet trusted (used only to find the key)."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
        raise _malformed(
            f"it is not a string of at most {MAX_TOKEN_LENGTH} characters",
            f"它不是最多 {MAX_TOKEN_LENGTH} 个字符的字符串",
        )
    parts = token.split(".")
    if len(parts) != 3:
        raise _malformed(
            "it is not a compact JWS (header.payload.signature)",
            "它不是紧凑 JWS（header.payload.signature）",
        )
    raws = [_strict_b64url(part) for part in parts]
    decoded = []
    for raw in raws[:2]:
        try:
            value = bounded.loads_json(raw, place="A visa", object_pairs_hook=_no_duplicates)
        except (binascii.Error, ValueError, NestingTooDeepError):
            raise _malformed(
                "its header or payload is not base64url-encoded JSON",
                "其头部或载荷不是 base64url 编码的 JSON",
            ) from None
        if not isinstance(value, dict):
            raise _malformed(
                "its header or payload is not a JSON object", "其头部或载荷不是 JSON 对象"
            )
        decoded.append(value)
    return decoded[0], decoded[1]


def _strict_b64url(part: str) -> bytes:
    """Decode one JWS segment, refusing anything but canonical unpadded base64url.

    Python's decoder skips stray characters and ignores the spare bits of the last character;
    accepting that would let many different strings stand for one token.
    """
    try:
        raw = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (binascii.Error, ValueError):
        raw = None
    if raw is None or not _B64URL_RE.match(part) or b64url(raw) != part:
        raise _malformed(
            "a segment is not canonical unpadded base64url", "某一段不是规范的无填充 base64url 编码"
        )
    return raw


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate member {key!r}")  # two readers could disagree
        result[key] = value
    return result


def _parse_conditions(raw: object) -> tuple[tuple[ConditionClause, ...], ...] | None:
    """The conditions as clauses, or None if they break the spec's format."""
    if not isinstance(raw, Sequence) or isinstance(raw, str) or not raw:
        return None
    groups: list[tuple[ConditionClause, ...]] = []
    for group in raw:
        if not isinstance(group, Sequence) or isinstance(group, str) or not group:
            return None
        clauses: list[ConditionClause] = []
        for clause in group:
            if not isinstance(clause, Mapping):
                return None
            clause_type = clause.get("type")
            fields = {name: text for name, text in clause.items() if name != "type"}
            if (
                not isinstance(clause_type, str)
                or not fields
                or {"conditions", "asserted"} & set(fields)
                or not all(isinstance(n, str) and isinstance(t, str) for n, t in fields.items())
            ):
                return None
            clauses.append(ConditionClause(type=clause_type, fields=tuple(sorted(fields.items()))))
        groups.append(tuple(clauses))
    return tuple(groups)


def _clause_matches(clause: ConditionClause, visa: Visa) -> bool:
    if visa.type.value != clause.type:
        return False
    actual_fields = {"value": visa.value, "source": visa.source, "by": visa.by}
    for name, matcher in clause.fields:
        actual = actual_fields.get(name)
        if actual is None:
            return False  # unknown field, or "by" absent: it cannot match
        prefix, colon, text = matcher.partition(":")
        if not colon:
            return False
        if prefix == "const":
            matched = actual == text
        elif prefix == "pattern":
            matched = _pattern(text).fullmatch(actual) is not None
        elif prefix == "split_pattern":
            regex = _pattern(text)
            matched = any(regex.fullmatch(part) for part in actual.split(";"))
        else:
            return False  # unknown match type: the spec says it fails
        if not matched:
            return False
    return True


def _pattern(text: str) -> re.Pattern[str]:
    """The spec's pattern: `?` any one character, `*` any run; everything else literal."""
    translated = "".join(
        "." if char == "?" else ".*" if char == "*" else re.escape(char) for char in text
    )
    return re.compile(translated, re.DOTALL)


def _value_problem(visa_type: VisaType, value: object) -> tuple[str, str] | None:
    """What `value` should be for `visa_type` (English, Chinese), or None if it fits."""
    if visa_type is VisaType.CONTROLLED_ACCESS_GRANTS:
        if isinstance(value, str) and _is_absolute_uri(value):
            return None
        return ("the absolute URL or URN of the dataset", "数据集的绝对 URL 或 URN")
    if visa_type is VisaType.AFFILIATION_AND_ROLE:
        if isinstance(value, str) and "@" in value:
            role, _, domain = value.partition("@")
            if _ROLE_RE.match(role) and _DOMAIN_RE.match(domain) and len(value) <= MAX_URL_LENGTH:
                return None
        return (
            "role@domain, with role faculty, student, member or namespace.role "
            "(e.g. faculty@med.stanford.edu, public.citizen-scientist@no.organization)",
            "role@domain 格式，role 为 faculty、student、member 或 namespace.role"
            "（如 faculty@med.stanford.edu、public.citizen-scientist@no.organization）",
        )
    if isinstance(value, str) and _is_url(value, schemes=("https", "http")):
        return None
    return (
        "an http(s) URL (e.g. https://doi.org/10.1038/s41431-018-0219-y)",
        "http(s) URL（如 https://doi.org/10.1038/s41431-018-0219-y）",
    )


def _is_url(text: str, *, schemes: tuple[str, ...]) -> bool:
    """Whether `text` is an absolute URL of one of `schemes` with a host, fit for a URL field."""
    if not _is_absolute_uri(text):
        return False
    parts = urlsplit(text)
    return parts.scheme in schemes and bool(parts.hostname)


def _is_absolute_uri(text: str) -> bool:
    """Whether `text` is an RFC 3986 absolute URI (http(s) with a host) of at most 255 chars."""
    if not text or len(text) > MAX_URL_LENGTH or any(c.isspace() or ord(c) < 32 for c in text):
        return False
    scheme, colon, rest = text.partition(":")
    if not colon or not rest or not _SCHEME_RE.match(scheme):
        return False
    if scheme.lower() in ("http", "https"):
        try:
            return bool(urlsplit(text).hostname)
        except ValueError:
            return False
    if scheme.lower() == "urn":
        nid, colon, nss = rest.partition(":")
        return bool(re.match(r"^[A-Za-z0-9][A-Za-z0-9-]{0,31}$", nid)) and bool(colon and nss)
    return True


def _time_claim(payload: Mapping[str, Any], name: str, *, required: bool) -> datetime | None:
    raw = payload.get(name)
    if raw is None and not required:
        return None
    if not _is_number(raw):
        raise _malformed(
            f"the {name} claim is not a time in seconds since the epoch",
            f"{name} 声明不是以秒计的纪元时间",
        )
    return datetime.fromtimestamp(raw, tz=UTC)


def _is_number(raw: object) -> TypeGuard[float]:
    return isinstance(raw, int | float) and not isinstance(raw, bool) and 0 <= raw < 2**36


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def _b64json(data: Mapping[str, Any]) -> str:
    return b64url(json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def _require_aware(name: str, moment: datetime) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidInputError(
            f"{name} must be a timezone-aware datetime (for example datetime.now(UTC)).",
            message_zh=f"{name} 必须是带时区的 datetime（例如 datetime.now(UTC)）。",
        )


def _invalid(name: str, value: object, should: str, should_zh: str) -> InvalidInputError:
    return InvalidInputError(
        f"The visa's {name} {value!r} is not valid: it must be {should}.",
        message_zh=f"签证的 {name} {value!r} 无效：必须是{should_zh}。",
        details={"field": name, "value": value if isinstance(value, str | None) else repr(value)},
    )


def _denied(
    reason: VisaRejection, message: str, message_zh: str, *, issuer: str | None = None
) -> AccessDeniedError:
    details: dict[str, str] = {"reason": reason.value}
    if issuer is not None:
        details["issuer"] = issuer
    return AccessDeniedError(message, message_zh=message_zh, details=details)


def _malformed(problem: str, problem_zh: str) -> AccessDeniedError:
    return _denied(
        VisaRejection.MALFORMED,
        f"The visa is not a well-formed signed JWT: {problem}.",
        f"签证不是格式正确的已签名 JWT：{problem_zh}。",
    )


def _bad_visa(problem: str, problem_zh: str) -> AccessDeniedError:
    return _denied(
        VisaRejection.BAD_VISA,
        f"The visa's {VISA_CLAIM} object is not valid: {problem}.",
        f"签证的 {VISA_CLAIM} 对象无效：{problem_zh}。",
    )


def _rejection(index: int, error: AccessDeniedError) -> RejectedVisa:
    details = error.details if isinstance(error.details, dict) else {}
    return RejectedVisa(
        index=index,
        reason=VisaRejection(details.get("reason", VisaRejection.MALFORMED)),
        message=error.message,
        message_zh=error.message_zh,
    )
