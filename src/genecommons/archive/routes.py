"""HTTP routes of the archive: uploads and files under /api/v1, GA4GH DRS 1.4 under
/ga4gh/drs/v1 and htsget 1.3 under /htsget. They translate; the services decide."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter, Header, Path, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from genecommons import __version__
from genecommons.access.passports import MAX_TOKEN_LENGTH, MAX_VISAS, passport_of_tokens
from genecommons.archive import drs as drs_delivery
from genecommons.archive import htsget as htsget_delivery
from genecommons.archive import htsget_requests as hts
from genecommons.archive import inventory, keys_and_store, uploads
from genecommons.archive.keys import format_public_key, parse_public_key
from genecommons.archive.served import Transfer
from genecommons.deps import (
    ServicesDep,
    SessionFactoryDep,
    SettingsDep,
    SubjectDep,
    public_base_url,
    with_passports,
)
from genecommons.errors import RequestTooLargeError
from genecommons.policy.models import Subject
from genecommons.services import Services

router = APIRouter(prefix="/api/v1", tags=["archive"])
drs = APIRouter(prefix="/ga4gh/drs/v1", tags=["drs"])
htsget = APIRouter(prefix="/htsget", tags=["htsget"])

Accession = Annotated[str, Path(min_length=1, max_length=40)]
UploadId = Annotated[str, Path(min_length=1, max_length=64)]
Page = Annotated[int, Query(ge=1, le=1_000_000)]
PageSize = Annotated[int, Query(ge=1, le=1000)]
Coordinate = Annotated[int | None, Query(ge=0, le=hts.MAX_COORDINATE)]
Offset = Annotated[int, Query(ge=0, le=2**62)]


class UploadBody(BaseModel):
    """An upload to open."""

    model_config = ConfigDict(extra="forbid")
    file: str = Field(min_length=1, max_length=40, description="Accession of the catalog file")
    # 2^53 - 1 (8 PiB): exact in every JSON reader, JavaScript's too
    size: int | None = Field(default=None, ge=0, le=2**53 - 1, description="Size in bytes")


class KeyBody(BaseModel):
    """A Crypt4GH public key (as `crypt4gh-keygen` writes it)."""

    model_config = ConfigDict(extra="forbid")
    public_key: str = Field(min_length=1, max_length=1000)


def _base(request: Request) -> str:
    return public_base_url(request)


def _credentials(request: Request) -> dict[str, str]:
    """The caller's credentials, repeated in the URLs handed out so that they work as is."""
    headers = {}
    for name in ("authorization", "x-ga4gh-passport"):
        value = request.headers.get(name)
        if value:
            headers["Authorization" if name == "authorization" else "X-GA4GH-Passport"] = value
    return headers


class TransferResponse(StreamingResponse):
    """A delivery's stream, closed (and so audited with the bytes sent) however it ends: to
    the last byte, or cut off by the client or the server."""

    def __init__(self, transfer: Transfer, **kwargs: Any) -> None:
        super().__init__(transfer, **kwargs)
        self.transfer = transfer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await run_in_threadpool(self.transfer.close)


# while a recipient's fingerprinted copy is being made (errors.NotReadyError, answered in
# app.py: DRS objects and access URLs 202, byte streams and htsget tickets 503)
_WAIT: dict[str, Any] = {
    "description": "Your fingerprinted copy of the file is being made: send the same request "
    "again after Retry-After seconds.",
    "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds"}},
}
ACCEPTED: dict[int | str, dict[str, Any]] = {202: _WAIT}
UNAVAILABLE: dict[int | str, dict[str, Any]] = {503: _WAIT}


@router.post("/uploads", status_code=201, summary="Open a resumable upload of a declared file")
def open_upload(
    body: UploadBody, factory: SessionFactoryDep, settings: SettingsDep, subject: SubjectDep
) -> dict[str, Any]:
    """Send the bytes with PATCH /api/v1/uploads/{id} (Upload-Offset header), then complete."""
    state = uploads.start_upload(
        factory, settings, subject=subject, accession=body.file, size=body.size
    )
    return state.to_dict()


@router.get("/uploads/{upload_id}", summary="Where an upload stands (the offset to resume at)")
def upload_state(
    upload_id: UploadId, factory: SessionFactoryDep, subject: SubjectDep
) -> dict[str, Any]:
    """The upload's state and offset."""
    return uploads.upload_status(factory, subject=subject, upload_id=upload_id).to_dict()


@router.patch("/uploads/{upload_id}", summary="Append bytes to an upload")
async def append_to_upload(
    upload_id: UploadId,
    request: Request,
    factory: SessionFactoryDep,
    settings: SettingsDep,
    subject: SubjectDep,
    upload_offset: Annotated[int, Header(ge=0, le=2**53 - 1)],
) -> dict[str, Any]:
    """The body is streamed to disk as it arrives; a broken connection keeps what arrived."""
    appender = await run_in_threadpool(
        uploads.open_append,
        factory,
        settings,
        subject=subject,
        upload_id=upload_id,
        offset=upload_offset,
    )
    try:
        async for chunk in request.stream():
            if chunk:
                await run_in_threadpool(appender.write, chunk)
    except ClientDisconnect:
        pass  # the client went away, or was cut off for sending too slowly: no one to answer
    finally:
        state = await run_in_threadpool(appender.close)
    return state.to_dict()


