"""Crypt4GH pieces against the crypt4gh package's own whole-file functions (the reference),
property-based, plus the key files of crypt4gh-keygen and the Rust implementation's vectors."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import crypt4gh.keys
import crypt4gh.lib
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genecommons.archive.crypt import (
    CIPHER_SEGMENT_SIZE,
    SEGMENT_SIZE,
    BodyDecryptor,
    BodyEncryptor,
    decrypt_range,
    encrypted_body_size,
    plain_body_size,
    read_header,
    reencrypt_header,
    session_keys,
)
from genecommons.archive.keys import (
    KeyPair,
    ensure_archive_keys,
    format_public_key,
    generate_key_pair,
    load_secret_key,
    parse_public_key,
    write_key_pair,
)
from genecommons.errors import ConfigurationError, ConflictError, InvalidInputError

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
ARCHIVE = generate_key_pair()
RECIPIENT = generate_key_pair()
SIZES = st.one_of(
    st.integers(0, 3 * SEGMENT_SIZE + 5),
    st.sampled_from([SEGMENT_SIZE - 1, SEGMENT_SIZE, SEGMENT_SIZE + 1, 2 * SEGMENT_SIZE]),
)


def _encrypt(data: bytes, chunk: int) -> tuple[bytes, bytes]:
    encryptor = BodyEncryptor()
    header = encryptor.header_for([ARCHIVE.public], sender=ARCHIVE)
    body = b"".join(encryptor.update(data[i : i + chunk]) for i in range(0, len(data), chunk))
    return header, body + encryptor.finish()


def _reference_decrypt(secret: bytes, encrypted: bytes) -> bytes:
    out = io.BytesIO()
    crypt4gh.lib.decrypt([(0, secret, None)], io.BytesIO(encrypted), out)
    return out.getvalue()


@settings(max_examples=40, deadline=None)
@given(size=SIZES, chunk=st.integers(1, 3 * SEGMENT_SIZE), seed=st.binary(min_size=1, max_size=8))
def test_encryption_is_read_by_the_reference(size: int, chunk: int, seed: bytes) -> None:
    data = (seed * (size // len(seed) + 1))[:size]
    header, body = _encrypt(data, chunk)
    assert len(body) == encrypted_body_size(size) and plain_body_size(len(body)) == size
    assert _reference_decrypt(ARCHIVE.secret, header + body) == data


@settings(max_examples=40, deadline=None)
@given(size=SIZES, chunk=st.integers(1, 3 * CIPHER_SEGMENT_SIZE))
def test_reference_encryption_is_read_by_ours(size: int, chunk: int) -> None:
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    encrypted = io.BytesIO()
    crypt4gh.lib.encrypt([(0, RECIPIENT.secret, ARCHIVE.public)], io.BytesIO(data), encrypted)
    stream = io.BytesIO(encrypted.getvalue())
    keys = session_keys(read_header(stream), keys=ARCHIVE)
    body = stream.read()
    decryptor = BodyDecryptor(keys)
    plain = b"".join(decryptor.update(body[i : i + chunk]) for i in range(0, len(body), chunk))
    assert plain + decryptor.finish() == data


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_a_range_decrypts_only_what_it_covers(data: st.DataObject) -> None:
    plain = bytes(i % 251 for i in range(data.draw(st.integers(1, 4 * SEGMENT_SIZE))))
    header, body = _encrypt(plain, 100_000)
    start = data.draw(st.integers(0, len(plain)))
    end = data.draw(st.integers(start, len(plain)))
    reads: list[tuple[int, int]] = []

    def read_at(offset: int, length: int) -> bytes:
        reads.append((offset, length))
        return body[offset : offset + length]

    keys = session_keys(header, keys=ARCHIVE)
    got = b"".join(
        decrypt_range(read_at, session_keys=keys, body_size=len(body), start=start, end=end)
    )
    assert got == plain[start:end]
    read = sum(length for _, length in reads)
    assert read <= (end - start) + 2 * CIPHER_SEGMENT_SIZE  # only the covering segments


def test_header_reencryption_gives_the_file_to_the_recipient_only() -> None:
    data = b"genome" * 50_000
    header, body = _encrypt(data, 4096)
    new = reencrypt_header(header, keys=ARCHIVE, recipient_public=RECIPIENT.public)
    assert _reference_decrypt(RECIPIENT.secret, new + body) == data
    with pytest.raises(InvalidInputError, match="another public key"):
        session_keys(new, keys=ARCHIVE)  # the archive's own packet is not in it
    stranger = generate_key_pair()
    with pytest.raises(InvalidInputError):
        session_keys(header, keys=stranger)


def test_a_tampered_segment_is_named() -> None:
    header, body = _encrypt(b"x" * (3 * SEGMENT_SIZE), 65536)
    damaged = bytearray(body)
    damaged[CIPHER_SEGMENT_SIZE + 100] ^= 1
    decryptor = BodyDecryptor(session_keys(header, keys=ARCHIVE))
    with pytest.raises(InvalidInputError) as caught:
        decryptor.update(bytes(damaged))  # segment 1 of 3 is decrypted here
    assert caught.value.details["segment"] == 1


@pytest.mark.parametrize(
    "blob",
    [b"", b"crypt4g", b"notcrypt4gh-at-all-here", b"crypt4gh\x02\x00\x00\x00\x01\x00\x00\x00"],
)
def test_headers_that_are_not_crypt4gh(blob: bytes) -> None:
    with pytest.raises(InvalidInputError):
        read_header(io.BytesIO(blob))


def test_a_truncated_header_and_an_edit_list_are_refused() -> None:
    header, _ = _encrypt(b"abc", 3)
    with pytest.raises(InvalidInputError, match="truncated"):
        read_header(io.BytesIO(header[:-5]))
    out = io.BytesIO()
    plain = io.BytesIO(b"a" * 1000)
    crypt4gh.lib.encrypt([(0, RECIPIENT.secret, ARCHIVE.public)], plain, out)
    ranged = io.BytesIO()
    crypt4gh.lib.rearrange(
        [(0, ARCHIVE.secret, ARCHIVE.public)], io.BytesIO(out.getvalue()), ranged, 10, 20
    )
    with pytest.raises(InvalidInputError, match="edit list"):
        session_keys(read_header(io.BytesIO(ranged.getvalue())), keys=ARCHIVE)


def test_key_files(tmp_path: Path) -> None:
    pair = ensure_archive_keys(tmp_path / "keys", passphrase="s3cret")
    secret = tmp_path / "keys" / "archive.sec"
    assert secret.stat().st_mode & 0o777 == 0o600
    assert ensure_archive_keys(tmp_path / "keys", passphrase="s3cret") == pair
    with pytest.raises(ConfigurationError) as wrong:
        load_secret_key(secret, passphrase="guess")
    assert "guess" not in wrong.value.message
    with pytest.raises(ConflictError):
        write_key_pair(
            secret_path=secret, public_path=tmp_path / "x.pub", pair=pair, passphrase="p"
        )
    with pytest.raises(ConfigurationError):
        ensure_archive_keys(tmp_path / "other", passphrase="")
    # the standard tool reads our secret key file and our public key file
    data = b"read me with the crypt4gh CLI"
    encrypted = io.BytesIO()
    crypt4gh.lib.encrypt([(0, ARCHIVE.secret, pair.public)], io.BytesIO(data), encrypted)
    done = subprocess.run(
        [str(Path(sys.executable).with_name("crypt4gh")), "decrypt", "--sk", str(secret)],
        input=encrypted.getvalue(),
        capture_output=True,
        env={"C4GH_PASSPHRASE": "s3cret", "PATH": "/usr/bin:/bin"},
        check=True,
    )
    assert done.stdout == data


def test_public_keys_from_crypt4gh_keygen(tmp_path: Path) -> None:
    keygen = Path(sys.executable).with_name("crypt4gh-keygen")
    subprocess.run(
        [
            str(keygen),
            "--sk",
            str(tmp_path / "k.sec"),
            "--pk",
            str(tmp_path / "k.pub"),
            "--nocrypt",
        ],
        capture_output=True,
        check=True,
    )
    text = (tmp_path / "k.pub").read_text()
    public = parse_public_key(text)
    assert parse_public_key(text.splitlines()[1]) == public
    assert parse_public_key(format_public_key(public)) == public
    for junk in ("", "hello", "-----BEGIN CRYPT4GH PUBLIC KEY-----\nAAAA\n", "QUJD" * 20):
        with pytest.raises(InvalidInputError, match="crypt4gh-keygen"):
            parse_public_key(junk)


def test_the_rust_implementations_file() -> None:
    folder = SHARED / "data" / "crypt4gh"
    if not folder.exists():
        pytest.skip("../shared/data/crypt4gh is not present on this machine")
    bob = KeyPair(
        secret=crypt4gh.keys.get_private_key(str(folder / "htsget-rs_bob.sec"), lambda: ""),
        public=crypt4gh.keys.get_public_key(str(folder / "htsget-rs_bob.pub")),
    )
    stream = io.BytesIO((folder / "htsget-rs_sample1-bcbio-cancer.vcf.gz.c4gh").read_bytes())
    header = read_header(stream)
    decryptor = BodyDecryptor(session_keys(header, keys=bob))
    plain = decryptor.update(stream.read()) + decryptor.finish()
    assert plain == (folder / "htsget-rs_sample1-bcbio-cancer.vcf.gz").read_bytes()
