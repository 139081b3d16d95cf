"""A client of the upload API: streams a file in pieces and resumes where the server stopped.

Used by `genecommons upload`. The file is read piece by piece (never whole into memory); after a
broken connection the client asks the server how many bytes it holds and goes on from there.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import httpx

from genecommons.errors import (
    AccessDeniedError,
    AuthenticationError,
    ConflictError,
    GeneCommonsError,
    InvalidInputError,
    NotFoundError,
)

logger = logging.getLogger(__name__)

PIECE = 64 * 1024 * 1024  # bytes per PATCH request
READ = 1024 * 1024
RETRIES = 5
Progress = Callable[[int], None]  # told the position reached, in bytes

_BY_STATUS: dict[int, type[GeneCommonsError]] = {
    401: AuthenticationError,
    403: AccessDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: InvalidInputError,
}


def _raise_for(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        body = response.json()
    except ValueError:
        body = {}
    kind = _BY_STATUS.get(response.status_code, GeneCommonsError)
    raise kind(
        str(body.get("message") or f"The server answered {response.status_code}."),
        message_zh=str(body.get("message_zh") or f"服务器返回 {response.status_code}。"),
        details=body.get("details"),
    )


def _pieces(handle: BinaryIO, size: int) -> Iterator[bytes]:
    left = size
    while left > 0:
        chunk = handle.read(min(READ, left))
        if not chunk:
            break
        left -= len(chunk)
        yield chunk


class UploadClient:
    """Uploads files to a GeneCommons server with a bearer token."""

    def __init__(
        self,
        server: str,
        token: str,
        *,
        state_dir: Path | None = None,
        transport: httpx.BaseTransport | None = None,
        piece_size: int = PIECE,
    ) -> None:
        self._client = httpx.Client(
            base_url=server.rstrip("/"),
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(60.0, read=3600.0),
            transport=transport,
        )
        self._server = server
        self._state_dir = state_dir
        self._piece = piece_size

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def _state_file(self, path: Path, accession: str) -> Path | None:
        if self._state_dir is None:
            return None
        stat = path.stat()
        key = f"{self._server}|{accession}|{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
        return self._state_dir / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.json"

    def upload(
        self,
        path: Path,
        *,
        accession: str,
        upload_id: str | None = None,
        progress: Progress | None = None,
    ) -> dict[str, Any]:
        """Upload `path` as the catalog file `accession` and have it archived; resumes the
        upload `upload_id` (or the one this client left unfinished for the same file)."""
        size = path.stat().st_size
        state_file = self._state_file(path, accession)
        if upload_id is None and state_file is not None and state_file.exists():
            upload_id = json.loads(state_file.read_text(encoding="utf-8"))["id"]
        if upload_id is None:
            response = self._client.post("/api/v1/uploads", json={"file": accession, "size": size})
            _raise_for(response)
            upload_id = str(response.json()["id"])
        if state_file is not None:
            state_file.parent.mkdir(parents=True, exist_ok=True)
            state_file.write_text(json.dumps({"id": upload_id}), encoding="utf-8")
        offset = self._offset(upload_id)
        if progress:
            progress(offset)
        failures = 0
        with path.open("rb") as handle:
            while offset < size:
                handle.seek(offset)
                length = min(self._piece, size - offset)
                counted = _Counting(_pieces(handle, length), progress, offset)
                try:
                    response = self._client.patch(
                        f"/api/v1/uploads/{upload_id}",
                        content=counted,
                        headers={
                            "Upload-Offset": str(offset),
                            "Content-Type": "application/octet-stream",
                        },
                    )
                    _raise_for(response)
                    offset = int(response.json()["offset"])
                    failures = 0
                except httpx.TransportError as error:
                    failures += 1
                    if failures > RETRIES:
                        raise GeneCommonsError(
                            f"The connection keeps failing ({error}); run the same command again "
                            f"to resume upload {upload_id}.",
                            message_zh=f"连接持续失败；再次运行同一命令即可继续上传 {upload_id}。",
                        ) from error
                    logger.warning("upload interrupted (%s); resuming", error)
                    offset = self._offset(upload_id)
                    if progress:
                        progress(offset)
        response = self._client.post(f"/api/v1/uploads/{upload_id}/complete")
        _raise_for(response)
        if state_file is not None:
            state_file.unlink(missing_ok=True)
        result: dict[str, Any] = response.json()
        return result

    def _offset(self, upload_id: str) -> int:
        response = self._client.get(f"/api/v1/uploads/{upload_id}")
        _raise_for(response)
        body = response.json()
        if body["state"] != "open":
            raise ConflictError(
                f"Upload {upload_id} is {body['state']}; start again without --upload-id.",
                message_zh=f"上传 {upload_id} 的状态为 {body['state']}；请不带 --upload-id 重新开始。",
                details=body.get("error"),
            )
        return int(body["offset"])


class _Counting:
    """Passes chunks through, telling the progress bar the position reached."""

    def __init__(self, chunks: Iterator[bytes], progress: Progress | None, start: int) -> None:
        self._chunks = chunks
        self._progress = progress
        self._position = start

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            self._position += len(chunk)
            if self._progress:
                self._progress(self._position)
            yield chunk


def default_state_dir() -> Path:
    """Where unfinished uploads are remembered between runs."""
    return Path.home() / ".cache" / "genecommons" / "uploads"
