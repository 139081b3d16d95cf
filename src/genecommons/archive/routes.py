"""HTTP routes of the archive under /api/v1: uploads, archived files and Crypt4GH keys. They
translate; the services decide. GA4GH DRS is in drs_routes.py, htsget in htsget_routes.py."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from genecommons.archive import inventory, keys_and_store, uploads
from genecommons.archive.keys import format_public_key, parse_public_key
from genecommons.deps import SessionFactoryDep, SettingsDep, SubjectDep

router = APIRouter(prefix="/api/v1", tags=["archive"])

UploadId = Annotated[str, Path(min_length=1, max_length=64)]
Page = Annotated[int, Query(ge=1, le=1_000_000)]
PageSize = Annotated[int, Query(ge=1, le=1000)]


class UploadBody(BaseModel):
    """An upload to open."""

    model_config = ConfigDict(extra="forbid")
    file: str = Field(min_length=1, max_length=40, description="Accession of the catalog file")
    # 2^53 - 1 (8 PiB): exact in every JSON reader, JavaScript's too
    size: int | None = Field(default=None, ge=0, le=2**53 - 1, description="Size in bytes")


class KeyBody(BaseModel):
    """A Crypt4GH public key (as `crypt4gh-keygen` writes it)."""

    model_config = ConfigDict(extra="forbid")
    public_key: str = Field(min_length=1, max_length=1000)


@router.post("/uploads", status_code=201, summary="Open a resumable upload of a declared file")
def open_upload(
    body: UploadBody, factory: SessionFactoryDep, settings: SettingsDep, subject: SubjectDep
) -> dict[str, Any]:
    """Send the bytes with PATCH /api/v1/uploads/{id} (Upload-Offset header), then complete."""
    state = uploads.start_upload(
        factory, settings, subject=subject, accession=body.file, size=body.size
    )
    return state.to_dict()


@router.get("/uploads/{upload_id}", summary="Where an upload stands (the offset to resume at)")
def upload_state(
    upload_id: UploadId, factory: SessionFactoryDep, subject: SubjectDep
) -> dict[str, Any]:
    """The upload's state and offset."""
    return uploads.upload_status(factory, subject=subject, upload_id=upload_id).to_dict()


@router.patch("/uploads/{upload_id}", summary="Append bytes to an upload")
async def append_to_upload(
    upload_id: UploadId,
    request: Request,
    factory: SessionFactoryDep,
    settings: SettingsDep,
    subject: SubjectDep,
    upload_offset: Annotated[int, Header(ge=0, le=2**53 - 1)],
) -> dict[str, Any]:
    """The body is streamed to disk as it arrives; a broken connection keeps what arrived."""
    appender = await run_in_threadpool(
        uploads.open_append,
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
    except ClientDisconnect:
        pass  # the client went away, or was cut off for sending too slowly: no one to answer
    finally:
        state = await run_in_threadpool(appender.close)
    return state.to_dict()


@router.post("/uploads/{upload_id}/complete", status_code=201, summary="Check, encrypt and archive")
def complete_upload(
    upload_id: UploadId, factory: SessionFactoryDep, settings: SettingsDep, subject: SubjectDep
) -> dict[str, Any]:
    """Checksums, format check and Crypt4GH encryption; the staged bytes are then removed."""
    archived = uploads.complete_upload(factory, settings, subject=subject, upload_id=upload_id)
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
    return inventory.list_files(
        factory, subject=subject, page=page, page_size=page_size, dataset=dataset
    )


@router.get("/archive/public-key", summary="The archive's Crypt4GH public key")
def archive_public_key(settings: SettingsDep) -> dict[str, str]:
    """Encrypt uploads for this key (crypt4gh encrypt --recipient_pk) so no plaintext travels."""
    return {"public_key": format_public_key(keys_and_store.archive_public_key(settings))}


@router.put("/me/crypt4gh-key", status_code=204, summary="Register your Crypt4GH public key")
def register_key(body: KeyBody, factory: SessionFactoryDep, subject: SubjectDep) -> Response:
    """Deliveries to you are encrypted for this key."""
    keys_and_store.register_public_key(
        factory, subject=subject, owner=subject.id, public_key=parse_public_key(body.public_key)
    )
    return Response(status_code=204)
