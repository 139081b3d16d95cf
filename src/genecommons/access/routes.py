"""HTTP routes of identities under /api/v1: sign-in, the caller, API tokens."""

from __future__ import annotations

import dataclasses
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi import Path as PathParam
from pydantic import BaseModel, Field

from genecommons.access import passport_service, service, workflow
from genecommons.access.duo_matching import ResearchPurpose
from genecommons.access.keys import KeyStore
from genecommons.deps import AddressDep, SessionFactoryDep, SettingsDep, SubjectDep
from genecommons.errors import AuthenticationError

router = APIRouter(prefix="/api/v1", tags=["access"])
Id = Annotated[int, PathParam(ge=1, le=2**31 - 1)]


class TokenRequest(BaseModel):
    """A request for a new API token for the signed-in user."""

    days: int = Field(default=90, ge=1, le=366)
    scopes: list[str] | None = None
    label: str | None = Field(default=None, max_length=200)


@router.post("/auth/token", summary="Sign in: exchange e-mail and password for a token")
def sign_in(
    factory: SessionFactoryDep,
    address: AddressDep,
    username: Annotated[str, Form(description="E-mail address")],
    password: Annotated[str, Form()],
    otp: Annotated[str | None, Form(description="TOTP code (administrators, DAC members)")] = None,
) -> dict[str, Any]:
    """An OAuth2-style password grant: returns a bearer token valid for 12 hours."""
    issued = service.sign_in(factory, email=username, password=password, address=address, otp=otp)
    return {
        "access_token": issued.token,
        "token_type": "bearer",
        "expires_at": issued.expires_at.isoformat(),
    }


@router.get("/auth/me", summary="The signed-in caller")
def me(subject: SubjectDep) -> dict[str, Any]:
    """Who the token belongs to, with roles and institution."""
    if subject.kind != "user":
        raise AuthenticationError("Not signed in.", message_zh="尚未登录。")
    return {
        "id": subject.id,
        "roles": sorted(subject.roles),
        "institution": subject.institution,
        "grants": sorted(subject.grants),
    }


@router.post("/tokens", summary="Create an API token for yourself", status_code=201)
def create_token(
    factory: SessionFactoryDep, subject: SubjectDep, body: TokenRequest
) -> dict[str, Any]:
    """A new token for the caller; the secret is in this response only."""
    if subject.kind != "user":
        raise AuthenticationError("Sign in first.", message_zh="请先登录。")
    issued = service.create_token(
        factory,
        email=subject.id.removeprefix("user:"),
        actor=subject,
        days=body.days,
        scopes=body.scopes,
        label=body.label,
    )
    return {"id": issued.id, "token": issued.token, "expires_at": issued.expires_at.isoformat()}


@router.delete("/tokens/{token_id}", summary="Revoke an API token", status_code=204)
def revoke_token(token_id: Id, factory: SessionFactoryDep, subject: SubjectDep) -> None:
    """Revoke one of your tokens (administrators: anyone's)."""
    service.revoke_token(factory, token_id=token_id, actor=subject)


class PurposeBody(BaseModel):
    """The research purpose, as the researcher states it."""

    title: str = Field(min_length=1, max_length=300)
    summary: str = Field(min_length=1, max_length=20000)
    institution: str = Field(min_length=1, max_length=300)
    country: str = Field(min_length=2, max_length=2)
    diseases: list[str] = Field(default_factory=list, max_length=50)
    biomedical: bool = False
    commercial: bool = False
    for_profit_institution: bool = False
    methods_development: bool = False
    population_ancestry: bool = False
    genetic_research: bool = False
    clinical_care: bool = False
    controls_use: bool = False
    collaborators: list[str] = Field(default_factory=list, max_length=100)
    ethics_approval: bool = False


class RequestBody(BaseModel):
    """A data access request for one or more datasets."""

    purpose: PurposeBody
    datasets: list[str] = Field(min_length=1, max_length=100)
    agreement_version: str = Field(min_length=1, max_length=100)


