"""The FastAPI application: every capability's routes, and the one error mapping."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from genecommons import __version__
from genecommons.access.passport_service import key_store
from genecommons.access.routes import router as access_router
from genecommons.access.routes import wellknown
from genecommons.audit.routes import router as audit_router
from genecommons.catalog.routes import router as catalog_router
from genecommons.compliance.routes import router as compliance_router
from genecommons.config import Settings, get_settings
from genecommons.db import make_engine, make_session_factory
from genecommons.errors import GeneCommonsError

logger = logging.getLogger(__name__)


def _problem(status: int, body: dict[str, object]) -> JSONResponse:
    return JSONResponse(status_code=status, content=body, media_type="application/problem+json")


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

    @app.exception_handler(GeneCommonsError)
    async def _gene_commons_error(_request: Request, error: GeneCommonsError) -> JSONResponse:
        return _problem(error.http_status, {"status": error.http_status, **error.to_dict()})

    @app.exception_handler(RequestValidationError)
    async def _request_error(_request: Request, error: RequestValidationError) -> JSONResponse:
        details = [
            {"place": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
            for e in error.errors()
        ]
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

    app.include_router(catalog_router)
    app.include_router(access_router)
    app.include_router(wellknown)
    app.include_router(compliance_router)
    app.include_router(audit_router)
    return app
