"""HTTP routes of identities under /api/v1: sign-in, the caller, API tokens."""

from __future__ import annotations

import dataclasses
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Cookie, Form, Query, Response
from fastapi import Path as PathParam
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, Field

from genecommons.access import (
    affiliation,
    listings,
    oidc_service,
    passport_service,
    registration,
    service,
    workflow,
)
from genecommons.access.duo_models import ResearchPurpose
from genecommons.deps import AddressDep, ServicesDep, SessionFactoryDep, SettingsDep, SubjectDep
from genecommons.errors import AuthenticationError
from genecommons.policy.models import Action

router = APIRouter(prefix="/api/v1", tags=["access"])
Id = Annotated[int, PathParam(ge=1, le=2**31 - 1)]
PageQ = Annotated[int, Query(ge=1, le=listings.MAX_PAGE, description="Page number, from 1")]
SizeQ = Annotated[int, Query(ge=1, le=listings.MAX_PAGE_SIZE, description="Records per page")]


def _page(page: Any) -> dict[str, Any]:
    return {
        "items": page.items,
        "total": page.total,
        "page": page.page,
        "page_size": page.page_size,
    }


class TokenRequest(BaseModel):
    """A request for a new API token for the signed-in user."""

    days: int = Field(default=90, ge=1, le=366)
    # the actions the token may be used for (declared, so that OpenAPI lists them)
    scopes: list[Action] | None = None
    label: str | None = Field(default=None, max_length=200)


@router.post("/auth/token", summary="Sign in: exchange e-mail and password for a token")
def sign_in(
    factory: SessionFactoryDep,
    settings: SettingsDep,
    address: AddressDep,
    username: Annotated[str, Form(min_length=1, description="E-mail address")],
    password: Annotated[str, Form(min_length=1)],
    otp: Annotated[
        str | None,
        Form(description="TOTP code (administrators, DAC members, any account with one)"),
    ] = None,
) -> dict[str, Any]:
    """An OAuth2-style password grant: returns a bearer token valid for 12 hours. Every
    refusal short of all the factors is the same 401."""
    issued = service.sign_in(
        factory, settings, email=username, password=password, address=address, otp=otp
    )
    return _token_body(issued)


OIDC_COOKIE = "gc_oidc_state"
OIDC_COOKIE_PATH = "/api/v1/auth/oidc"


def _token_body(issued: service.IssuedToken) -> dict[str, Any]:
    return {
        "access_token": issued.token,
        "token_type": "bearer",
        "expires_at": issued.expires_at.isoformat(),
    }


@router.get(
    "/auth/oidc/login",
    summary="Sign in through the configured OpenID Connect provider",
    status_code=302,
    response_class=RedirectResponse,
)
def oidc_login(services: ServicesDep, subject: SubjectDep) -> RedirectResponse:
    """Redirects to the provider (authorization code flow with PKCE, state and nonce). Called
    with a bearer token, the provider's identity is linked to the caller's account."""
    settings = services.settings
    started = oidc_service.begin(
        services.factory, services.oidc, settings=settings, link_to=subject
    )
    response = RedirectResponse(started.url, status_code=302)
    response.set_cookie(
        OIDC_COOKIE,
        started.state,
        max_age=settings.oidc_login_seconds,
        path=OIDC_COOKIE_PATH,
        secure=settings.effective_oidc_redirect_url.startswith("https://"),
        httponly=True,
        samesite="lax",
    )
    return response


@router.get("/auth/oidc/callback", summary="Where the OpenID Connect provider returns")
def oidc_callback(
    response: Response,
    services: ServicesDep,
    address: AddressDep,
    state: Annotated[str | None, Query(max_length=200)] = None,
    code: Annotated[str | None, Query(max_length=2000)] = None,
    error: Annotated[str | None, Query(max_length=200)] = None,
    browser_state: Annotated[str | None, Cookie(alias=OIDC_COOKIE, max_length=200)] = None,
) -> dict[str, Any]:
    """A bearer token valid for 12 hours, as `POST /auth/token` gives; administrators and DAC
    members get a ticket to complete with their TOTP code (`POST /auth/oidc/second-factor`)."""
    result = oidc_service.complete(
        services.factory,
        services.oidc,
        state=state,
        browser_state=browser_state,
        code=code,
        error=error,
        address=address,
    )
    response.delete_cookie(OIDC_COOKIE, path=OIDC_COOKIE_PATH)
    if result.token is None:
        assert result.ticket is not None and result.ticket_expires_at is not None
        return {
            "second_factor": "totp",
            "ticket": result.ticket,
            "expires_at": result.ticket_expires_at.isoformat(),
        }
    return {**_token_body(result.token), "account_created": result.created}