class DecisionBody(BaseModel):
    """A DAC member's decision on one dataset of a request."""

    item: int = Field(ge=1, le=2**31 - 1)
    approve: bool
    reason: str = Field(min_length=1, max_length=2000)
    expires: date | None = None
    conditions: list[str] = Field(default_factory=list, max_length=50)


@router.post("/requests", summary="Request access to datasets", status_code=201)
def create_request(
    factory: SessionFactoryDep, subject: SubjectDep, body: RequestBody
) -> dict[str, Any]:
    """File a request; each dataset is matched against its consent (DUO) at once."""
    data = body.purpose.model_dump()
    purpose = ResearchPurpose(
        **{
            **data,
            "diseases": tuple(data["diseases"]),
            "collaborators": tuple(data["collaborators"]),
        }
    )
    request_id, outcomes = workflow.request_access(
        factory,
        actor=subject,
        purpose=purpose,
        datasets=body.datasets,
        agreement_version=body.agreement_version,
    )
    return {"id": request_id, "datasets": [dataclasses.asdict(o) for o in outcomes]}


@router.get("/requests/{request_id}", summary="One access request")
def get_request(request_id: Id, factory: SessionFactoryDep, subject: SubjectDep) -> dict[str, Any]:
    """A request, for its requester, its reviewers, administrators and auditors."""
    return workflow.get_request(factory, request_id, actor=subject)


@router.get("/dac/queue", summary="Requests waiting for your DACs")
def dac_queue(factory: SessionFactoryDep, subject: SubjectDep) -> list[dict[str, Any]]:
    """Pending dataset requests of the committees the caller sits on."""
    return workflow.review_queue(factory, actor=subject)


@router.post("/dac/decisions", summary="Approve or reject one dataset of a request")
def dac_decide(
    factory: SessionFactoryDep, subject: SubjectDep, body: DecisionBody
) -> dict[str, Any]:
    """Record a DAC decision; an approval creates a grant that expires."""
    grant = workflow.decide_request(
        factory,
        item_id=body.item,
        approve=body.approve,
        reason=body.reason,
        actor=subject,
        expires=body.expires,
        conditions=body.conditions,
    )
    return {"item": body.item, "approved": body.approve, "grant": grant}


@router.get("/grants", summary="Your access grants in force")
def my_grants(factory: SessionFactoryDep, subject: SubjectDep) -> list[dict[str, Any]]:
    """The caller's unexpired, unrevoked grants."""
    if subject.kind != "user":
        raise AuthenticationError("Sign in first.", message_zh="请先登录。")
    return workflow.active_grants(factory, email=subject.id.removeprefix("user:"))


@router.delete("/grants/{grant_id}", summary="Revoke a grant", status_code=204)
def revoke_grant(
    grant_id: Id, factory: SessionFactoryDep, subject: SubjectDep, reason: str
) -> None:
    """Revoke a grant at once (its DAC or an administrator)."""
    workflow.revoke_grant(factory, grant_id=grant_id, reason=reason, actor=subject)


wellknown = APIRouter(tags=["access"])


@wellknown.get("/.well-known/jwks.json", summary="Keys that sign this node's visas")
def jwks(request: Request) -> dict[str, Any]:
    """The JSON Web Key Set of the visa signing keys (public parts only)."""
    keys: KeyStore = request.app.state.visa_keys
    keys.signer()  # a fresh node makes its first key
    return keys.jwks()


@router.get("/userinfo", summary="The caller's GA4GH passport")
def userinfo(
    request: Request, factory: SessionFactoryDep, settings: SettingsDep, subject: SubjectDep
) -> dict[str, Any]:
    """`ga4gh_passport_v1`: signed visas for the caller's grants, affiliation, accepted terms
    and researcher status."""
    return passport_service.passport(
        factory, subject=subject, settings=settings, keys=request.app.state.visa_keys
    )
