"""Object stores for immutable encrypted objects: a local directory, or S3 through fsspec.

An object becomes visible only complete: a failed write (a full disk, a broken connection, a
check that fails while the bytes stream in) leaves nothing under its key.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, Protocol, cast

from genecommons.errors import (
    ConfigurationError,
    ConflictError,
    GeneCommonsError,
    InvalidInputError,
    NotFoundError,
    StorageError,
    StorageFullError,
)

logger = logging.getLogger(__name__)

KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}(/[A-Za-z0-9][A-Za-z0-9._-]{0,99}){0,4}$")
FULL = (errno.ENOSPC, errno.EDQUOT)


class ObjectStore(Protocol):
    """Where encrypted objects are kept; objects are written once and never changed."""

    def put(self, key: str, chunks: Iterable[bytes | bytearray]) -> int:
        """Write an object from `chunks`, all or nothing; its size."""

    def open(self, key: str) -> BinaryIO:
        """The object, for reading."""

    def read_range(self, key: str, start: int, length: int) -> bytes:
        """`length` bytes of the object from `start` (fewer at its end)."""

    def size(self, key: str) -> int:
        """The object's size in bytes."""

    def exists(self, key: str) -> bool:
        """Whether the object exists."""

    def delete(self, key: str) -> None:
        """Remove an object (only to undo an ingest that did not commit)."""

    def keys(self, prefix: str = "") -> Iterator[str]:
        """Keys of the objects under `prefix`."""

    def reachable(self) -> str | None:
        """None when objects can be written and read now, else what stands in the way."""

    def parts(self) -> Iterator[str]:
        """Names of what writes that never finished left behind (not objects: a killed
        writer's temporary file, an S3 multipart upload never completed)."""

    def remove_part(self, name: str) -> None:
        """Remove one of `parts`."""


PART_RE = re.compile(
    r"^(?:[A-Za-z0-9][A-Za-z0-9._-]{0,99}/){0,4}\.[A-Za-z0-9][A-Za-z0-9._-]{0,200}\.part$"
)


def check_key(key: str) -> str:
    """`key` if it is a safe object key (no '..', no leading '/', plain characters)."""
    if not KEY_RE.match(key) or ".." in key:
        raise InvalidInputError(
            f"{key!r} is not a valid object key.", message_zh=f"{key!r} 不是有效的对象键。"
        )
    return key


def _os_error(error: OSError, key: str) -> GeneCommonsError:
    if error.errno in FULL:
        return StorageFullError(
            f"The archive's storage is full; {key} was not stored and nothing of it remains. "
            "The operator has to free or add space; then try again.",
            message_zh=f"归档存储空间已满；{key} 未保存，也未留下任何部分。请运维人员释放或增加空间后重试。",
        )
    return StorageError(
        f"The archive's storage failed while writing {key} ({error.strerror}); nothing of it "
        "was kept. Try again; tell the operator if it persists.",
        message_zh=f"写入 {key} 时归档存储出错；未保留任何部分。请重试，如持续出现请联系运维人员。",
    )


def _exists_error(key: str) -> ConflictError:
    return ConflictError(
        f"An object {key} exists already; objects are immutable.",
        message_zh=f"对象 {key} 已存在；对象不可修改。",
    )


def _missing(key: str) -> NotFoundError:
    return NotFoundError(f"No object {key} in the store.", message_zh=f"存储中不存在对象 {key}。")


class LocalObjectStore:
    """Objects as read-only files under a directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put(self, key: str, chunks: Iterable[bytes | bytearray]) -> int:
        """Write to a temporary file, fsync, then link it in place (never over another)."""
        path = self._path(key)
        if path.exists():
            raise _exists_error(key)
        size = 0
        temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.part")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with temporary.open("xb") as handle:
                for chunk in chunks:
                    handle.write(chunk)
                    size += len(chunk)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(temporary, 0o400)  # immutable, and readable by the node's user only
            os.link(temporary, path)  # atomic, and refuses to replace an existing object
        except FileExistsError:
            raise _exists_error(key) from None
        except OSError as error:
            raise _os_error(error, key) from error
        finally:
            temporary.unlink(missing_ok=True)
        return size

    def open(self, key: str) -> BinaryIO:
        """The object's file, read-only."""
        try:
            return self._path(key).open("rb")
        except FileNotFoundError:
            raise _missing(key) from None

    def read_range(self, key: str, start: int, length: int) -> bytes:
        """Bytes of the object by position."""
        with self.open(key) as handle:
            handle.seek(start)
            return handle.read(length)

    def size(self, key: str) -> int:
        """The file's size."""
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            raise _missing(key) from None

    def exists(self, key: str) -> bool:
        """Whether the file exists."""
        return self._path(key).exists()

    def delete(self, key: str) -> None:
        """Remove the file."""
        self._path(key).unlink(missing_ok=True)

    def keys(self, prefix: str = "") -> Iterator[str]:
        """Keys of the complete objects (temporary files are not objects)."""
        if not self.root.exists():
            return
        for path in sorted(self.root.rglob("*")):
            if path.is_file() and not path.name.startswith("."):
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    yield key

    def parts(self) -> Iterator[str]:
        """The temporary files of `put`s that never finished (`.NAME.HEX.part`)."""
        if not self.root.exists():
            return
        for path in sorted(self.root.rglob(".*.part")):
            if path.is_file():
                yield path.relative_to(self.root).as_posix()

    def remove_part(self, name: str) -> None:
        """Remove a temporary file."""
        if not PART_RE.match(name):
            raise InvalidInputError(
                f"{name!r} is not a temporary part.", message_zh=f"{name!r} 不是临时部分。"
            )
        (self.root / name).unlink(missing_ok=True)

    def reachable(self) -> str | None:
        """None when the directory (or, before the first object, the nearest directory above
        it) is writable."""
        return _writable_directory(self.root)


