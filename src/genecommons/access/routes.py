"""HTTP routes of identities under /api/v1: sign-in, the caller, API tokens."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form
from pydantic import BaseModel, Field

from genecommons.access import service
from genecommons.deps import AddressDep, SessionFactoryDep, SubjectDep
from genecommons.errors import AuthenticationError

router = APIRouter(prefix="/api/v1", tags=["access"])


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
) -> dict[str, Any]:
    """An OAuth2-style password grant: returns a bearer token valid for 12 hours."""
    issued = service.sign_in(factory, email=username, password=password, address=address)
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
    return {"id": subject.id, "roles": sorted(subject.roles), "institution": subject.institution}


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
def revoke_token(token_id: int, factory: SessionFactoryDep, subject: SubjectDep) -> None:
    """Revoke one of your tokens (administrators: anyone's)."""
    service.revoke_token(factory, token_id=token_id, actor=subject)
