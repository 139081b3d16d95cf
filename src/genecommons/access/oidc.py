"""Sign-in through an external OpenID Connect provider: the relying party's side.

The authorization code flow with PKCE (S256), `state` and `nonce` (OpenID Connect Core 1.0
section 3.1), the provider's discovery document (OpenID Connect Discovery 1.0) and its JWKS.
The ID token is checked here and nowhere else: signature by a key of the provider's JWKS with
an asymmetric algorithm (never `none`, never an HMAC keyed with a public key), `iss`, `aud`
(and `azp` when there are several audiences), `exp`, `iat`, `nonce`, and a verified e-mail.

authlib builds the authorization request and exchanges the code; joserfc verifies the token.
No web framework or database code: the service keeps the pending sign-ins and the accounts.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from joserfc import jwt
from joserfc.errors import ExpiredTokenError, JoseError
from joserfc.jwk import KeySet

from genecommons.errors import AuthenticationError, ConfigurationError

logger = logging.getLogger(__name__)

# asymmetric signatures only: "none" and HS* (an HMAC keyed with a public key) never verify
ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)
LEEWAY_SECONDS = 60  # clock skew tolerated on exp and iat
MAX_TOKEN_AGE_SECONDS = 3600  # an ID token issued earlier than this is stale
HTTP_TIMEOUT = 10.0


def _refused(reason: str, reason_zh: str, *, check: str) -> AuthenticationError:
    return AuthenticationError(
        f"Sign-in through the identity provider was refused: {reason}",
        message_zh=f"通过身份提供方登录被拒绝：{reason_zh}",
        details={"check": check},
    )


def secure_url(url: str) -> bool:
    """Whether `url` is https, or http on a loopback address (RFC 8252 section 7.3)."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return True
    if parts.scheme != "http" or not parts.hostname:
        return False
    if parts.hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class ProviderMetadata:
    """What the discovery document says of the provider, as far as sign-in needs it."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str


def parse_metadata(document: Mapping[str, Any], *, issuer: str) -> ProviderMetadata:
    """The provider's metadata, refusing a document for another issuer (Discovery 4.3) or
    with endpoints that are not https."""
    if document.get("issuer") != issuer:
        raise ConfigurationError(
            f"The OpenID provider's discovery document names issuer "
            f"{document.get('issuer')!r}, not the configured {issuer!r}; set "
            "GENECOMMONS_OIDC_ISSUER to the provider's exact issuer.",
            message_zh=f"OpenID 提供方的发现文档声明的签发方为 {document.get('issuer')!r}，"
            f"与配置的 {issuer!r} 不符；请将 GENECOMMONS_OIDC_ISSUER 设为其准确的签发方。",
            details={"check": "iss"},
        )
    endpoints = {}
    for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        value = document.get(name)
        if not isinstance(value, str) or not secure_url(value):
            raise ConfigurationError(
                f"The OpenID provider's {name} is missing or not https: {value!r}.",
                message_zh=f"OpenID 提供方的 {name} 缺失或不是 https：{value!r}。",
            )
        endpoints[name] = value
    if "code" not in document.get("response_types_supported", ["code"]):
        raise ConfigurationError(
            "The OpenID provider does not support the authorization code flow.",
            message_zh="OpenID 提供方不支持授权码流程。",
        )
    return ProviderMetadata(issuer=issuer, **endpoints)


@dataclass(frozen=True, slots=True)
class LoginStart:
    """A started sign-in: where to send the browser, and the secrets to keep until it returns."""

    url: str
    state: str
    nonce: str
    code_verifier: str


def start_login(
    metadata: ProviderMetadata, *, client_id: str, redirect_uri: str, scopes: str
) -> LoginStart:
    """The authorization request: a fresh state, nonce and PKCE verifier (S256)."""
    state = secrets.token_urlsafe(32)
    nonce = secrets.token_urlsafe(32)
    # authlib (with httpx2) only for sign-in, not with the app every worker imports
    from authlib.common.security import generate_token
    from authlib.integrations.httpx_client import OAuth2Client

    verifier = generate_token(64)  # RFC 7636: 43 to 128 unreserved characters
    client = OAuth2Client(
        client_id=client_id,
        scope=scopes,
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
    )
    with client:
        url, _ = client.create_authorization_url(
            metadata.authorization_endpoint, state=state, nonce=nonce, code_verifier=verifier
        )
    return LoginStart(url=str(url), state=state, nonce=nonce, code_verifier=verifier)


def digest(secret: str) -> str:
    """What is stored of a state or ticket: its SHA-256 (256 random bits, so a fast hash)."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def same_secret(given: str, expected: str) -> bool:
    """A constant-time comparison of two secrets."""
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


