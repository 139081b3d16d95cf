"""The FastAPI application: every capability's routes, and the one error mapping."""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Route, Router
from starlette.types import ASGIApp, Receive, Scope, Send

from genecommons import __version__, openapi_errors
from genecommons.access.routes import router as access_router
from genecommons.access.routes import wellknown
from genecommons.archive.drs import status_of as drs_status
from genecommons.archive.drs_routes import router as drs_router
from genecommons.archive.htsget_requests import UnsupportedFormatError
from genecommons.archive.htsget_routes import router as htsget_router
from genecommons.archive.routes import router as archive_router
from genecommons.audit.routes import router as audit_router
from genecommons.catalog.routes import router as catalog_router
from genecommons.compliance.routes import router as compliance_router
from genecommons.config import Settings, get_settings
from genecommons.deps import refuse_nul, request_address, request_route, services_of
from genecommons.errors import (
    BusyError,
    GeneCommonsError,
    InvalidInputError,
    NotFoundError,
    NotReadyError,
    Refusal,
)
from genecommons.held_events import HeldEventsMiddleware
from genecommons.json_bodies import BoundedJsonBodies
from genecommons.keepalive import KeepAliveLimit
from genecommons.ledger.events import record_refusal
from genecommons.metrics import RequestMetrics
from genecommons.ops.routes import router as ops_router
from genecommons.privacy.routes import router as variants_router
from genecommons.request_ids import RequestIds
from genecommons.secrets import restrict_umask
from genecommons.services import build_services
from genecommons.variants import beacon_routes

logger = logging.getLogger(__name__)


def _problem(status: int, body: dict[str, object]) -> JSONResponse:
    return JSONResponse(status_code=status, content=body, media_type="application/problem+json")


# htsget 1.3 names its errors; status codes follow the spec (input errors are 400 there)
HTSGET_ERRORS = {
    401: "InvalidAuthentication",
    403: "PermissionDenied",
    404: "NotFound",
    413: "PayloadTooLarge",
    503: "NotReady",  # a recipient's copy being made: 5xx, which htsget clients retry
}


def _htsget_error(error: GeneCommonsError) -> JSONResponse:
    if error.http_status == 422:
        status, name = (
            400,
            error.code if error.code in ("InvalidRange", "UnsupportedFormat") else "InvalidInput",
        )
    else:
        status, name = error.http_status, HTSGET_ERRORS.get(error.http_status, "InternalError")
    body = {"htsget": {"error": name, "message": error.message, "message_zh": error.message_zh}}
    if error.details is not None:
        body["htsget"]["details"] = error.details
    return JSONResponse(status_code=status, content=body)


def _refusal_record(request: Request, refusal: Refusal, answered: int) -> Callable[[], None]:
    """Committing the audit event of a refusal, with the refusals of the same moment."""
    return functools.partial(
        record_refusal,
        services_of(request).events,
        refusal,
        address=request_address(request),
        route=request_route(request),
        answered=answered,
    )


def _drs_error(request: Request, error: GeneCommonsError) -> JSONResponse:
    """A DRS Error (msg, status_code), with the problem fields beside them."""
    anonymous = not request.headers.get("authorization")
    status = drs_status(error, anonymous=anonymous)
    if status == 202 and request.url.path.endswith("/download"):
        status = 503  # a byte stream: a 202 body would be taken for the file
    body = {"msg": error.message, "status_code": status, **error.to_dict()}
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(status_code=status, content=body, headers=headers)


MethodTable = list[tuple[re.Pattern[str], frozenset[str]]]


def _method_table(routers: list[APIRouter | Router]) -> MethodTable:
    """Each route's path pattern and methods, from the routers the app includes."""
    return [
        (route.path_regex, frozenset(route.methods or ()))
        for router in routers
        for route in router.routes
        if isinstance(route, Route)
    ]


def _allowed_methods(table: MethodTable, path: str) -> str:
    """The methods served at `path` (a 405's Allow header: every route there, where a route
    alone knows only its own). A path a route names as it is (`/objects/access`) is that route's
    resource, not also an id of a route with a parameter (`/objects/{object_id}`)."""
    matching = [(pattern, served) for pattern, served in table if pattern.match(path)]
    exact = [(p, s) for p, s in matching if "(?P<" not in p.pattern]
    methods = {m for _, served in exact or matching for m in served}
    return ", ".join(sorted(methods))