def _writable_directory(root: Path) -> str | None:
    """None when `root` is, or can be made, a directory this process writes to."""
    existing = root
    while not existing.exists():  # a fresh node: the archive is made on the first put
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is not a directory"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable by this process"
    return None


class FsspecObjectStore:
    """Objects in an fsspec filesystem, e.g. S3 (`s3://bucket/prefix`) through s3fs.

    S3 has no create-if-absent for multipart uploads: `put` checks that the key is free first.
    Keys carry a random part chosen by the archive, so two writers never aim at one key.
    """

    def __init__(self, url: str, *, storage_options: dict[str, Any] | None = None) -> None:
        import fsspec

        self.url = url.rstrip("/")
        self.fs, self.base = fsspec.core.url_to_fs(self.url, **(storage_options or {}))

    def _path(self, key: str) -> str:
        return f"{self.base}/{check_key(key)}"

    def put(self, key: str, chunks: Iterable[bytes | bytearray]) -> int:
        """A multipart upload through fsspec's buffered file; aborted and removed on failure."""
        path = self._path(key)
        if self.fs.exists(path):
            raise _exists_error(key)
        size = 0
        try:
            handle = self.fs.open(path, "wb", block_size=16 * 1024 * 1024)
            try:
                for chunk in chunks:
                    handle.write(chunk)
                    size += len(chunk)
            except BaseException:
                discard = getattr(handle, "discard", None)
                if discard is not None:
                    discard()  # abort the multipart upload: no part becomes an object
                    handle.closed = True  # fsspec would otherwise flush the discarded buffer
                raise
            handle.close()
        except OSError as error:
            self._remove_partial(path)
            raise _os_error(error, key) from error
        except BaseException:
            self._remove_partial(path)
            raise
        self.fs.invalidate_cache(path)
        return size

    def _remove_partial(self, path: str) -> None:
        try:
            if self.fs.exists(path):
                self.fs.rm(path)
        except OSError:
            logger.exception("could not remove the partial object %s", path)

    def open(self, key: str) -> BinaryIO:
        """The object, read through fsspec (random access by ranged GETs)."""
        path = self._path(key)
        try:
            return cast(BinaryIO, self.fs.open(path, "rb", block_size=4 * 1024 * 1024))
        except FileNotFoundError:
            raise _missing(key) from None

    def read_range(self, key: str, start: int, length: int) -> bytes:
        """One ranged GET."""
        path = self._path(key)
        try:
            return bytes(self.fs.cat_file(path, start=start, end=start + length))
        except FileNotFoundError:
            raise _missing(key) from None

    def size(self, key: str) -> int:
        """The object's size."""
        try:
            return int(self.fs.size(self._path(key)))
        except FileNotFoundError:
            raise _missing(key) from None

    def exists(self, key: str) -> bool:
        """Whether the object exists."""
        return bool(self.fs.exists(self._path(key)))

    def delete(self, key: str) -> None:
        """Remove the object."""
        path = self._path(key)
        if self.fs.exists(path):
            self.fs.rm(path)

    def keys(self, prefix: str = "") -> Iterator[str]:
        """Keys of the objects."""
        self.fs.invalidate_cache()
        try:
            found = self.fs.find(self.base)
        except FileNotFoundError:
            return
        for path in sorted(found):
            key = str(path)[len(self.base) + 1 :]
            if key.startswith(prefix):
                yield key

    def _multipart(self) -> Iterator[tuple[str, str]]:
        """(key, upload id) of the multipart uploads begun under the store's prefix and
        never completed, where the filesystem has them (S3)."""
        lister = getattr(self.fs, "list_multipart_uploads", None)
        if lister is None:
            return
        bucket, _, prefix = self.base.partition("/")
        for upload in lister(bucket):
            key = str(upload.get("Key", ""))
            if not prefix or key.startswith(prefix + "/"):
                yield key[len(prefix) + 1 :] if prefix else key, str(upload["UploadId"])

    def parts(self) -> Iterator[str]:
        """The multipart uploads never completed, as `KEY#UPLOAD-ID`."""
        for key, upload_id in sorted(self._multipart()):
            yield f"{key}#{upload_id}"

    def remove_part(self, name: str) -> None:
        """Abort a multipart upload (its parts are deleted)."""
        key, _, upload_id = name.partition("#")
        bucket, _, prefix = self.path_parts(key)
        self.fs.call_s3("abort_multipart_upload", Bucket=bucket, Key=prefix, UploadId=upload_id)

    def path_parts(self, key: str) -> tuple[str, str, str]:
        """(bucket, "/", key in the bucket) of an object key."""
        return self._path(key).partition("/")

    def reachable(self) -> str | None:
        """None when the bucket answers (asked anew, not from fsspec's listing cache)."""
        bucket = self.base.split("/", 1)[0]
        self.fs.invalidate_cache(bucket)
        if not self.fs.exists(bucket):
            return f"the bucket {bucket} does not exist or cannot be reached"
        return None


def open_store(url: str, *, storage_options: dict[str, Any] | None = None) -> ObjectStore:
    """The store a URL names: a path or file:// URL (a directory), or s3://bucket/prefix."""
    if url.startswith("s3://"):
        return FsspecObjectStore(url, storage_options=storage_options)
    if url.startswith("file://"):
        return LocalObjectStore(Path(url[len("file://") :]))
    if "://" in url:
        raise ConfigurationError(
            f"Unsupported archive URL {url!r}: use a directory or s3://bucket/prefix.",
            message_zh=f"不支持的归档地址 {url!r}：请使用目录或 s3://bucket/prefix。",
        )
    return LocalObjectStore(Path(url))
