"""The visa issuers this node trusts, and the public keys of their JWKS it verifies visas with.

Only public RSA (>= 2048 bits, RS256) and EC P-256 (ES256) signing keys are taken; a JWKS holding
private or symmetric key material is refused. Pure: the JWKS is given, never fetched.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc import jwk
from joserfc.errors import JoseError

from genecommons.access.keys import b64url, jwk_thumbprint, public_jwk
from genecommons.access.visa_claims import B64URL_RE
from genecommons.access.visas import is_url
from genecommons.errors import ConfigurationError

MIN_RSA_BITS = 2048
_PRIVATE_JWK_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


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
    if not is_url(issuer, schemes=("https", "http")):
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
    if not isinstance(encoded, str) or not B64URL_RE.match(encoded):
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
