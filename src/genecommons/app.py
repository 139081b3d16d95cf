"""The FastAPI application: every capability's routes, and the one error mapping."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException

from genecommons import __version__
from genecommons.access.oidc_service import provider as oidc_provider
from genecommons.access.passport_service import key_store
from genecommons.access.routes import router as access_router
from genecommons.access.routes import wellknown
from genecommons.archive.routes import drs as drs_router
from genecommons.archive.routes import htsget as htsget_router
from genecommons.archive.routes import router as archive_router
from genecommons.audit.events import GroupedQueue, record_refusal
from genecommons.audit.routes import router as audit_router
from genecommons.catalog.routes import router as catalog_router
from genecommons.compliance.routes import router as compliance_router
from genecommons.config import Settings, get_settings
from genecommons.db import GroupCommit, make_engine, make_session_factory
from genecommons.deps import request_address, request_route
from genecommons.errors import GeneCommonsError, InvalidInputError, NotFoundError, Refusal
from genecommons.held_events import HeldEventsMiddleware
from genecommons.keepalive import KeepAliveLimit
from genecommons.privacy.answers import PeopleGuard, VariantGuard, exact_answer, exact_people
from genecommons.privacy.service import DefendedGuard, DefendedPeople
from genecommons.secrets import restrict_umask
from genecommons.variants import beacon_routes
from genecommons.variants.beacon_service import StoreCache
from genecommons.variants.routes import router as variants_router

logger = logging.getLogger(__name__)


def _problem(status: int, body: dict[str, object]) -> JSONResponse:
    return JSONResponse(status_code=status, content=body, media_type="application/problem+json")


# htsget 1.3 names its errors; status codes follow the spec (input errors are 400 there)
HTSGET_ERRORS = {
    401: "InvalidAuthentication",
    403: "PermissionDenied",
    404: "NotFound",
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
    return JSONResponse(status_code=status, content=body)


def _refusal_record(request: Request, refusal: Refusal, answered: int) -> Callable[[], None]:
    """Committing the audit event of a refusal, with the refusals of the same moment."""
    return functools.partial(
        record_refusal,
        request.app.state.grouped_events,
        refusal,
        address=request_address(request),
        route=request_route(request),
        answered=answered,
    )


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
    )
    engine = make_engine(settings.effective_database_url)
    app.state.settings = settings
    app.state.engine = engine
    app.state.session_factory = make_session_factory(engine)
    app.state.visa_keys = key_store(settings)
    app.state.oidc = oidc_provider(settings)  # None when OIDC sign-in is off
    # what boolean and count Beacon answers reveal (privacy.answers.VariantGuard)
    # the app's high-rate writes, each its own transaction (Beacon query events, token uses,
    # budget charges): group-committed together, one writing thread at a time
    writes = GroupCommit(app.state.session_factory)
    guard: VariantGuard = (
        exact_answer
        if settings.beacon_guard == "exact"
        else DefendedGuard(app.state.session_factory, settings, writes=writes)
    )
    app.state.variant_guard = guard
    # what boolean and count answers about individuals and biosamples reveal
    people: PeopleGuard = (
        exact_people if settings.beacon_guard == "exact" else DefendedPeople(settings)
    )
    app.state.people_guard = people
    app.state.variant_stores = StoreCache()
    app.state.grouped_events = GroupedQueue(app.state.session_factory, writes=writes)
    # a Beacon query's token use is committed with its event (one commit), and whatever a
    # request still holds before its response starts
    app.add_middleware(HeldEventsMiddleware, events=app.state.grouped_events)
    # connections closed now and then, so that they spread over the server's workers
    app.add_middleware(KeepAliveLimit, requests=settings.keepalive_requests)

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

    def _error_response(request: Request, error: GeneCommonsError) -> JSONResponse:
        path = request.url.path
        if path.startswith("/htsget/"):
            return _htsget_error(error)
        if path.startswith("/beacon"):
            return beacon_routes.error_response(request, error)
        if path.startswith("/ga4gh/drs/"):
            status = 400 if error.http_status == 422 else error.http_status
            body = {"msg": error.message, "status_code": status, **error.to_dict()}
            return JSONResponse(status_code=status, content=body)
        return _problem(error.http_status, {"status": error.http_status, **error.to_dict()})

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, error: HTTPException) -> Response:
        if request.url.path.startswith("/beacon") and error.status_code in (404, 405):
            return beacon_routes.error_response(
                request,
                NotFoundError(
                    f"No Beacon endpoint {request.method} {request.url.path[:100]}; GET /beacon/map "
                    "lists them.",
                    message_zh="不存在该 Beacon 端点；端点列表见 GET /beacon/map。",
                ),
                status=error.status_code,
            )
        return await http_exception_handler(request, error)

    @app.exception_handler(RequestValidationError)
    async def _request_error(request: Request, error: RequestValidationError) -> JSONResponse:
        details = [
            {"place": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
            for e in error.errors()
        ]
        if request.url.path.startswith("/beacon"):
            return beacon_routes.error_response(
                request,
                InvalidInputError(
                    "The request is malformed; see details.",
                    message_zh="请求格式不正确，详见 details。",
                    details=details,
                ),
            )
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

    @app.get("/", include_in_schema=False)
    def _root() -> dict[str, str]:
        return {"name": "GeneCommons", "version": __version__, "api": "/api/v1", "docs": "/docs"}

    @app.get("/health", include_in_schema=False)
    def _health() -> dict[str, str]:
        return {"status": "ok"}

    # FastAPI tries the routes in order: the Beacon, the high-rate endpoint, is tried first (no
    # other router serves paths under /beacon, so the order changes nothing else)
    app.include_router(beacon_routes.router)
    app.include_router(catalog_router)
    app.include_router(access_router)
    app.include_router(wellknown)
    app.include_router(compliance_router)
    app.include_router(audit_router)
    app.include_router(archive_router)
    app.include_router(drs_router)
    app.include_router(htsget_router)
    app.include_router(variants_router)
    return app
