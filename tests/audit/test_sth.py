"""Signed tree heads: the signed encoding, signing and checking, the JSON form, the key file."""

from __future__ import annotations

import base64
import os
import stat
import struct
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from genecommons.audit.sth import (
    SignedTreeHead,
    key_id,
    load_private_key,
    load_public_key_pem,
    public_key_pem,
    save_private_key,
    sign_tree_head,
    tree_head_bytes,
    verify_tree_head,
)
from genecommons.errors import ConfigurationError, InvalidInputError
from genecommons.ledger.merkle import MemoryNodeStore, MerkleTree

# RFC 8032 section 7.1, TEST 1: a fixed key, so signatures are reproducible.
RFC8032_SECRET = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC8032_PUBLIC = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
# The root of the 8-leaf RFC 6962 test tree (see test_merkle.py).
ROOT8 = bytes.fromhex("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328")


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(RFC8032_SECRET)


def test_the_fixed_key_is_rfc8032s(key: Ed25519PrivateKey) -> None:
    raw = key.public_key().public_bytes(
        encoding=serialization.Encoding.Raw, format=serialization.PublicFormat.Raw
    )
    assert raw == RFC8032_PUBLIC


def test_signed_bytes_are_tree_head_data_v2() -> None:
    encoded = tree_head_bytes(tree_size=8, root_hash=ROOT8, timestamp_ms=1_700_000_000_123)
    assert len(encoded) == 8 + 8 + 1 + 32 + 2
    timestamp, size, length = struct.unpack(">QQB", encoded[:17])
    assert (timestamp, size, length) == (1_700_000_000_123, 8, 32)
    assert encoded[17:49] == ROOT8
    assert encoded[49:] == b"\x00\x00"  # no extensions
    assert encoded.hex() == ("0000018bcfe5687b000000000000000820" + ROOT8.hex() + "0000")


def test_sign_and_verify(key: Ed25519PrivateKey) -> None:
    sth = sign_tree_head(
        tree_size=8, root_hash=ROOT8, timestamp_ms=1_700_000_000_123, private_key=key
    )
    assert len(sth.signature) == 64
    assert verify_tree_head(sth, key.public_key())
    # Ed25519 is deterministic: the same head always has the same signature.
    again = sign_tree_head(
        tree_size=8, root_hash=ROOT8, timestamp_ms=1_700_000_000_123, private_key=key
    )
    assert again == sth
    key.public_key().verify(
        sth.signature, tree_head_bytes(tree_size=8, root_hash=ROOT8, timestamp_ms=1_700_000_000_123)
    )


def test_any_change_breaks_the_signature(key: Ed25519PrivateKey) -> None:
    sth = sign_tree_head(
        tree_size=8, root_hash=ROOT8, timestamp_ms=1_700_000_000_123, private_key=key
    )
    changed_root = bytes([ROOT8[0] ^ 1]) + ROOT8[1:]
    forgeries = [
        SignedTreeHead(
            tree_size=9, root_hash=ROOT8, timestamp_ms=sth.timestamp_ms, signature=sth.signature
        ),
        SignedTreeHead(
            tree_size=8,
            root_hash=changed_root,
            timestamp_ms=sth.timestamp_ms,
            signature=sth.signature,
        ),
        SignedTreeHead(
            tree_size=8, root_hash=ROOT8, timestamp_ms=sth.timestamp_ms + 1, signature=sth.signature
        ),
        SignedTreeHead(
            tree_size=8,
            root_hash=ROOT8,
            timestamp_ms=sth.timestamp_ms,
            signature=bytes([sth.signature[0] ^ 1]) + sth.signature[1:],
        ),
        SignedTreeHead(
            tree_size=8,
            root_hash=ROOT8,
            timestamp_ms=sth.timestamp_ms,
            signature=sth.signature[:63],
        ),
        SignedTreeHead(
            tree_size=8,
            root_hash=ROOT8[:31],
            timestamp_ms=sth.timestamp_ms,
            signature=sth.signature,
        ),
        SignedTreeHead(
            tree_size=-1, root_hash=ROOT8, timestamp_ms=sth.timestamp_ms, signature=sth.signature
        ),
    ]
    for forged in forgeries:
        assert not verify_tree_head(forged, key.public_key()), forged
    other = Ed25519PrivateKey.generate()
    assert not verify_tree_head(sth, other.public_key())


def test_out_of_range_heads_are_refused(key: Ed25519PrivateKey) -> None:
    for size, stamp, root in [(-1, 0, ROOT8), (2**64, 0, ROOT8), (0, -5, ROOT8), (0, 0, b"x" * 31)]:
        with pytest.raises(InvalidInputError):
            sign_tree_head(tree_size=size, root_hash=root, timestamp_ms=stamp, private_key=key)


