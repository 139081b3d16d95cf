"""Probes and metrics for the machines that run the node (kept out of the OpenAPI document:
they serve orchestrators and Prometheus, not API clients, and /metrics is not JSON)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from genecommons.deps import AddressDep, SessionFactoryDep, SettingsDep, SubjectDep
from genecommons.metrics import CONTENT_TYPE
from genecommons.ops import service

router = APIRouter(include_in_schema=False)


@router.get("/livez")
async def livez() -> dict[str, str]:
    """The process is up and answering (no I/O: a stuck database does not restart it)."""
    return {"status": "live"}


@router.get("/readyz")
def readyz(factory: SessionFactoryDep, settings: SettingsDep) -> dict[str, Any]:
    """Ready (200), or 503 with what is not ready and how to fix it."""
    return service.require_ready(factory, settings)


@router.get("/metrics")
async def metrics(
    factory: SessionFactoryDep, settings: SettingsDep, subject: SubjectDep, address: AddressDep
) -> Response:
    """The node's metrics in Prometheus text format, for its operators."""
    service.require_metrics_reader(subject, address=address, settings=settings)
    body = await run_in_threadpool(service.exposition, factory, settings)
    return Response(body, media_type=CONTENT_TYPE)
