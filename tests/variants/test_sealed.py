"""Variant stores at rest: nothing of a person is readable in them, every value is
authenticated where it stands, and a store opens only with its own key and binding."""

from __future__ import annotations

import gzip
import os
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genecommons.secrets import LocalNodeKeys
from genecommons.variants import sealed, sealed_store
from genecommons.variants.manifest import LegacyStoreError, new_binding
from genecommons.variants.sealed import StoreIntegrityError, ValueSealer
from genecommons.variants.store import SampleInfo, VariantStore, build_store

SAMPLES = ("Zhang-San-0001", "Li-Si-0002", "Wang-Wu-0003")
PATHS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_/.0123456789", min_size=1, max_size=40)


@given(key=st.binary(min_size=32, max_size=32), path=PATHS, value=st.binary(max_size=2048))
@settings(max_examples=200, deadline=None)
def test_a_sealed_value_opens_only_where_it_was_sealed(key: bytes, path: str, value: bytes) -> None:
    sealer = ValueSealer(key, context="GCD00000001/aa")
    box = sealer.seal(path, value)
    assert sealer.open(path, box) == value
    assert len(value) < 8 or value not in box  # nothing of the plaintext shows
    with pytest.raises(StoreIntegrityError):
        sealer.open(path + "x", box)  # another place in the store
    with pytest.raises(StoreIntegrityError):
        ValueSealer(key, context="GCD00000002/aa").open(path, box)  # another store
    with pytest.raises(StoreIntegrityError):
        ValueSealer(bytes(32) if key != bytes(32) else b"\1" * 32, context=sealer.context).open(
            path, box
        )
    for flipped in (4, len(box) // 2, len(box) - 1):
        damaged = bytearray(box)
        damaged[flipped] ^= 0x01
        with pytest.raises(StoreIntegrityError):
            sealer.open(path, bytes(damaged))


def test_a_zarr_group_round_trips_through_its_sealed_store(tmp_path: Path) -> None:
    sealer = ValueSealer(os.urandom(32), context="GCD00000001/bb")
    root = sealed_store.open_group(tmp_path / "z", sealer=sealer, mode="w-")
    root.attrs["note"] = "Zhang-San-0001"
    calls = np.arange(6000, dtype=np.int8).reshape(1000, 3, 2)
    root.create_array("a", data=calls, chunks=(100, 3, 2))
    root.create_array("b", data=calls, chunks=(100, 3, 2))
    opened = sealed_store.open_group(tmp_path / "z", sealer=sealer)
    assert np.array_equal(opened["a"][:], calls) and opened.attrs["note"] == "Zhang-San-0001"
    for path in (tmp_path / "z").rglob("*"):
        if path.is_file():
            assert path.read_bytes().startswith(sealed.MAGIC)
            assert b"Zhang-San" not in path.read_bytes()
    # a chunk moved from one array into another fails where it is read, not silently
    shutil.copy(tmp_path / "z" / "a" / "0.0.0", tmp_path / "z" / "b" / "1.0.0")
    with pytest.raises(StoreIntegrityError):
        sealed_store.open_group(tmp_path / "z", sealer=sealer)["b"][:]
    with pytest.raises(StoreIntegrityError):
        sealed_store.open_group(tmp_path / "z", sealer=ValueSealer(os.urandom(32), context="x"))


@pytest.fixture
def built(tmp_path: Path, datafiles: Any) -> Any:
    vcf = datafiles.vcf(tmp_path / "calls.vcf.gz", samples=SAMPLES, records=300)
    keys = LocalNodeKeys(os.urandom(32))
    binding = new_binding(dataset="GCD00000001", source_sha256="ab" * 32, source_name=vcf.name)
    samples = {s: SampleInfo("CHB", "female") for s in SAMPLES[:1]}  # a group of one person
    summary = build_store(
        vcf, tmp_path / "stores" / "GCD00000001", samples=samples, keys=keys, binding=binding
    )
    summary.lease.release()
    return summary, keys, vcf


def test_no_sample_name_or_genotype_line_is_readable_anywhere_in_a_store(built: Any) -> None:
    summary, keys, vcf = built
    lines = [
        line
        for line in gzip.decompress(vcf.read_bytes()).split(b"\n")
        if line and not line.startswith(b"##")
    ]
    needles = [s.encode() for s in SAMPLES] + [lines[5].split(b"\t", 9)[9][:20], lines[1][:30]]
    files = [p for p in summary.path.rglob("*") if p.is_file()]
    assert len(files) > 10
    for path in files:
        data = path.read_bytes()
        for needle in needles:
            assert needle not in data, (path, needle)
    # the sites index is no SQLite file to sqlite3
    with pytest.raises(sqlite3.DatabaseError):
        sqlite3.connect(summary.path / "sites.sqlite").execute("SELECT * FROM sites").fetchall()
    store = VariantStore(summary.path, keys=keys, binding=summary.binding)
    assert store.sample_ids == SAMPLES and store.groups[:2] == ("all", "CHB")
    store.authenticate()


def test_a_store_opens_only_with_its_node_key_its_binding_and_its_place(
    built: Any, tmp_path: Path
) -> None:
    summary, keys, _ = built
    with pytest.raises(StoreIntegrityError):  # another node's key
        VariantStore(summary.path, keys=LocalNodeKeys(os.urandom(32)))
    other = new_binding(dataset="GCD00000001", source_sha256="ab" * 32, source_name="calls.vcf.gz")
    with pytest.raises(StoreIntegrityError):  # the catalog binds another store
        VariantStore(summary.path, keys=keys, binding=other)
    moved = summary.path.with_name("GCD00000002")
    shutil.copytree(summary.path, moved)
    with pytest.raises(StoreIntegrityError):  # moved to another dataset's place
        VariantStore(moved, keys=keys, binding=dataclass_replace(summary.binding, "GCD00000002"))
    (summary.path / "store.json").unlink()  # the data key is gone: the store is shredded
    with pytest.raises(Exception, match="No variant store"):
        VariantStore(summary.path, keys=keys, binding=summary.binding)


def dataclass_replace(binding: Any, dataset: str) -> Any:
    import dataclasses

    return dataclasses.replace(binding, dataset=dataset)


def test_a_changed_chunk_fails_authentication(built: Any) -> None:
    summary, keys, _ = built
    chunk = summary.path / "calls.vcz" / "call_genotype" / "0.0.0"
    data = bytearray(chunk.read_bytes())
    data[-1] ^= 0x01
    chunk.write_bytes(bytes(data))
    store = VariantStore(summary.path, keys=keys, binding=summary.binding)
    with pytest.raises(StoreIntegrityError):
        store.authenticate()
    with pytest.raises(StoreIntegrityError):
        store.genotypes([0])


def test_a_plaintext_store_of_the_old_format_is_refused(tmp_path: Path, datafiles: Any) -> None:
    import pysam
    from bio2zarr import vcf as vcf2zarr

    vcf = datafiles.vcf(tmp_path / "calls.vcf.gz", records=20)
    pysam.tabix_index(str(vcf), preset="vcf", force=True, keep_original=True)
    old = tmp_path / "GCD00000001"
    old.mkdir()
    vcf2zarr.convert([str(vcf)], str(old / "calls.vcz"), worker_processes=0)
    sqlite3.connect(old / "sites.sqlite").execute("CREATE TABLE meta (k)").connection.commit()
    with pytest.raises(LegacyStoreError) as refused:
        VariantStore(old, keys=LocalNodeKeys(os.urandom(32)))
    assert "variants build" in refused.value.message and refused.value.message_zh


def test_genotypes_read_back_equal_the_vcf(built: Any, sealed_store: Callable[..., Any]) -> None:
    import pysam

    summary, keys, vcf = built
    store = VariantStore(summary.path, keys=keys, binding=summary.binding)
    with pysam.VariantFile(str(vcf)) as handle:
        expected = [[s["GT"] for s in record.samples.values()] for record in handle]
    calls = store.genotypes(list(range(len(expected))))
    assert calls.tolist() == [[list(gt) for gt in row] for row in expected]
