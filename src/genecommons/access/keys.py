"""Signing keys for the visas this node issues, and their publication as a JWKS.

A `KeyStore` holds one current RSA-2048 signing key and the public halves of earlier keys.
`rotate` makes a new current key; earlier public keys stay in `jwks()` (served at
/.well-known/jwks.json) so visas they signed keep verifying, until `remove` retires them.
Every key is named by its RFC 7638 JWK thumbprint (`kid`).

Two implementations: `FileKeyStore` (a directory; the private key PEM is written 0600 and
encrypted with a passphrase, which the node derives from its key store unless one is configured)
and `InMemoryKeyStore` (tests). Both pass the same contract tests.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import os
import re
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from genecommons.errors import ConfigurationError, InvalidInputError
from genecommons.secrets import pem_is_encrypted, replace_secret_file, write_new_secret_file

logger = logging.getLogger(__name__)

SIGNING_ALGORITHM = "RS256"
RSA_KEY_SIZE = 2048
_KID_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")
_CURRENT = "current"
_PRIVATE_SUFFIX = ".key.pem"
_PUBLIC_SUFFIX = ".pub.pem"


def b64url(data: bytes) -> str:
    """Base64url without padding (RFC 7515 section 2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _int_b64url(number: int) -> str:
    """An unsigned big-endian integer as base64url, as JWK "n"/"e" members are (RFC 7518 6.3.1)."""
    return b64url(number.to_bytes((number.bit_length() + 7) // 8 or 1, "big"))


def public_jwk(public_key: rsa.RSAPublicKey) -> dict[str, str]:
    """The public JWK of an RSA key, named by its thumbprint, marked for RS256 signatures."""
    numbers = public_key.public_numbers()
    members = {"kty": "RSA", "e": _int_b64url(numbers.e), "n": _int_b64url(numbers.n)}
    return {
        **members,
        "kid": jwk_thumbprint(members),
        "use": "sig",
        "alg": SIGNING_ALGORITHM,
    }


def jwk_thumbprint(jwk: dict[str, Any]) -> str:
    """The RFC 7638 SHA-256 thumbprint of a public JWK (RSA, EC or OKP), base64url."""
    required = {
        "RSA": ("e", "kty", "n"),
        "EC": ("crv", "kty", "x", "y"),
        "OKP": ("crv", "kty", "x"),
    }
    kty = jwk.get("kty")
    if kty not in required:
        raise InvalidInputError(
            f"Cannot take the thumbprint of a JWK with kty {kty!r}; use RSA, EC or OKP.",
            message_zh=f"无法计算 kty 为 {kty!r} 的 JWK 指纹；请使用 RSA、EC 或 OKP 密钥。",
        )
    canonical = {name: jwk[name] for name in required[kty]}
    encoded = json.dumps(canonical, separators=(",", ":"), sort_keys=True).encode("utf-8")
    return b64url(hashlib.sha256(encoded).digest())


class Signer(Protocol):
    """Signs with one private key without giving the key away (a file, memory, or an HSM)."""

    @property
    def kid(self) -> str:
        """The key's id as published in the JWKS."""
        ...

    @property
    def algorithm(self) -> str:
        """The JWS `alg` this key signs with."""
        ...

    def sign(self, data: bytes) -> bytes:
        """The JWS signature of `data`."""
        ...


class KeyStore(Protocol):
    """Where this node's visa-signing keys live (see the module docstring)."""

    def signer(self) -> Signer:
        """The current signing key (a node's is made by `genecommons init`)."""
        ...

    def rotate(self) -> str:
        """Make a new current key and return its kid; earlier public keys stay published."""
        ...

    def remove(self, kid: str) -> None:
        """Stop publishing the retired key `kid`; visas it signed stop verifying."""
        ...

    def kids(self) -> list[str]:
        """The kids of all published keys, the current one first."""
        ...

    def jwks(self) -> dict[str, Any]:
        """The JSON Web Key Set of the published public keys, for /.well-known/jwks.json."""
        ...


@dataclass(frozen=True, slots=True)
class RsaSigner:
    """An RS256 signer over an RSA private key held in memory."""

    kid: str
    private_key: rsa.RSAPrivateKey = field(repr=False)
    algorithm: str = SIGNING_ALGORITHM

    def sign(self, data: bytes) -> bytes:
        """RSASSA-PKCS1-v1_5 with SHA-256 over `data` (JWS RS256)."""
        return self.private_key.sign(data, padding.PKCS1v15(), hashes.SHA256())


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_SIZE)


def _kid_of(private_key: rsa.RSAPrivateKey) -> str:
    return public_jwk(private_key.public_key())["kid"]


def _jwks(public_keys: list[rsa.RSAPublicKey]) -> dict[str, Any]:
    return {"keys": [public_jwk(key) for key in public_keys]}


def _unknown_kid(kid: str) -> InvalidInputError:
    return InvalidInputError(
        f"No published signing key has kid {kid!r}; list them with the JWKS.",
        message_zh=f"没有 kid 为 {kid!r} 的已发布签名密钥；请查看 JWKS 中的密钥列表。",
    )


def _current_kid_error(kid: str) -> InvalidInputError:
    return InvalidInputError(
        f"Key {kid} is the current signing key; rotate to a new key before removing it.",
        message_zh=f"密钥 {kid} 是当前签名密钥；请先轮换到新密钥再移除它。",
    )


class InMemoryKeyStore:
    """A key store in memory (tests, throw-away nodes): nothing is written anywhere."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._current: RsaSigner | None = None
        self._public: dict[str, rsa.RSAPublicKey] = {}

    def signer(self) -> Signer:
        """The current signing key, created on first use."""
        with self._lock:
            if self._current is None:
                self._install(_new_key())
            assert self._current is not None
            return self._current

    def rotate(self) -> str:
        """Make a new current key and return its kid; earlier public keys stay published."""
        with self._lock:
            return self._install(_new_key())

    def remove(self, kid: str) -> None:
        """Stop publishing the retired key `kid`."""
        with self._lock:
            if self._current is not None and kid == self._current.kid:
                raise _current_kid_error(kid)
            if kid not in self._public:
                raise _unknown_kid(kid)
            del self._public[kid]

    def kids(self) -> list[str]:
        """The kids of all published keys, the current one first."""
        with self._lock:
            return self._ordered_kids()

    def jwks(self) -> dict[str, Any]:
        """The JSON Web Key Set of the published public keys."""
        with self._lock:
            if self._current is None:
                self._install(_new_key())
            return _jwks([self._public[kid] for kid in self._ordered_kids()])

    def _ordered_kids(self) -> list[str]:
        current = [self._current.kid] if self._current is not None else []
        return current + sorted(kid for kid in self._public if kid not in current)

    def _install(self, private_key: rsa.RSAPrivateKey) -> str:
        kid = _kid_of(private_key)
        self._current = RsaSigner(kid=kid, private_key=private_key)
        self._public[kid] = private_key.public_key()
        return kid


class FileKeyStore:
    """A key store in a directory, shared by every worker of a node.

    Layout: `<kid>.key.pem` (the current private key, PKCS#8, mode 0600, encrypted when a
    passphrase is given), `<kid>.pub.pem` (one per published public key) and `current` (the kid
    of the current key). The directory is created with mode 0700. A private key file readable by
    group or others is refused, as ssh does. On rotation the old private key is deleted (it must
    never sign again); its public key stays published until `remove`.
    """

    def __init__(
        self,
        directory: Path | str,
        *,
        passphrase: bytes | Callable[[], bytes] | None = None,
    ) -> None:
        """`passphrase` encrypts the private keys; a callable is asked only when a private key
        is written or read (so that a store that only publishes its JWKS needs none). A key
        written unencrypted (by an earlier version, or with no passphrase) is still read."""
        self.directory = Path(directory)
        self._passphrase_source = passphrase
        self._lock = threading.Lock()
        self._cache: RsaSigner | None = None

    def _passphrase(self) -> bytes | None:
        source = self._passphrase_source
        return source() if callable(source) else source

    def encrypt_plaintext_keys(self) -> int:
        """Encrypt, under the store's passphrase, the private keys written unencrypted (the
        same keys: visas they signed still verify); how many. Safe to run again."""
        passphrase = self._passphrase()
        if not passphrase:
            return 0
        encrypted = 0
        with self._lock:
            if not self.directory.is_dir():
                return 0
            for name in sorted(os.listdir(self.directory)):
                kid = name.removesuffix(_PRIVATE_SUFFIX)
                if not name.endswith(_PRIVATE_SUFFIX) or not _KID_RE.match(kid):
                    continue
                path = self.directory / name
                if pem_is_encrypted(path.read_bytes()):
                    continue
                key = self._load_private(kid)
                pem = key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.BestAvailableEncryption(passphrase),
                )
                self._write_atomic(path, pem, replace=True)
                encrypted += 1
            self._cache = None
        return encrypted

    def create_first_key(self) -> str:
        """Make the first signing key unless there is one (`genecommons init` does); its kid.
        Safe to run again, and from two processes at once."""
        with self._lock:
            return self._read_current() or self._create_first()

    # -- KeyStore ---------------------------------------------------------------------------

    def signer(self) -> Signer:
        """The current signing key (ConfigurationError when `genecommons init` has not made
        it: no key is made by a read)."""
        with self._lock:
            kid = self._current_or_refuse()
            if self._cache is None or self._cache.kid != kid:
                self._cache = RsaSigner(kid=kid, private_key=self._load_private(kid))
            return self._cache

    def rotate(self) -> str:
        """Make a new current key and return its kid; earlier public keys stay published."""
        with self._lock:
            self._ensure_directory()
            old = self._read_current()
            private_key = _new_key()
            kid = self._write_pair(private_key)
            self._write_atomic(self.directory / _CURRENT, kid.encode("ascii"), replace=True)
            if old is not None and old != kid:
                with contextlib.suppress(FileNotFoundError):
                    (self.directory / f"{old}{_PRIVATE_SUFFIX}").unlink()
            self._cache = RsaSigner(kid=kid, private_key=private_key)
            logger.info("rotated visa signing key: %s -> %s", old, kid)
            return kid

    def remove(self, kid: str) -> None:
        """Stop publishing the retired key `kid`."""
        with self._lock:
            if not _KID_RE.match(kid):
                raise _unknown_kid(kid)
            if kid == self._read_current():
                raise _current_kid_error(kid)
            try:
                (self.directory / f"{kid}{_PUBLIC_SUFFIX}").unlink()
            except FileNotFoundError:
                raise _unknown_kid(kid) from None
            with contextlib.suppress(FileNotFoundError):
                (self.directory / f"{kid}{_PRIVATE_SUFFIX}").unlink()
            logger.info("removed visa signing key %s from the JWKS", kid)

    def kids(self) -> list[str]:
        """The kids of all published keys, the current one first."""
        with self._lock:
            return self._ordered_kids()

    def jwks(self) -> dict[str, Any]:
        """The JSON Web Key Set of the published public keys."""
        with self._lock:
            self._current_or_refuse()
            return _jwks([self._load_public(kid) for kid in self._ordered_kids()])

    # -- files ------------------------------------------------------------------------------

    def _ordered_kids(self) -> list[str]:
        if not self.directory.is_dir():
            return []
        current = self._read_current()
        published = sorted(
            name.removesuffix(_PUBLIC_SUFFIX)
            for name in os.listdir(self.directory)
            if name.endswith(_PUBLIC_SUFFIX) and _KID_RE.match(name.removesuffix(_PUBLIC_SUFFIX))
        )
        head = [current] if current in published else []
        return head + [kid for kid in published if kid != current]

    def _ensure_directory(self) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)

    def _read_current(self) -> str | None:
        try:
            kid = (self.directory / _CURRENT).read_text(encoding="ascii").strip()
        except FileNotFoundError:
            return None
        if not _KID_RE.match(kid):
            raise ConfigurationError(
                f"{self.directory / _CURRENT} does not hold a key id; restore it or rotate.",
                message_zh=f"{self.directory / _CURRENT} 中没有有效的密钥 ID；请恢复该文件或轮换密钥。",
            )
        return kid

    def _current_or_refuse(self) -> str:
        kid = self._read_current()
        if kid is None:
            raise ConfigurationError(
                f"This node has no visa signing key yet (none in {self.directory}): run "
                "`genecommons init`, or restore keys/ from the backup.",
                message_zh=f"本节点尚无签证签名密钥（{self.directory} 中没有）：请运行 "
                "`genecommons init` 或从备份恢复 keys/。",
            )
        return kid

    def _create_first(self) -> str:
        """Create the first key; if another worker wins the race, use its key instead."""
        self._ensure_directory()
        private_key = _new_key()
        kid = self._write_pair(private_key)
        try:
            self._write_atomic(self.directory / _CURRENT, kid.encode("ascii"), replace=False)
        except FileExistsError:
            for suffix in (_PRIVATE_SUFFIX, _PUBLIC_SUFFIX):
                with contextlib.suppress(FileNotFoundError):
                    (self.directory / f"{kid}{suffix}").unlink()
            winner = self._read_current()
            assert winner is not None
            return winner
        logger.info("created visa signing key %s in %s", kid, self.directory)
        return kid

    def _write_pair(self, private_key: rsa.RSAPrivateKey) -> str:
        kid = _kid_of(private_key)
        passphrase = self._passphrase()
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(passphrase)
            if passphrase
            else serialization.NoEncryption()
        )
        private_pem = private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )
        public_pem = private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self._write_atomic(self.directory / f"{kid}{_PRIVATE_SUFFIX}", private_pem, replace=False)
        self._write_atomic(self.directory / f"{kid}{_PUBLIC_SUFFIX}", public_pem, replace=False)
        return kid

    def _write_atomic(self, path: Path, data: bytes, *, replace: bool) -> None:
        """Write `data` to `path` (mode 0600) all at once: readers see the old file or the new.

        With `replace=False` the write fails with FileExistsError if `path` exists.
        """
        if replace:
            replace_secret_file(path, data)
        elif not write_new_secret_file(path, data):
            raise FileExistsError(path)

    def _load_private(self, kid: str) -> rsa.RSAPrivateKey:
        path = self.directory / f"{kid}{_PRIVATE_SUFFIX}"
        try:
            mode = path.stat().st_mode
            data = path.read_bytes()
        except FileNotFoundError:
            raise ConfigurationError(
                f"The private key of the current signing key {kid} is missing from "
                f"{self.directory}; restore it from backup or rotate to a new key.",
                message_zh=f"当前签名密钥 {kid} 的私钥不在 {self.directory} 中；请从备份恢复或轮换新密钥。",
            ) from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigurationError(
                f"{path} is readable by other users (mode {stat.S_IMODE(mode):o}); "
                "run `chmod 600` on it and restart.",
                message_zh=f"{path} 可被其他用户读取（权限 {stat.S_IMODE(mode):o}）；请执行 `chmod 600` 后重启。",
            )
        try:
            key = serialization.load_pem_private_key(
                data, password=self._passphrase() if pem_is_encrypted(data) else None
            )
        except (TypeError, ValueError, UnsupportedAlgorithm):
            raise ConfigurationError(
                f"Cannot read the signing key {path}: the passphrase is wrong or missing, "
                "or the file is damaged. Give the passphrase the key was written with.",
                message_zh=f"无法读取签名密钥 {path}：口令错误或缺失，或文件已损坏。请提供写入该密钥时所用的口令。",
            ) from None
        if not isinstance(key, rsa.RSAPrivateKey) or _kid_of(key) != kid:
            raise ConfigurationError(
                f"{path} does not hold the RSA key {kid}; restore it from backup or rotate.",
                message_zh=f"{path} 中不是 RSA 密钥 {kid}；请从备份恢复或轮换密钥。",
            )
        return key

    def _load_public(self, kid: str) -> rsa.RSAPublicKey:
        path = self.directory / f"{kid}{_PUBLIC_SUFFIX}"
        key = serialization.load_pem_public_key(path.read_bytes())
        if not isinstance(key, rsa.RSAPublicKey) or public_jwk(key)["kid"] != kid:
            raise ConfigurationError(
                f"{path} does not hold the RSA public key {kid}; remove it or restore it.",
                message_zh=f"{path} 中不是 RSA 公钥 {kid}；请删除或恢复该文件。",
            )
        return key
