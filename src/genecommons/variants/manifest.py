"""The manifest of a variant store: its identity and binding, and its data key sealed by the
node key store to that identity; and the keyed opening of its sites index (SQLCipher).

No web framework, no database of the catalog's: the store's own files only.
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genecommons.errors import InvalidInputError
from genecommons.secrets import NodeKeys, SealedValueError
from genecommons.variants.sealed import StoreIntegrityError
from genecommons.variants.upkeep import MANIFEST, is_legacy

FORMAT = "genecommons-variant-store/2"
KEY_PURPOSE = "variant-store"
SHARED = "+"  # joins the accessions of the datasets a shared store was built for
MAX_NAME = 200  # bytes of a store's name (its directory's, under the 255 of a file name)


def store_name(datasets: Sequence[str]) -> str:
    """The name of a store built for `datasets` (one or more accessions)."""
    return SHARED.join(sorted(set(datasets)))


def shared_groups(datasets: Sequence[str]) -> list[tuple[str, ...]]:
    """`datasets` in groups whose store names fit in MAX_NAME, in order."""
    groups: list[list[str]] = []
    for dataset in sorted(set(datasets)):
        if groups and len(store_name([*groups[-1], dataset]).encode()) <= MAX_NAME:
            groups[-1].append(dataset)
        else:
            groups.append([dataset])
    return [tuple(group) for group in groups]


class LegacyStoreError(StoreIntegrityError):
    """A variant store built before stores were encrypted and bound (plaintext genotypes).
    Rebuild it with `genecommons variants build DATASET VCF`; `variants verify --remove`
    removes it."""

    code = "store_legacy"


@dataclass(frozen=True, slots=True)
class StoreBinding:
    """What ties a store to its dataset and its source: a random store id (never reused), the
    store's name (its dataset's accession, or the accessions of the datasets it was built for,
    joined by "+": `store_name`), and the SHA-256 and name of the VCF it was built from."""

    store_id: str
    dataset: str
    source_sha256: str
    source_name: str

    @property
    def datasets(self) -> tuple[str, ...]:
        """The datasets the store was built for (the only ones it may serve)."""
        return tuple(self.dataset.split(SHARED))

    @property
    def context(self) -> str:
        """The identity the store's keys and values are sealed to."""
        return f"{self.dataset}/{self.store_id}"

    def attrs(self) -> dict[str, str]:
        """The binding as stored inside the store."""
        return {
            "store_id": self.store_id,
            "dataset": self.dataset,
            "source_sha256": self.source_sha256,
            "source_name": self.source_name,
        }

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any]) -> StoreBinding:
        """The binding stored by `attrs`."""
        return cls(
            str(attrs["store_id"]),
            str(attrs["dataset"]),
            str(attrs["source_sha256"]),
            str(attrs["source_name"]),
        )


def new_binding(*, dataset: str, source_sha256: str, source_name: str) -> StoreBinding:
    """The binding of a store about to be built for `dataset` (a store name: one accession, or
    several joined by `store_name`): a new random store id, never used before."""
    return StoreBinding(uuid.uuid4().hex, dataset, source_sha256.lower(), source_name)


def write_manifest(folder: Path, *, binding: StoreBinding, data_key: bytes, keys: NodeKeys) -> None:
    """Write the store's manifest: its identity and its data key, sealed by the node key
    store to that identity (readable by the node's user only)."""
    sealed_key = keys.seal(data_key, purpose=KEY_PURPOSE, context=binding.context)
    document = {
        "format": FORMAT,
        "store_id": binding.store_id,
        "dataset": binding.dataset,
        "node_key": keys.key_id,
        "data_key": base64.b64encode(sealed_key).decode(),
    }
    descriptor = os.open(folder / MANIFEST, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        json.dump(document, handle, indent=1)
        handle.flush()
        os.fsync(handle.fileno())


def read_manifest(path: Path, *, keys: NodeKeys) -> tuple[str, str, bytes]:
    """(store id, dataset, data key) of the store at `path`."""
    try:
        document = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        if is_legacy(path):
            raise LegacyStoreError(
                f"The variant store at {path} was built before stores were encrypted: its "
                "genotypes are plaintext. Rebuild it with `genecommons variants build "
                f"{path.name} VCF`.",
                message_zh=f"{path} 的变异库建于加密之前，其基因型为明文。请用 "
                f"`genecommons variants build {path.name} VCF` 重建。",
                details={"store": str(path)},
            ) from None
        raise InvalidInputError(
            f"No variant store at {path}.", message_zh=f"{path} 处没有变异库。"
        ) from None
    except (OSError, ValueError) as error:
        raise StoreIntegrityError(
            f"The manifest of the variant store at {path} cannot be read ({error}).",
            message_zh=f"无法读取 {path} 变异库的清单。",
            details={"store": str(path)},
        ) from error
    try:
        if document["format"] != FORMAT:
            raise ValueError(f"format {document['format']!r}")
        store_id, dataset = str(document["store_id"]), str(document["dataset"])
        sealed_key = base64.b64decode(document["data_key"], validate=True)
        data_key = keys.open(sealed_key, purpose=KEY_PURPOSE, context=f"{dataset}/{store_id}")
    except (KeyError, TypeError, ValueError, SealedValueError) as error:
        raise StoreIntegrityError(
            f"The variant store at {path} cannot be opened: its manifest is damaged, was moved "
            f"from another store, or was sealed by another node key ({error}).",
            message_zh=f"无法打开 {path} 的变异库：清单已损坏、来自其他库或由其他节点密钥加密。",
            details={"store": str(path)},
        ) from error
    return store_id, dataset, data_key


def connect_sites(path: Path, *, key: bytes, read_only: bool) -> Any:  # a DB-API connection
    """A connection to a sites index (SQLCipher) under `key`; StoreIntegrityError when the key
    does not open it."""
    import sqlcipher3.dbapi2 as sqlcipher

    uri = path.absolute().as_uri() + ("?mode=ro&immutable=1" if read_only else "")
    connection = sqlcipher.connect(uri, uri=True, check_same_thread=False)
    try:
        connection.execute("PRAGMA cipher_log_level = NONE")
        connection.execute(f"PRAGMA key = \"x'{key.hex()}'\"")
        connection.execute("PRAGMA temp_store = MEMORY")  # no plaintext spills to /tmp
        connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlcipher.DatabaseError as error:
        connection.close()
        raise StoreIntegrityError(
            f"The sites index {path} does not open under its store's key: it was altered, or "
            "belongs to another store.",
            message_zh=f"位点索引 {path} 无法用其库的密钥打开：已被篡改或属于其他库。",
            details={"store": str(path.parent)},
        ) from error
    return connection
