"""The audit log's Merkle tree against RFC 9162, published vectors and an independent library.

`Reference` below is RFC 9162 sections 2.1.1-2.1.4 transcribed as recursion over the whole
leaf list: slow, and obviously the definition. The fast tree (perfect subtrees in a store) and
the verifiers (the RFC's iterative algorithms) are checked against it, against the RFC 6962
test vectors that Certificate Transparency implementations share, and against pymerkle.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Sequence
from functools import cache
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from genecommons.errors import ConflictError, InvalidInputError
from genecommons.ledger.merkle import (
    EMPTY_ROOT,
    MemoryNodeStore,
    MerkleTree,
    NodeKey,
    NodeStore,
    canonical_leaf,
    leaf_hash,
    node_hash,
    verify_consistency,
    verify_inclusion,
)

PROPERTY_SETTINGS = settings(deadline=None, derandomize=True, database=None, max_examples=200)


# --- the reference: RFC 9162 section 2.1, word for word ------------------------------------


def ref_k(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(d: Sequence[bytes]) -> bytes:
    """MTH(D[n]) of section 2.1.1."""
    if len(d) == 0:
        return hashlib.sha256(b"").digest()
    if len(d) == 1:
        return hashlib.sha256(b"\x00" + d[0]).digest()
    k = ref_k(len(d))
    return hashlib.sha256(b"\x01" + ref_mth(d[:k]) + ref_mth(d[k:])).digest()


def ref_path(m: int, d: Sequence[bytes]) -> list[bytes]:
    """PATH(m, D[n]) of section 2.1.3.1."""
    if len(d) == 1:
        return []
    k = ref_k(len(d))
    if m < k:
        return [*ref_path(m, d[:k]), ref_mth(d[k:])]
    return [*ref_path(m - k, d[k:]), ref_mth(d[:k])]


def ref_subproof(m: int, d: Sequence[bytes], b: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b) of section 2.1.4.1."""
    n = len(d)
    if m == n:
        return [] if b else [ref_mth(d)]
    k = ref_k(n)
    if m <= k:
        return [*ref_subproof(m, d[:k], b), ref_mth(d[k:])]
    return [*ref_subproof(m - k, d[k:], False), ref_mth(d[:k])]


def ref_proof(m: int, d: Sequence[bytes]) -> list[bytes]:
    """PROOF(m, D[n]) of section 2.1.4.1."""
    return ref_subproof(m, d, True)


# --- fixtures of data -----------------------------------------------------------------------


def entries(n: int) -> list[bytes]:
    """n distinct leaf entries of varied length."""
    return [i.to_bytes(4, "big") * (1 + i % 3) for i in range(n)]


@cache
def built_tree(n: int) -> MerkleTree:
    """A tree over entries(n), appended in uneven batches (shared, never appended to again)."""
    tree = MerkleTree(MemoryNodeStore())
    data = entries(n)
    start, step = 0, 1
    while start < n:
        tree.append_many(data[start : start + step])
        start += step
        step = step * 2 + 1
    return tree


class DictNodeStore:
    """A second `NodeStore`, as plain as can be, to show the tree is generic over the protocol."""

    def __init__(self) -> None:
        self.nodes: dict[NodeKey, bytes] = {}

    def get(self, level: int, index: int) -> bytes | None:
        return self.nodes.get((level, index))

    def get_many(self, keys: Sequence[NodeKey]) -> list[bytes | None]:
        return [self.nodes.get(key) for key in keys]

    def put_many(self, items: Iterable[tuple[int, int, bytes]]) -> None:
        self.nodes.update({(level, index): digest for level, index, digest in items})

    def leaf_count(self) -> int:
        return sum(1 for level, _ in self.nodes if level == 0)


STORES: list[Callable[[], NodeStore]] = [MemoryNodeStore, DictNodeStore]


# --- RFC 6962 vectors shared by Certificate Transparency implementations --------------------
# Data only, from transparency-dev/merkle: testonly/constants.go (LeafInputs, NodeHashes,
# RootHashes) and proof/verify_test.go (inclusionProofs, consistencyProofs; its leaf numbers
# there count from 1 and are converted to 0-based indices here). The same values appear in
# google/certificate-transparency-go and the C++ certificate-transparency tests.

