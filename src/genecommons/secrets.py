"""The node's secrets: the one place that writes secret files, and the node key store that
encrypts what the node keeps at rest.

Secret files are created once, atomically (written aside, then linked into place), readable by
the node's own user only; two processes starting together agree on one whole file.

`NodeKeys` is the node key store: a master key from which a key per purpose is derived
(HKDF-SHA256), and `seal`/`open` for small secrets (one-time-password secrets, the passphrases
of signing keys, the data keys of encrypted stores), each sealed with ChaCha20-Poly1305 and
bound to its purpose and context, so that a sealed value cannot be moved to another use.
`LocalNodeKeys` keeps the master key in `keys/node.key`, wrapped by a passphrase (scrypt and
ChaCha20-Poly1305) that production takes from `GENECOMMONS_NODE_KEY_PASSPHRASE` or
`GENECOMMONS_NODE_KEY_PASSPHRASE_FILE`; a key management service or an HSM would be another
implementation of the same protocol, chosen in `node_keys`.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from genecommons.config import Settings
from genecommons.errors import ConfigurationError

KEY_BYTES = 32
NONCE_BYTES = 12
SEALED_MAGIC = b"GCS1"  # a value sealed by the node key store, version 1
KEY_ID_BYTES = 8
# scrypt's cost for the master key's passphrase: ~0.1 s and 32 MiB once per process
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
FILE_FORMAT = "genecommons-node-key/1"


def restrict_umask() -> None:
    """Make every file and directory this process creates from now on readable by its own user
    only (umask 077)."""
    os.umask(0o077)


def private_directory(path: Path) -> Path:
    """`path` as a directory readable by the node's user only (made with its parents)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        path.chmod(0o700)
    return path


def create_secret_file(path: Path, data: bytes) -> bytes:
    """Write `data` to `path` unless a file is there already, atomically and readable by the
    node's user only; the content that stands (the existing file's, when another process made
    it first)."""
    write_new_secret_file(path, data)
    return read_secret_file(path)


def write_new_secret_file(path: Path, data: bytes, *, mode: int = 0o600) -> bool:
    """Write `data` to `path` unless a file is there already: written aside, flushed to disk,
    then linked into place (so the file appears whole or not at all, and of two writers one
    wins), with `mode` (0600 unless a public half is written); whether this write stands."""
    private_directory(path.parent)
    if path.exists():
        return False
    aside = path.with_name(f".{path.name}.{os.urandom(8).hex()}")
    descriptor = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.link(aside, path)  # fails if another process linked its own first
    except FileExistsError:
        return False  # that one stands
    finally:
        aside.unlink(missing_ok=True)
    return True


def read_secret_file(path: Path) -> bytes:
    """The content of a secret file, refused when other users may read it."""
    try:
        mode = path.stat().st_mode
        if stat.S_IMODE(mode) & 0o077:
            raise ConfigurationError(
                f"The secret file {path} can be read by other users (mode "
                f"{stat.S_IMODE(mode):o}); run `chmod 600 {path}` and retry.",
                message_zh=f"密钥文件 {path} 可被其他用户读取（权限 {stat.S_IMODE(mode):o}）；"
                f"请执行 `chmod 600 {path}` 后重试。",
            )
        return path.read_bytes()
    except OSError as error:
        raise ConfigurationError(
            f"The secret file {path} cannot be read ({error.strerror}); run `genecommons init` "
            "or restore it from the backup.",
            message_zh=f"无法读取密钥文件 {path}（{error.strerror}）；请运行 `genecommons init` "
            "或从备份恢复。",
        ) from error


SEALED_FILE_HEADER = b"GENECOMMONS SEALED SECRET 1\n"  # a secret file sealed by the node key


def create_sealed_file(
    path: Path, keys: NodeKeys, *, purpose: str, make: Callable[[], bytes]
) -> bytes:
    """Write a new secret (`make()`) to `path` sealed by the node key store for `purpose`,
    unless a file is there already (as `create_secret_file`); the secret that stands."""
    if not path.exists():
        sealed = keys.seal(make(), purpose=purpose, context=path.name)
        create_secret_file(path, SEALED_FILE_HEADER + sealed)
    return read_sealed_file(path, lambda: keys, purpose=purpose)


