"""Crypt4GH key pairs: the archive's own (its secret key locked by a passphrase) and the public
keys of recipients, in the key file format of `crypt4gh-keygen`."""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

from crypt4gh import sodium
from crypt4gh.keys import c4gh
from crypt4gh.keys.kdf import derive_key
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from genecommons.errors import ConfigurationError, ConflictError, InvalidInputError
from genecommons.secrets import write_new_secret_file

PUBLIC_BEGIN = "-----BEGIN CRYPT4GH PUBLIC KEY-----"
PUBLIC_END = "-----END CRYPT4GH PUBLIC KEY-----"
SECRET_BEGIN = b"-----BEGIN CRYPT4GH PRIVATE KEY-----"
SECRET_END = b"-----END CRYPT4GH PRIVATE KEY-----"


@dataclass(frozen=True, slots=True)
class KeyPair:
    """An X25519 key pair (32-byte secret and public keys)."""

    secret: bytes
    public: bytes

    def __repr__(self) -> str:
        return f"KeyPair(public={self.public.hex()[:16]}…)"  # never print the secret


def generate_key_pair() -> KeyPair:
    """A new random key pair."""
    secret = os.urandom(32)
    return KeyPair(secret=secret, public=bytes(sodium.derive_pk(secret)))


def format_public_key(public: bytes) -> str:
    """The public key as a crypt4gh-keygen public key file."""
    return f"{PUBLIC_BEGIN}\n{base64.b64encode(public).decode()}\n{PUBLIC_END}\n"


def parse_public_key(text: str | bytes) -> bytes:
    """The 32-byte key of a crypt4gh public key file (or of its base64 line alone)."""
    if isinstance(text, bytes):
        text = text.decode("ascii", "replace")
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if len(lines) == 3 and lines[0] == PUBLIC_BEGIN and lines[2] == PUBLIC_END:
        lines = [lines[1]]
    key = b""
    if len(lines) == 1:
        try:
            key = base64.b64decode(lines[0], validate=True)
        except (binascii.Error, ValueError):
            key = b""
    if len(key) != 32:
        raise InvalidInputError(
            "Not a Crypt4GH public key: give the public key file that `crypt4gh-keygen` writes "
            f"({PUBLIC_BEGIN}, one base64 line of 32 bytes, {PUBLIC_END}).",
            message_zh="不是 Crypt4GH 公钥：请提供 crypt4gh-keygen 生成的公钥文件。",
        )
    return key


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Write a file that must not exist yet, atomically, with `mode`."""
    if not write_new_secret_file(path, data, mode=mode):
        raise ConflictError(
            f"{path} exists already; keys are never overwritten.",
            message_zh=f"{path} 已存在；密钥不会被覆盖。",
        )


def write_key_pair(
    *, secret_path: Path, public_path: Path, pair: KeyPair, passphrase: str, comment: str = ""
) -> None:
    """Write the key pair as crypt4gh-keygen does, the secret key locked by `passphrase`."""
    if not passphrase:
        raise ConfigurationError(
            "A secret key is never written without a passphrase.",
            message_zh="私钥必须有口令保护。",
        )
    encoded = c4gh.encode_private_key(pair.secret, passphrase.encode(), comment.encode())
    secret = SECRET_BEGIN + b"\n" + base64.b64encode(encoded) + b"\n" + SECRET_END + b"\n"
    _write_new(secret_path, secret, 0o600)
    _write_new(public_path, format_public_key(pair.public).encode(), 0o644)


def load_secret_key(path: Path, *, passphrase: str) -> KeyPair:
    """The key pair whose secret key is in `path`, unlocked with `passphrase`."""
    try:
        lines = path.read_bytes().strip().splitlines()
    except OSError as error:
        raise ConfigurationError(
            f"The archive's secret key {path} cannot be read ({error.strerror}); run "
            "`genecommons init` to create it.",
            message_zh=f"无法读取归档私钥 {path}；请运行 genecommons init 创建。",
        ) from error
    try:
        if len(lines) != 3 or lines[0] != SECRET_BEGIN or lines[2] != SECRET_END:
            raise ValueError("not a Crypt4GH private key file")
        stream = io.BytesIO(base64.b64decode(lines[1], validate=True))
        if stream.read(len(c4gh.MAGIC_WORD)) != c4gh.MAGIC_WORD:
            raise ValueError("not a Crypt4GH private key")
        secret = _unlock(stream, passphrase.encode())
    except Exception as error:  # a wrong passphrase and a damaged file both end here
        raise ConfigurationError(
            f"The archive's secret key {path} cannot be unlocked: the passphrase is wrong or "
            "the file is damaged.",
            message_zh=f"无法解锁归档私钥 {path}：口令错误或文件已损坏。",
        ) from error
    if len(secret) != 32:
        raise ConfigurationError(
            f"{path} does not hold a 32-byte key.", message_zh=f"{path} 中不是 32 字节的密钥。"
        )
    return KeyPair(secret=secret, public=bytes(sodium.derive_pk(secret)))


def _unlock(stream: io.BytesIO, passphrase: bytes) -> bytes:
    """The key material of a c4gh-v1 private key (crypt4gh's own parser exits the process on a
    wrong passphrase, so its steps are taken here with its own decoding functions)."""
    kdf_name = c4gh.decode_string(stream)
    if kdf_name == b"none":
        raise ValueError("the key is not protected by a passphrase")
    options = c4gh.decode_string(stream)
    rounds, salt = int.from_bytes(options[:4], "big"), options[4:]
    if c4gh.decode_string(stream) != b"chacha20_poly1305":
        raise ValueError("unsupported cipher")
    sealed = c4gh.decode_string(stream)
    derived = derive_key(kdf_name, passphrase, salt, rounds)
    return bytes(ChaCha20Poly1305(derived).decrypt(sealed[:12], sealed[12:], None))


def ensure_archive_keys(directory: Path, *, passphrase: str) -> KeyPair:
    """The archive's key pair in `directory`, created there when it has none."""
    secret_path, public_path = directory / "archive.sec", directory / "archive.pub"
    if not secret_path.exists():
        with contextlib.suppress(ConflictError):  # another process made it first: that one
            write_key_pair(
                secret_path=secret_path,
                public_path=public_path,
                pair=generate_key_pair(),
                passphrase=passphrase,
                comment="GeneCommons archive",
            )
    pair = load_secret_key(secret_path, passphrase=passphrase)
    if not public_path.exists():  # the process that made the secret key stopped before it
        write_new_secret_file(public_path, format_public_key(pair.public).encode(), mode=0o644)
    return pair
