"""HTTP route of compliance reports under /api/v1/compliance."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import PlainTextResponse, Response

from genecommons.compliance import service
from genecommons.compliance.reports import SECTIONS
from genecommons.deps import SessionFactoryDep, SubjectDep
from genecommons.errors import InvalidInputError

router = APIRouter(prefix="/api/v1/compliance", tags=["compliance"])


@router.get("/report", summary="Compliance report of a period (JSON or CSV)", response_model=None)
def get_report(
    factory: SessionFactoryDep,
    subject: SubjectDep,
    start: Annotated[date, Query(description="First day, YYYY-MM-DD")],
    end: Annotated[date, Query(description="Last day, YYYY-MM-DD")],
    format: Annotated[Literal["json", "csv"], Query()] = "json",
    section: Annotated[str | None, Query(description=f"For CSV: one of {SECTIONS}")] = None,
) -> dict[str, Any] | Response:
    """Provisions abroad, grants by institution and country, and what expires in 30 days."""
    result = service.report(factory, start=start, end=end, actor=subject)
    if format == "json":
        return result.to_json()
    if section not in SECTIONS:
        raise InvalidInputError(
            f"Choose a section for CSV: {', '.join(SECTIONS)}.",
            message_zh=f"CSV 格式须指定报告部分：{', '.join(SECTIONS)}。",
        )
    return PlainTextResponse(result.to_csv(section), media_type="text/csv")