VECTOR_LEAVES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
VECTOR_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
VECTOR_NODES = [  # [level][index]: every complete subtree of the 8-leaf tree
    [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
        "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
    ],
    [
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    ],
    [
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    ["5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"],
]
VECTOR_INCLUSION = [  # (leaf_index, tree_size, audit path)
    (0, 1, []),
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]
VECTOR_CONSISTENCY = [  # (first, second, consistency proof)
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]


def vector_tree() -> MerkleTree:
    tree = MerkleTree(MemoryNodeStore())
    for leaf in VECTOR_LEAVES:  # one at a time: every intermediate size is a real state
        tree.append_many([leaf])
    return tree


def test_vector_roots_for_every_size() -> None:
    tree = vector_tree()
    assert EMPTY_ROOT.hex() == VECTOR_ROOTS[0]
    for size, expected in enumerate(VECTOR_ROOTS):
        assert tree.root(size).hex() == expected, size
        assert ref_mth(VECTOR_LEAVES[:size]).hex() == expected, size


def test_vector_node_hashes_are_what_the_store_keeps() -> None:
    tree = vector_tree()
    for level, row in enumerate(VECTOR_NODES):
        for index, expected in enumerate(row):
            stored = tree.store.get(level, index)
            assert stored is not None and stored.hex() == expected, (level, index)
    assert tree.store.get(4, 0) is None
    assert tree.store.get(0, 8) is None


@pytest.mark.parametrize(("leaf_index", "tree_size", "path"), VECTOR_INCLUSION)
def test_vector_inclusion_proofs(leaf_index: int, tree_size: int, path: list[str]) -> None:
    tree = vector_tree()
    proof = tree.inclusion_proof(leaf_index=leaf_index, tree_size=tree_size)
    assert [p.hex() for p in proof] == path
    assert verify_inclusion(
        leaf_hash=leaf_hash(VECTOR_LEAVES[leaf_index]),
        leaf_index=leaf_index,
        tree_size=tree_size,
        proof=[bytes.fromhex(p) for p in path],
        root=bytes.fromhex(VECTOR_ROOTS[tree_size]),
    )


@pytest.mark.parametrize(("first", "second", "path"), VECTOR_CONSISTENCY)
def test_vector_consistency_proofs(first: int, second: int, path: list[str]) -> None:
    tree = vector_tree()
    proof = tree.consistency_proof(first=first, second=second)
    assert [p.hex() for p in proof] == path
    assert verify_consistency(
        first=first,
        second=second,
        first_root=bytes.fromhex(VECTOR_ROOTS[first]),
        second_root=bytes.fromhex(VECTOR_ROOTS[second]),
        proof=[bytes.fromhex(p) for p in path],
    )


def test_hash_prefixes() -> None:
    assert leaf_hash(b"").hex() == VECTOR_ROOTS[1]
    assert node_hash(leaf_hash(b""), leaf_hash(b"\x00")).hex() == VECTOR_ROOTS[2]


# --- the fast tree against the reference ----------------------------------------------------

REFERENCE_MAX = 70


def test_roots_and_inclusion_proofs_match_the_reference_up_to_70_leaves() -> None:
    tree = built_tree(REFERENCE_MAX)
    data = entries(REFERENCE_MAX)
    for n in range(REFERENCE_MAX + 1):
        root = ref_mth(data[:n])
        assert tree.root(n) == root, n
        for m in range(n):
            proof = tree.inclusion_proof(leaf_index=m, tree_size=n)
            assert proof == ref_path(m, data[:n]), (m, n)
            assert verify_inclusion(
                leaf_hash=leaf_hash(data[m]), leaf_index=m, tree_size=n, proof=proof, root=root
            )


def test_consistency_proofs_for_every_pair_up_to_64() -> None:
    tree = built_tree(64)
    data = entries(64)
    roots = [ref_mth(data[:n]) for n in range(65)]
    for second in range(65):
        for first in range(second + 1):
            proof = tree.consistency_proof(first=first, second=second)
            if 0 < first < second:
                assert proof == ref_proof(first, data[:second]), (first, second)
            else:
                assert proof == []
            assert verify_consistency(
                first=first,
                second=second,
                first_root=roots[first],
                second_root=roots[second],
                proof=proof,
            ), (first, second)


@PROPERTY_SETTINGS
@given(st.data())
def test_random_sizes_and_indices_match_the_reference(data: st.DataObject) -> None:
    leaves = entries(1100)
    tree = built_tree(1100)
    n = data.draw(st.integers(min_value=1, max_value=1100), label="tree_size")
    m = data.draw(st.integers(min_value=0, max_value=n - 1), label="leaf_index")
    first = data.draw(st.integers(min_value=1, max_value=n), label="first")
    assert tree.root(n) == ref_mth(leaves[:n])
    assert tree.inclusion_proof(leaf_index=m, tree_size=n) == ref_path(m, leaves[:n])
    expected = ref_proof(first, leaves[:n]) if first < n else []
    assert tree.consistency_proof(first=first, second=n) == expected


@PROPERTY_SETTINGS
@given(st.lists(st.integers(min_value=0, max_value=9), min_size=1, max_size=12))
def test_batching_does_not_change_the_tree(batches: list[int]) -> None:
    """Appending in any batches stores the same nodes as appending one at a time."""
    data = entries(sum(batches))
    batched, single = MemoryNodeStore(), MemoryNodeStore()
    tree = MerkleTree(batched)
    start = 0
    for size in batches:
        assert tree.append_many(data[start : start + size]) == start + size
        start += size
    MerkleTree(single).append_many(data)  # one call
    for level in range(8):
        for index in range(len(data) + 1):
            assert batched.get(level, index) == single.get(level, index)


def test_nodes_fetched_are_logarithmic() -> None:
    """A proof at any size reads O(log n) nodes: the tree never rebuilds anything."""

    class CountingStore(MemoryNodeStore):
        def __init__(self) -> None:
            super().__init__()
            self.reads = 0

        def get_many(self, keys: Sequence[NodeKey]) -> list[bytes | None]:
            self.reads += len(keys)
            return super().get_many(keys)

    store = CountingStore()
    tree = MerkleTree(store)
    n = 5000
    tree.append_many(entries(n))
    bound = 3 * math.ceil(math.log2(n)) + 3
    for m, size in [(0, n), (n - 1, n), (2345, 4097), (17, 3001)]:
        store.reads = 0
        tree.inclusion_proof(leaf_index=m, tree_size=size)
        assert store.reads <= bound
    for first, second in [(1, n), (4095, n), (1234, 3333), (n - 1, n)]:
        store.reads = 0
        tree.consistency_proof(first=first, second=second)
        assert store.reads <= bound
    store.reads = 0
    tree.root(n - 3)
    assert store.reads <= math.ceil(math.log2(n))


# --- past tree sizes stay provable as the log grows ------------------------------------------


@pytest.mark.parametrize("make_store", STORES)
def test_past_sizes_after_more_appends(make_store: Callable[[], NodeStore]) -> None:
    tree = MerkleTree(make_store())
    data = entries(300)
    tree.append_many(data[:37])
    root37 = tree.root(37)
    proofs37 = {m: tree.inclusion_proof(leaf_index=m, tree_size=37) for m in range(37)}
    consistency = {f: tree.consistency_proof(first=f, second=37) for f in range(1, 38)}
    for stop in (38, 64, 65, 200, 300):
        tree.append_many(data[tree.size() : stop])
        assert tree.size() == stop
        assert tree.root(37) == root37
        for m, proof in proofs37.items():
            assert tree.inclusion_proof(leaf_index=m, tree_size=37) == proof
        for f, proof in consistency.items():
            assert tree.consistency_proof(first=f, second=37) == proof
        later = tree.consistency_proof(first=37, second=stop)
        assert verify_consistency(
            first=37, second=stop, first_root=root37, second_root=tree.root(stop), proof=later
        )
        # an old leaf proven in the new tree
        assert verify_inclusion(
            leaf_hash=leaf_hash(data[5]),
            leaf_index=5,
            tree_size=stop,
            proof=tree.inclusion_proof(leaf_index=5, tree_size=stop),
            root=tree.root(stop),
        )


@pytest.mark.parametrize("make_store", STORES)
def test_store_contract(make_store: Callable[[], NodeStore]) -> None:
    store = make_store()
    assert store.leaf_count() == 0
    assert store.get(0, 0) is None
    a, b = leaf_hash(b"a"), leaf_hash(b"b")
    store.put_many([(0, 0, a), (0, 1, b), (1, 0, node_hash(a, b))])
    assert store.leaf_count() == 2
    assert store.get(0, 1) == b
    assert store.get_many([(1, 0), (0, 0), (0, 2), (5, 0)]) == [node_hash(a, b), a, None, None]
    assert MerkleTree(store).root(2) == ref_mth([b"a", b"b"])


def test_memory_store_refuses_gaps_and_rewrites_and_stays_unchanged() -> None:
    store = MemoryNodeStore()
    a, b = leaf_hash(b"a"), leaf_hash(b"b")
    store.put_many([(0, 0, a)])
    with pytest.raises(ConflictError):
        store.put_many([(0, 1, b), (0, 3, b)])  # a gap: nothing of the batch is kept
    assert store.leaf_count() == 1
    with pytest.raises(ConflictError):
        store.put_many([(0, 0, b)])
    store.put_many([(0, 0, a)])  # the same hash again is harmless
    with pytest.raises(InvalidInputError):
        store.put_many([(0, 1, b"short")])
    assert store.leaf_count() == 1 and store.get(0, 0) == a


# --- tampering: any change fails verification -----------------------------------------------


def flip(value: bytes, bit: int) -> bytes:
    changed = bytearray(value)
    changed[bit // 8 % len(value)] ^= 1 << (bit % 8)
    return bytes(changed)


def inclusion_variants(
    leaf: bytes, m: int, n: int, proof: list[bytes], root: bytes, roots: list[bytes]
) -> Iterable[tuple[str, bytes, int, int, list[bytes], bytes]]:
    """(what, leaf_hash, leaf_index, tree_size, proof, root): each one altered."""
    for i in range(len(proof)):
        for bit in (0, 77, 255):
            yield (
                f"bit {bit} of proof[{i}]",
                leaf,
                m,
                n,
                [*proof[:i], flip(proof[i], bit), *proof[i + 1 :]],
                root,
            )
        yield f"drop proof[{i}]", leaf, m, n, proof[:i] + proof[i + 1 :], root
        if i + 1 < len(proof):
            swapped = [*proof[:i], proof[i + 1], proof[i], *proof[i + 2 :]]
            if swapped != proof:
                yield f"swap proof[{i}]", leaf, m, n, swapped, root
    yield "extra element", leaf, m, n, [*proof, root], root
    yield "extra element first", leaf, m, n, [leaf, *proof], root
    yield "empty element", leaf, m, n, [*proof, b""], root
    yield "leaf", flip(leaf, 3), m, n, proof, root
    yield "root", leaf, m, n, proof, flip(root, 200)
    yield "empty root", leaf, m, n, proof, EMPTY_ROOT
    for other in range(-1, n + 1):
        if other != m:
            yield f"index {other}", leaf, other, n, proof, root
    # A size is only ever claimed with its own root (a signed tree head binds the two).
    for other in (n - 1, n + 1, 2 * n, n // 2):
        if 0 <= other < len(roots) and other != n:
            yield f"size {other}", leaf, m, other, proof, roots[other]
    yield "size 2n, same root", leaf, m, 2 * n, proof, root
    yield "size 0", leaf, m, 0, proof, root


def test_tampered_inclusion_proofs_fail() -> None:
    data = entries(40)
    tree = built_tree(40)
    roots = [tree.root(n) for n in range(41)]
    checked = 0
    for n in (1, 2, 3, 5, 8, 13, 21, 32, 33, 39):
        for m in range(n):
            proof = tree.inclusion_proof(leaf_index=m, tree_size=n)
            leaf = leaf_hash(data[m])
            for what, lh, index, size, path, root in inclusion_variants(
                leaf, m, n, proof, roots[n], roots
            ):
                ok = verify_inclusion(
                    leaf_hash=lh, leaf_index=index, tree_size=size, proof=path, root=root
                )
                assert not ok, (what, m, n)
                checked += 1
    assert checked > 1000


def test_tampered_consistency_proofs_fail() -> None:
    tree = built_tree(40)
    roots = [tree.root(n) for n in range(41)]
    checked = 0
    for second in range(2, 41):
        for first in range(1, second):
            proof = tree.consistency_proof(first=first, second=second)
            r1, r2 = roots[first], roots[second]
            variants: list[tuple[str, int, int, bytes, bytes, list[bytes]]] = [
                ("empty proof", first, second, r1, r2, []),
                ("extra", first, second, r1, r2, [*proof, r2]),
                ("extra first", first, second, r1, r2, [r1, *proof]),
                ("truncated", first, second, r1, r2, proof[:-1]),
                ("swapped roots", first, second, r2, r1, proof),
                ("root1", first, second, flip(r1, 9), r2, proof),
                ("root2", first, second, r1, flip(r2, 9), proof),
                ("reversed", second, first, r2, r1, proof),
            ]
            for i in range(len(proof)):
                variants.append(
                    (
                        f"bit of [{i}]",
                        first,
                        second,
                        r1,
                        r2,
                        [*proof[:i], flip(proof[i], 100), *proof[i + 1 :]],
                    )
                )
            for other in (first - 1, first + 1):
                if 0 < other < second:
                    variants.append((f"first {other}", other, second, roots[other], r2, proof))
            for other in (second - 1, second + 1):
                if first < other <= 40:
                    variants.append((f"second {other}", first, other, r1, roots[other], proof))
            for what, f, s, a, b, path in variants:
                if path == proof and (f, s, a, b) == (first, second, r1, r2):
                    continue
                ok = verify_consistency(first=f, second=s, first_root=a, second_root=b, proof=path)
                assert not ok, (what, first, second)
                checked += 1
    assert checked > 5000


def test_verifiers_reject_malformed_input() -> None:
    tree = built_tree(8)
    root = tree.root(8)
    leaf = tree.leaf(3)
    proof = tree.inclusion_proof(leaf_index=3, tree_size=8)
    good = {"leaf_hash": leaf, "leaf_index": 3, "tree_size": 8, "proof": proof, "root": root}
    assert verify_inclusion(**good)  # type: ignore[arg-type]
    assert not verify_inclusion(**{**good, "root": root[:31]})  # type: ignore[arg-type]
    assert not verify_inclusion(**{**good, "leaf_hash": leaf + b"\x00"})  # type: ignore[arg-type]
    assert not verify_inclusion(**{**good, "proof": [*proof[:2], proof[2][:16]]})  # type: ignore[arg-type]
    # Sizes that are always or never consistent.
    assert verify_consistency(first=0, second=5, first_root=EMPTY_ROOT, second_root=root, proof=[])
    assert not verify_consistency(first=0, second=5, first_root=root, second_root=root, proof=[])
    assert not verify_consistency(
        first=0, second=5, first_root=EMPTY_ROOT, second_root=root, proof=[root]
    )
    assert verify_consistency(first=8, second=8, first_root=root, second_root=root, proof=[])
    assert not verify_consistency(
        first=8, second=8, first_root=root, second_root=root, proof=[root]
    )
    assert not verify_consistency(
        first=8, second=8, first_root=root, second_root=tree.root(7), proof=[]
    )
    assert not verify_consistency(first=-1, second=8, first_root=root, second_root=root, proof=[])


def test_requests_beyond_the_log_are_refused() -> None:
    tree = MerkleTree(MemoryNodeStore())
    tree.append_many(entries(5))
    assert tree.root(0) == EMPTY_ROOT
    with pytest.raises(InvalidInputError):
        tree.root(6)
    with pytest.raises(InvalidInputError):
        tree.root(-1)
    # The proof for leaf 5 in a tree of 6 would not read leaf 5 itself: still refused.
    with pytest.raises(InvalidInputError):
        tree.inclusion_proof(leaf_index=5, tree_size=6)
    with pytest.raises(InvalidInputError):
        tree.inclusion_proof(leaf_index=4, tree_size=6)
    with pytest.raises(InvalidInputError):
        tree.inclusion_proof(leaf_index=5, tree_size=5)
    with pytest.raises(InvalidInputError):
        tree.inclusion_proof(leaf_index=-1, tree_size=5)
    with pytest.raises(InvalidInputError):
        tree.consistency_proof(first=3, second=6)
    with pytest.raises(InvalidInputError):
        tree.consistency_proof(first=6, second=6)
    with pytest.raises(InvalidInputError):
        tree.consistency_proof(first=4, second=3)
    with pytest.raises(InvalidInputError):
        tree.leaf(5)
    assert tree.consistency_proof(first=0, second=5) == []
    assert tree.leaf(4) == leaf_hash(entries(5)[4])


# --- canonical leaves -----------------------------------------------------------------------


def test_canonical_leaf_is_rfc8785() -> None:
    event = {"tag": "access:grant:create", "b": [1, 2.5, None, True], "a": {"é": "x", "Z": 1e21}}
    assert (
        canonical_leaf(event)
        == ('{"a":{"Z":1e+21,"é":"x"},"b":[1,2.5,null,true],"tag":"access:grant:create"}').encode()
    )
    # RFC 8785 section 3.2.3: keys ordered by UTF-16 code units.
    assert canonical_leaf({"\U0001f600": 1, "\uffff": 2}) == '{"\U0001f600":1,"\uffff":2}'.encode()
    assert canonical_leaf({"b": 1, "a": 2}) == canonical_leaf({"a": 2, "b": 1})


def test_canonical_leaf_refuses_what_json_cannot_carry() -> None:
    with pytest.raises(InvalidInputError):
        canonical_leaf({"x": float("nan")})
    with pytest.raises(InvalidInputError):
        canonical_leaf({"x": 2**60})
    with pytest.raises(InvalidInputError):
        canonical_leaf({"x": object()})


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**60), max_value=2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(codec="utf-8"), max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(st.characters(codec="utf-8"), max_size=4), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.text(st.characters(codec="utf-8"), max_size=4), JSON_VALUES))
def test_canonical_leaf_is_rfc8785_byte_for_byte(event: dict[str, Any]) -> None:
    """Whichever way a leaf is written (the json module for plain events, rfc8785 otherwise),
    its bytes are RFC 8785's, or both refuse it."""
    try:
        expected = rfc8785.dumps(event)
    except rfc8785.CanonicalizationError:
        with pytest.raises(InvalidInputError):
            canonical_leaf(event)
        return
    assert canonical_leaf(event) == expected


