"""The node's fingerprint secret: every mark is a function of it, the dataset's genotypes and
the recipient, so the marks are recomputed, never stored. Kept sealed by the node key store."""

from __future__ import annotations

from genecommons.config import Settings
from genecommons.errors import ConfigurationError
from genecommons.fingerprint import codes
from genecommons.secrets import (
    NodeKeys,
    create_sealed_file,
    node_keys,
    read_sealed_file,
    seal_file_in_place,
)

FINGERPRINT_PURPOSE = "fingerprint-secret"


def fingerprint_secret(settings: Settings, *, create: bool = False) -> bytes:
    """The node's fingerprint secret, kept sealed by the node key store (made on `create`;
    a plaintext file of an earlier version is read as is until `seal_fingerprint_secret`)."""
    path = settings.fingerprint_key_file
    if create and not path.exists():
        create_sealed_file(
            path,
            node_keys(settings, create=True),
            purpose=FINGERPRINT_PURPOSE,
            make=codes.new_secret,
        )
    if not path.exists():
        raise ConfigurationError(
            f"The node has no fingerprint secret yet (no file at {path}): run `genecommons init`.",
            message_zh=f"节点尚无指纹密钥（{path} 不存在）：请运行 `genecommons init`。",
        )
    secret = read_sealed_file(path, lambda: node_keys(settings), purpose=FINGERPRINT_PURPOSE)
    if len(secret) != codes.SECRET_BYTES:
        raise ConfigurationError(
            f"{path} is not a fingerprint secret ({len(secret)} bytes, not "
            f"{codes.SECRET_BYTES}); restore it from the backup.",
            message_zh=f"{path} 不是有效的指纹密钥；请从备份恢复。",
        )
    return secret


def seal_fingerprint_secret(settings: Settings, keys: NodeKeys) -> bool:
    """Seal a fingerprint secret an earlier version wrote in plaintext (its value, and so every
    past delivery's marks, unchanged); whether there was one to seal."""
    return seal_file_in_place(settings.fingerprint_key_file, keys, purpose=FINGERPRINT_PURPOSE)