@router.post("/uploads/{upload_id}/complete", status_code=201, summary="Check, encrypt and archive")
def complete_upload(
    upload_id: UploadId, factory: SessionFactoryDep, settings: SettingsDep, subject: SubjectDep
) -> dict[str, Any]:
    """Checksums, format check and Crypt4GH encryption; the staged bytes are then removed."""
    archived = uploads.complete_upload(factory, settings, subject=subject, upload_id=upload_id)
    return archived.to_dict()


@router.get("/files", summary="Archived files (data stewards and administrators)")
def list_files(
    factory: SessionFactoryDep,
    subject: SubjectDep,
    page: Page = 1,
    page_size: PageSize = 50,
    dataset: Annotated[str | None, Query(max_length=40)] = None,
) -> dict[str, Any]:
    """Accession, dataset, size, checksums and state of each archived file."""
    return inventory.list_files(
        factory, subject=subject, page=page, page_size=page_size, dataset=dataset
    )


@router.get("/archive/public-key", summary="The archive's Crypt4GH public key")
def archive_public_key(settings: SettingsDep) -> dict[str, str]:
    """Encrypt uploads for this key (crypt4gh encrypt --recipient_pk) so no plaintext travels."""
    return {"public_key": format_public_key(keys_and_store.archive_public_key(settings))}


@router.put("/me/crypt4gh-key", status_code=204, summary="Register your Crypt4GH public key")
def register_key(body: KeyBody, factory: SessionFactoryDep, subject: SubjectDep) -> Response:
    """Deliveries to you are encrypted for this key."""
    keys_and_store.register_public_key(
        factory, subject=subject, owner=subject.id, public_key=parse_public_key(body.public_key)
    )
    return Response(status_code=204)


# -- DRS ------------------------------------------------------------------------------------


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
    headers = [f"{k}: {v}" for k, v in _credentials(request).items()]
    if body is not None and body.passports:
        passport = json.dumps(passport_of_tokens(body.passports), separators=(",", ":"))
        headers = [h for h in headers if not h.startswith("X-GA4GH-Passport:")]
        headers.append(f"X-GA4GH-Passport: {passport}")
    return headers


@drs.get("/service-info", summary="DRS service information")
def drs_service_info(request: Request) -> dict[str, Any]:
    """GA4GH service-info for this DRS endpoint."""
    return {
        "id": "org.genecommons.drs",
        "name": "GeneCommons DRS",
        "type": {"group": "org.ga4gh", "artifact": "drs", "version": "1.4.0"},
        "description": "Files of the GeneCommons archive, delivered Crypt4GH-encrypted.",
        "organization": {"name": "GeneCommons", "url": _base(request)},
        "version": __version__,
        "maxBulkRequestLength": drs_delivery.MAX_BULK,  # where DRS 1.4 reads it (deprecated there)
        "drs": {"maxBulkRequestLength": drs_delivery.MAX_BULK},
    }


@drs.get("/objects/{object_id}", summary="A DRS object", responses=ACCEPTED)
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
        base_url=_base(request),
    )


@drs.post("/objects", summary="Several DRS objects at once")
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
        base_url=_base(request),
    )


@drs.post("/objects/access", summary="URLs to fetch several DRS objects at once")
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
        base_url=_base(request),
        headers=_access_headers(request, body),
    )


# after /objects/access, which it would otherwise take for an object id
@drs.post(
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
        base_url=_base(request),
    )


@drs.get(
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
        base_url=_base(request),
        headers=_access_headers(request),
    )


@drs.post(
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
        base_url=_base(request),
        headers=_access_headers(request, body),
    )


