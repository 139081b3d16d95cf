"""The manifest of a backup: what it holds, with sizes and SHA-256 checksums, authenticated by
a key derived from the backup's passphrase.

The manifest is the last file a backup writes; a backup directory without a valid one is not a
backup. Paths in a manifest are read as hostile until checked: each must be a plain relative
path inside the backup, under the folder its role allows.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass, field
from hashlib import sha256
from typing import Any, Literal

import rfc8785

from genecommons.archive.store import KEY_RE
from genecommons.errors import BackupInvalidError

FORMAT = "genecommons-backup/1"
MANIFEST_NAME = "MANIFEST.json"
DATABASE_FILES = {"sqlite": "database.sqlite3", "postgresql": "database.pgdump"}
KEYS_NAME = "keys.c4gh"
DATA_FOLDER = "data"  # other files of the data directory (variant stores, privacy fits...)
OBJECTS_FOLDER = "objects"
# a file or folder name: plain characters, a leading dot allowed (Zarr's .zarray), never . or ..
_PART = re.compile(r"^(?!\.\.?$)[A-Za-z0-9_.][A-Za-z0-9._+=@-]{0,254}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
Role = Literal["database", "keys", "data", "object"]


@dataclass(frozen=True, slots=True)
class Entry:
    """A file of the backup: its path in the backup, what it is, its size and checksum."""

    path: str
    role: Role
    size: int
    sha256: str

    def to_json(self) -> dict[str, Any]:
        """The entry as the manifest writes it."""
        return {"path": self.path, "role": self.role, "size": self.size, "sha256": self.sha256}


@dataclass(frozen=True, slots=True)
class StoredObject:
    """An object of the node's object store when the backup was made."""

    key: str
    size: int
    sha256: str

    def to_json(self) -> dict[str, Any]:
        """The object as the manifest writes it."""
        return {"key": self.key, "size": self.size, "sha256": self.sha256}


@dataclass(frozen=True, slots=True)
class Manifest:
    """What a backup holds (see the module docstring)."""

    created: str
    database_kind: Literal["sqlite", "postgresql"]
    database_schema: str | None
    kdf: dict[str, Any]
    entries: list[Entry] = field(default_factory=list)
    objects: list[StoredObject] = field(default_factory=list)
    with_objects: bool = False

    def body(self) -> dict[str, Any]:
        """The manifest without its authentication code."""
        return {
            "format": FORMAT,
            "created": self.created,
            "database": {"kind": self.database_kind, "schema": self.database_schema},
            "kdf": self.kdf,
            "files": [e.to_json() for e in self.entries],
            "objects": [o.to_json() for o in self.objects],
            "with_objects": self.with_objects,
        }

    def sign(self, mac_key: bytes) -> bytes:
        """The manifest document, authenticated by `mac_key` (HMAC-SHA256 over RFC 8785 JSON)."""
        body = self.body()
        document = {**body, "mac": mac(body, mac_key)}
        return rfc8785.dumps(document) + b"\n"

    def entry(self, role: Role) -> Entry:
        """The one entry of `role` (the database or the key bundle)."""
        for entry in self.entries:
            if entry.role == role:
                return entry
        raise _invalid(f"the manifest lists no {role} file", f"清单中没有 {role} 文件")


def mac(body: dict[str, Any], key: bytes) -> str:
    """HMAC-SHA256 of the manifest body in its canonical (RFC 8785) form, hex."""
    return hmac.new(key, rfc8785.dumps(body), sha256).hexdigest()


def check_mac(document: dict[str, Any], key: bytes) -> None:
    """Refuse a manifest whose authentication code `key` does not reproduce (it was altered,
    or belongs to another backup)."""
    body = {k: v for k, v in document.items() if k != "mac"}
    given = document.get("mac")
    if not isinstance(given, str) or not hmac.compare_digest(mac(body, key), given):
        raise _invalid(
            "its manifest fails its authentication: it was altered after the backup was made",
            "其清单未通过认证：备份完成后被改动过",
        )