@dataclass(frozen=True, slots=True)
class ExternalIdentity:
    """Who the provider says signed in: `issuer` and `subject` identify them for good."""

    issuer: str
    subject: str
    email: str
    name: str | None


def verify_id_token(
    token: str,
    *,
    jwks: Mapping[str, Any],
    issuer: str,
    client_id: str,
    nonce: str,
    now: datetime,
) -> ExternalIdentity:
    """Check an ID token (OpenID Connect Core 3.1.3.7) and return the identity it asserts.

    Raises AuthenticationError naming the failed check in `details.check`.
    """
    try:
        keys = KeySet.import_key_set(dict(jwks))  # type: ignore[arg-type]
    except (JoseError, ValueError, TypeError) as error:
        raise _refused(
            "the provider's key set cannot be read.", "无法读取身份提供方的密钥集。", check="jwks"
        ) from error
    try:
        decoded = jwt.decode(token, keys, algorithms=ALGORITHMS)
    except JoseError as error:
        raise _refused(
            "the ID token's signature does not verify with the provider's keys "
            f"({type(error).__name__}).",
            "ID 令牌的签名无法用身份提供方的密钥验证。",
            check="signature",
        ) from error
    except (ValueError, TypeError) as error:
        raise _refused("the ID token is malformed.", "ID 令牌格式错误。", check="format") from error
    claims = decoded.claims
    moment = int(now.timestamp())
    registry = jwt.JWTClaimsRegistry(
        now=moment,
        leeway=LEEWAY_SECONDS,
        iss={"essential": True, "value": issuer},
        aud={"essential": True, "value": client_id},
        sub={"essential": True},
        exp={"essential": True},
        iat={"essential": True},
        nonce={"essential": True},
    )
    try:
        registry.validate(claims)
    except ExpiredTokenError as error:
        raise _refused("the ID token has expired.", "ID 令牌已过期。", check="exp") from error
    except JoseError as error:
        check = str(getattr(error, "claim", "") or "claims")
        raise _refused(
            f"the ID token's claim {check!r} is missing or wrong.",
            f"ID 令牌的声明 {check!r} 缺失或错误。",
            check=check,
        ) from error
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    if len(audiences) > 1 and claims.get("azp") != client_id:
        raise _refused(
            "the ID token is meant for several parties and not authorised for this one.",
            "ID 令牌面向多个接收方，且未授权给本平台。",
            check="azp",
        )
    if claims["iat"] < moment - MAX_TOKEN_AGE_SECONDS - LEEWAY_SECONDS:
        raise _refused("the ID token is stale.", "ID 令牌签发时间过早。", check="iat")
    if not isinstance(claims["nonce"], str) or not same_secret(claims["nonce"], nonce):
        raise _refused(
            "the ID token answers another sign-in (nonce).",
            "ID 令牌对应的是另一次登录（nonce 不符）。",
            check="nonce",
        )
    email = claims.get("email")
    if not isinstance(email, str) or claims.get("email_verified") is not True:
        raise _refused(
            "the provider has not verified your e-mail address; verify it there first.",
            "身份提供方尚未验证您的电子邮件地址，请先在该处完成验证。",
            check="email_verified",
        )
    name = claims.get("name")
    return ExternalIdentity(
        issuer=issuer,
        subject=str(claims["sub"]),
        email=email.strip().lower(),
        name=name[:200] if isinstance(name, str) else None,
    )


