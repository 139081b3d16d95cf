"""The node's secrets: secret files created once and private, and the node key store."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from sqlalchemy.engine import make_url

from genecommons.config import Settings
from genecommons.errors import ConfigurationError
from genecommons.secrets import (
    LocalNodeKeys,
    SealedValueError,
    create_secret_file,
    node_keys,
    private_directory,
    read_secret_file,
)

KEYS = LocalNodeKeys(bytes(range(32)))


@settings(max_examples=200, deadline=None)
@given(
    plaintext=st.binary(max_size=4096),
    purpose=st.text(min_size=1, max_size=40),
    context=st.text(max_size=40),
)
def test_sealed_values_open_to_what_was_sealed(
    plaintext: bytes, purpose: str, context: str
) -> None:
    sealed = KEYS.seal(plaintext, purpose=purpose, context=context)
    assert len(plaintext) < 16 or plaintext not in sealed  # a short one may recur by chance
    assert KEYS.open(sealed, purpose=purpose, context=context) == plaintext


@settings(max_examples=200, deadline=None)
@given(
    plaintext=st.binary(min_size=1, max_size=256),
    flip=st.integers(min_value=0),
    bit=st.integers(min_value=0, max_value=7),
)
def test_any_altered_byte_is_refused(plaintext: bytes, flip: int, bit: int) -> None:
    sealed = bytearray(KEYS.seal(plaintext, purpose="totp", context="user:1"))
    sealed[flip % len(sealed)] ^= 1 << bit
    with pytest.raises(SealedValueError):
        KEYS.open(bytes(sealed), purpose="totp", context="user:1")


def test_a_sealed_value_cannot_be_moved_to_another_record_or_purpose() -> None:
    sealed = KEYS.seal(b"secret", purpose="totp", context="user:1")
    with pytest.raises(SealedValueError):
        KEYS.open(sealed, purpose="totp", context="user:2")
    with pytest.raises(SealedValueError):
        KEYS.open(sealed, purpose="visa-key", context="user:1")
    # the boundary between purpose and context is part of what is authenticated
    joined = KEYS.seal(b"secret", purpose="ab", context="c")
    with pytest.raises(SealedValueError):
        KEYS.open(joined, purpose="a", context="bc")


def test_another_nodes_key_is_named_when_it_cannot_open() -> None:
    other = LocalNodeKeys(bytes(32))
    sealed = other.seal(b"secret", purpose="totp")
    with pytest.raises(SealedValueError, match=other.key_id):
        KEYS.open(sealed, purpose="totp")
    assert KEYS.derive("a") != KEYS.derive("b") != other.derive("a")
    assert len(KEYS.derive("a")) == 32
    assert "00010203" not in repr(KEYS)  # the key is never printed


def _settings(tmp_path: Path, **overrides: object) -> Settings:
    return Settings(data_dir=tmp_path / "data", **overrides)  # type: ignore[arg-type]


def test_the_node_key_is_made_once_wrapped_and_private(tmp_path: Path) -> None:
    node = _settings(tmp_path)
    keys = node_keys(node, create=True)
    again = node_keys(node)
    assert again.derive("x") == keys.derive("x")
    content = node.node_key_file.read_bytes()
    assert b"genecommons-node-key/1" in content
    assert keys.derive("x") not in content
    for path in (node.node_key_file, node.key_dir / "node-passphrase"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(node.key_dir.stat().st_mode) == 0o700


def test_a_wrong_passphrase_or_a_damaged_key_is_a_clear_error(tmp_path: Path) -> None:
    node = _settings(tmp_path, node_key_passphrase=SecretStr("the right passphrase"))
    node_keys(node, create=True)
    with pytest.raises(ConfigurationError, match="cannot be unlocked"):
        node_keys(_settings(tmp_path, node_key_passphrase=SecretStr("a wrong passphrase")))
    node.node_key_file.write_bytes(b"{}")
    with pytest.raises(ConfigurationError, match="cannot be unlocked"):
        node_keys(_settings(tmp_path, node_key_passphrase=SecretStr("another passphrase")))


def test_production_needs_a_configured_passphrase(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="GENECOMMONS_NODE_KEY_PASSPHRASE"):
        node_keys(_settings(tmp_path, environment="production"), create=True)
    with pytest.raises(ConfigurationError, match="shorter than 12"):
        node_keys(_settings(tmp_path, node_key_passphrase=SecretStr("short")), create=True)
    node = _settings(
        tmp_path, environment="production", node_key_passphrase=SecretStr("a long passphrase")
    )
    node_keys(node, create=True)
    assert not (node.key_dir / "node-passphrase").exists()


def test_uninitialised_node_says_to_run_init(tmp_path: Path) -> None:
    node = _settings(tmp_path, node_key_passphrase=SecretStr("a long passphrase"))
    with pytest.raises(ConfigurationError, match="genecommons init"):
        node_keys(node)


def test_a_secret_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "secret"
    assert create_secret_file(path, b"one") == b"one"
    assert create_secret_file(path, b"two") == b"one"  # never overwritten
    path.chmod(0o644)
    with pytest.raises(ConfigurationError, match="chmod 600"):
        read_secret_file(path)


def test_private_directory_closes_an_open_one(tmp_path: Path) -> None:
    folder = tmp_path / "open"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    private_directory(folder)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


_RACER = """
import sys, time
from pathlib import Path
from genecommons.secrets import create_secret_file
start = float(sys.argv[3])
while time.time() < start:  # every writer starts at the same moment
    time.sleep(0.001)
