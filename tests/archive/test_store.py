"""One contract, run against every object store: a local directory and S3 (a real S3 protocol
server, moto's server mode, on loopback)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from genecommons.archive.store import LocalObjectStore, ObjectStore, open_store
from genecommons.errors import ConfigurationError, ConflictError, InvalidInputError, NotFoundError


@pytest.fixture(params=["local", "s3"])
def object_store(
    request: pytest.FixtureRequest, tmp_path: Path, s3_archive_url: Any
) -> ObjectStore:
    """A fresh store of each kind."""
    if request.param == "local":
        return open_store(str(tmp_path / "objects"))
    options = {
        "key": "testing",
        "secret": "testing",
        "client_kwargs": {
            "endpoint_url": s3_archive_url["archive_s3_endpoint_url"],
            "region_name": "us-east-1",
        },
    }
    return open_store(s3_archive_url["archive_url"], storage_options=options)


def _chunks(data: bytes, size: int = 1 << 20) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def test_put_read_and_list(object_store: ObjectStore) -> None:
    data = os.urandom(3 * (1 << 20) + 17)
    assert object_store.put("GCF00000001/a.c4gh", _chunks(data)) == len(data)
    assert object_store.exists("GCF00000001/a.c4gh")
    assert object_store.size("GCF00000001/a.c4gh") == len(data)
    assert object_store.read_range("GCF00000001/a.c4gh", 1000, 50) == data[1000:1050]
    with object_store.open("GCF00000001/a.c4gh") as handle:
        handle.seek(len(data) - 10)
        assert handle.read() == data[-10:]
    object_store.put("GCF00000002/b.c4gh", [b""])
    assert list(object_store.keys()) == ["GCF00000001/a.c4gh", "GCF00000002/b.c4gh"]
    assert list(object_store.keys("GCF00000002")) == ["GCF00000002/b.c4gh"]


def test_objects_are_immutable(object_store: ObjectStore) -> None:
    object_store.put("k/one", [b"first"])
    with pytest.raises(ConflictError):
        object_store.put("k/one", [b"second"])
    assert object_store.read_range("k/one", 0, 10) == b"first"


def test_a_failed_write_leaves_nothing(object_store: ObjectStore) -> None:
    def failing() -> Iterator[bytes]:
        yield os.urandom(6 * (1 << 20))  # more than one multipart part on S3
        raise InvalidInputError("checksum mismatch", message_zh="校验和不一致")

    with pytest.raises(InvalidInputError):
        object_store.put("k/broken", failing())
    assert not object_store.exists("k/broken")
    assert list(object_store.keys()) == []


def test_missing_objects_and_unsafe_keys(object_store: ObjectStore) -> None:
    with pytest.raises(NotFoundError):
        object_store.size("k/none")
    with pytest.raises(NotFoundError):
        object_store.read_range("k/none", 0, 1)
    for key in ("../etc/passwd", "/abs", "a/../../b", "", "a b", "k/" + "x" * 300):
        with pytest.raises(InvalidInputError):
            object_store.put(key, [b"x"])


def test_delete_undoes_an_ingest(object_store: ObjectStore) -> None:
    object_store.put("k/undo", [b"x"])
    object_store.delete("k/undo")
    assert not object_store.exists("k/undo")
    object_store.delete("k/undo")  # absent already: nothing to do


def test_local_objects_are_read_only_files(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "objects")
    store.put("k/file", [b"data"])
    assert (tmp_path / "objects" / "k" / "file").stat().st_mode & 0o777 == 0o400
    assert not [p for p in (tmp_path / "objects").rglob(".*")]  # no temporary file left


def test_unknown_store_urls() -> None:
    with pytest.raises(ConfigurationError):
        open_store("ftp://example.org/archive")
    assert isinstance(open_store(f"file:///tmp/{uuid.uuid4().hex}"), LocalObjectStore)


def test_a_usable_store_is_reachable(object_store: ObjectStore) -> None:
    assert object_store.reachable() is None  # before the first object: made on the first put
    object_store.put("k/reach", [b"x"])
    assert object_store.reachable() is None


def test_a_missing_bucket_is_not_reachable(s3_archive_url: Any) -> None:
    options = {
        "key": "testing",
        "secret": "testing",
        "client_kwargs": {
            "endpoint_url": s3_archive_url["archive_s3_endpoint_url"],
            "region_name": "us-east-1",
        },
    }
    store = open_store(
        f"s3://no-such-bucket-{uuid.uuid4().hex[:8]}/objects", storage_options=options
    )
    assert "does not exist" in (store.reachable() or "")


def test_a_local_store_under_a_file_is_not_reachable(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    assert "is not a directory" in (
        LocalObjectStore(tmp_path / "file" / "objects").reachable() or ""
    )