class HtsgetCors:
    """CORS on htsget's resources as htsget 1.3 asks: the request's Origin propagated to
    Access-Control-Allow-Origin, preflights of GET (and POST) accepted with the requested
    headers, kept 30 days. No credentials mode: htsget callers send bearer tokens."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.cors = CORSMiddleware(
            app,
            allow_origin_regex=".*",
            allow_methods=("GET", "POST"),
            allow_headers=("*",),
            max_age=30 * 24 * 3600,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/htsget/"):
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def _error_response(request: Request, error: GeneCommonsError) -> JSONResponse:
    """A GeneCommons error as the answer of the API the request was for: a Beacon error
    response, an htsget error object, a DRS error, else a problem document."""
    path = request.url.path
    if path.startswith("/htsget/"):
        response = _htsget_error(error)
    elif path.startswith("/beacon"):
        response = beacon_routes.error_response(request, error)
    elif path.startswith("/ga4gh/drs/"):
        response = _drs_error(request, error)
    else:
        response = _problem(error.http_status, {"status": error.http_status, **error.to_dict()})
    if isinstance(error, NotReadyError | BusyError):
        response.headers["Retry-After"] = str(error.retry_after)
    return response


async def _render_error(request: Request, error: GeneCommonsError) -> Response:
    """`_error_response`, for middleware that answers before any route (no refusal there)."""
    return _error_response(request, error)


def create_app(settings: Settings | None = None) -> FastAPI:
    """An application bound to `settings` (read from the environment when omitted)."""
    settings = settings or get_settings()
    restrict_umask()  # whatever the node writes is readable by its own user only
    app = FastAPI(
        title="GeneCommons",
        version=__version__,
        description="Keep, protect and share human genetic data. 人类遗传数据的保存、保护与共享。",
        docs_url="/docs",
        openapi_url="/openapi.json",
        dependencies=[Depends(refuse_nul)],
    )
    services = build_services(settings)
    # the one object routes take their settings, database and keys from (deps.ServicesDep)
    app.state.services = services
    # JSON bodies bounded in size and nesting before a route parses them (answered as the
    # route's API answers errors)
    app.add_middleware(
        BoundedJsonBodies, max_bytes=settings.max_json_body_bytes, render=_render_error
    )
    # a Beacon query's token use is committed with its event (one commit), and whatever a
    # request still holds before its response starts
    app.add_middleware(HeldEventsMiddleware, events=services.events)
    # connections closed now and then, so that they spread over the server's workers
    app.add_middleware(KeepAliveLimit, requests=settings.keepalive_requests)
    app.add_middleware(HtsgetCors)
    # outermost: every request counted and timed to the end of its answer, under its id
    app.add_middleware(RequestMetrics)
    app.add_middleware(RequestIds)

    methods: MethodTable = []  # filled once the routers are included

    @app.exception_handler(GeneCommonsError)
    async def _gene_commons_error(request: Request, error: GeneCommonsError) -> JSONResponse:
        response = _error_response(request, error)
        if error.refusal is None:
            return response
        # every refusal of the decision point is audited, before the answer leaves; one
        # answered "not found" just after it, since waiting for its commit would tell a record
        # the caller may not see from one that does not exist by the time the answer takes
        record = _refusal_record(request, error.refusal, response.status_code)
        if isinstance(error, NotFoundError):
            response.background = BackgroundTask(record)
            return response
        try:
            await run_in_threadpool(record)
        except Exception:  # the refusal could not be recorded: no answer goes out without it
            logger.exception("a refusal could not be recorded in the audit log")
            return _problem(
                503,
                {
                    "status": 503,
                    "code": "audit_unavailable",
                    "message": "The audit log could not record this request; try again.",
                    "message_zh": "审计日志无法记录此请求，请重试。",
                },
            )
        return response

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, error: HTTPException) -> Response:
        if error.status_code == 400:  # a body FastAPI could not parse (JSON, multipart)
            unreadable = InvalidInputError(
                f"The request body could not be read ({error.detail}); send it in the media "
                "type it declares.",
                message_zh="无法读取请求体；请按其声明的媒体类型发送。",
            )
            return await _gene_commons_error(request, unreadable)
        if error.status_code == 405:  # every method served at the path, not one route's
            allowed = _allowed_methods(methods, request.url.path)
            error.headers = {**(error.headers or {}), "Allow": allowed}
        if request.url.path.startswith("/beacon") and error.status_code in (404, 405):
            answer = beacon_routes.error_response(
                request,
                NotFoundError(
                    f"No Beacon endpoint {request.method} {request.url.path[:100]}; GET /beacon/map "
                    "lists them.",
                    message_zh="不存在该 Beacon 端点；端点列表见 GET /beacon/map。",
                ),
                status=error.status_code,
            )
            answer.headers.update(error.headers or {})
            return answer
        return await http_exception_handler(request, error)

    @app.exception_handler(RequestValidationError)
    async def _request_error(request: Request, error: RequestValidationError) -> JSONResponse:
        details = [
            {"place": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
            for e in error.errors()
        ]
        malformed = InvalidInputError(
            "The request is malformed; see details.",
            message_zh="请求格式不正确，详见 details。",
            details=details,
        )
        path = request.url.path
        if path.startswith("/beacon"):
            return beacon_routes.error_response(request, malformed)
        if path.startswith("/htsget/"):
            if any(d["place"] == "query.format" for d in details):
                malformed = UnsupportedFormatError(
                    "The format asked for is not served here; see details.",
                    message_zh="不提供所请求的格式，详见 details。",
                    details=details,
                )
            return _htsget_error(malformed)
        if path.startswith("/ga4gh/drs/"):
            return _drs_error(request, malformed)
        return _problem(
            422,
            {
                "status": 422,
                "code": "invalid_request",
                "message": "The request is malformed; see details.",
                "message_zh": "请求格式不正确，详见 details。",
                "details": details,
            },
        )

    make_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        """FastAPI's document, with every operation's error answers stated."""
        if app.openapi_schema is None:
            app.openapi_schema = openapi_errors.complete(make_openapi())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.get("/", include_in_schema=False)
    def _root() -> dict[str, str]:
        return {"name": "GeneCommons", "version": __version__, "api": "/api/v1", "docs": "/docs"}

    @app.get("/health", include_in_schema=False)
    def _health() -> dict[str, str]:
        return {"status": "ok"}

    # FastAPI tries the routes in order: the Beacon, the high-rate endpoint, is tried first (no
    # other router serves paths under /beacon, so the order changes nothing else)
    routers = [
        beacon_routes.router,
        catalog_router,
        access_router,
        wellknown,
        compliance_router,
        audit_router,
        archive_router,
        drs_router,
        htsget_router,
        variants_router,
        ops_router,
    ]
    for router in routers:
        app.include_router(router)
    methods.extend(_method_table([app.router, *routers]))
    return app
