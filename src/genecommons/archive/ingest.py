"""Ingest one data file: checksums, format check and Crypt4GH encryption in a single pass.

The plaintext is read once. Each chunk is hashed (MD5 and SHA-256, in worker threads: hashlib
releases the GIL), encrypted for the archive's key and piped to a format-checker process that
runs on the other CPU core (`python -m genecommons.archive.formats`). A file that arrives
already encrypted for the archive's public key keeps its body as it is: only its header is
rewritten for the archive alone, and its plaintext exists only in memory while it is checked.

The object becomes visible in the store only when every check has passed: a checksum mismatch,
a format error or a full disk leave nothing behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import queue
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import IO, Any, BinaryIO, cast

from genecommons.archive.crypt import (
    MAGIC,
    BodyDecryptor,
    BodyEncryptor,
    read_header,
    reencrypt_header,
    session_keys,
)
from genecommons.archive.keys import KeyPair
from genecommons.archive.store import ObjectStore
from genecommons.errors import GeneCommonsError, InvalidInputError

logger = logging.getLogger(__name__)

CHUNK = 4 * 1024 * 1024
Progress = Callable[[int], None]

# Formats whose content the checker understands; the others are stored as they are.
CHECKED_FORMATS = frozenset({"fastq", "bam", "cram", "vcf", "bcf"})


@dataclass(frozen=True, slots=True)
class Declared:
    """What the catalog says a file is."""

    name: str
    format: str
    md5: str
    sha256: str
    size: int | None = None
    assembly: str | None = None


@dataclass(frozen=True, slots=True)
class Stored:
    """An encrypted object in the store: its header is kept apart, readable by the archive."""

    key: str
    header: bytes
    body_size: int
    body_sha256: str


@dataclass(frozen=True, slots=True)
class Ingested:
    """The result of a successful ingest."""

    body: Stored
    plain_size: int
    md5: str
    sha256: str
    summary: dict[str, Any] = field(default_factory=dict)
    encrypted_upload: bool = False


class ChecksumMismatchError(InvalidInputError):
    """The bytes received are not the file the catalog declares. Upload the right file, or
    correct the declared checksum in the catalog and submit the metadata again."""


class FormatCheckError(InvalidInputError):
    """The content of the file is not valid for its declared format; the message says where.
    Fix the file (or its declared format) and upload it again."""


def is_crypt4gh(head: bytes) -> bool:
    """Whether the first bytes of a file are the Crypt4GH magic number."""
    return head[: len(MAGIC)] == MAGIC


class _Hashes:
    """MD5 and SHA-256 of a stream, computed beside the caller in two threads."""

    def __init__(self, pool: ThreadPoolExecutor) -> None:
        self._pool = pool
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.sha256 = hashlib.sha256()
        self._pending: list[Future[None]] = []

    def update(self, chunk: bytes) -> None:
        self.wait()
        self._pending = [
            self._pool.submit(self.md5.update, chunk),
            self._pool.submit(self.sha256.update, chunk),
        ]

    def wait(self) -> None:
        for future in self._pending:
            future.result()
        self._pending = []


class FormatChecker:
    """The format check running in its own process, fed the plaintext through a pipe."""

    def __init__(self, declared: Declared, *, max_decompressed: int | None = None) -> None:
        command = [sys.executable, "-m", "genecommons.archive.formats"]
        command += ["--format", declared.format, "--name", declared.name]
        if declared.assembly:
            command += ["--assembly", declared.assembly]
        if max_decompressed is not None:
            command += ["--max-decompressed", str(max_decompressed)]
        # htslib may print many lines on a damaged file: stderr goes to a file, not a pipe
        # that could fill up and stall both processes.
        self._stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - closed in result()
        self._process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr
        )
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=8)
        self._writer = threading.Thread(target=self._feed, daemon=True)
        self._writer.start()
        self._closed_early = False

    def _feed(self) -> None:
        stdin = self._process.stdin
        assert stdin is not None
        while True:
            chunk = self._queue.get()
            if chunk is None:
                break
            if self._closed_early:
                continue
            try:
                stdin.write(chunk)
            except (BrokenPipeError, ValueError):
                self._closed_early = True  # the checker stopped at the first error
        with contextlib.suppress(BrokenPipeError):
            stdin.close()

    def feed(self, chunk: bytes) -> None:
        """Pass the next plaintext bytes to the checker."""
        self._queue.put(chunk)

    def result(self) -> dict[str, Any]:
        """Wait for the verdict: the format summary, or FormatCheckError."""
        self._queue.put(None)
        self._writer.join()
        assert self._process.stdout is not None
        output = self._process.stdout.read()
        self._process.stdout.close()
        code = self._process.wait()
        self._stderr.seek(0)
        diagnostics = self._stderr.read()[-2000:].decode("utf-8", "replace")
        self._stderr.close()
        line = output.decode("utf-8", "replace").strip().splitlines()
        verdict: dict[str, Any] = json.loads(line[-1]) if line else {}
        if code == 0 and "error" not in verdict:
            return verdict
        error = verdict.get("error")
        if isinstance(error, dict):
            raise FormatCheckError(
                str(error.get("message", "The file is not valid.")),
                message_zh=str(error.get("message_zh", "文件内容无效。")),
                details=dict(error.get("details") or {}),
            )
        logger.error("format checker failed (exit %s): %s", code, diagnostics)
        raise GeneCommonsError(
            "The format check could not run; nothing was stored. Try again, and tell the "
            "operator if it keeps failing.",
            message_zh="格式检查无法运行；未保存任何内容。请重试，如持续失败请联系运维人员。",
        )

    def abort(self) -> None:
        """Stop the checker (ingest failed for another reason)."""
        self._closed_early = True
        self._queue.put(None)
        self._process.kill()
        self._writer.join()
        self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()
        self._stderr.close()


def _read_chunks(stream: BinaryIO, first: bytes) -> Iterator[bytes]:
    if first:
        yield first
    while chunk := stream.read(CHUNK):
        yield chunk


def ingest(
    source: BinaryIO,
    *,
    declared: Declared,
    keys: KeyPair,
    store: ObjectStore,
    object_key: str,
    progress: Progress | None = None,
    max_decompressed: int | None = None,
) -> Ingested:
    """Check `source` against `declared` and keep it encrypted in `store` under `object_key`.

    `source` may be plaintext or Crypt4GH encrypted for the archive's public key. Raises
    ChecksumMismatchError, FormatCheckError or InvalidInputError (encrypted for another key);
    nothing is stored then.
    """
    first = source.read(CHUNK)
    encrypted = is_crypt4gh(first)
    checker = (
        FormatChecker(declared, max_decompressed=max_decompressed)
        if declared.format in CHECKED_FORMATS
        else None
    )
    state: dict[str, Any] = {}
    try:
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="ingest-hash") as pool:
            hashes = _Hashes(pool)
            if encrypted:
                header_stream = cast(BinaryIO, _Prefixed(first, source))
                original_header = read_header(header_stream)
                keys_in_header = session_keys(original_header, keys=keys)
                header = reencrypt_header(original_header, keys=keys, recipient_public=keys.public)
                body = _encrypted_body(
                    header_stream, keys_in_header, hashes, checker, state, progress
                )
            else:
                encryptor = BodyEncryptor()
                header = encryptor.header_for([keys.public], sender=keys)
                body = _plain_body(
                    _read_chunks(source, first), encryptor, hashes, checker, state, progress
                )
            body_hash = hashlib.sha256()
            sizes = {"body": 0}

            def checked_body() -> Iterator[bytes | bytearray]:
                for piece in body:
                    body_hash.update(piece)
                    sizes["body"] += len(piece)
                    yield piece
                hashes.wait()
                state["summary"] = checker.result() if checker else {"format": declared.format}
                _compare(declared, state["plain_size"], hashes)

            store.put(object_key, checked_body())
    except BaseException:
        if checker is not None and "summary" not in state:
            checker.abort()
        raise
    return Ingested(
        body=Stored(
            key=object_key,
            header=header,
            body_size=sizes["body"],
            body_sha256=body_hash.hexdigest(),
        ),
        plain_size=state["plain_size"],
        md5=hashes.md5.hexdigest(),
        sha256=hashes.sha256.hexdigest(),
        summary=state["summary"],
        encrypted_upload=encrypted,
    )


def _plain_body(
    chunks: Iterator[bytes],
    encryptor: BodyEncryptor,
    hashes: _Hashes,
    checker: FormatChecker | None,
    state: dict[str, Any],
    progress: Progress | None,
) -> Iterator[bytes | bytearray]:
    size = 0
    for chunk in chunks:
        hashes.update(chunk)
        if checker:
            checker.feed(chunk)
        size += len(chunk)
        if progress:
            progress(len(chunk))
        cipher = encryptor.update(chunk)
        if cipher:
            yield cipher
    tail = encryptor.finish()
    if tail:
        yield tail
    state["plain_size"] = size


def _encrypted_body(
    stream: BinaryIO,
    keys_in_header: list[bytes],
    hashes: _Hashes,
    checker: FormatChecker | None,
    state: dict[str, Any],
    progress: Progress | None,
) -> Iterator[bytes | bytearray]:
    decryptor = BodyDecryptor(keys_in_header)
    size = 0
    while cipher := stream.read(CHUNK):
        plain = decryptor.update(cipher)
        if plain:
            hashes.update(plain)
            if checker:
                checker.feed(plain)
            size += len(plain)
        if progress:
            progress(len(cipher))
        yield cipher
    plain = decryptor.finish()
    if plain:
        hashes.update(plain)
        if checker:
            checker.feed(plain)
        size += len(plain)
    state["plain_size"] = size


def _compare(declared: Declared, size: int, hashes: _Hashes) -> None:
    """Raise ChecksumMismatchError when what arrived differs from what the catalog declares."""
    found = {"md5": hashes.md5.hexdigest(), "sha256": hashes.sha256.hexdigest()}
    wrong = [k for k in ("md5", "sha256") if found[k] != getattr(declared, k).lower()]
    if declared.size is not None and declared.size != size:
        wrong.append("size")
    if not wrong:
        return
    what = ", ".join(wrong)
    raise ChecksumMismatchError(
        f"{declared.name}: the {what} of the bytes received ({size} bytes, md5 {found['md5']}, "
        f"sha256 {found['sha256']}) differ from the catalog's (md5 {declared.md5}, sha256 "
        f"{declared.sha256}, size {declared.size}). The upload was incomplete or a different "
        "file; nothing was stored. Upload the right file or correct the catalog record.",
        message_zh=(
            f"{declared.name}：收到内容的 {what} 与目录声明不一致；上传不完整或文件错误，"
            "未保存任何内容。请上传正确的文件或更正目录记录。"
        ),
        details={
            "file": declared.name,
            "mismatch": wrong,
            "received": {**found, "size": size},
            "declared": {"md5": declared.md5, "sha256": declared.sha256, "size": declared.size},
        },
    )


class _Prefixed:
    """A read-only stream that first gives back bytes already read from it."""

    def __init__(self, prefix: bytes, rest: BinaryIO) -> None:
        self._prefix = memoryview(prefix)
        self._rest = rest

    def read(self, size: int = -1) -> bytes:
        if self._prefix:
            if size < 0 or size >= len(self._prefix):
                head = bytes(self._prefix)
                self._prefix = memoryview(b"")
                more = self._rest.read(-1 if size < 0 else size - len(head))
                return head + more if more else head
            head = bytes(self._prefix[:size])
            self._prefix = self._prefix[size:]
            return head
        return self._rest.read(size)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)
