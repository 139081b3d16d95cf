"""Signed tree heads of the audit log (Ed25519) and the log's signing key file.

What is signed is the TLS encoding of RFC 9162's TreeHeadDataV2 (section 4.10):

    struct {
        uint64 timestamp;                          // milliseconds since the Unix epoch
        uint64 tree_size;
        opaque root_hash<32..2^8-1>;               // 1-byte length, then the 32-byte root
        Extension sth_extensions<0..2^16-1>;       // always empty: 2-byte length 0
    } TreeHeadDataV2;

all integers big-endian, so a tree head of size n and root r at time t is the 51 bytes
t (8) || n (8) || 0x20 || r (32) || 0x0000. Anyone holding the log's public key can check a
served tree head with `verify_tree_head` or any RFC 9162 client that accepts Ed25519.

The key file is a PKCS#8 PEM, written with mode 0600 and encrypted when a passphrase is given.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import stat
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from genecommons.errors import ConfigurationError, InvalidInputError
from genecommons.ledger.merkle import HASH_SIZE
from genecommons.secrets import write_new_secret_file

_UINT64_MAX = 2**64 - 1
_SIGNATURE_SIZE = 64


@dataclass(frozen=True, slots=True)
class SignedTreeHead:
    """A tree head (size, root, time) and the log's Ed25519 signature over its encoding."""

    tree_size: int
    root_hash: bytes
    timestamp_ms: int
    signature: bytes

    def to_json(self) -> dict[str, Any]:
        """The tree head as the API serves it: hashes and signature in standard base64."""
        return {
            "tree_size": self.tree_size,
            "root_hash": base64.b64encode(self.root_hash).decode("ascii"),
            "timestamp": self.timestamp_ms,
            "signature": base64.b64encode(self.signature).decode("ascii"),
        }

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> SignedTreeHead:
        """Read a tree head served by `to_json`; raise `InvalidInputError` when malformed."""
        try:
            tree_size = document["tree_size"]
            timestamp_ms = document["timestamp"]
            root_hash = base64.b64decode(document["root_hash"], validate=True)
            signature = base64.b64decode(document["signature"], validate=True)
        except (KeyError, TypeError, binascii.Error) as error:
            raise InvalidInputError(
                "A signed tree head needs tree_size and timestamp (integers) and root_hash and "
                f"signature (standard base64); this one is malformed: {error!r}.",
                message_zh="签名树头须含 tree_size 与 timestamp（整数）以及 root_hash 与 signature"
                f"（标准 base64）；此树头格式有误：{error!r}。",
            ) from error
        if not all(type(value) is int for value in (tree_size, timestamp_ms)):
            raise InvalidInputError(
                "tree_size and timestamp of a signed tree head must be integers.",
                message_zh="签名树头的 tree_size 与 timestamp 须为整数。",
            )
        return cls(
            tree_size=tree_size,
            root_hash=root_hash,
            timestamp_ms=timestamp_ms,
            signature=signature,
        )


def tree_head_bytes(*, tree_size: int, root_hash: bytes, timestamp_ms: int) -> bytes:
    """The TreeHeadDataV2 encoding that is signed (see the module docstring)."""
    if not 0 <= tree_size <= _UINT64_MAX or not 0 <= timestamp_ms <= _UINT64_MAX:
        raise InvalidInputError(
            f"tree_size ({tree_size}) and timestamp_ms ({timestamp_ms}) must fit in an "
            "unsigned 64-bit integer.",
            message_zh=f"tree_size（{tree_size}）与 timestamp_ms（{timestamp_ms}）"
            "须在 64 位无符号整数范围内。",
        )
    if len(root_hash) != HASH_SIZE:
        raise InvalidInputError(
            f"A root hash is {HASH_SIZE} bytes (SHA-256); got {len(root_hash)}.",
            message_zh=f"根哈希应为 {HASH_SIZE} 字节（SHA-256）；收到 {len(root_hash)} 字节。",
        )
    return struct.pack(">QQB", timestamp_ms, tree_size, len(root_hash)) + root_hash + b"\x00\x00"


def sign_tree_head(
    *,
    tree_size: int,
    root_hash: bytes,
    timestamp_ms: int,
    private_key: Ed25519PrivateKey,
) -> SignedTreeHead:
    """Sign a tree head with the log's key."""
    message = tree_head_bytes(tree_size=tree_size, root_hash=root_hash, timestamp_ms=timestamp_ms)
    return SignedTreeHead(
        tree_size=tree_size,
        root_hash=root_hash,
        timestamp_ms=timestamp_ms,
        signature=private_key.sign(message),
    )