@router.post("/auth/oidc/second-factor", summary="Complete an OIDC sign-in with a TOTP code")
def oidc_second_factor(
    factory: SessionFactoryDep,
    settings: SettingsDep,
    address: AddressDep,
    ticket: Annotated[str, Form(min_length=1, max_length=200)],
    otp: Annotated[str, Form(min_length=1, max_length=20, description="TOTP code")],
) -> dict[str, Any]:
    """The ticket of the callback and the authenticator's current code give the token."""
    issued = oidc_service.second_factor(factory, settings, ticket=ticket, otp=otp, address=address)
    return _token_body(issued)


class RegistrationBody(BaseModel):
    """A researcher registering themselves."""

    email: str = Field(min_length=3, max_length=200)
    name: str = Field(min_length=1, max_length=200)
    password: str = Field(min_length=1, max_length=1000)
    institution: str = Field(min_length=1, max_length=100, description="Accession (GCO…)")


class VerificationBody(BaseModel):
    """The code e-mailed at registration, with the password given then."""

    email: str = Field(min_length=3, max_length=200)
    code: str = Field(min_length=1, max_length=200)
    password: str = Field(min_length=1, max_length=1000, description="As given at registration")


@router.post("/auth/register", summary="Register as a researcher", status_code=202)
def register(
    factory: SessionFactoryDep, settings: SettingsDep, address: AddressDep, body: RegistrationBody
) -> dict[str, Any]:
    """Creates an inactive researcher account and e-mails a verification code; the answer is
    the same whether or not the address has an account."""
    registered = registration.register(
        factory,
        settings,
        email=body.email,
        name=body.name,
        password=body.password,
        institution=body.institution,
        address=address,
    )
    return {
        "email": registered.email,
        "status": "verification_sent",
        "code_expires_at": registered.code_expires_at.isoformat(),
    }


@router.post("/auth/register/verify", summary="Verify a registration's e-mail address")
def verify_registration(
    factory: SessionFactoryDep, address: AddressDep, body: VerificationBody
) -> dict[str, str]:
    """`active`, or `awaiting_institution` until an administrator verifies the institution."""
    return registration.verify_email(
        factory, email=body.email, code=body.code, password=body.password, address=address
    )


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
        scopes=None if body.scopes is None else [str(s) for s in body.scopes],
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
def create_request(services: ServicesDep, subject: SubjectDep, body: RequestBody) -> dict[str, Any]:
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
        services.factory,
        actor=subject,
        purpose=purpose,
        datasets=body.datasets,
        agreement_version=body.agreement_version,
        archived_here=services.archived_here,
    )
    return {"id": request_id, "datasets": [dataclasses.asdict(o) for o in outcomes]}


@router.get("/requests", summary="Access requests you may see")
def list_requests(
    factory: SessionFactoryDep, subject: SubjectDep, page: PageQ = 1, page_size: SizeQ = 50
) -> dict[str, Any]:
    """A page of access requests, oldest first: your own, those for the DACs you sit on, or
    (administrators, auditors) every one; each with its datasets' verdicts and statuses."""
    return _page(listings.list_requests(factory, actor=subject, page=page, page_size=page_size))


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


@router.get("/grants/{grant_id}", summary="One access grant")
def get_grant(grant_id: Id, factory: SessionFactoryDep, subject: SubjectDep) -> dict[str, Any]:
    """A grant with its status (active, expired or revoked), for its holder, its DAC's
    members, administrators and auditors; for anyone else it does not exist (404)."""
    return listings.get_grant(factory, grant_id, actor=subject)


@router.delete("/grants/{grant_id}", summary="Revoke a grant", status_code=204)
def revoke_grant(
    grant_id: Id,
    factory: SessionFactoryDep,
    subject: SubjectDep,
    reason: Annotated[
        str,
        Query(
            min_length=1,
            max_length=workflow.MAX_REASON_LENGTH,
            description="Why (required; the researcher is told it, the audit log keeps it)",
        ),
    ],
) -> None:
    """Revoke a grant at once (its DAC or an administrator); a reason is required."""
    workflow.revoke_grant(factory, grant_id=grant_id, reason=reason, actor=subject)


