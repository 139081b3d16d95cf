"""GA4GH Passports: issuing visas on approval, and verifying visas from trusted issuers.

A visa is a JWS-signed JWT (GA4GH Passport v1 "Passport Visa", an AAI Embedded Document Token):

    header  {"typ": "JWT", "alg": "RS256", "kid": <thumbprint>, "jku": <issuer>/.well-known/jwks.json}
    payload {"iss", "sub", "iat", "exp", "jti",
             "ga4gh_visa_v1": {"type", "asserted", "value", "source", ["by"], ["conditions"]}}

This node signs with RS256 (keys from `genecommons.access.keys`). It accepts RS256 and ES256 from
the issuers configured in `TrustedIssuers`, whose JWKS is given to it: the `jku` header is never
fetched (an attacker chooses it), and `none` and the symmetric HS* algorithms are always refused.
The passport is `{"ga4gh_passport_v1": [visa, ...]}` as the userinfo endpoint returns it.

The visa's types are in `visas`, its conditions in `visa_conditions`, its compact form and claims in
`visa_claims` and the trusted issuers' keys in `trusted_issuers`; this module is the door that
publishes them with the functions that issue and verify.

Pure functions over a key store and a clock value; no web, database or network.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from joserfc import jws
from joserfc.errors import BadSignatureError, JoseError

from genecommons.access.keys import KeyStore, b64url
from genecommons.access.trusted_issuers import TrustedIssuers, key_thumbprint
from genecommons.access.visa_claims import (
    MAX_TOKEN_LENGTH,
    b64json,
    decode_unverified,
    visa_from_claims,
)
from genecommons.access.visa_conditions import clause_matches, parse_conditions
from genecommons.access.visas import (
    BY_REQUIRED,
    MAX_URL_LENGTH,
    NO_ORGANIZATION,
    PASSPORT_CLAIM,
    VISA_CLAIM,
    RejectedVisa,
    Visa,
    VisaBy,
    VisaRejection,
    VisaType,
    denied,
    is_url,
    malformed,
    rejection,
    value_problem,
)
from genecommons.errors import AccessDeniedError, InvalidInputError

__all__ = [
    "ACCEPTED_ALGORITHMS",
    "MAX_TOKEN_LENGTH",
    "MAX_VISAS",
    "NO_ORGANIZATION",
    "PASSPORT_CLAIM",
    "VISA_CLAIM",
    "RejectedVisa",
    "TrustedIssuers",
    "Visa",
    "VisaBy",
    "VisaRejection",
    "VisaType",
    "conditions_met",
    "controlled_access_datasets",
    "issue_visa",
    "key_thumbprint",
    "passport_claim",
    "passport_of_tokens",
    "verify_passport",
    "verify_visa",
]

ACCEPTED_ALGORITHMS = frozenset({"RS256", "ES256"})
MAX_VISAS = 500


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
    if not is_url(issuer, schemes=("https", "http")):
        raise _invalid("issuer", issuer, "an http(s) URL", "http(s) URL")
    if not subject or len(subject) > MAX_URL_LENGTH:
        raise _invalid("subject", subject, "1 to 255 characters", "1 至 255 个字符")
    if not is_url(source, schemes=("https", "http")):
        raise _invalid(
            "source",
            source,
            f"an http(s) URL of the organisation ({NO_ORGANIZATION} if none)",
            f"机构的 http(s) URL（若无机构则为 {NO_ORGANIZATION}）",
        )
    problem = value_problem(visa_type, value)
    if problem is not None:
        raise _invalid("value", value, *problem)
    if by is None and visa_type in BY_REQUIRED:
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
        parsed = parse_conditions(conditions)
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
    signing_input = f"{b64json(header)}.{b64json(payload)}"
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
    header, payload = decode_unverified(token)
    algorithm = header.get("alg")
    if not isinstance(algorithm, str) or algorithm.lower() == "none":
        raise denied(
            VisaRejection.ALG_NONE,
            "The visa is not signed (alg none); only RS256 and ES256 visas are accepted.",
            "签证未签名（alg 为 none）；仅接受 RS256 和 ES256 签名的签证。",
        )
    if algorithm.upper().startswith("HS"):
        raise denied(
            VisaRejection.SYMMETRIC_ALG,
            f"The visa is signed with the symmetric algorithm {algorithm}, which cannot prove "
            "who issued it; only RS256 and ES256 visas are accepted.",
            f"签证使用对称算法 {algorithm} 签名，无法证明签发方；仅接受 RS256 和 ES256 签名的签证。",
        )
    if algorithm not in ACCEPTED_ALGORITHMS:
        raise denied(
            VisaRejection.UNSUPPORTED_ALG,
            f"The visa's algorithm {algorithm!r} is not accepted; only RS256 and ES256 are.",
            f"不接受签证的算法 {algorithm!r}；仅接受 RS256 和 ES256。",
        )
    if "crit" in header or "b64" in header:
        raise malformed(
            "the header carries critical extensions, which are not supported",
            "头部含有不支持的关键扩展（crit）",
        )
    if str(header.get("typ", "JWT")).upper() != "JWT":
        raise malformed(
            f"the header typ is {header.get('typ')!r}, not JWT",
            f"头部 typ 为 {header.get('typ')!r}，而不是 JWT",
        )
    issuer = payload.get("iss")
    if not isinstance(issuer, str) or issuer not in trusted.issuers:
        raise denied(
            VisaRejection.UNTRUSTED_ISSUER,
            f"The visa's issuer {issuer!r} is not trusted by this node; ask the node operator to "
            "add the issuer and its JWKS to the trusted issuers.",
            f"本节点不信任签证的签发方 {issuer!r}；请联系节点管理员将该签发方及其 JWKS 加入受信任签发方。",
        )
    kid = header.get("kid")
    key = trusted._key(issuer, kid) if isinstance(kid, str) else None
    if key is None:
        raise denied(
            VisaRejection.UNKNOWN_KID,
            f"The issuer {issuer} publishes no key with kid {kid!r}; the key may have been "
            "retired: ask for a new visa.",
            f"签发方 {issuer} 未发布 kid 为 {kid!r} 的密钥；该密钥可能已停用，请重新申请签证。",
            issuer=issuer,
        )
    if key.algorithm != algorithm:
        raise denied(
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
        raise denied(
            VisaRejection.BAD_SIGNATURE,
            f"The visa's signature does not verify with {issuer}'s key {kid}: it was signed by "
            "another key or changed after signing.",
            f"签证签名无法用 {issuer} 的密钥 {kid} 验证：它由其他密钥签名，或签名后被篡改。",
            issuer=issuer,
        ) from None
    except (JoseError, ValueError, TypeError) as error:
        raise malformed(str(error), f"无法解析（{error}）") from None
    visa = visa_from_claims(payload, token=token, kid=key.kid, now=now, leeway=leeway)
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
        raise malformed(
            f"the passport has no {PASSPORT_CLAIM} list of at most {MAX_VISAS} visas",
            f"护照中没有最多含 {MAX_VISAS} 个签证的 {PASSPORT_CLAIM} 列表",
        )
    accepted: list[tuple[int, Visa]] = []
    rejected: list[RejectedVisa] = []
    for index, token in enumerate(tokens):
        try:
            if not isinstance(token, str):
                raise malformed("a visa is not a string", "签证不是字符串")
            accepted.append((index, verify_visa(token, trusted=trusted, now=now, leeway=leeway)))
        except AccessDeniedError as error:
            rejected.append(rejection(index, error))
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
            _, payload = decode_unverified(token)
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
        all(any(clause_matches(clause, other) for other in candidates) for clause in group)
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


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())


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
