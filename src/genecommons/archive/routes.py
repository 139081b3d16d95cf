"""HTTP routes of the archive: uploads and files under /api/v1, GA4GH DRS 1.4 under
/ga4gh/drs/v1 and htsget 1.3 under /htsget. They translate; the services decide."""

from __future__ import annotations

from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Header, Path, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.types import Receive, Scope, Send

from genecommons import __version__
from genecommons.archive import delivery, service
from genecommons.archive.copy_jobs import CopyNotReadyError
from genecommons.archive.keys import format_public_key, parse_public_key
from genecommons.deps import SessionFactoryDep, SettingsDep, SubjectDep

router = APIRouter(prefix="/api/v1", tags=["archive"])
drs = APIRouter(prefix="/ga4gh/drs/v1", tags=["drs"])
htsget = APIRouter(prefix="/htsget", tags=["htsget"])

Accession = Annotated[str, Path(min_length=1, max_length=40)]
UploadId = Annotated[str, Path(min_length=1, max_length=64)]
Page = Annotated[int, Query(ge=1, le=1_000_000)]
PageSize = Annotated[int, Query(ge=1, le=1000)]
Coordinate = Annotated[int | None, Query(ge=0, le=2**31 - 1)]
Offset = Annotated[int, Query(ge=0, le=2**62)]


class UploadBody(BaseModel):
    """An upload to open."""

    model_config = ConfigDict(extra="forbid")
    file: str = Field(min_length=1, max_length=40, description="Accession of the catalog file")
    size: int | None = Field(default=None, ge=0, le=2**62, description="Size in bytes")


class KeyBody(BaseModel):
    """A Crypt4GH public key (as `crypt4gh-keygen` writes it)."""

    model_config = ConfigDict(extra="forbid")
    public_key: str = Field(min_length=1, max_length=1000)


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


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

    def __init__(self, transfer: delivery.Transfer, **kwargs: Any) -> None:
        super().__init__(transfer, **kwargs)
        self.transfer = transfer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await run_in_threadpool(self.transfer.close)


RETRY_AFTER = {
    "description": "Your fingerprinted copy of the file is being made: send the same request "
    "again after Retry-After seconds.",
    "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds"}},
}


def _accepted(response: Response, error: CopyNotReadyError) -> dict[str, Any]:
    """DRS 1.4's answer while an object is being prepared: 202 with Retry-After."""
    response.status_code = 202
    response.headers["Retry-After"] = str(error.retry_after)
    return {"msg": error.message, "status_code": 202, **error.to_dict()}


def _not_ready(error: CopyNotReadyError, *, htsget: bool) -> dict[str, Any]:
    if htsget:
        return {
            "htsget": {
                "error": "NotReady",
                "message": error.message,
                "message_zh": error.message_zh,
                "retry_after": error.retry_after,
            }
        }
    return {"msg": error.message, "status_code": 503, **error.to_dict()}


def _unavailable(error: CopyNotReadyError, *, htsget: bool = False) -> JSONResponse:
    """A byte stream or htsget ticket of a copy not made yet: 503 with Retry-After (what
    htsget clients and `curl --retry` wait on; a 202 body would be taken for the data)."""
    return JSONResponse(
        _not_ready(error, htsget=htsget),
        status_code=503,
        headers={"Retry-After": str(error.retry_after)},
    )


@router.post("/uploads", status_code=201, summary="Open a resumable upload of a declared file")
def open_upload(
    body: UploadBody, factory: SessionFactoryDep, settings: SettingsDep, subject: SubjectDep
) -> dict[str, Any]:
    """Send the bytes with PATCH /api/v1/uploads/{id} (Upload-Offset header), then complete."""
    state = service.start_upload(
        factory, settings, subject=subject, accession=body.file, size=body.size
    )
    return state.to_dict()


@router.get("/uploads/{upload_id}", summary="Where an upload stands (the offset to resume at)")
def upload_state(
    upload_id: UploadId, factory: SessionFactoryDep, subject: SubjectDep
) -> dict[str, Any]:
    """The upload's state and offset."""
    return service.upload_status(factory, subject=subject, upload_id=upload_id).to_dict()