create_secret_file(Path(sys.argv[1]), f"writer {sys.argv[2]}".encode())
"""


def test_writers_racing_agree_on_one_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "raced"
    start = time.time() + 3
    writers = [
        subprocess.Popen([sys.executable, "-c", _RACER, str(path), str(i), str(start)])
        for i in range(4)
    ]
    assert [writer.wait(120) for writer in writers] == [0, 0, 0, 0]
    assert path.read_bytes() in {f"writer {i}".encode() for i in range(4)}
    assert [p.name for p in path.parent.iterdir()] == ["raced"]  # nothing left aside


def _init(data_dir: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "GENECOMMONS_DATA_DIR": str(data_dir)}
    env.pop("GENECOMMONS_DATABASE_URL", None)
    return subprocess.Popen(
        [sys.executable, "-m", "genecommons", "init"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _node_files(node: Settings) -> dict[str, bytes]:
    """Every file init made in the data directory but the database, by relative path."""
    database = Path(str(make_url(node.effective_database_url).database)).name
    return {
        str(path.relative_to(node.data_dir)): path.read_bytes()
        for path in sorted(node.data_dir.rglob("*"))
        if path.is_file() and not path.name.startswith(database)
    }


def test_two_inits_at_once_agree_on_every_secret(tmp_path: Path) -> None:
    from genecommons.access import passport_service
    from genecommons.archive import keys_and_store
    from genecommons.audit import service as audit_service
    from genecommons.fingerprint import secret as trace_service
    from genecommons.privacy import beacon_rules

    starts = [_init(tmp_path / "data") for _ in range(2)]
    outputs = [start.communicate(timeout=300)[0] for start in starts]
    assert [start.returncode for start in starts] == [0, 0], outputs
    node = Settings(data_dir=tmp_path / "data")
    made = _node_files(node)
    expected = {
        node.node_key_file,
        node.key_dir / "node-passphrase",
        node.audit_key_file,
        node.fingerprint_key_file,
        node.beacon_key_file,
        node.archive_key_dir / "passphrase",
        node.archive_key_dir / "archive.sec",
        node.archive_key_dir / "archive.pub",
    }
    assert {str(path.relative_to(node.data_dir)) for path in expected} <= set(made)
    assert not [name for name in made if Path(name).name.startswith(".")]  # nothing left aside
    # everything init wrote is readable by the node's user only (the umask is set at start)
    for path in [node.data_dir, *node.data_dir.rglob("*")]:
        assert stat.S_IMODE(path.lstat().st_mode) & 0o077 == 0, path
    # each secret is whole and opens
    keys = node_keys(node)
    assert keys.open(keys.seal(b"x", purpose="check"), purpose="check") == b"x"
    audit_service.signing_key(node)
    assert len(trace_service.fingerprint_secret(node)) == 32
    assert len(beacon_rules.beacon_key(node)) == 32
    assert keys_and_store.archive_public_key(node) == keys_and_store.archive_keys(node).public
    visa_keys = passport_service.key_store(node)
    assert visa_keys.kids() == [visa_keys.signer().kid]  # one visa key: the loser's is gone
    # and both inits used the same ones: a third finds every file as it was
    again = _init(tmp_path / "data")
    output = again.communicate(timeout=300)[0]
    assert again.returncode == 0, output
    assert _node_files(node) == made
