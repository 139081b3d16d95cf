"""HTTP routes of htsget 1.3 under /htsget: service-info and tickets of each endpoint, and the
bytes the tickets' URLs name. They translate; archive/htsget.py decides."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from genecommons import __version__
from genecommons.archive import htsget as htsget_delivery
from genecommons.archive import htsget_requests as hts
from genecommons.archive.delivery_http import UNAVAILABLE, Accession, TransferResponse, credentials
from genecommons.deps import ServicesDep, SubjectDep, public_base_url
from genecommons.errors import RequestTooLargeError
from genecommons.policy.models import Subject
from genecommons.services import Services

router = APIRouter(prefix="/htsget", tags=["htsget"])

Coordinate = Annotated[int | None, Query(ge=0, le=hts.MAX_COORDINATE)]
Offset = Annotated[int, Query(ge=0, le=2**62)]


class HtsgetTicket(JSONResponse):
    """An htsget ticket, with the Content-Type htsget 1.3 names for it."""

    media_type = f"{hts.MEDIA_TYPE}; charset=utf-8"


def _service_info(endpoint: str, request: Request) -> dict[str, Any]:
    formats = list(htsget_delivery.HTSGET_FORMATS[endpoint].values())
    return {
        "id": f"org.genecommons.htsget.{endpoint}",
        "name": f"GeneCommons htsget ({endpoint})",
        "type": {"group": "org.ga4gh", "artifact": "htsget", "version": "1.3.0"},
        "organization": {"name": "GeneCommons", "url": public_base_url(request)},
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
            base_url=public_base_url(request),
            headers=credentials(request),
        )
    )


# the formats each endpoint is asked for, in either case (the spec's own POST example says "bam")
def _format_names(endpoint: str) -> list[str]:
    served = htsget_delivery.HTSGET_FORMATS[endpoint].values()
    return sorted({name for f in served for name in (f, f.lower())})


def _add_endpoint(endpoint: str) -> None:
    formats = _format_names(endpoint)

    @router.get(f"/{endpoint}/service-info", summary=f"htsget {endpoint} service information")
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
    router.get(
        f"/{endpoint}/{{object_id}}",
        summary=f"An htsget {endpoint} ticket",
        response_class=HtsgetTicket,
        responses=UNAVAILABLE,
    )(ticket)

    @router.post(
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


@router.get(
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