def read_sealed_file(path: Path, keys: Callable[[], NodeKeys], *, purpose: str) -> bytes:
    """The secret in `path`: opened by the node key store (`keys()`, asked only then) when the
    file is sealed, as is when an earlier version wrote it in plaintext."""
    content = read_secret_file(path)
    if not content.startswith(SEALED_FILE_HEADER):
        return content
    return keys().open(content[len(SEALED_FILE_HEADER) :], purpose=purpose, context=path.name)


def file_is_sealed(path: Path) -> bool:
    """Whether the secret file `path` is sealed by the node key store."""
    return read_secret_file(path).startswith(SEALED_FILE_HEADER)


def seal_file_in_place(path: Path, keys: NodeKeys, *, purpose: str) -> bool:
    """Seal the plaintext secret file an earlier version wrote at `path`, keeping its value
    (replaced atomically: readers see the old file or the new); False when it was sealed
    already or is not there."""
    if not path.exists() or file_is_sealed(path):
        return False
    plaintext = read_secret_file(path)
    sealed = SEALED_FILE_HEADER + keys.seal(plaintext, purpose=purpose, context=path.name)
    replace_secret_file(path, sealed)
    if read_sealed_file(path, lambda: keys, purpose=purpose) != plaintext:  # never lose it
        raise ConfigurationError(
            f"Sealing {path} did not keep its value; restore it from the backup.",
            message_zh=f"加密 {path} 后其值发生变化；请从备份恢复。",
        )
    return True


def replace_secret_file(path: Path, data: bytes) -> None:
    """Replace the secret file `path` by `data` atomically (written aside, 0600, then renamed
    into place)."""
    aside = path.with_name(f".{path.name}.{os.urandom(8).hex()}")
    descriptor = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(aside, path)
    finally:
        aside.unlink(missing_ok=True)


def derived_passphrase(keys: NodeKeys, *, purpose: str) -> bytes:
    """The passphrase of a key file the node encrypts for itself (a signing key's PEM),
    derived from the node key for `purpose`: 256 bits, base64url."""
    return base64.urlsafe_b64encode(keys.derive(purpose)).rstrip(b"=")


DATABASE_KEY_PURPOSE = "sqlcipher-database"


def database_key(keys: NodeKeys) -> bytes:
    """The raw 256-bit SQLCipher key of the node's SQLite database, derived from the node key
    for this purpose alone."""
    return keys.derive(DATABASE_KEY_PURPOSE)


def pem_is_encrypted(pem: bytes) -> bool:
    """Whether a PEM private key is encrypted (PKCS#8 or the traditional OpenSSL form)."""
    return b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in pem or b"Proc-Type: 4,ENCRYPTED" in pem


class SealedValueError(ConfigurationError):
    """A value sealed by the node key store cannot be opened: the node key is not the one that
    sealed it, or the value was altered. Restore the node key (`keys/node.key` and its
    passphrase) from the backup that goes with this database and data directory."""

    code = "sealed_value"


class NodeKeys(Protocol):
    """The node key store (see the module docstring)."""

    @property
    def key_id(self) -> str:
        """A short public name of the master key (hex), recorded beside what it encrypts."""
        ...

    def derive(self, purpose: str) -> bytes:
        """A 32-byte key for `purpose` (e.g. "beacon-threshold"), the same every time."""
        ...

    def seal(self, plaintext: bytes, *, purpose: str, context: str = "") -> bytes:
        """`plaintext` encrypted and authenticated for `purpose` and `context` (e.g. the id of
        the row or file it belongs to)."""
        ...

    def open(self, sealed: bytes, *, purpose: str, context: str = "") -> bytes:
        """The plaintext of a value `seal` made for the same purpose and context;
        SealedValueError when it was altered, moved or sealed by another key."""
        ...


