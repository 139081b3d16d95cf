"""What lies in the directory of variant stores, and who is working on it.

A store is built in a hidden directory beside its destination (`.GCD00000001.building-<hex>`)
and renamed into place; a store being replaced is first renamed aside
(`.GCD00000001.retired-<hex>`). The process doing either holds a `Lease` on the directory (an
exclusive `flock`, which follows the directory through renames and ends with the process, even
under kill -9), from its creation until its binding is committed or it is removed. Whatever
holds no lease and is not bound by a committed row is a leftover: `scan` finds them, the
service decides.

No web framework, no database: the file system only.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

MANIFEST = "store.json"
BUILDING = ".building-"
RETIRED = ".retired-"
_HIDDEN = re.compile(r"^\.(?P<dataset>[^/]+?)(?P<kind>\.building-|\.retired-)[0-9a-f]+$")
Kind = Literal["store", "building", "retired", "legacy", "unknown"]


class Lease:
    """An exclusive lock on a store's directory, held while it is built or replaced."""

    def __init__(self, descriptor: int, path: Path) -> None:
        self._descriptor: int | None = descriptor
        self.path = path

    @classmethod
    def take(cls, path: Path) -> Lease | None:
        """The lease of the directory `path`, or None when another process holds it."""
        descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            return None
        except BaseException:
            os.close(descriptor)
            raise
        return cls(descriptor, path)

    @property
    def held(self) -> bool:
        """Whether this lease is still held."""
        return self._descriptor is not None

    def release(self) -> None:
        """Let the directory go (idempotent)."""
        if self._descriptor is not None:
            os.close(self._descriptor)  # closing the last descriptor drops the lock
            self._descriptor = None

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *_: object) -> None:
        self.release()


@dataclass(frozen=True, slots=True)
class Found:
    """An entry of the stores directory: what it looks like and what it claims to be."""

    path: Path
    kind: Kind
    dataset: str | None
    store_id: str | None


def store_id_of(path: Path) -> str | None:
    """The store id a store's manifest names (None when it has no readable manifest)."""
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
        return str(manifest["store_id"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def is_legacy(path: Path) -> bool:
    """Whether `path` holds a store of the format before encryption (plaintext Zarr and
    SQLite, no manifest)."""
    if (path / MANIFEST).exists():
        return False
    sites = path / "sites.sqlite"
    try:
        with sites.open("rb") as handle:
            return handle.read(16) == b"SQLite format 3\x00"
    except OSError:
        return (path / "calls.vcz").is_dir()


def scan(root: Path) -> list[Found]:
    """Every directory under `root` (the stores directory) with what it is."""
    found: list[Found] = []
    if not root.is_dir():
        return found
    for entry in sorted(root.iterdir()):
        if not entry.is_dir() or entry.is_symlink():
            continue  # the public reference and other files live here too
        hidden = _HIDDEN.match(entry.name)
        if hidden:
            kind: Kind = "building" if hidden["kind"] == BUILDING else "retired"
            found.append(Found(entry, kind, hidden["dataset"], store_id_of(entry)))
        elif entry.name.startswith("."):
            continue  # not ours
        elif is_legacy(entry):
            found.append(Found(entry, "legacy", entry.name, None))
        else:
            store_id = store_id_of(entry)
            found.append(Found(entry, "store" if store_id else "unknown", entry.name, store_id))
    return found


def remove(path: Path) -> bool:
    """Remove the directory `path` unless another process holds its lease; whether it was
    removed."""
    try:
        lease = Lease.take(path)
    except FileNotFoundError:
        return True
    if lease is None:
        return False
    with lease:
        shutil.rmtree(path)
    return True
