"""Dependencies shared by the HTTP routes, declared once as typed aliases."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session, sessionmaker

from genecommons.access import passport_service
from genecommons.access import service as access_service
from genecommons.access.models import Subject
from genecommons.config import Settings
from genecommons.errors import AuthenticationError
from genecommons.held_events import held


async def get_settings(request: Request) -> Settings:
    """The settings the app was created with. (async, as the other dependencies that only read
    the request or the app: FastAPI runs a plain function in a worker thread)"""
    return _settings(request)


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_session_factory(request: Request) -> sessionmaker[Session]:
    """The app's session factory."""
    return _factory(request)


def _factory(request: Request) -> sessionmaker[Session]:
    factory: sessionmaker[Session] = request.app.state.session_factory
    return factory


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
        )
    subject = access_service.authenticate(
        _factory(request),
        token.strip(),
        address=_address(request),
        events=request.app.state.grouped_events,
        held=held(request.scope),  # a Beacon query commits its token's use with its event
    )
    passport = request.headers.get("x-ga4gh-passport")
    if passport:
        subject = _with_passport(request, subject, passport)
    return subject


def _with_passport(request: Request, subject: Subject, header: str) -> Subject:
    """Add the grants that visas from trusted issuers (another node's DAC) carry."""
    try:
        document = json.loads(header)
    except ValueError as error:
        raise AuthenticationError(
            "X-GA4GH-Passport must be a JSON object with ga4gh_passport_v1.",
            message_zh="X-GA4GH-Passport 必须是包含 ga4gh_passport_v1 的 JSON 对象。",
        ) from error
    settings = _settings(request)
    trusted = getattr(request.app.state, "trusted_issuers", None)
    if trusted is None:
        trusted = passport_service.trusted_issuers(settings, request.app.state.visa_keys)
        request.app.state.trusted_issuers = trusted
    granted = passport_service.granted_by_passport(
        document,
        subject=subject,
        settings=settings,
        trusted=trusted,
        keys=request.app.state.visa_keys,
    )
    return dataclasses.replace(subject, grants=subject.grants | granted)


async def client_address(request: Request) -> str:
    """The caller's network address (for sign-in throttling and the audit log). (async: it
    only reads the request, so it needs no worker thread)"""
    return _address(request)


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionFactoryDep = Annotated[sessionmaker[Session], Depends(get_session_factory)]
SubjectDep = Annotated[Subject, Depends(get_subject)]
CredentialsDep = Annotated[Credentials, Depends(get_credentials)]
AddressDep = Annotated[str, Depends(client_address)]