class Provider:
    """One configured OpenID provider: its discovery document and JWKS (fetched on first
    use, kept an hour; the JWKS is fetched again once when a token names an unknown key)."""

    def __init__(
        self,
        *,
        issuer: str,
        client_id: str,
        client_secret: str | None,
        redirect_uri: str,
        scopes: str,
        cache_seconds: float = 3600.0,
    ) -> None:
        if not secure_url(issuer):
            raise ConfigurationError(
                f"GENECOMMONS_OIDC_ISSUER must be an https URL: {issuer!r}.",
                message_zh=f"GENECOMMONS_OIDC_ISSUER 必须是 https 地址：{issuer!r}。",
            )
        if "openid" not in scopes.split():
            raise ConfigurationError(
                "GENECOMMONS_OIDC_SCOPES must include 'openid'.",
                message_zh="GENECOMMONS_OIDC_SCOPES 必须包含 'openid'。",
            )
        self.issuer, self.client_id, self.client_secret = issuer, client_id, client_secret
        self.redirect_uri, self.scopes, self.cache_seconds = redirect_uri, scopes, cache_seconds
        self._lock = threading.Lock()
        self._metadata: tuple[float, ProviderMetadata] | None = None
        self._jwks: tuple[float, dict[str, Any]] | None = None

    def _get_json(self, url: str) -> dict[str, Any]:
        try:
            response = httpx.get(url, timeout=HTTP_TIMEOUT, follow_redirects=False)
            response.raise_for_status()
            document = response.json()
        except (httpx.HTTPError, ValueError) as error:
            raise AuthenticationError(
                f"The identity provider did not answer at {url}; try again later.",
                message_zh=f"身份提供方（{url}）未响应，请稍后再试。",
                details={"check": "provider"},
            ) from error
        if not isinstance(document, dict):
            raise AuthenticationError(
                f"The identity provider's answer at {url} is not a JSON object.",
                message_zh=f"身份提供方（{url}）返回的不是 JSON 对象。",
                details={"check": "provider"},
            )
        return document

    def metadata(self) -> ProviderMetadata:
        """The discovery document of the provider (cached)."""
        with self._lock:
            if self._metadata and time.monotonic() - self._metadata[0] < self.cache_seconds:
                return self._metadata[1]
        url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
        metadata = parse_metadata(self._get_json(url), issuer=self.issuer)
        with self._lock:
            self._metadata = (time.monotonic(), metadata)
        return metadata

    def jwks(self, *, refresh: bool = False) -> dict[str, Any]:
        """The provider's key set (cached; `refresh` fetches it again, at most once a minute)."""
        with self._lock:
            if self._jwks:
                age = time.monotonic() - self._jwks[0]
                if age < self.cache_seconds and not (refresh and age > 60):
                    return self._jwks[1]
        keys = self._get_json(self.metadata().jwks_uri)
        with self._lock:
            self._jwks = (time.monotonic(), keys)
        return keys

    def start(self) -> LoginStart:
        """A new authorization request."""
        return start_login(
            self.metadata(),
            client_id=self.client_id,
            redirect_uri=self.redirect_uri,
            scopes=self.scopes,
        )

    def exchange(self, *, code: str, code_verifier: str) -> str:
        """Exchange the authorization code (with the PKCE verifier) for the ID token."""
        import httpx2  # authlib's OAuth2Client runs on httpx2 where it is installed
        from authlib.integrations.httpx_client import OAuth2Client
        from authlib.integrations.httpx_client import OAuthError as AuthlibOAuthError

        metadata = self.metadata()
        client = OAuth2Client(
            client_id=self.client_id,
            client_secret=self.client_secret,
            token_endpoint_auth_method="client_secret_basic" if self.client_secret else "none",
            redirect_uri=self.redirect_uri,
            timeout=HTTP_TIMEOUT,
        )
        try:
            with client:
                token = client.fetch_token(
                    metadata.token_endpoint, code=code, code_verifier=code_verifier
                )
        except (AuthlibOAuthError, httpx.HTTPError, httpx2.HTTPError, ValueError) as error:
            raise _refused(
                "the provider did not accept the authorization code (used already, expired "
                "or not issued to this platform); sign in again.",
                "身份提供方未接受授权码（已使用、已过期或并非签发给本平台），请重新登录。",
                check="code",
            ) from error
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise _refused(
                "the provider returned no ID token.", "身份提供方未返回 ID 令牌。", check="id_token"
            )
        return id_token

    def verify(self, id_token: str, *, nonce: str, now: datetime) -> ExternalIdentity:
        """`verify_id_token` against the provider's keys, fetching them again once when the
        signature does not verify (the provider may have rotated its keys)."""
        try:
            return verify_id_token(
                id_token,
                jwks=self.jwks(),
                issuer=self.issuer,
                client_id=self.client_id,
                nonce=nonce,
                now=now,
            )
        except AuthenticationError as error:
            if not isinstance(error.details, dict) or error.details.get("check") != "signature":
                raise
        return verify_id_token(
            id_token,
            jwks=self.jwks(refresh=True),
            issuer=self.issuer,
            client_id=self.client_id,
            nonce=nonce,
            now=now,
        )
