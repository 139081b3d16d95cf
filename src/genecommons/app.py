"""The FastAPI application: every capability's routes, and the one error mapping."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from genecommons import __version__
from genecommons.access.oidc_service import provider as oidc_provider
from genecommons.access.passport_service import key_store
from genecommons.access.routes import router as access_router
from genecommons.access.routes import wellknown
from genecommons.archive.routes import drs as drs_router
from genecommons.archive.routes import htsget as htsget_router
from genecommons.archive.routes import router as archive_router
from genecommons.audit.events import GroupedQueue
from genecommons.audit.routes import router as audit_router
from genecommons.catalog.routes import router as catalog_router
from genecommons.compliance.routes import router as compliance_router
from genecommons.config import Settings, get_settings
from genecommons.db import GroupCommit, make_engine, make_session_factory
from genecommons.errors import GeneCommonsError, InvalidInputError, NotFoundError
from genecommons.held_events import HeldEventsMiddleware
from genecommons.json_bodies import BoundedJsonBodies
from genecommons.keepalive import KeepAliveLimit
from genecommons.privacy.answers import PeopleGuard, VariantGuard, exact_answer, exact_people
from genecommons.privacy.service import DefendedGuard, DefendedPeople
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
    413: "PayloadTooLarge",
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


async def _gene_commons_error(request: Request, error: GeneCommonsError) -> JSONResponse:
    """A GeneCommons error as the answer of the API the request was for: a Beacon error
    response, an htsget error object, a DRS error, else a problem document."""
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


def create_app(settings: Settings | None = None) -> FastAPI:
    """An application bound to `settings` (read from the environment when omitted)."""
    settings = settings or get_settings()
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
    # JSON bodies bounded in size and nesting before a route parses them (answered as the
    # route's API answers errors)
    app.add_middleware(
        BoundedJsonBodies, max_bytes=settings.max_json_body_bytes, render=_gene_commons_error
    )
    # a Beacon query's token use is committed with its event (one commit), and whatever a
    # request still holds before its response starts
    app.add_middleware(HeldEventsMiddleware, events=app.state.grouped_events)
    # connections closed now and then, so that they spread over the server's workers
    app.add_middleware(KeepAliveLimit, requests=settings.keepalive_requests)

    app.exception_handler(GeneCommonsError)(_gene_commons_error)

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