def test_json_round_trip(key: Ed25519PrivateKey) -> None:
    tree = MerkleTree(MemoryNodeStore())
    tree.append_many([b"one", b"two", b"three"])
    sth = sign_tree_head(tree_size=3, root_hash=tree.root(3), timestamp_ms=1234, private_key=key)
    document = sth.to_json()
    assert set(document) == {"tree_size", "root_hash", "timestamp", "signature"}
    assert document["tree_size"] == 3 and document["timestamp"] == 1234
    assert base64.b64decode(document["root_hash"]) == tree.root(3)
    assert base64.b64decode(document["signature"]) == sth.signature
    assert SignedTreeHead.from_json(document) == sth
    assert verify_tree_head(SignedTreeHead.from_json(document), key.public_key())


@pytest.mark.parametrize(
    "broken",
    [
        {"tree_size": 3, "timestamp": 1, "root_hash": "***"},
        {"tree_size": "3", "timestamp": 1, "root_hash": "", "signature": ""},
        {"tree_size": True, "timestamp": 1, "root_hash": "", "signature": ""},
        {"tree_size": 3, "timestamp": 1, "root_hash": "not base64!", "signature": ""},
        {"tree_size": 3, "timestamp": 1, "root_hash": 5, "signature": ""},
    ],
)
def test_malformed_json_is_refused(broken: dict[str, object]) -> None:
    with pytest.raises(InvalidInputError):
        SignedTreeHead.from_json(broken)


def test_public_key_forms(key: Ed25519PrivateKey) -> None:
    pem = public_key_pem(key.public_key())
    assert pem.startswith("-----BEGIN PUBLIC KEY-----")
    loaded = load_public_key_pem(pem.encode())
    sth = sign_tree_head(tree_size=8, root_hash=ROOT8, timestamp_ms=1, private_key=key)
    assert verify_tree_head(sth, loaded)
    assert len(key_id(loaded)) == 32 and key_id(loaded) == key_id(key.public_key())
    with pytest.raises(InvalidInputError):
        load_public_key_pem(b"not a key")
    ec_pem = (
        generate_private_key(SECP256R1())
        .public_key()
        .public_bytes(
            encoding=serialization.Encoding.PEM,
            format=serialization.PublicFormat.SubjectPublicKeyInfo,
        )
    )
    with pytest.raises(InvalidInputError):
        load_public_key_pem(ec_pem)


@pytest.mark.parametrize("passphrase", [None, b"correct horse battery staple"])
def test_key_file_round_trip(
    tmp_path: Path, key: Ed25519PrivateKey, passphrase: bytes | None
) -> None:
    path = tmp_path / "audit-key.pem"
    save_private_key(key, path=path, passphrase=passphrase)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_bytes()
    assert (b"ENCRYPTED" in text) == (passphrase is not None)
    loaded = load_private_key(path=path, passphrase=passphrase)
    assert (
        loaded.public_key().public_bytes(
            encoding=serialization.Encoding.Raw, format=serialization.PublicFormat.Raw
        )
        == RFC8032_PUBLIC
    )
    assert [p.name for p in tmp_path.iterdir()] == ["audit-key.pem"]  # no temporary left


def test_key_file_is_never_overwritten(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    path = tmp_path / "audit-key.pem"
    save_private_key(key, path=path)
    before = path.read_bytes()
    with pytest.raises(ConfigurationError):
        save_private_key(Ed25519PrivateKey.generate(), path=path)
    assert path.read_bytes() == before
    with pytest.raises(InvalidInputError):
        save_private_key(key, path=tmp_path / "other.pem", passphrase=b"")


def test_key_file_problems_are_configuration_errors(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    with pytest.raises(ConfigurationError):
        load_private_key(path=tmp_path / "missing.pem")
    encrypted = tmp_path / "encrypted.pem"
    save_private_key(key, path=encrypted, passphrase=b"right")
    with pytest.raises(ConfigurationError):
        load_private_key(path=encrypted, passphrase=b"wrong")
    with pytest.raises(ConfigurationError):
        load_private_key(path=encrypted)
    plain = tmp_path / "plain.pem"
    save_private_key(key, path=plain)
    with pytest.raises(ConfigurationError):
        load_private_key(path=plain, passphrase=b"unexpected")
    ec = tmp_path / "ec.pem"
    ec.write_bytes(
        generate_private_key(SECP256R1()).private_bytes(
            encoding=serialization.Encoding.PEM,
            format=serialization.PrivateFormat.PKCS8,
            encryption_algorithm=serialization.NoEncryption(),
        )
    )
    os.chmod(ec, 0o600)
    with pytest.raises(ConfigurationError):
        load_private_key(path=ec)


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_a_key_readable_by_others_is_refused(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    path = tmp_path / "audit-key.pem"
    save_private_key(key, path=path)
    os.chmod(path, 0o644)
    with pytest.raises(ConfigurationError, match="chmod 600"):
        load_private_key(path=path)