def verify_tree_head(sth: SignedTreeHead, public_key: Ed25519PublicKey) -> bool:
    """Whether `sth` carries a valid signature of the log whose key is `public_key`."""
    if len(sth.signature) != _SIGNATURE_SIZE:
        return False
    try:
        message = tree_head_bytes(
            tree_size=sth.tree_size, root_hash=sth.root_hash, timestamp_ms=sth.timestamp_ms
        )
        public_key.verify(sth.signature, message)
    except (InvalidInputError, InvalidSignature):
        return False
    return True


def key_id(public_key: Ed25519PublicKey) -> bytes:
    """SHA-256 of the key's DER SubjectPublicKeyInfo (the key id RFC 6962 logs publish)."""
    der = public_key.public_bytes(
        encoding=serialization.Encoding.DER,
        format=serialization.PublicFormat.SubjectPublicKeyInfo,
    )
    return hashlib.sha256(der).digest()


def public_key_pem(public_key: Ed25519PublicKey) -> str:
    """The public key as a SubjectPublicKeyInfo PEM, as `/audit/public-key` serves it."""
    return public_key.public_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PublicFormat.SubjectPublicKeyInfo,
    ).decode("ascii")


def load_public_key_pem(data: bytes) -> Ed25519PublicKey:
    """Read an Ed25519 public key from a SubjectPublicKeyInfo PEM."""
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as error:
        raise InvalidInputError(
            f"This is not a PEM public key: {error}.",
            message_zh=f"这不是 PEM 格式的公钥：{error}。",
        ) from error
    if not isinstance(key, Ed25519PublicKey):
        raise InvalidInputError(
            f"The audit log's key is Ed25519; this PEM holds a {type(key).__name__}.",
            message_zh=f"审计日志的密钥是 Ed25519；此 PEM 中是 {type(key).__name__}。",
        )
    return key


def save_private_key(
    private_key: Ed25519PrivateKey, *, path: Path, passphrase: bytes | None = None
) -> None:
    """Write the key to a new PKCS#8 PEM file with mode 0600, encrypted under `passphrase`.

    Never overwrites: the file appears complete or not at all, and an existing file raises
    `ConfigurationError` (a lost log key cannot sign the log's history again).
    """
    if passphrase is not None and not passphrase:
        raise InvalidInputError(
            "An empty passphrase would leave the audit signing key unprotected. Give a "
            "passphrase, or None to store the key unencrypted on purpose.",
            message_zh="空口令无法保护审计签名密钥。请提供口令，或明确传入 None 以不加密保存。",
        )
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase is not None
        else serialization.NoEncryption()
    )
    pem = private_key.private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=encryption,
    )
    if not write_new_secret_file(path, pem):
        raise _key_exists(path)


def load_private_key(*, path: Path, passphrase: bytes | None = None) -> Ed25519PrivateKey:
    """Read the log's Ed25519 key from a PKCS#8 PEM file.

    Raises `ConfigurationError` when the file is missing, readable by group or others,
    encrypted with another passphrase (or encrypted and none given), or not an Ed25519 key.
    """
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except OSError as error:
        raise ConfigurationError(
            f"The audit signing key {path} cannot be read: {error.strerror}. Run `genecommons "
            "init` to create it, or restore it from the backup.",
            message_zh=f"无法读取审计签名密钥 {path}：{error.strerror}。请运行 `genecommons init` "
            "创建，或从备份恢复。",
        ) from error
    if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigurationError(
            f"The audit signing key {path} is accessible to other users (mode "
            f"{stat.S_IMODE(mode):o}). Run `chmod 600 {path}`.",
            message_zh=f"审计签名密钥 {path} 可被其他用户访问（权限 {stat.S_IMODE(mode):o}）。"
            f"请执行 `chmod 600 {path}`。",
        )
    try:
        key = serialization.load_pem_private_key(data, password=passphrase or None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as error:
        raise ConfigurationError(
            f"The audit signing key {path} cannot be opened: {error}. Give the passphrase it "
            "was saved with (none if it was saved without one).",
            message_zh=f"无法打开审计签名密钥 {path}：{error}。请提供保存时所用的口令"
            "（若保存时未设口令则不要提供）。",
        ) from error
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigurationError(
            f"The audit signing key {path} is a {type(key).__name__}, not Ed25519. Create an "
            "Ed25519 key for the audit log.",
            message_zh=f"审计签名密钥 {path} 是 {type(key).__name__}，不是 Ed25519。"
            "请为审计日志创建 Ed25519 密钥。",
        )
    return key


def _key_exists(path: Path) -> ConfigurationError:
    return ConfigurationError(
        f"{path} already exists; an audit signing key is never overwritten. Move it away "
        "first if you really mean to replace the log's key.",
        message_zh=f"{path} 已存在；审计签名密钥不会被覆盖。若确要更换日志密钥，请先将其移走。",
    )
