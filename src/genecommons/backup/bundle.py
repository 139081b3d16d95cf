"""The key bundle of a backup: the node's key files and secrets, encrypted with a passphrase.

The bundle is a Crypt4GH file made by the `crypt4gh` library. Crypt4GH encrypts to an X25519
key, so the key is derived from the passphrase the way `crypt4gh` protects its own private key
files: scrypt over the passphrase and a random salt (kept in the manifest), here with HKDF
splitting the result into the X25519 secret the bundle is encrypted to and the key that
authenticates the manifest. Without the passphrase neither the bundle nor a forged manifest
can be made or read.
"""

from __future__ import annotations

import base64
import io
import json
import os
from dataclasses import dataclass
from typing import Any

import crypt4gh.lib
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from genecommons.errors import BackupInvalidError, BackupPassphraseError

BUNDLE_FORMAT = "genecommons-key-bundle/1"
# scrypt's cost: 2**17 needs 128 MiB and about a second, once per backup or restore
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**17, 8, 1
MIN_PASSPHRASE = 12


@dataclass(frozen=True, slots=True)
class BackupKeys:
    """The keys one passphrase and salt give: the bundle's X25519 secret and the manifest's
    authentication key."""

    bundle_secret: bytes
    manifest_key: bytes

    @property
    def bundle_public(self) -> bytes:
        """The X25519 public key the bundle is encrypted to."""
        return (
            X25519PrivateKey.from_private_bytes(self.bundle_secret).public_key().public_bytes_raw()
        )


def new_kdf() -> dict[str, Any]:
    """The parameters of a new backup's key derivation (a fresh salt)."""
    return {
        "name": "scrypt",
        "salt": base64.b64encode(os.urandom(16)).decode(),
        "n": SCRYPT_N,
        "r": SCRYPT_R,
        "p": SCRYPT_P,
    }


def derive(passphrase: bytes, kdf: dict[str, Any]) -> BackupKeys:
    """The keys of `passphrase` under the manifest's `kdf` parameters."""
    try:
        if kdf.get("name") != "scrypt":
            raise ValueError("kdf")
        n, r, p = int(kdf["n"]), int(kdf["r"]), int(kdf["p"])
        if not (2**14 <= n <= 2**20 and 1 <= r <= 16 and 1 <= p <= 4):  # no hostile cost
            raise ValueError("kdf cost")
        salt = base64.b64decode(kdf["salt"], validate=True)
    except (KeyError, TypeError, ValueError) as error:
        raise BackupInvalidError(
            f"This backup cannot be restored: its key derivation parameters are invalid ({error}).",
            message_zh=f"无法恢复此备份：其密钥派生参数无效（{error}）。",
        ) from error
    seed = Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase)

    def part(label: bytes) -> bytes:
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=label).derive(seed)

    return BackupKeys(part(b"genecommons backup bundle"), part(b"genecommons backup manifest"))


def check_passphrase(passphrase: bytes) -> bytes:
    """`passphrase` (surrounding white space removed) if it is long enough to protect keys."""
    passphrase = passphrase.strip()
    if len(passphrase) < MIN_PASSPHRASE:
        raise BackupPassphraseError(
            f"The backup passphrase is shorter than {MIN_PASSPHRASE} characters; choose a longer "
            "one (a file given with --passphrase-file).",
            message_zh=f"备份口令少于 {MIN_PASSPHRASE} 个字符；请使用更长的口令"
            "（通过 --passphrase-file 指定的文件）。",
        )
    return passphrase


def seal(files: dict[str, bytes], secrets: dict[str, str], keys: BackupKeys) -> bytes:
    """The bundle of `files` (paths relative to the key directory) and named `secrets`,
    encrypted with Crypt4GH to the passphrase's key."""
    document = {
        "format": BUNDLE_FORMAT,
        "files": {path: base64.b64encode(data).decode() for path, data in sorted(files.items())},
        "secrets": secrets,
    }
    out = io.BytesIO()
    crypt4gh.lib.encrypt(
        [(0, keys.bundle_secret, keys.bundle_public)],
        io.BytesIO(json.dumps(document).encode()),
        out,
    )
    return out.getvalue()


def open_bundle(sealed: bytes, keys: BackupKeys) -> tuple[dict[str, bytes], dict[str, str]]:
    """The files and secrets of a bundle; BackupPassphraseError when the passphrase is not the
    one it was made with."""
    out = io.BytesIO()
    try:
        crypt4gh.lib.decrypt([(0, keys.bundle_secret, None)], io.BytesIO(sealed), out)
    except ValueError as error:
        raise BackupPassphraseError(
            "The passphrase does not open this backup's key bundle: give the passphrase the "
            "backup was made with (--passphrase-file F).",
            message_zh="该口令无法打开此备份的密钥包：请提供制作备份时使用的口令（--passphrase-file F）。",
        ) from error
    try:
        document = json.loads(out.getvalue())
        if document.get("format") != BUNDLE_FORMAT:
            raise ValueError("format")
        files = {str(p): base64.b64decode(d, validate=True) for p, d in document["files"].items()}
        secrets = {str(k): str(v) for k, v in document["secrets"].items()}
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise BackupInvalidError(
            "This backup cannot be restored: its key bundle opens but is malformed.",
            message_zh="无法恢复此备份：密钥包可以打开，但格式错误。",
        ) from error
    return files, secrets