class LocalNodeKeys:
    """A master key held in memory, unwrapped from its file by `node_keys`."""

    def __init__(self, master: bytes) -> None:
        if len(master) != KEY_BYTES:
            raise ValueError("the master key must be 32 bytes")
        self._master = master
        self._key_id = _hkdf(master, b"genecommons key id")[:KEY_ID_BYTES]

    def __repr__(self) -> str:
        return f"LocalNodeKeys(key_id={self.key_id})"  # never print the key

    @property
    def key_id(self) -> str:
        """A short public name of the master key (hex)."""
        return self._key_id.hex()

    def derive(self, purpose: str) -> bytes:
        """A 32-byte key for `purpose`."""
        return _hkdf(self._master, b"genecommons purpose " + purpose.encode("utf-8"))

    def seal(self, plaintext: bytes, *, purpose: str, context: str = "") -> bytes:
        """`plaintext` sealed for `purpose` and `context`."""
        nonce = os.urandom(NONCE_BYTES)
        cipher = ChaCha20Poly1305(self.derive(purpose))
        header = SEALED_MAGIC + self._key_id
        aad = header + _context(purpose, context)
        return header + nonce + cipher.encrypt(nonce, plaintext, aad)

    def open(self, sealed: bytes, *, purpose: str, context: str = "") -> bytes:
        """The plaintext of `sealed`."""
        header_size = len(SEALED_MAGIC) + KEY_ID_BYTES
        if len(sealed) < header_size + NONCE_BYTES + 16 or not sealed.startswith(SEALED_MAGIC):
            raise SealedValueError(
                f"A sealed {purpose} value is damaged (not a value the node key store sealed).",
                message_zh=f"已加密的 {purpose} 数据已损坏（不是节点密钥库加密的数据）。",
            )
        key_id = sealed[len(SEALED_MAGIC) : header_size]
        if key_id != self._key_id:
            raise SealedValueError(
                f"A sealed {purpose} value was sealed by node key {key_id.hex()}, not by this "
                f"node's key {self.key_id}: restore the node key that goes with this data.",
                message_zh=f"该 {purpose} 数据由节点密钥 {key_id.hex()} 加密，而非本节点密钥 "
                f"{self.key_id}：请恢复与数据配套的节点密钥。",
            )
        nonce = sealed[header_size : header_size + NONCE_BYTES]
        aad = sealed[:header_size] + _context(purpose, context)
        try:
            return ChaCha20Poly1305(self.derive(purpose)).decrypt(
                nonce, sealed[header_size + NONCE_BYTES :], aad
            )
        except InvalidTag as error:
            raise SealedValueError(
                f"A sealed {purpose} value fails its authentication: it was altered, or it "
                "belongs to another record.",
                message_zh=f"已加密的 {purpose} 数据未通过认证：已被篡改或属于其他记录。",
            ) from error


def _hkdf(master: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=info).derive(master)


def _context(purpose: str, context: str) -> bytes:
    # length-prefixed, so that ("a", "bc") and ("ab", "c") differ
    parts = [purpose.encode("utf-8"), context.encode("utf-8")]
    return b"".join(len(p).to_bytes(4, "big") + p for p in parts)


def node_key_passphrase(settings: Settings, *, create: bool = False) -> bytes:
    """The passphrase of the node key: from the environment, else from its secret file;
    outside production a file in the key directory is made on `create`."""
    if settings.node_key_passphrase is not None:
        passphrase = settings.node_key_passphrase.get_secret_value()
    else:
        path = settings.node_key_passphrase_file or settings.key_dir / "node-passphrase"
        if create and not path.exists() and settings.environment != "production":
            create_secret_file(path, base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"="))
        if not path.exists():
            raise ConfigurationError(
                "The node key passphrase is not configured: set GENECOMMONS_NODE_KEY_PASSPHRASE "
                f"or GENECOMMONS_NODE_KEY_PASSPHRASE_FILE (no file at {path}).",
                message_zh="未配置节点密钥口令：请设置 GENECOMMONS_NODE_KEY_PASSPHRASE 或 "
                f"GENECOMMONS_NODE_KEY_PASSPHRASE_FILE（{path} 不存在）。",
            )
        passphrase = read_secret_file(path).decode("utf-8", "replace").strip()
    if len(passphrase) < 12:
        raise ConfigurationError(
            "The node key passphrase is shorter than 12 characters; choose a longer one.",
            message_zh="节点密钥口令少于 12 个字符；请使用更长的口令。",
        )
    return passphrase.encode("utf-8")