@drs.get(
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


# -- htsget -----------------------------------------------------------------------------------


class HtsgetTicket(JSONResponse):
    """An htsget ticket, with the Content-Type htsget 1.3 names for it."""

    media_type = f"{hts.MEDIA_TYPE}; charset=utf-8"


def _service_info(endpoint: str, request: Request) -> dict[str, Any]:
    formats = list(htsget_delivery.HTSGET_FORMATS[endpoint].values())
    return {
        "id": f"org.genecommons.htsget.{endpoint}",
        "name": f"GeneCommons htsget ({endpoint})",
        "type": {"group": "org.ga4gh", "artifact": "htsget", "version": "1.3.0"},
        "organization": {"name": "GeneCommons", "url": _base(request)},
        "version": __version__,
        "htsget": {
            "datatype": endpoint,
            "formats": formats,
            "fieldsParameterEffective": False,
            "tagsParametersEffective": False,
        },
    }


def _ticket(
    endpoint: str,
    object_id: str,
    request: Request,
    services: Services,
    subject: Subject,
    asked: hts.TicketRequest,
) -> HtsgetTicket:
    return HtsgetTicket(
        htsget_delivery.htsget_ticket(
            services.factory,
            services.settings,
            subject=subject,
            copies=services.recipient_copies,
            endpoint=endpoint,
            object_id=object_id,
            requested_format=asked.format,
            regions=list(asked.regions),
            header_only=asked.header_only,
            base_url=_base(request),
            headers=_credentials(request),
        )
    )


# the formats each endpoint is asked for, in either case (the spec's own POST example says "bam")
def _format_names(endpoint: str) -> list[str]:
    served = htsget_delivery.HTSGET_FORMATS[endpoint].values()
    return sorted({name for f in served for name in (f, f.lower())})


def _add_endpoint(endpoint: str) -> None:
    formats = _format_names(endpoint)

    @htsget.get(f"/{endpoint}/service-info", summary=f"htsget {endpoint} service information")
    def info(request: Request) -> dict[str, Any]:
        return _service_info(endpoint, request)

    def ticket(
        object_id: Accession,
        request: Request,
        services: ServicesDep,
        subject: SubjectDep,
        format: str | None = None,  # the endpoint's formats: annotated below
        referenceName: Annotated[str | None, Query(min_length=1, max_length=200)] = None,  # noqa: N803
        start: Coordinate = None,
        end: Coordinate = None,
        klass: Annotated[Literal["header"] | None, Query(alias="class")] = None,
        fields: Annotated[str | None, Query(max_length=1000)] = None,
        tags: Annotated[str | None, Query(max_length=1000)] = None,
        notags: Annotated[str | None, Query(max_length=1000)] = None,
    ) -> HtsgetTicket:
        asked = hts.get_request(
            format=format,
            klass=klass,
            reference_name=referenceName,
            start=start,
            end=end,
            fields=fields,
            tags=tags,
            notags=notags,
        )
        return _ticket(endpoint, object_id, request, services, subject, asked)

    # the formats differ by endpoint, which a string annotation could not name
    ticket.__annotations__["format"] = Annotated[
        str | None, Query(json_schema_extra={"enum": formats})
    ]
    htsget.get(
        f"/{endpoint}/{{object_id}}",
        summary=f"An htsget {endpoint} ticket",
        response_class=HtsgetTicket,
        responses=UNAVAILABLE,
    )(ticket)

    @htsget.post(
        f"/{endpoint}/{{object_id}}",
        summary=f"An htsget {endpoint} ticket (POST)",
        response_class=HtsgetTicket,
        responses=UNAVAILABLE,
        openapi_extra={
            "requestBody": {
                "required": False,
                "content": {"application/json": {"schema": _ticket_body_schema(formats)}},
            }
        },
    )
    async def ticket_post(
        object_id: Accession,
        request: Request,
        services: ServicesDep,
        subject: SubjectDep,
    ) -> HtsgetTicket:
        """The body is read here (not by FastAPI) so that a body too large is refused with
        htsget's PayloadTooLarge before it is all in memory."""
        raw = await _limited_body(request, hts.MAX_TICKET_BODY)
        asked = hts.post_request(raw, query=request.query_params.keys())
        return await run_in_threadpool(
            _ticket, endpoint, object_id, request, services, subject, asked
        )


def _ticket_body_schema(formats: list[str]) -> dict[str, Any]:
    """The POST body's JSON Schema, with the endpoint's formats (OpenAPI 3.1 is JSON Schema)."""
    schema = hts.TicketBody.model_json_schema(ref_template="#/components/schemas/{model}")
    definitions = schema.pop("$defs", {})
    schema["properties"]["format"] = {"anyOf": [{"enum": formats}, {"type": "null"}]}
    region = definitions["RegionBody"]
    schema["properties"]["regions"]["anyOf"][0]["items"] = region
    return schema


async def _limited_body(request: Request, limit: int) -> bytes:
    """The request's body, refused past `limit` bytes (without reading more than that)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestTooLargeError(
            f"The request body exceeds {limit:,} bytes.",
            message_zh=f"请求体超过 {limit:,} 字节。",
        )
    received = bytearray()
    async for chunk in request.stream():
        received += chunk
        if len(received) > limit:
            raise RequestTooLargeError(
                f"The request body exceeds {limit:,} bytes.",
                message_zh=f"请求体超过 {limit:,} 字节。",
            )
    return bytes(received)


for _endpoint in htsget_delivery.HTSGET_FORMATS:
    _add_endpoint(_endpoint)


@htsget.get(
    "/data/{object_id}",
    summary="BGZF bytes of a ticket's URL",
    response_class=StreamingResponse,
    responses=UNAVAILABLE,
)
def htsget_data(
    object_id: Accession,
    services: ServicesDep,
    subject: SubjectDep,
    start: Offset,
    end: Offset,
) -> StreamingResponse:
    """Blocks between two virtual offsets, cut from the encrypted store."""
    transfer = htsget_delivery.htsget_data(
        services.factory,
        services.settings,
        subject=subject,
        copies=services.recipient_copies,
        object_id=object_id,
        start=start,
        end=end,
    )
    return TransferResponse(transfer, media_type="application/octet-stream")