class DomainsBody(BaseModel):
    """The e-mail domains an institution declares (replacing those it declared before)."""

    domains: list[Annotated[str, Field(min_length=1, max_length=253)]] = Field(
        max_length=affiliation.MAX_DOMAINS,
        description="e.g. bgc.org.cn; an address at a subdomain counts too",
    )


InstitutionAccession = Annotated[str, PathParam(min_length=1, max_length=40)]


@router.get("/institutions", summary="Institutions")
def list_institutions(
    factory: SessionFactoryDep, subject: SubjectDep, page: PageQ = 1, page_size: SizeQ = 50
) -> dict[str, Any]:
    """A page of institutions: accession, alias, names, country, province, city and kind for
    anyone; for administrators also `verification` (location and ownership as verified, the
    attestation, who verified when) and `email_domains`."""
    return _page(listings.list_institutions(factory, actor=subject, page=page, page_size=page_size))


@router.get("/institutions/{accession}", summary="One institution")
def get_institution(
    accession: InstitutionAccession, factory: SessionFactoryDep, subject: SubjectDep
) -> dict[str, Any]:
    """An institution by accession, as the listing shows it to the caller."""
    return listings.get_institution(factory, accession, actor=subject)


@router.get("/institutions/{accession}/email-domains", summary="An institution's e-mail domains")
def institution_domains(
    accession: InstitutionAccession, factory: SessionFactoryDep, subject: SubjectDep
) -> dict[str, Any]:
    """The domains whose verified addresses confirm a claimed affiliation (administrators)."""
    domains = affiliation.email_domains(factory, institution=accession, actor=subject)
    return {"institution": accession, "domains": domains}


@router.put("/institutions/{accession}/email-domains", summary="Declare an institution's domains")
def set_institution_domains(
    accession: InstitutionAccession,
    body: DomainsBody,
    factory: SessionFactoryDep,
    subject: SubjectDep,
) -> dict[str, Any]:
    """Replace the institution's e-mail domains (administrators); waiting claims at them are
    confirmed at once (`confirmed` lists their addresses)."""
    return affiliation.set_email_domains(
        factory, institution=accession, domains=body.domains, actor=subject
    )


@router.get("/affiliations", summary="Claimed affiliations waiting for you")
def affiliation_claims(factory: SessionFactoryDep, subject: SubjectDep) -> list[dict[str, Any]]:
    """Self-registered accounts that say they belong to your institution (data stewards) or to
    any institution (administrators); until confirmed they belong to none."""
    return affiliation.list_claims(factory, actor=subject)


@router.post("/affiliations/{claim_id}/confirm", summary="Confirm a claimed affiliation")
def confirm_affiliation(
    claim_id: Id, factory: SessionFactoryDep, subject: SubjectDep
) -> dict[str, Any]:
    """The account is then at the institution (a data steward of it, or an administrator)."""
    return affiliation.confirm(factory, claim_id=claim_id, actor=subject)


@router.delete("/affiliations/{claim_id}", summary="Reject a claimed affiliation", status_code=204)
def reject_affiliation(
    claim_id: Id,
    factory: SessionFactoryDep,
    subject: SubjectDep,
    reason: Annotated[
        str, Query(min_length=1, max_length=2000, description="Why (the claimant is told it)")
    ],
) -> None:
    """The claim is gone, and a registration that never completed with it."""
    affiliation.reject(factory, claim_id=claim_id, reason=reason, actor=subject)


wellknown = APIRouter(tags=["access"])


@wellknown.get("/.well-known/jwks.json", summary="Keys that sign this node's visas")
def jwks(services: ServicesDep) -> dict[str, Any]:
    """The JSON Web Key Set of the visa signing keys (public parts only)."""
    return services.visa_keys.jwks()


@router.get("/userinfo", summary="The caller's GA4GH passport")
def userinfo(services: ServicesDep, subject: SubjectDep) -> dict[str, Any]:
    """`ga4gh_passport_v1`: signed visas for the caller's grants, affiliation, accepted terms
    and researcher status."""
    return passport_service.passport(
        services.factory, subject=subject, settings=services.settings, keys=services.visa_keys
    )
