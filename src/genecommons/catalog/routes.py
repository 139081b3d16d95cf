"""HTTP routes of the catalog under /api/v1: parse, call the service, shape the response."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool

from genecommons.catalog import service
from genecommons.catalog.bundle import Limits
from genecommons.catalog.models import ENTITIES, PHENOTYPES_SHEET, Phenotype
from genecommons.deps import ServicesDep, SessionFactoryDep, SubjectDep
from genecommons.errors import InvalidInputError, NotFoundError
from genecommons.secrets import node_keys

router = APIRouter(prefix="/api/v1", tags=["catalog"])

PageQ = Annotated[int, Query(ge=1, le=1_000_000, description="Page number, from 1")]
SizeQ = Annotated[int, Query(ge=1, le=1000, description="Records per page")]
_UPLOAD_CHUNK = 1 << 20


def _page(page: service.Page) -> dict[str, Any]:
    return {
        "items": page.items,
        "total": page.total,
        "page": page.page,
        "page_size": page.page_size,
    }


def _filters(request: Request, entity: str) -> dict[str, str]:
    return {k: v for k, v in request.query_params.items() if k in service.FILTERS.get(entity, ())}


@router.get("/schemas/{entity}", summary="JSON Schema of one submission sheet")
def get_schema(entity: str) -> dict[str, Any]:
    """The JSON Schema of an entity's records (one row of its sheet)."""
    if entity == PHENOTYPES_SHEET:
        return Phenotype.model_json_schema()
    if entity not in ENTITIES:
        raise NotFoundError(
            f"No schema {entity!r}; schemas are {', '.join(ENTITIES)}, {PHENOTYPES_SHEET}.",
            message_zh=f"不存在模式 {entity!r}。",
        )
    return ENTITIES[entity].model.model_json_schema()


@router.post(
    "/submissions", summary="Submit metadata (zip, xlsx, JSON, YAML, TSV or CSV)", status_code=201
)
async def post_submission(
    services: ServicesDep,
    subject: SubjectDep,
    file: Annotated[UploadFile, File(description="The submission file")],
    dry_run: Annotated[bool, Query()] = False,
) -> dict[str, Any]:
    """Validate and (unless dry_run) commit a submission, all or nothing."""
    settings = services.settings
    name = Path(file.filename or "submission").name
    staging = settings.data_dir / "staging"
    staging.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="upload-", dir=staging))
    try:
        target = folder / name
        size = 0
        with target.open("wb") as sink:
            while chunk := await file.read(_UPLOAD_CHUNK):
                size += len(chunk)
                if size > settings.max_submission_bytes:
                    raise InvalidInputError(
                        f"The upload exceeds {settings.max_submission_bytes} bytes.",
                        message_zh="上传文件超过大小上限。",
                    )
                sink.write(chunk)
        limits = Limits(
            max_unpacked_bytes=settings.max_unpacked_bytes,
            max_members=settings.max_zip_members,
            max_ratio=settings.max_zip_ratio,
        )
        result = await run_in_threadpool(
            service.submit,
            services.factory,
            target,
            subject=subject,
            dry_run=dry_run,
            limits=limits,
            staging=staging,
            data_files=services.submission_files(subject),
            identifier_key=lambda: service.pseudonym_key(node_keys(settings)),
        )
        return result.to_dict()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@router.get("/submissions", summary="Submissions received")
def list_submissions(
    factory: SessionFactoryDep, subject: SubjectDep, page: PageQ = 1, page_size: SizeQ = 50
) -> dict[str, Any]:
    """Submissions received, newest first."""
    return _page(service.list_submissions(factory, subject=subject, page=page, page_size=page_size))


def _collection(entity: str) -> None:
    label = ENTITIES[entity].label_en

    def listing(
        request: Request,
        factory: SessionFactoryDep,
        subject: SubjectDep,
        page: PageQ = 1,
        page_size: SizeQ = 50,
        study: Annotated[str | None, Query(description="Study accession")] = None,
    ) -> dict[str, Any]:
        return _page(
            service.list_records(
                factory,
                entity,
                subject=subject,
                page=page,
                page_size=page_size,
                filters=_filters(request, entity),
                study=study,
            )
        )

    def detail(
        accession: str, factory: SessionFactoryDep, subject: SubjectDep, history: bool = False
    ) -> dict[str, Any]:
        return service.get_record(factory, entity, accession, subject=subject, with_history=history)

    filters = ", ".join(service.FILTERS[entity])
    listing.__doc__ = f"A page of {entity}. Filters: {filters}."
    detail.__doc__ = f"One {label} by accession."
    router.add_api_route(
        f"/{entity}", listing, methods=["GET"], summary=f"List {entity}", name=f"list_{entity}"
    )
    router.add_api_route(
        f"/{entity}/{{accession}}",
        detail,
        methods=["GET"],
        summary=f"Show one {label}",
        name=f"get_{entity}",
    )


for _entity in ("studies", "datasets", "individuals", "samples"):
    _collection(_entity)
