"""Back up a node while it serves, and restore a backup into an empty environment.

A backup is a directory: the database (a consistent copy: SQLite's online backup, or
`pg_dump`), the key bundle (every key and secret file of the key directory and the passphrases
the node is configured with, encrypted with the backup passphrase, bundle.py), the other files
of the data directory, the objects of the object store (with `with_objects`), and last the
manifest listing them all with their checksums and the store's objects (manifest.py). The
database is copied first: everything it refers to (keys, objects) is only ever added, so what is
copied after it covers it. The manifest is written aside, fsynced and renamed into place, so a
backup interrupted at any point has no manifest, and `restore` refuses it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import BinaryIO

from sqlalchemy.orm import Session, sessionmaker

from genecommons import clock
from genecommons.archive import keys_and_store
from genecommons.archive.store import LocalObjectStore, ObjectStore
from genecommons.backup import bundle, database
from genecommons.backup.manifest import (
    DATA_FOLDER,
    DATABASE_FILES,
    KEYS_NAME,
    MANIFEST_NAME,
    OBJECTS_FOLDER,
    Entry,
    Manifest,
    Role,
    StoredObject,
    check_mac,
    parse,
    safe_path,
)
from genecommons.config import Settings
from genecommons.db import (
    encrypt_in_place,
    make_session_factory,
    node_database_key,
    node_engine,
    write_transaction,
)
from genecommons.errors import (
    BackupInvalidError,
    ConfigurationError,
    InvalidInputError,
    NotFoundError,
    RestoreTargetNotEmptyError,
)
from genecommons.ledger.events import EventTag, record_event
from genecommons.secrets import (
    create_sealed_file,
    create_secret_file,
    node_key_passphrase,
    node_keys,
    private_directory,
)

CHUNK = 4 * 1024 * 1024
NODE_PASSPHRASE = "node_key_passphrase"  # noqa: S105 - names of secrets in the bundle
ARCHIVE_PASSPHRASE = "archive_key_passphrase"  # noqa: S105
Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class BackupSummary:
    """What a backup wrote."""

    destination: Path
    files: int
    objects: int
    bytes: int
    seconds: float


@dataclass(frozen=True, slots=True)
class RestoreSummary:
    """What a restore put back."""

    data_dir: Path
    files: int
    objects: int
    key_id: str
    seconds: float


def backup(
    settings: Settings,
    factory: sessionmaker[Session],
    destination: Path,
    *,
    actor: str,
    passphrase: bytes,
    with_objects: bool = False,
    progress: Progress | None = None,
) -> BackupSummary:
    """Back up the node of `settings` into the new or empty directory `destination`, the keys
    encrypted with `passphrase`; safe while the node serves."""
    started = time.monotonic()
    say = progress or (lambda _: None)
    passphrase = bundle.check_passphrase(passphrase)
    destination = destination.expanduser().resolve()
    data_dir = settings.data_dir
    if destination == data_dir or data_dir in destination.parents:
        raise InvalidInputError(
            f"The backup destination {destination} is inside the data directory {data_dir}; "
            "choose a directory elsewhere (another disk, ideally).",
            message_zh=f"备份目标 {destination} 位于数据目录 {data_dir} 之内；请选择其他目录（最好在另一块磁盘）。",
        )
    if destination.exists() and (not destination.is_dir() or any(destination.iterdir())):
        raise RestoreTargetNotEmptyError(
            f"The backup destination {destination} is not an empty directory; name a new one.",
            message_zh=f"备份目标 {destination} 不是空目录；请指定一个新目录。",
        )
    node_keys(settings)  # a node without its keys has nothing to back up: say so now
    kdf = bundle.new_kdf()
    keys = bundle.derive(passphrase, kdf)
    private_directory(destination)
    entries: list[Entry] = []

    db = database.target(settings.effective_database_url)
    say(f"database ({db.kind})")
    db_path = destination / DATABASE_FILES[db.kind]
    database.dump(db, db_path, key=node_database_key(settings) if db.kind == "sqlite" else None)
    entries.append(_entry(db_path, destination, "database"))

    say("keys and secrets")
    files = {
        str(path.relative_to(settings.key_dir)): path.read_bytes()
        for path in _files_under(settings.key_dir, hidden=False)  # not secrets being written
    }
    secrets = {NODE_PASSPHRASE: node_key_passphrase(settings).decode("utf-8")}
    secrets[ARCHIVE_PASSPHRASE] = keys_and_store.archive_passphrase(settings)
    keys_path = destination / KEYS_NAME
    _write_file(keys_path, bundle.seal(files, secrets, keys))
    entries.append(_entry(keys_path, destination, "keys"))

    say("data directory")
    for path in _data_files(settings, destination):
        relative = f"{DATA_FOLDER}/{path.relative_to(data_dir).as_posix()}"
        try:
            safe_path(relative, role="data")
        except BackupInvalidError:
            raise InvalidInputError(
                f"The data directory holds {path}, whose name a backup cannot carry (plain "
                "letters, digits and ._+=@- only); rename or remove it, then back up again.",
                message_zh=f"数据目录中的 {path} 的名称无法放入备份（仅限字母、数字与 ._+=@-）；"
                "请重命名或删除后再备份。",
            ) from None
        target = destination / relative
        try:
            with path.open("rb") as source:
                entries.append(_copy(source, target, destination, "data"))
        except FileNotFoundError:
            continue  # removed while we walked (a finished upload's staging, a swept leftover)

    say("object store" + (" (with objects)" if with_objects else " (manifest only)"))
    store = keys_and_store.object_store(settings)
    objects: list[StoredObject] = []
    for key in list(store.keys()):
        try:
            with store.open(key) as source:
                if with_objects:
                    entry = _copy(source, destination / OBJECTS_FOLDER / key, destination, "object")
                    entries.append(entry)
                    objects.append(StoredObject(key, entry.size, entry.sha256))
                else:
                    size, digest = _digest(source)
                    objects.append(StoredObject(key, size, digest))
        except NotFoundError:
            continue  # an ingest that did not commit removed its object

    manifest = Manifest(
        created=clock.now().isoformat(timespec="seconds"),
        database_kind=db.kind,
        database_schema=db.schema,
        kdf=kdf,
        entries=entries,
        objects=objects,
        with_objects=with_objects,
    )
    say("manifest")
    _write_manifest(destination, manifest.sign(keys.manifest_key))
    with write_transaction(factory) as session:
        record_event(
            session,
            tag=EventTag.BACKUP_MADE,
            actor=actor,
            subject="node",
            details={
                "destination": str(destination),
                "files": len(entries),
                "objects": len(objects),
                "with_objects": with_objects,
            },
        )
    return BackupSummary(
        destination=destination,
        files=len(entries),
        objects=len(objects),
        bytes=sum(e.size for e in entries),
        seconds=time.monotonic() - started,
    )


def restore(
    settings: Settings,
    source: Path,
    *,
    actor: str,
    passphrase: bytes,
    progress: Progress | None = None,
) -> RestoreSummary:
    """Restore the backup at `source` into the data directory and database of `settings`,
    both of which must be empty; every checksum is checked before anything is written."""
    started = time.monotonic()
    say = progress or (lambda _: None)
    source = source.expanduser().resolve()
    data_dir = settings.data_dir
    db = database.target(settings.effective_database_url)
    if data_dir.exists() and (not data_dir.is_dir() or any(data_dir.iterdir())):
        raise RestoreTargetNotEmptyError(
            f"The data directory {data_dir} is not empty: restore writes only into an empty one. "
            "Point GENECOMMONS_DATA_DIR at a new directory, or empty this one, and retry.",
            message_zh=f"数据目录 {data_dir} 不为空：恢复只写入空目录。请将 GENECOMMONS_DATA_DIR "
            "指向新目录或清空该目录后重试。",
        )
    if not database.is_empty(db):
        raise RestoreTargetNotEmptyError(
            f"The database {db.url.split('@')[-1]} already holds tables: restore writes only "
            "into an empty one. Point GENECOMMONS_DATABASE_URL at an empty database (or schema) "
            "and retry.",
            message_zh=f"数据库 {db.url.split('@')[-1]} 中已有数据表：恢复只写入空数据库。"
            "请将 GENECOMMONS_DATABASE_URL 指向空数据库（或模式）后重试。",
        )

    say("manifest and checksums")
    document, manifest = read_manifest(source)
    for entry in manifest.entries:
        _check_entry(source, entry)
    keys = bundle.derive(bundle.check_passphrase(passphrase), manifest.kdf)
    files, secrets = bundle.open_bundle((source / KEYS_NAME).read_bytes(), keys)
    check_mac(document, keys.manifest_key)
    if db.kind != manifest.database_kind:
        raise InvalidInputError(
            f"The backup holds a {manifest.database_kind} database, but GENECOMMONS_DATABASE_URL "
            f"names a {db.kind} one; restore into a database of the same kind.",
            message_zh=f"备份中是 {manifest.database_kind} 数据库，而 GENECOMMONS_DATABASE_URL "
            f"指向 {db.kind} 数据库；请恢复到同类数据库。",
        )
    store = keys_and_store.object_store(settings)
    if not manifest.with_objects:
        _check_store_holds(store, manifest.objects, settings)

    say("database, keys and data directory")
    restored = _stage_data_dir(settings, source, manifest, files, db)
    _restore_secrets(settings, secrets)

    objects = 0
    if manifest.with_objects:
        say("objects")
        for stored, entry in zip(manifest.objects, _object_entries(manifest), strict=True):
            if store.exists(stored.key):
                _same_object(store, stored)  # objects are written once: a shared store has it
                continue
            with (source / entry.path).open("rb") as handle:
                store.put(stored.key, iter(partial(handle.read, CHUNK), b""))
            objects += 1

    key_id = node_keys(settings).key_id
    keys_and_store.archive_keys(settings)  # unlocks: the archive's data can be read
    if db.sqlite_path is not None:  # an earlier release's backup holds it in plaintext
        encrypt_in_place(db.sqlite_path, node_database_key(settings))
    engine = node_engine(settings)
    try:
        with write_transaction(make_session_factory(engine)) as session:
            record_event(
                session,
                tag=EventTag.BACKUP_RESTORED,
                actor=actor,
                subject="node",
                details={"source": str(source), "created": manifest.created, "key_id": key_id},
            )
    finally:
        engine.dispose()
    return RestoreSummary(
        data_dir=data_dir,
        files=restored,
        objects=objects,
        key_id=key_id,
        seconds=time.monotonic() - started,
    )


def read_manifest(source: Path) -> tuple[dict[str, object], Manifest]:
    """The parsed and checked manifest of the backup at `source` (its MAC not yet checked)."""
    path = source / MANIFEST_NAME
    try:
        text = path.read_bytes()
    except FileNotFoundError as error:
        raise BackupInvalidError(
            f"{source} has no {MANIFEST_NAME}: it is not a complete backup (a backup writes its "
            "manifest last; one interrupted leaves none). Restore a complete backup.",
            message_zh=f"{source} 中没有 {MANIFEST_NAME}：这不是完整的备份（备份最后写入清单，"
            "中断的备份没有清单）。请恢复完整的备份。",
        ) from error
    except OSError as error:
        raise BackupInvalidError(
            f"{path} cannot be read ({error.strerror}).",
            message_zh=f"无法读取 {path}（{error.strerror}）。",
        ) from error
    try:
        document = json.loads(text)
    except ValueError as error:
        raise BackupInvalidError(
            f"{path} is not JSON ({error}): the backup is damaged.",
            message_zh=f"{path} 不是 JSON（{error}）：备份已损坏。",
        ) from error
    return document, parse(document)


def _check_entry(source: Path, entry: Entry) -> None:
    path = source / entry.path
    if path.is_symlink() or not path.resolve().is_relative_to(source):
        raise _damaged(entry, "it is a link out of the backup")
    try:
        with path.open("rb") as handle:
            size, digest = _digest(handle)
    except FileNotFoundError:
        raise _damaged(entry, "it is missing") from None
    if size != entry.size or digest != entry.sha256:
        raise _damaged(entry, "its size or SHA-256 differs from the manifest")


def _damaged(entry: Entry, why: str) -> BackupInvalidError:
    return BackupInvalidError(
        f"This backup cannot be restored: {entry.path} ({entry.role}) is damaged: {why}. "
        "Restore another backup.",
        message_zh=f"无法恢复此备份：{entry.path}（{entry.role}）已损坏。请恢复其他备份。",
    )


def _check_store_holds(store: ObjectStore, objects: list[StoredObject], settings: Settings) -> None:
    missing = []
    for stored in objects:
        try:
            if store.size(stored.key) != stored.size:
                missing.append(stored.key)
        except NotFoundError:
            missing.append(stored.key)
    if missing:
        raise BackupInvalidError(
            f"This backup holds no objects (made without --with-objects) and the object store "
            f"{settings.effective_archive_url} lacks {len(missing)} of its "
            f"{len(objects)} objects (first: {missing[0]}). Restore a backup made with "
            "--with-objects, or point GENECOMMONS_ARCHIVE_URL at the store that holds them.",
            message_zh=f"此备份不含对象（未使用 --with-objects），且对象存储 "
            f"{settings.effective_archive_url} 缺少其 {len(objects)} 个对象中的 {len(missing)} 个"
            f"（首个：{missing[0]}）。请恢复使用 --with-objects 制作的备份，或将 "
            "GENECOMMONS_ARCHIVE_URL 指向保存这些对象的存储。",
        )


def _same_object(store: ObjectStore, stored: StoredObject) -> None:
    with store.open(stored.key) as handle:
        size, digest = _digest(handle)
    if (size, digest) != (stored.size, stored.sha256):
        raise BackupInvalidError(
            "The object store already holds another object under the key "
            f"{stored.key} than the backup's; restore into an empty object store.",
            message_zh=f"对象存储中键 {stored.key} 下已有与备份不同的对象；请恢复到空的对象存储。",
        )


def _object_entries(manifest: Manifest) -> list[Entry]:
    by_path = {e.path: e for e in manifest.entries if e.role == "object"}
    entries = []
    for stored in manifest.objects:
        entry = by_path.get(f"{OBJECTS_FOLDER}/{stored.key}")
        if entry is None or (entry.size, entry.sha256) != (stored.size, stored.sha256):
            raise BackupInvalidError(
                f"This backup cannot be restored: the object {stored.key} is listed but its "
                "file is not the one in the manifest.",
                message_zh=f"无法恢复此备份：对象 {stored.key} 在清单中，但其文件与清单不符。",
            )
        entries.append(entry)
    return entries


def _stage_data_dir(
    settings: Settings,
    source: Path,
    manifest: Manifest,
    files: dict[str, bytes],
    db: database.Target,
) -> int:
    """Build the data directory aside (keys, data files, and the database when it is a SQLite
    file in it), then rename it into place; the database elsewhere is restored first."""
    data_dir = settings.data_dir
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = data_dir.with_name(f".{data_dir.name}.restoring-{os.urandom(4).hex()}")
    private_directory(staging)
    copy = source / manifest.entry("database").path
    count = 0
    try:
        inside = db.sqlite_path is not None and db.sqlite_path.resolve().is_relative_to(data_dir)
        if inside:
            assert db.sqlite_path is not None
            staged = replace(
                db, sqlite_path=staging / db.sqlite_path.resolve().relative_to(data_dir)
            )
            database.restore(staged, copy, schema=manifest.database_schema)
        else:
            database.restore(db, copy, schema=manifest.database_schema)
        key_dir = staging / settings.key_dir.relative_to(data_dir)
        for relative, content in files.items():
            parts = Path(relative).parts
            if Path(relative).is_absolute() or ".." in parts or not parts:
                raise BackupInvalidError(
                    f"This backup cannot be restored: its key bundle names the path {relative!r}.",
                    message_zh=f"无法恢复此备份：其密钥包中含路径 {relative!r}。",
                )
            create_secret_file(key_dir / relative, content)
            count += 1
        for entry in manifest.entries:
            if entry.role != "data":
                continue
            target = staging / entry.path[len(DATA_FOLDER) + 1 :]
            private_directory(target.parent)
            shutil.copyfile(source / entry.path, target)
            target.chmod(0o600)
            count += 1
        if data_dir.exists():
            data_dir.rmdir()  # empty, checked above
        os.replace(staging, data_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return count


def _restore_secrets(settings: Settings, secrets: dict[str, str]) -> None:
    """The passphrases the backed-up node was configured with, where this environment expects
    them and has none; checked against the restored keys in any case."""
    if settings.node_key_passphrase is None and NODE_PASSPHRASE in secrets:
        path = settings.node_key_passphrase_file or settings.key_dir / "node-passphrase"
        if not path.exists():
            create_secret_file(path, secrets[NODE_PASSPHRASE].encode("utf-8"))
    try:
        keys = node_keys(settings)
    except ConfigurationError as error:
        raise ConfigurationError(
            "The restored node key does not open with this environment's passphrase: set "
            "GENECOMMONS_NODE_KEY_PASSPHRASE (or _FILE) to the passphrase of the backed-up node, "
            f"or unset it to use the one in the backup. ({error.message})",
            message_zh="恢复的节点密钥无法用本环境的口令打开：请将 GENECOMMONS_NODE_KEY_PASSPHRASE"
            "（或 _FILE）设为备份节点的口令，或取消设置以使用备份中的口令。",
        ) from error
    if settings.archive_key_passphrase is None and ARCHIVE_PASSPHRASE in secrets:
        value = secrets[ARCHIVE_PASSPHRASE].encode("utf-8")
        configured = settings.archive_key_passphrase_file
        if configured is not None and not configured.exists():
            create_secret_file(configured, value)  # the operator's file: as they keep it
        default = settings.archive_key_dir / "passphrase"
        if configured is None and not default.exists():
            create_sealed_file(
                default,
                keys,
                purpose=keys_and_store.ARCHIVE_PASSPHRASE_PURPOSE,
                make=lambda: value,
            )


def _files_under(folder: Path, *, hidden: bool = True) -> Iterator[Path]:
    if not folder.exists():
        return
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink() and (hidden or not path.name.startswith(".")):
            yield path


def _data_files(settings: Settings, destination: Path) -> Iterator[Path]:
    """Files of the data directory not otherwise in the backup: not the keys (the bundle), not
    the database, not the object store, not staged uploads, not files being written aside."""
    skipped = [settings.key_dir, settings.staging_dir, destination]
    store = keys_and_store.object_store(settings)
    if isinstance(store, LocalObjectStore):
        skipped.append(Path(settings.effective_archive_url).resolve())
    db = database.target(settings.effective_database_url)
    db_files: set[Path] = set()
    if db.sqlite_path is not None:
        db_files = {
            db.sqlite_path.with_name(db.sqlite_path.name + suffix).resolve()
            for suffix in ("", "-wal", "-shm", "-journal")
        }
    for path in _files_under(settings.data_dir):
        resolved = path.resolve()
        if resolved in db_files or any(s == resolved or s in resolved.parents for s in skipped):
            continue
        yield path


def _digest(handle: BinaryIO) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    while chunk := handle.read(CHUNK):
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest()


def _entry(path: Path, root: Path, role: Role) -> Entry:
    with path.open("rb") as handle:
        size, digest = _digest(handle)
    return Entry(path.relative_to(root).as_posix(), role, size, digest)


def _copy(source: BinaryIO, target: Path, root: Path, role: Role) -> Entry:
    """Copy `source` to `target`, hashing what was written (the file may change under us: the
    checksum is of the copy)."""
    private_directory(target.parent)
    digest = hashlib.sha256()
    size = 0
    with _private_file(target) as out:
        while chunk := source.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    return Entry(target.relative_to(root).as_posix(), role, size, digest.hexdigest())


def _private_file(path: Path) -> BinaryIO:
    """`path` opened for writing, readable by the node's user only (whatever the umask)."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb")


def _write_file(path: Path, data: bytes) -> None:
    with _private_file(path) as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())


def _write_manifest(destination: Path, document: bytes) -> None:
    """The manifest, written aside, fsynced and renamed into place, then the directory fsynced:
    whoever sees MANIFEST.json sees all of it and everything it lists."""
    aside = destination / f".{MANIFEST_NAME}.part"
    _write_file(aside, document)
    os.replace(aside, destination / MANIFEST_NAME)
    folder = os.open(destination, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