@router.patch("/uploads/{upload_id}", summary="Append bytes to an upload")
async def append_to_upload(
    upload_id: UploadId,
    request: Request,
    factory: SessionFactoryDep,
    settings: SettingsDep,
    subject: SubjectDep,
    upload_offset: Annotated[int, Header(ge=0, le=2**62)],
) -> dict[str, Any]:
    """The body is streamed to disk as it arrives; a broken connection keeps what arrived."""
    appender = await run_in_threadpool(
        service.open_append,
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
    finally:
        state = await run_in_threadpool(appender.close)
    return state.to_dict()


@router.post("/uploads/{upload_id}/complete", status_code=201, summary="Check, encrypt and archive")
def complete_upload(
    upload_id: UploadId, factory: SessionFactoryDep, settings: SettingsDep, subject: SubjectDep
) -> dict[str, Any]:
    """Checksums, format check and Crypt4GH encryption; the staged bytes are then removed."""
    archived = service.complete_upload(factory, settings, subject=subject, upload_id=upload_id)
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
    return service.list_files(
        factory, subject=subject, page=page, page_size=page_size, dataset=dataset
    )


@router.get("/archive/public-key", summary="The archive's Crypt4GH public key")
def archive_public_key(settings: SettingsDep) -> dict[str, str]:
    """Encrypt uploads for this key (crypt4gh encrypt --recipient_pk) so no plaintext travels."""
    return {"public_key": format_public_key(service.archive_public_key(settings))}


@router.put("/me/crypt4gh-key", status_code=204, summary="Register your Crypt4GH public key")
def register_key(body: KeyBody, factory: SessionFactoryDep, subject: SubjectDep) -> Response:
    """Deliveries to you are encrypted for this key."""
    service.register_public_key(
        factory, subject=subject, owner=subject.id, public_key=parse_public_key(body.public_key)
    )
    return Response(status_code=204)


# -- DRS ------------------------------------------------------------------------------------


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
        "maxBulkRequestLength": 1,
    }


@drs.get("/objects/{object_id}", summary="A DRS object", responses={202: RETRY_AFTER})
def drs_object(
    object_id: Accession,
    request: Request,
    response: Response,
    factory: SessionFactoryDep,
    settings: SettingsDep,
    subject: SubjectDep,
) -> dict[str, Any]:
    """Size, checksums and access methods of an archived file you may read (202 while your
    fingerprinted copy of it is being made)."""
    try:
        return delivery.drs_object(
            factory, settings, subject=subject, object_id=object_id, base_url=_base(request)
        )
    except CopyNotReadyError as error:
        return _accepted(response, error)


@drs.get(
    "/objects/{object_id}/access/{access_id}",
    summary="A URL to fetch a DRS object",
    responses={202: RETRY_AFTER},
)
def drs_access(
    object_id: Accession,
    access_id: Annotated[str, Path(max_length=40)],
    request: Request,
    response: Response,
    factory: SessionFactoryDep,
    settings: SettingsDep,
    subject: SubjectDep,
) -> dict[str, Any]:
    """The download URL and the headers to send with it (202 while your fingerprinted copy
    of the file is being made)."""
    headers = [f"{k}: {v}" for k, v in _credentials(request).items()]
    try:
        return delivery.drs_access_url(
            factory,
            settings,
            subject=subject,
            object_id=object_id,
            access_id=access_id,
            base_url=_base(request),
            headers=headers,
        )
    except CopyNotReadyError as error:
        return _accepted(response, error)


@drs.get(
    "/objects/{object_id}/download",
    summary="The file, Crypt4GH-encrypted for you",
    response_class=StreamingResponse,
    responses={503: RETRY_AFTER},
)
def drs_download(
    object_id: Accession,
    factory: SessionFactoryDep,
    settings: SettingsDep,
    subject: SubjectDep,
    x_crypt4gh_public_key: Annotated[str | None, Header(max_length=1000)] = None,
) -> Response:
    """A Crypt4GH stream for your registered key (or the key in X-Crypt4GH-Public-Key);
    503 with Retry-After while your fingerprinted copy of the file is being made."""
    try:
        result = delivery.download(
            factory,
            settings,
            subject=subject,
            object_id=object_id,
            offered_key=x_crypt4gh_public_key,
        )
    except CopyNotReadyError as error:
        return _unavailable(error)
    return TransferResponse(
        result.chunks,
        media_type="application/octet-stream",
        headers={
            "Content-Length": str(result.size),
            "Content-Disposition": f'attachment; filename="{result.name}"',
        },
    )


# -- htsget -----------------------------------------------------------------------------------


class RegionBody(BaseModel):
    """One region of an htsget POST request."""

    model_config = ConfigDict(populate_by_name=True)
    referenceName: str = Field(min_length=1, max_length=200)  # noqa: N815 - htsget's name
    start: int | None = Field(default=None, ge=0, le=2**31 - 1)
    end: int | None = Field(default=None, ge=0, le=2**31 - 1)


