"""HTTP routes of GA4GH DRS 1.4 under /ga4gh/drs/v1. They translate; archive/drs.py decides."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from genecommons import __version__
from genecommons.access.passports import MAX_TOKEN_LENGTH, MAX_VISAS, passport_of_tokens
from genecommons.archive import drs as drs_delivery
from genecommons.archive.delivery_http import (
    ACCEPTED,
    UNAVAILABLE,
    Accession,
    TransferResponse,
    credentials,
)
from genecommons.deps import ServicesDep, SubjectDep, public_base_url, with_passports
from genecommons.policy.models import Subject

router = APIRouter(prefix="/ga4gh/drs/v1", tags=["drs"])


Passports = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=MAX_TOKEN_LENGTH)]],
    Field(
        max_length=MAX_VISAS,
        description="GA4GH passports (or visas) as JWTs; sent with the bearer token of the "
        "user they were issued to",
    ),
]


class PassportsBody(BaseModel):
    """DRS's PassportAuth: passports in the body of a POST."""

    passports: Passports = []


class ObjectBody(PassportsBody):
    """DRS `PostObject`: passports, and `expand` (ignored: no object here is a bundle)."""

    expand: bool = False


class BulkObjectsBody(PassportsBody):
    """DRS `GetBulkObjects`: the ids of the objects wanted."""

    bulk_object_ids: list[Annotated[str, Field(min_length=1, max_length=40)]] = Field(
        min_length=1, description=f"At most {drs_delivery.MAX_BULK} ids (maxBulkRequestLength)"
    )


class BulkAccess(BaseModel):
    """One object of a bulk access request, with the access ids wanted for it."""

    bulk_object_id: str = Field(min_length=1, max_length=40)
    bulk_access_ids: list[Annotated[str, Field(min_length=1, max_length=40)]] = Field(
        min_length=1, max_length=10
    )


class BulkAccessBody(PassportsBody):
    """DRS `GetBulkAccessURL`: (object id, access ids) of the URLs wanted."""

    bulk_object_access_ids: list[BulkAccess] = Field(
        min_length=1, description=f"At most {drs_delivery.MAX_BULK} ids (maxBulkRequestLength)"
    )


def _drs_caller(request: Request, subject: Subject, body: PassportsBody) -> Subject:
    return with_passports(request, subject, body.passports)


def _access_headers(request: Request, body: PassportsBody | None = None) -> list[str]:
    """The headers a download URL is fetched with: the caller's credentials, and the visas of
    the passports sent in the body, as the X-GA4GH-Passport header the download reads."""
    headers = [f"{k}: {v}" for k, v in credentials(request).items()]
    if body is not None and body.passports:
        passport = json.dumps(passport_of_tokens(body.passports), separators=(",", ":"))
        headers = [h for h in headers if not h.startswith("X-GA4GH-Passport:")]
        headers.append(f"X-GA4GH-Passport: {passport}")
    return headers


@router.get("/service-info", summary="DRS service information")
def drs_service_info(request: Request) -> dict[str, Any]:
    """GA4GH service-info for this DRS endpoint."""
    return {
        "id": "org.genecommons.drs",
        "name": "GeneCommons DRS",
        "type": {"group": "org.ga4gh", "artifact": "drs", "version": "1.4.0"},
        "description": "Files of the GeneCommons archive, delivered Crypt4GH-encrypted.",
        "organization": {"name": "GeneCommons", "url": public_base_url(request)},
        "version": __version__,
        "maxBulkRequestLength": drs_delivery.MAX_BULK,  # where DRS 1.4 reads it (deprecated there)
        "drs": {"maxBulkRequestLength": drs_delivery.MAX_BULK},
    }


@router.get("/objects/{object_id}", summary="A DRS object", responses=ACCEPTED)
def drs_object(
    object_id: Accession,
    request: Request,
    services: ServicesDep,
    subject: SubjectDep,
    expand: bool = False,
) -> dict[str, Any]:
    """Size, checksums and access methods of an archived file you may read."""
    return drs_delivery.drs_object(
        services.factory,
        services.settings,
        subject=subject,
        copies=services.recipient_copies,
        object_id=object_id,
        base_url=public_base_url(request),
    )