def safe_path(path: object, *, role: Role) -> str:
    """`path` if it is a plain relative path inside the backup where `role` may be; else
    BackupInvalidError (absolute paths, `..`, empty or odd parts, another folder)."""
    if not isinstance(path, str) or not path or "\\" in path or "\x00" in path:
        raise _hostile(path)
    parts = path.split("/")
    if path.startswith("/") or any(p in ("", ".", "..") or not _PART.match(p) for p in parts):
        raise _hostile(path)
    if role == "database" and path not in DATABASE_FILES.values():
        raise _hostile(path)
    if role == "keys" and path != KEYS_NAME:
        raise _hostile(path)
    if role == "data" and (parts[0] != DATA_FOLDER or len(parts) < 2):
        raise _hostile(path)
    if role == "object" and (parts[0] != OBJECTS_FOLDER or not KEY_RE.match("/".join(parts[1:]))):
        raise _hostile(path)
    return path


def parse(document: object) -> Manifest:
    """The manifest of a parsed MANIFEST.json, every field and path checked."""
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise _invalid(
            f"{MANIFEST_NAME} is not a {FORMAT} manifest", f"{MANIFEST_NAME} 不是 {FORMAT} 清单"
        )
    try:
        database = document["database"]
        kind = database["kind"]
        schema = database["schema"]
        if kind not in DATABASE_FILES or not (schema is None or isinstance(schema, str)):
            raise ValueError("database")
        kdf = document["kdf"]
        if not isinstance(kdf, dict):
            raise ValueError("kdf")
        entries = [
            Entry(
                path=safe_path(e["path"], role=e["role"]),
                role=e["role"],
                size=_size(e["size"]),
                sha256=_digest(e["sha256"]),
            )
            for e in document["files"]
        ]
        objects = [
            StoredObject(key=_key(o["key"]), size=_size(o["size"]), sha256=_digest(o["sha256"]))
            for o in document["objects"]
        ]
        with_objects = document["with_objects"]
        created = document["created"]
        if not isinstance(with_objects, bool) or not isinstance(created, str):
            raise ValueError("flags")
    except BackupInvalidError:
        raise
    except (KeyError, TypeError, ValueError) as error:
        raise _invalid(
            f"its manifest is malformed ({error})", f"其清单格式错误（{error}）"
        ) from error
    paths = [e.path for e in entries]
    if len(set(paths)) != len(paths):
        raise _invalid("its manifest lists a file twice", "其清单重复列出了同一文件")
    manifest = Manifest(
        created=created,
        database_kind=kind,
        database_schema=schema,
        kdf=kdf,
        entries=entries,
        objects=objects,
        with_objects=with_objects,
    )
    if manifest.entry("database").path != DATABASE_FILES[kind]:
        raise _hostile(manifest.entry("database").path)
    manifest.entry("keys")
    return manifest


def _size(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"size {value!r}")
    return value


def _digest(value: object) -> str:
    if not isinstance(value, str) or not _HEX64.match(value):
        raise ValueError(f"sha256 {value!r}")
    return value


def _key(value: object) -> str:
    if not isinstance(value, str) or not KEY_RE.match(value) or ".." in value.split("/"):
        raise _hostile(value)
    return value


def _hostile(path: object) -> BackupInvalidError:
    shown = repr(path)[:120]
    return _invalid(
        f"its manifest names the path {shown}, which is not a plain path inside the backup "
        "(absolute, '..', or outside the folder of its kind); the manifest is refused",
        f"其清单中的路径 {shown} 不是备份内的普通路径（绝对路径、含 '..' 或不在其类别的目录中）；"
        "拒绝该清单",
    )


def _invalid(why: str, why_zh: str) -> BackupInvalidError:
    return BackupInvalidError(
        f"This backup cannot be restored: {why}. Restore another backup, or make a new one with "
        "`genecommons backup DEST`.",
        message_zh=f"无法恢复此备份：{why_zh}。请恢复其他备份，或用 `genecommons backup DEST` "
        "重新备份。",
    )
