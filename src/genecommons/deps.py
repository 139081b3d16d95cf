"""Dependencies shared by the HTTP routes, declared once as typed aliases."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session, sessionmaker

from genecommons import bounded
from genecommons.access import passport_service
from genecommons.access import service as access_service
from genecommons.access.passports import passport_of_tokens
from genecommons.config import Settings
from genecommons.errors import (
    AccessDeniedError,
    AuthenticationError,
    InvalidInputError,
    NestingTooDeepError,
    Refusal,
)
from genecommons.held_events import held
from genecommons.ledger.events import record_refusal
from genecommons.policy.models import Subject, SubjectKind
from genecommons.services import Services

TOKEN_USE = "access:token:use"  # noqa: S105 - what a refused credential tried, not a secret
PASSPORT_USE = "access:passport:use"


async def get_services(request: Request) -> Services:
    """The services the app was created with. (async, as the other dependencies that only read
    the request or the app: FastAPI runs a plain function in a worker thread)"""
    return services_of(request)


def services_of(request: Request) -> Services:
    """The services of the app serving `request` (`create_app` builds them)."""
    services: Services = request.app.state.services
    return services


async def get_settings(request: Request) -> Settings:
    """The settings the app was created with."""
    return services_of(request).settings


def _settings(request: Request) -> Settings:
    return services_of(request).settings


async def get_session_factory(request: Request) -> sessionmaker[Session]:
    """The app's session factory."""
    return services_of(request).factory


def _factory(request: Request) -> sessionmaker[Session]:
    return services_of(request).factory


async def get_subject(request: Request) -> Subject:
    """The caller: the user of the bearer token, or anonymous when there is none.
    (async: an anonymous caller costs no worker thread; a token is looked up in one)"""
    credentials = Credentials(request)
    if not credentials.sent:
        return Subject.anonymous()
    return await run_in_threadpool(credentials.subject)


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a request says of who sends it (a bearer token, a passport), not checked yet: for
    routes that check it in the worker thread that does their work, so that a query by token
    costs one hand-off to a thread instead of two (the Beacon's)."""

    request: Request

    @property
    def sent(self) -> bool:
        """Whether the request names a caller at all (else it is anonymous)."""
        return bool(self.request.headers.get("authorization"))

    def subject(self) -> Subject:
        """The caller, as `get_subject` gives it (blocking: call it in a worker thread)."""
        header = self.request.headers.get("authorization")
        if not header:
            return Subject.anonymous()
        return _token_subject(self.request, header)


async def get_credentials(request: Request) -> Credentials:
    """The request's credentials, to be checked by the route in its worker thread."""
    return Credentials(request)


def _token_subject(request: Request, header: str) -> Subject:
    """The user of the bearer token in `header` (with the grants of a passport, if sent)."""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError(
            "Send the token as 'Authorization: Bearer <token>'.",
            message_zh="请以 'Authorization: Bearer <令牌>' 的形式发送令牌。",
            refusal=Refusal("anonymous", TOKEN_USE, "token", rule="malformed-credentials"),
        )
    subject = access_service.authenticate(
        _factory(request),
        token.strip(),
        address=_address(request),
        events=services_of(request).events,
        held=held(request.scope),  # a Beacon query commits its token's use with its event
    )
    passport = request.headers.get("x-ga4gh-passport")
    if passport:
        subject = _with_passport(request, subject, passport)
    return subject


def _with_passport(request: Request, subject: Subject, header: str) -> Subject:
    """Add the grants that visas from trusted issuers (another node's DAC) carry."""
    try:
        document = _passport_document(header)
    except AuthenticationError as error:
        error.refusal = Refusal(subject.id, PASSPORT_USE, "passport", rule="malformed-passport")
        raise
    return _with_visas(request, subject, document)


def with_passports(request: Request, subject: Subject, passports: Sequence[str]) -> Subject:
    """The caller with the grants that the visas of `passports` (passport or visa JWTs sent
    in a request body, as DRS's PassportAuth sends them) carry. A passport speaks for the user
    it was issued to: it is taken with that user's bearer token only, never in its place."""
    if not passports:
        return subject
    if subject.kind is not SubjectKind.USER:
        raise AuthenticationError(
            "Passports are taken with the bearer token of the user they were issued to: send "
            "'Authorization: Bearer <token>' with them.",
            message_zh="护照须与其所属用户的令牌一同使用：请同时发送 'Authorization: Bearer <令牌>'。",
        )
    return _with_visas(request, subject, passport_of_tokens(passports))


def _with_visas(request: Request, subject: Subject, document: object) -> Subject:
    services = services_of(request)
    refused: list[str] = []
    try:
        granted = passport_service.granted_by_passport(
            document,
            subject=subject,
            settings=services.settings,
            trusted=services.trusted_issuers,
            keys=services.visa_keys,
            refused=refused,
        )
    except AccessDeniedError as error:  # not a passport at all
        reason = error.details.get("reason") if isinstance(error.details, dict) else None
        error.refusal = Refusal(subject.id, PASSPORT_USE, "passport", rule=f"visa:{reason}")
        raise
    if refused:  # forged, expired or someone else's visas: refused, though the request goes on
        record_refusal(
            services.events,
            Refusal(
                subject.id,
                PASSPORT_USE,
                "passport",
                rule=",".join(f"visa:{why}" for why in sorted(set(refused))),
            ),
            address=_address(request),
            route=request_route(request),
            answered=None,
        )
    return dataclasses.replace(subject, grants=subject.grants | granted)


# a Host header this node repeats in the URLs it hands out: a host name, IPv4 or [IPv6] address,
# and a port; anything else (paths, user info, spaces) is not taken from the request
_HOST_RE = re.compile(
    r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}"
    r"[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?$"
)