@router.post("/objects", summary="Several DRS objects at once")
def drs_objects(
    body: BulkObjectsBody,
    request: Request,
    services: ServicesDep,
    subject: SubjectDep,
) -> dict[str, Any]:
    """Each object as GET /objects/{id} answers it; the others under unresolved_drs_objects
    with the status their own request would have had."""
    return drs_delivery.drs_objects(
        services.factory,
        services.settings,
        subject=_drs_caller(request, subject, body),
        copies=services.recipient_copies,
        object_ids=body.bulk_object_ids,
        base_url=public_base_url(request),
    )


@router.post("/objects/access", summary="URLs to fetch several DRS objects at once")
def drs_access_urls(
    body: BulkAccessBody,
    request: Request,
    services: ServicesDep,
    subject: SubjectDep,
) -> dict[str, Any]:
    """Each URL as GET /objects/{id}/access/{access_id} answers it."""
    return drs_delivery.drs_access_urls(
        services.factory,
        services.settings,
        subject=_drs_caller(request, subject, body),
        copies=services.recipient_copies,
        wanted=[
            (item.bulk_object_id, item.bulk_access_ids) for item in body.bulk_object_access_ids
        ],
        base_url=public_base_url(request),
        headers=_access_headers(request, body),
    )


# after /objects/access, which it would otherwise take for an object id
@router.post(
    "/objects/{object_id}",
    summary="A DRS object, with passports in the body",
    responses=ACCEPTED,
)
def drs_object_post(
    object_id: Accession,
    body: ObjectBody,
    request: Request,
    services: ServicesDep,
    subject: SubjectDep,
) -> dict[str, Any]:
    """As GET, with the grants of the passports sent (with your bearer token)."""
    return drs_delivery.drs_object(
        services.factory,
        services.settings,
        subject=_drs_caller(request, subject, body),
        copies=services.recipient_copies,
        object_id=object_id,
        base_url=public_base_url(request),
    )


@router.get(
    "/objects/{object_id}/access/{access_id}",
    summary="A URL to fetch a DRS object",
    responses=ACCEPTED,
)
def drs_access(
    object_id: Accession,
    access_id: Annotated[str, Path(min_length=1, max_length=40)],
    request: Request,
    services: ServicesDep,
    subject: SubjectDep,
) -> dict[str, Any]:
    """The download URL and the headers to send with it."""
    return drs_delivery.drs_access_url(
        services.factory,
        services.settings,
        subject=subject,
        copies=services.recipient_copies,
        object_id=object_id,
        access_id=access_id,
        base_url=public_base_url(request),
        headers=_access_headers(request),
    )


@router.post(
    "/objects/{object_id}/access/{access_id}",
    summary="A URL to fetch a DRS object, with passports in the body",
    responses=ACCEPTED,
)
def drs_access_post(
    object_id: Accession,
    access_id: Annotated[str, Path(min_length=1, max_length=40)],
    body: PassportsBody,
    request: Request,
    services: ServicesDep,
    subject: SubjectDep,
) -> dict[str, Any]:
    """As GET, with the grants of the passports sent (with your bearer token)."""
    return drs_delivery.drs_access_url(
        services.factory,
        services.settings,
        subject=_drs_caller(request, subject, body),
        copies=services.recipient_copies,
        object_id=object_id,
        access_id=access_id,
        base_url=public_base_url(request),
        headers=_access_headers(request, body),
    )


@router.get(
    "/objects/{object_id}/download",
    summary="The file, Crypt4GH-encrypted for you",
    response_class=StreamingResponse,
    responses=UNAVAILABLE,
)
def drs_download(
    object_id: Accession,
    services: ServicesDep,
    subject: SubjectDep,
    x_crypt4gh_public_key: Annotated[str | None, Header(max_length=1000)] = None,
) -> StreamingResponse:
    """A Crypt4GH stream for your registered key (or the key in X-Crypt4GH-Public-Key);
    503 with Retry-After while your fingerprinted copy of the file is being made."""
    result = drs_delivery.download(
        services.factory,
        services.settings,
        subject=subject,
        copies=services.recipient_copies,
        object_id=object_id,
        offered_key=x_crypt4gh_public_key,
    )
    return TransferResponse(
        result.chunks,
        media_type="application/octet-stream",
        headers={
            "Content-Length": str(result.size),
            "Content-Disposition": f'attachment; filename="{result.name}"',
        },
    )