def node_keys(settings: Settings, *, create: bool = False) -> NodeKeys:
    """The node key store (its master key made on `create` when there is none)."""
    passphrase = node_key_passphrase(settings, create=create)
    path = settings.node_key_file
    if create and not path.exists():
        create_secret_file(path, _wrap(os.urandom(KEY_BYTES), passphrase))
    if not path.exists():
        raise ConfigurationError(
            f"The node has no key yet (no file at {path}): run `genecommons init`, or restore "
            "keys/ from the backup.",
            message_zh=f"节点尚无密钥（{path} 不存在）：请运行 `genecommons init` 或从备份恢复 keys/。",
        )
    return _unlocked(read_secret_file(path), passphrase, str(path))


_UNLOCKED: dict[tuple[bytes, bytes], LocalNodeKeys] = {}
_UNLOCKING = threading.Lock()


def _unlocked(content: bytes, passphrase: bytes, path: str) -> LocalNodeKeys:
    # scrypt once per process, key file content and passphrase (held in memory only, as the
    # keys are); by content, so that a key file replaced on disk is read anew
    with _UNLOCKING:
        found = _UNLOCKED.get((content, passphrase))
        if found is None:
            found = LocalNodeKeys(_unwrap(content, passphrase, path))
            if len(_UNLOCKED) >= 4:
                _UNLOCKED.pop(next(iter(_UNLOCKED)))
            _UNLOCKED[(content, passphrase)] = found
        return found


def _scrypt(passphrase: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=KEY_BYTES, n=n, r=r, p=p).derive(passphrase)


def _wrap(master: bytes, passphrase: bytes) -> bytes:
    salt, nonce = os.urandom(16), os.urandom(NONCE_BYTES)
    kek = _scrypt(passphrase, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    sealed = ChaCha20Poly1305(kek).encrypt(nonce, master, FILE_FORMAT.encode())
    document = {
        "format": FILE_FORMAT,
        "kdf": {"name": "scrypt", "n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P},
        "salt": base64.b64encode(salt).decode(),
        "sealed": base64.b64encode(nonce + sealed).decode(),
    }
    return (json.dumps(document, indent=1) + "\n").encode()


def _unwrap(content: bytes, passphrase: bytes, path: str) -> bytes:
    try:
        document = json.loads(content)
        if document.get("format") != FILE_FORMAT:
            raise ValueError("not a node key file")
        kdf = document["kdf"]
        salt = base64.b64decode(document["salt"], validate=True)
        sealed = base64.b64decode(document["sealed"], validate=True)
        kek = _scrypt(passphrase, salt, int(kdf["n"]), int(kdf["r"]), int(kdf["p"]))
        master = ChaCha20Poly1305(kek).decrypt(
            sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], FILE_FORMAT.encode()
        )
    except (ValueError, KeyError, TypeError, InvalidTag) as error:
        raise ConfigurationError(
            f"The node key {path} cannot be unlocked: the passphrase is wrong or the file is "
            "damaged (restore it from the backup).",
            message_zh=f"无法解锁节点密钥 {path}：口令错误或文件已损坏（请从备份恢复）。",
        ) from error
    if len(master) != KEY_BYTES:
        raise ConfigurationError(
            f"{path} does not hold a 32-byte node key.",
            message_zh=f"{path} 中不是 32 字节的节点密钥。",
        )
    return master
