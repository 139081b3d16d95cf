"""Encryption at rest of a variant store's genotypes: a Zarr store that seals every value it
writes (array chunks and metadata alike) and opens every value it reads.

Each value is encrypted with ChaCha20-Poly1305 under the store's own data key, a fresh random
nonce per value, and the value's key path (with the store's identity) as associated data, so a
chunk cannot be swapped for another chunk, moved to another array or to another store without
failing its authentication. The layout of the directory (array names, chunk names) stays
readable; what they hold does not. Readers see an ordinary Zarr group: bio2zarr's layout, read
by zarr and numpy as before.

The Zarr store itself is in `sealed_store.py`: zarr is imported when a store's genotypes are
opened, not with the app (every worker imports the app before it answers).

No web framework, no database: file formats only.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from genecommons.errors import StorageError

MAGIC = b"GCZ1"  # a value sealed by a variant store, version 1
NONCE_BYTES = 12
TAG_BYTES = 16
KEY_BYTES = 32


class StoreIntegrityError(StorageError):
    """A variant store does not match what the catalog recorded of it, or one of its values
    fails its authentication (altered, moved from another store, or sealed under another key).
    Run `genecommons variants verify`, then rebuild the store with `genecommons variants build`."""

    code = "store_integrity"


def derive_key(data_key: bytes, purpose: str) -> bytes:
    """A 32-byte key for one part of a store (`purpose`), derived from the store's data key."""
    return HKDF(
        algorithm=hashes.SHA256(),
        length=KEY_BYTES,
        salt=None,
        info=b"genecommons variant store " + purpose.encode("utf-8"),
    ).derive(data_key)


class ValueSealer:
    """Seals and opens the values of one store (its key, and its identity as context)."""

    def __init__(self, key: bytes, *, context: str) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError("a store key is 32 bytes")
        self._cipher = ChaCha20Poly1305(key)
        self._context = context.encode("utf-8")
        self.context = context

    def __repr__(self) -> str:
        return f"ValueSealer(context={self.context!r})"  # never print the key

    def _aad(self, path: str) -> bytes:
        return MAGIC + len(self._context).to_bytes(4, "big") + self._context + path.encode()

    def seal(self, path: str, plaintext: bytes) -> bytes:
        """`plaintext`, the value at `path`, encrypted and authenticated."""
        nonce = os.urandom(NONCE_BYTES)
        return MAGIC + nonce + self._cipher.encrypt(nonce, plaintext, self._aad(path))

    def open(self, path: str, sealed: bytes) -> bytes:
        """The plaintext of the value `seal` made for `path`; StoreIntegrityError otherwise."""
        head = len(MAGIC) + NONCE_BYTES
        if len(sealed) < head + TAG_BYTES or not sealed.startswith(MAGIC):
            raise StoreIntegrityError(
                f"{path} in the variant store {self.context} is not sealed (plaintext, or "
                "damaged).",
                message_zh=f"变异库 {self.context} 中的 {path} 未加密（明文或已损坏）。",
                details={"store": self.context, "value": path},
            )
        try:
            return self._cipher.decrypt(sealed[len(MAGIC) : head], sealed[head:], self._aad(path))
        except InvalidTag as error:
            raise StoreIntegrityError(
                f"{path} in the variant store {self.context} fails its authentication: it was "
                "altered, moved from another store, or sealed under another key.",
                message_zh=f"变异库 {self.context} 中的 {path} 未通过认证：已被篡改、来自其他库"
                "或由其他密钥加密。",
                details={"store": self.context, "value": path},
            ) from error
