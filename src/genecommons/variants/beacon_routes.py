"""HTTP routes of the GA4GH Beacon v2 under /beacon: parse the request, call the service,
return its document. Errors become a `beaconErrorResponse` (app.py calls `error_response`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from genecommons import bounded
from genecommons.deps import (
    AddressDep,
    Credentials,
    CredentialsDep,
    public_base_url,
    request_address,
    services_of,
)
from genecommons.errors import GeneCommonsError, InvalidInputError, PayloadTooLargeError
from genecommons.held_events import held
from genecommons.variants import beacon
from genecommons.variants import beacon_context as context
from genecommons.variants import beacon_service as service
from genecommons.variants.beacon import BeaconRequest

router = APIRouter(prefix="/beacon", tags=["beacon"])
MAX_BODY = 64 * 1024
Document = dict[str, Any]  # what OpenAPI says every route answers (a JSON object)


async def get_beacon(request: Request) -> context.Beacon:
    """The Beacon of this app, with the guards its services hold. (async: it only reads the
    app's services, so it needs no worker thread)"""
    return _beacon(request)


def _beacon(request: Request) -> context.Beacon:
    services = services_of(request)
    return context.Beacon(
        services.factory,
        services.settings,
        guard=services.variant_guard,
        people=services.people_guard,
        archived_here=services.archived_here,
        stores=services.variant_stores,
        events=services.events,
        held=held(request.scope),
        base_url=public_base_url(request),
    )


BeaconDep = Annotated[context.Beacon, Depends(get_beacon)]


def error_response(
    request: Request, error: GeneCommonsError, *, status: int | None = None
) -> JSONResponse:
    """A GeneCommons error as a Beacon error response (input errors are 400 in Beacon)."""
    if status is None:
        status = 400 if error.http_status == 422 else error.http_status
    body = beacon.error_response(
        context.beacon_info(services_of(request).settings, base_url=public_base_url(request)),
        status=status,
        message=error.message,
        message_zh=error.message_zh,
    )
    if error.details is not None:
        body["error"]["details"] = error.details
    return JSONResponse(status_code=status, content=body)


def _json(document: dict[str, Any]) -> Response:
    """The document as the response (its JSON made once: FastAPI would first copy it through
    its encoder, for documents that are JSON already; the OpenAPI schema stays an object)."""
    return JSONResponse(document)


async def _body(request: Request) -> bytes | None:
    """A POST request's body, as sent (None for GET): read here, parsed in the worker thread
    once the caller is known. Reading stops past MAX_BODY bytes (the request is refused)."""
    if request.method == "GET":
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            break
    return bytes(body)


def _request(request: Request, raw: bytes | None) -> BeaconRequest:
    if raw is None:
        return beacon.parse_query_string(request.query_params.multi_items())
    if len(raw) > MAX_BODY:
        raise PayloadTooLargeError(
            f"The request body exceeds {MAX_BODY:,} bytes.",
            message_zh=f"请求体超过 {MAX_BODY:,} 字节。",
            details={"max_bytes": MAX_BODY},
        )
    if not raw.strip():
        return beacon.parse_body(None)
    try:
        document = bounded.loads_json(raw, place="The request body")
    except ValueError as error:
        raise InvalidInputError(
            "The request body is not JSON: send a Beacon v2 request (meta, query).",
            message_zh="请求体不是 JSON：请发送 Beacon v2 请求（meta、query）。",
        ) from error
    if not isinstance(document, dict):  # null included: an empty body asks the defaults
        raise InvalidInputError(
            "The request body must be a JSON object: a Beacon v2 request (meta, query).",
            message_zh="请求体须为 JSON 对象：即 Beacon v2 请求（meta、query）。",
        )
    return beacon.parse_body(document)


@router.get(
    "/", response_model=Document, summary="Beacon information", operation_id="get_beacon_root"
)
@router.get("/info", response_model=Document, summary="Beacon information")
async def get_info(beacon_app: BeaconDep) -> Response:
    """Who this Beacon is: id, name, organisation, API version."""
    return _json(beacon.info_response(beacon_app.info))


@router.get("/service-info", response_model=Document, summary="GA4GH service-info")
async def get_service_info(beacon_app: BeaconDep) -> Response:
    """The Beacon as a GA4GH service (service-info 1.0)."""
    return _json(beacon.service_info(beacon_app.info))


@router.get("/configuration", response_model=Document, summary="Beacon configuration")
async def get_configuration(beacon_app: BeaconDep) -> Response:
    """Entry types, security levels and maturity."""
    return _json(beacon.configuration_response(beacon_app.info))


@router.get("/map", response_model=Document, summary="Beacon map")
async def get_map(beacon_app: BeaconDep) -> Response:
    """Every endpoint of this Beacon."""
    return _json(beacon.map_response(beacon_app.info))


@router.get("/entry_types", response_model=Document, summary="Beacon entry types")
async def get_entry_types(beacon_app: BeaconDep) -> Response:
    """The entry types this Beacon answers."""
    return _json(beacon.entry_types_response(beacon_app.info))


@router.get("/filtering_terms", response_model=Document, summary="Beacon filtering terms")
@router.post(
    "/filtering_terms",
    response_model=Document,
    summary="Beacon filtering terms",
    operation_id="post_filtering_terms",
)
async def get_filtering_terms(
    beacon_app: BeaconDep, credentials: CredentialsDep, address: AddressDep
) -> Response:
    """The filters this Beacon reads, with the values of the datasets the caller may see."""

    def terms() -> dict[str, Any]:
        caller = context.Caller(credentials.subject(), address)
        return service.filtering_terms(beacon_app, caller=caller)

    return _json(await run_in_threadpool(terms))


Handler = Callable[..., Awaitable[Response]]


def _inlined(schema: dict[str, Any]) -> dict[str, Any]:
    """A pydantic model's JSON Schema with its `$defs` written in place (the OpenAPI document
    has no room for a schema's own definitions)."""
    definitions = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return resolve(definitions[node["$ref"].rsplit("/", 1)[-1]])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    inlined: dict[str, Any] = resolve(schema)
    return inlined


# what OpenAPI says of the requests (the routes read them themselves, to answer in Beacon form)
GET_QUERY = {
    "parameters": [
        {"name": name, "in": "query", "required": False, "schema": {"type": "string"}}
        for name in sorted(beacon.GET_PARAMETERS | beacon.GET_OPTIONS)
    ]
}
POST_BODY = {
    "requestBody": {
        "required": False,
        "content": {"application/json": {"schema": _inlined(BeaconRequest.model_json_schema())}},
    }
}


async def _answer(request: Request, entry: str, scope: context.Scope | None) -> Response:
    # the query routes take the request alone and read the Beacon, the credentials and the
    # address from it as their dependencies would: FastAPI solves no dependency per query
    beacon_app, credentials, address = (
        _beacon(request),
        Credentials(request),
        request_address(request),
    )
    raw = await _body(request)

    def answered() -> dict[str, Any]:
        # in one worker thread: who asks (401 before any complaint about the query), the
        # query, the answer
        caller = context.Caller(credentials.subject(), address)
        parsed = _request(request, raw)
        return service.answer(beacon_app, entry=entry, request=parsed, caller=caller, scope=scope)

    return _json(await run_in_threadpool(answered))


def _handler(entry: str, scope_kind: str | None) -> Handler:
    if scope_kind is None:

        async def listing(request: Request) -> Response:
            return await _answer(request, entry, None)

        return listing

    async def single(
        id: Annotated[str, Path(max_length=200, description="The entry's id")],
        request: Request,
    ) -> Response:
        return await _answer(request, entry, context.Scope(scope_kind, id))

    return single


def _routes(path: str, entry: str, scope_kind: str | None, summary: str, doc: str) -> None:
    for method, extra in (("GET", GET_QUERY), ("POST", POST_BODY)):
        handler = _handler(entry, scope_kind)
        handler.__doc__ = doc
        router.add_api_route(
            path,
            handler,
            methods=[method],
            summary=summary,
            response_model=Document,
            name=f"beacon{path.replace('/', '_').replace('{id}', 'id')}_{method.lower()}",
            openapi_extra=extra,
        )


for _entry in beacon.ENTRY_TYPES.values():
    _path = _entry.path
    _routes(
        f"/{_path}",
        _path,
        None,
        f"Beacon {_path}",
        f"Query {_entry.name.lower()} (Beacon v2, GET or POST).",
    )
    _routes(
        f"/{_path}/{{id}}",
        _path,
        _path,
        f"Beacon {_path} by id",
        f"One {_entry.name.lower()} by id (Beacon v2, GET or POST).",
    )

for _source, _target in beacon.CROSS_LOOKUPS:
    _routes(
        f"/{_source}/{{id}}/{_target}",
        _target,
        _source,
        f"Beacon {_target} of one of {_source}",
        f"The {_target} of one of {_source} (Beacon v2, GET or POST).",
    )