def test_canonical_leaf_of_a_beacon_query_is_rfc8785() -> None:
    event: dict[str, Any] = {
        "occurred_at": "2026-12-07T17:00:00.000001+00:00",
        "tag": "beacon:query",
        "actor": "user:researcher@example.org",
        "subject": None,
        "details": {
            "entry_type": "genomicVariant",
            "parameters": {"referenceName": "22", "start": [15000100], "alternateBases": "C"},
            "filters": [],
            "granularity": {"GCD00000001": "count"},
            "address": "127.0.0.1",
            "note": 'quote " backslash \\ tab \t control \x01 non-ASCII 中文 \u2028',
        },
    }
    assert canonical_leaf(event) == rfc8785.dumps(event)
    with pytest.raises(InvalidInputError):
        canonical_leaf({"x": "lone \ud800 surrogate"})


# --- an independent implementation ----------------------------------------------------------


def test_pymerkle_agrees_on_roots_and_inclusion_paths() -> None:
    """pymerkle (a separate RFC 6962-hashing library) gives the same roots and audit paths.

    Its consistency proofs use a layout of its own (not RFC 9162's PROOF), so they are only
    checked to verify, with pymerkle's verifier, against the roots computed here.
    """
    pymerkle = pytest.importorskip("pymerkle")
    data = entries(70)
    theirs = pymerkle.InmemoryTree(algorithm="sha256")
    for entry in data:
        theirs.append_entry(entry)
    ours = built_tree(70)
    for n in range(1, 71):
        assert theirs.get_root(n) == ours.root(n), n
        for m in range(n):
            proof = theirs.prove_inclusion(m + 1, n)  # pymerkle counts leaves from 1
            assert proof.path[0] == leaf_hash(data[m])
            assert proof.path[1:] == ours.inclusion_proof(leaf_index=m, tree_size=n), (m, n)
        for first in range(1, n + 1):
            pymerkle.verify_consistency(
                ours.root(first),
                ours.root(n),
                theirs.prove_consistency(first, n),
                prior_size=first,
                later_size=n,
            )