class TicketBody(BaseModel):
    """An htsget POST request."""

    format: str | None = Field(default=None, max_length=10)
    fields: list[str] | None = Field(default=None, max_length=100)
    tags: list[str] | None = Field(default=None, max_length=100)
    notags: list[str] | None = Field(default=None, max_length=100)
    regions: list[RegionBody] | None = Field(default=None, max_length=delivery.MAX_REGIONS)


def _service_info(endpoint: str, request: Request) -> dict[str, Any]:
    formats = list(delivery.HTSGET_FORMATS[endpoint].values())
    return {
        "id": f"org.genecommons.htsget.{endpoint}",
        "name": f"GeneCommons htsget ({endpoint})",
        "type": {"group": "org.ga4gh", "artifact": "htsget", "version": "1.3.0"},
        "organization": {"name": "GeneCommons", "url": _base(request)},
        "version": __version__,
        "htsget": {
            "datatype": endpoint,
            "formats": formats,
            "fieldsParametersEffective": False,
            "tagsParametersEffective": False,
        },
    }


def _ticket(
    endpoint: str,
    object_id: str,
    request: Request,
    response: Response,
    factory: Any,
    settings: Any,
    subject: Any,
    *,
    format_: str | None,
    regions: list[delivery.Region],
    header_only: bool,
) -> dict[str, Any]:
    try:
        return delivery.htsget_ticket(
            factory,
            settings,
            subject=subject,
            endpoint=endpoint,
            object_id=object_id,
            requested_format=format_,
            regions=regions,
            header_only=header_only,
            base_url=_base(request),
            headers=_credentials(request),
        )
    except CopyNotReadyError as error:
        response.status_code = 503
        response.headers["Retry-After"] = str(error.retry_after)
        return _not_ready(error, htsget=True)


def _add_endpoint(endpoint: str) -> None:
    @htsget.get(f"/{endpoint}/service-info", summary=f"htsget {endpoint} service information")
    def info(request: Request) -> dict[str, Any]:
        return _service_info(endpoint, request)

    @htsget.get(
        f"/{endpoint}/{{object_id}}",
        summary=f"An htsget {endpoint} ticket",
        responses={503: RETRY_AFTER},
    )
    def ticket(
        object_id: Accession,
        request: Request,
        response: Response,
        factory: SessionFactoryDep,
        settings: SettingsDep,
        subject: SubjectDep,
        format: Annotated[str | None, Query(max_length=10)] = None,
        referenceName: Annotated[str | None, Query(max_length=200)] = None,  # noqa: N803
        start: Coordinate = None,
        end: Coordinate = None,
        klass: Annotated[str | None, Query(alias="class", max_length=10)] = None,
        fields: Annotated[str | None, Query(max_length=1000)] = None,
        tags: Annotated[str | None, Query(max_length=1000)] = None,
        notags: Annotated[str | None, Query(max_length=1000)] = None,
    ) -> dict[str, Any]:
        header_only = delivery.header_class(klass)
        regions = delivery.parse_regions(referenceName, start, end)
        return _ticket(
            endpoint,
            object_id,
            request,
            response,
            factory,
            settings,
            subject,
            format_=format,
            regions=regions,
            header_only=header_only,
        )

    @htsget.post(
        f"/{endpoint}/{{object_id}}",
        summary=f"An htsget {endpoint} ticket (POST)",
        responses={503: RETRY_AFTER},
    )
    def ticket_post(
        object_id: Accession,
        body: TicketBody,
        request: Request,
        response: Response,
        factory: SessionFactoryDep,
        settings: SettingsDep,
        subject: SubjectDep,
    ) -> dict[str, Any]:
        regions = [
            region
            for item in body.regions or []
            for region in delivery.parse_regions(item.referenceName, item.start, item.end)
        ]
        return _ticket(
            endpoint,
            object_id,
            request,
            response,
            factory,
            settings,
            subject,
            format_=body.format,
            regions=regions,
            header_only=False,
        )


for _endpoint in delivery.HTSGET_FORMATS:
    _add_endpoint(_endpoint)


@htsget.get(
    "/data/{object_id}",
    summary="BGZF bytes of a ticket's URL",
    response_class=StreamingResponse,
    responses={503: RETRY_AFTER},
)
def htsget_data(
    object_id: Accession,
    factory: SessionFactoryDep,
    settings: SettingsDep,
    subject: SubjectDep,
    start: Offset,
    end: Offset,
) -> Response:
    """Blocks between two virtual offsets, cut from the encrypted store."""
    try:
        transfer = delivery.htsget_data(
            factory, settings, subject=subject, object_id=object_id, start=start, end=end
        )
    except CopyNotReadyError as error:
        return _unavailable(error, htsget=True)
    return TransferResponse(transfer, media_type="application/octet-stream")