def public_base_url(request: Request) -> str:
    """Where this node is reached, for the URLs it hands out: the configured `issuer_url`
    whenever it is set (and always in production), else the scheme and Host the request was
    sent to, so that a node served on another port than the default names its own URLs. A Host
    that is not a plain host[:port] falls back to `issuer_url` (no path or user info injected)."""
    settings = _settings(request)
    configured = settings.issuer_url.rstrip("/")
    if "issuer_url" in settings.model_fields_set or settings.environment == "production":
        return configured
    host = request.headers.get("host", "")
    if len(host) > 260 or not _HOST_RE.match(host):
        return configured
    return f"{request.url.scheme}://{host}"


def _passport_document(header: str) -> dict[str, Any]:
    """The X-GA4GH-Passport header as a JSON object (AuthenticationError if it is not one)."""
    try:
        document = bounded.loads_json(header, place="The X-GA4GH-Passport header")
    except NestingTooDeepError as error:
        raise AuthenticationError(
            error.message, message_zh=error.message_zh, details=error.details
        ) from error
    except ValueError as error:
        raise AuthenticationError(
            "X-GA4GH-Passport is not JSON: send a JSON object with ga4gh_passport_v1.",
            message_zh="X-GA4GH-Passport 不是 JSON：请发送包含 ga4gh_passport_v1 的 JSON 对象。",
        ) from error
    if not isinstance(document, dict):
        raise AuthenticationError(
            f"X-GA4GH-Passport is a JSON {_json_kind(document)}, not an object: send a JSON "
            "object with ga4gh_passport_v1.",
            message_zh=f"X-GA4GH-Passport 是 JSON {_json_kind(document)}，而不是对象：请发送包含 "
            "ga4gh_passport_v1 的 JSON 对象。",
        )
    return document


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "number"


async def client_address(request: Request) -> str:
    """The caller's network address (for sign-in throttling and the audit log). (async: it
    only reads the request, so it needs no worker thread)"""
    return _address(request)


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def request_address(request: Request) -> str:
    """The caller's network address, as the audit log records it."""
    return _address(request)


def request_route(request: Request) -> str:
    """The method and route template a request took (its path, before routing), as the audit
    log records it."""
    route = request.scope.get("route")
    path = getattr(route, "path", None) or request.url.path[:200]
    return f"{request.method} {path}"


async def refuse_nul(request: Request) -> None:
    """Refuse a NUL character anywhere in the request's path, query or parsed body: no text
    the node keeps may hold one (PostgreSQL refuses it), so no route may pass one on. (Bodies
    are looked at where FastAPI has parsed them for the route already: nothing is read twice.)"""
    where = None
    if "\x00" in request.scope["path"] or "%00" in request.url.query or "\x00" in request.url.query:
        where = "URL"
    else:
        route = request.scope.get("route")
        if getattr(route, "body_field", None) is not None:
            kind = request.headers.get("content-type", "")
            if kind.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
                form = await request.form()
                if any(isinstance(v, str) and "\x00" in v for v in form.values()) or any(
                    "\x00" in k for k in form
                ):
                    where = "form"
            else:
                body = await request.body()
                if b"\x00" in body or b"\\u0000" in body:
                    where = "body"
    if where is not None:
        raise InvalidInputError(
            f"The request's {where} holds a NUL character (U+0000), which no field accepts; "
            "remove it.",
            message_zh=f"请求的 {where} 中含有 NUL 字符（U+0000），任何字段均不接受；请删除。",
        )


ServicesDep = Annotated[Services, Depends(get_services)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionFactoryDep = Annotated[sessionmaker[Session], Depends(get_session_factory)]
SubjectDep = Annotated[Subject, Depends(get_subject)]
CredentialsDep = Annotated[Credentials, Depends(get_credentials)]
AddressDep = Annotated[str, Depends(client_address)]
