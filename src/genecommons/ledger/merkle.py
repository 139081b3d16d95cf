"""The Merkle tree of the audit log: RFC 9162 (Certificate Transparency v2) section 2.1.

Hashing is SHA-256 with the RFC's domain separation: a leaf hash is SHA-256(0x00 || entry) and
an interior node is SHA-256(0x01 || left || right). An entry is the RFC 8785 canonical JSON of
one audit event (`canonical_leaf`).

Storage. A `NodeStore` keeps the hash of every *perfect* subtree once it is complete: the node at
(level L, index i) is the root of leaves [i * 2**L, (i + 1) * 2**L). Appending a leaf writes its
leaf hash and each subtree it completes (two writes per leaf, amortised). The root of any tree
size, past or present, and every inclusion or consistency proof are then folded from O(log n)
stored nodes: each range the RFC's recursive definitions name is split into perfect subtrees
(`_perfect_subtrees`), so nothing is rebuilt. The tree code computes the keys it needs first and
fetches them with one `NodeStore.get_many`, so a SQL store answers a proof in one query.

Verification (`verify_inclusion`, `verify_consistency`) follows the algorithm text of RFC 9162
sections 2.1.3.2 and 2.1.4.2 step by step and shares no code with the proof generator.

This module is pure: no web framework, no database; a SQL-backed `NodeStore` lives at the edge.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

import rfc8785

from genecommons.errors import ConflictError, InvalidInputError

HASH_SIZE = 32
"""Bytes in every hash of the tree (SHA-256)."""

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""The root hash of the empty tree: SHA-256 of the empty string (RFC 9162 section 2.1.1)."""

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"

NodeKey = tuple[int, int]
"""(level, index) of a perfect subtree: it covers leaves [index * 2**level, (index+1) * 2**level)."""


_SAFE_INTEGER = 2**53 - 1  # JCS's integers: those a double holds exactly


def _plain(value: Any) -> bool:
    """Whether the json module writes `value` byte for byte as RFC 8785 does: no floats (JCS
    writes them as ECMAScript does), integers JCS accepts, object keys of ASCII only (JCS orders
    keys by UTF-16 code units, the json module by code points: they differ past U+FFFF), and
    nothing but null, booleans, strings, lists and objects besides (the json module escapes
    strings as JCS does: quote, backslash and control characters, with lowercase hex)."""
    if value is None or isinstance(value, str | bool):
        return True
    if isinstance(value, int):
        return -_SAFE_INTEGER <= value <= _SAFE_INTEGER
    if isinstance(value, list | tuple):
        return all(_plain(item) for item in value)
    if isinstance(value, dict):
        return all(
            isinstance(key, str) and key.isascii() and _plain(item) for key, item in value.items()
        )
    return False


def leaf_hash(data: bytes) -> bytes:
    """The RFC 9162 hash of one leaf entry: SHA-256(0x00 || data)."""
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes, /) -> bytes:
    """The RFC 9162 hash of an interior node: SHA-256(0x01 || left || right).

    Positional on purpose: the order of the two children is the meaning of the call.
    """
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def canonical_leaf(event: Mapping[str, Any]) -> bytes:
    """The leaf entry of an audit event: its RFC 8785 (JCS) canonical JSON in UTF-8.

    Raises `InvalidInputError` when the event holds something JSON cannot carry exactly
    (a non-string key, an integer beyond 2**53, NaN, a type other than JSON's).
    """
    document = dict(event)
    if _plain(document):  # written by the json module as JCS writes it, many times faster
        try:
            return json.dumps(
                document, ensure_ascii=False, sort_keys=True, separators=(",", ":")
            ).encode("utf-8")
        except UnicodeEncodeError:
            pass  # a lone surrogate: JCS refuses it, below
    try:
        return rfc8785.dumps(document)
    except rfc8785.CanonicalizationError as error:
        raise InvalidInputError(
            f"An audit event cannot be written as canonical JSON (RFC 8785): {error}. "
            "Use only strings, integers within ±2**53, finite floats, booleans, null, lists "
            "and objects with string keys.",
            message_zh=f"审计事件无法写成规范 JSON（RFC 8785）：{error}。"
            "请只使用字符串、±2**53 以内的整数、有限浮点数、布尔值、null、列表和以字符串为键的对象。",
        ) from error


class NodeStore(Protocol):
    """Where a `MerkleTree` keeps the hashes of its complete perfect subtrees.

    A node (level, index) is the root of leaves [index * 2**level, (index + 1) * 2**level);
    level 0 holds the leaf hashes. Nodes are written once, when their subtree becomes complete,
    and never change. A store for SQL would be one table (level, index, hash) with primary key
    (level, index); `put_many` must be all-or-nothing (one transaction).
    """

    def get(self, level: int, index: int) -> bytes | None:
        """The hash of node (level, index), or None when that subtree is not complete yet."""
        ...

    def get_many(self, keys: Sequence[NodeKey]) -> list[bytes | None]:
        """The hashes of the given nodes, in the order asked, None for each one absent."""
        ...

    def put_many(self, items: Iterable[tuple[int, int, bytes]]) -> None:
        """Store (level, index, hash) triples, all or none."""
        ...

    def leaf_count(self) -> int:
        """How many leaves are stored: the tree size."""
        ...


class MemoryNodeStore:
    """A `NodeStore` in memory: one bytearray of packed 32-byte hashes per level.

    Nodes of a level are completed left to right, so each level is an append-only array; this
    keeps ten million leaves (twenty million nodes) in about 640 MB. Writing a node out of
    order, or a different hash over an existing node, raises and changes nothing.
    """

    def __init__(self) -> None:
        self._levels: list[bytearray] = []

    def get(self, level: int, index: int) -> bytes | None:
        """The hash of node (level, index), or None when it is not stored."""
        if level < 0 or index < 0 or level >= len(self._levels):
            return None
        packed = self._levels[level]
        start = index * HASH_SIZE
        if start >= len(packed):
            return None
        return bytes(packed[start : start + HASH_SIZE])

    def get_many(self, keys: Sequence[NodeKey]) -> list[bytes | None]:
        """The hashes of the given nodes, in the order asked, None for each one absent."""
        return [self.get(level, index) for level, index in keys]

    def put_many(self, items: Iterable[tuple[int, int, bytes]]) -> None:
        """Append nodes to their levels; raise `ConflictError` (storing nothing) on a gap or a
        conflicting rewrite, `InvalidInputError` on a hash that is not 32 bytes."""
        batch = list(items)
        counts = [len(packed) // HASH_SIZE for packed in self._levels]
        appends: list[tuple[int, bytes]] = []
        for level, index, digest in batch:
            if len(digest) != HASH_SIZE or level < 0 or index < 0:
                raise InvalidInputError(
                    f"Node ({level}, {index}) is not a valid Merkle node: a hash must be "
                    f"{HASH_SIZE} bytes and level and index must be non-negative.",
                    message_zh=f"节点 ({level}, {index}) 不是有效的 Merkle 节点："
                    f"哈希须为 {HASH_SIZE} 字节，层号与序号须为非负数。",
                )
            while level >= len(counts):
                counts.append(0)
            if index == counts[level]:
                counts[level] += 1
                appends.append((level, digest))
            elif index < counts[level] and index < self._count(level):
                if self.get(level, index) != digest:
                    raise self._conflict(level, index, "a different hash is already stored")
            else:
                raise self._conflict(level, index, "nodes of a level must be stored in order")
        while len(self._levels) < len(counts):
            self._levels.append(bytearray())
        for level, digest in appends:
            self._levels[level] += digest

    def leaf_count(self) -> int:
        """How many leaves are stored."""
        return self._count(0)

    def _count(self, level: int) -> int:
        return len(self._levels[level]) // HASH_SIZE if level < len(self._levels) else 0

    @staticmethod
    def _conflict(level: int, index: int, why: str) -> ConflictError:
        return ConflictError(
            f"Merkle node ({level}, {index}) cannot be stored: {why}. Another writer may have "
            "appended to the log; reload the tree and append again.",
            message_zh=f"无法保存 Merkle 节点 ({level}, {index})：{why}。"
            "可能有其他写入者同时追加了日志；请重新加载后再追加。",
        )


def _largest_power_of_two_below(n: int) -> int:
    """k of RFC 9162 section 2.1.1: the largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def _perfect_subtrees(start: int, end: int) -> list[NodeKey]:
    """The perfect subtrees whose hashes fold (right to left) into MTH(D[start:end]).

    Follows MTH's split: while the range is not a power of two, its left part of size k is a
    perfect subtree and the rest is split again. The ranges the RFC's PATH and SUBPROOF name
    always start at a multiple of their left part, so each part is a stored node.
    """
    keys: list[NodeKey] = []
    while end - start > 0:
        size = end - start
        part = size if size & (size - 1) == 0 else _largest_power_of_two_below(size)
        level = part.bit_length() - 1
        if start % part:
            raise AssertionError(f"range [{start}, {end}) is not aligned to the tree")
        keys.append((level, start >> level))
        start += part
    return keys


def _fold(hashes: Sequence[bytes]) -> bytes:
    """MTH of a range from the hashes of its perfect subtrees, left to right."""
    result = hashes[-1]
    for left in reversed(hashes[:-1]):
        result = node_hash(left, result)
    return result


class MerkleTree:
    """The RFC 9162 Merkle tree of the audit log over a `NodeStore`.

    The tree keeps no state of its own besides the store, so several instances (processes)
    may read one store; appends must be serialised by the caller (one writer at a time, for
    example under a database lock), as a log's order is defined by its single sequence.
    """

    def __init__(self, store: NodeStore) -> None:
        self.store = store

    def size(self) -> int:
        """The number of leaves in the tree now."""
        return self.store.leaf_count()

    def append_many(self, leaves: Sequence[bytes]) -> int:
        """Append leaf entries (hashed here with 0x00) in order; return the new tree size.

        Writes each leaf hash and every perfect subtree it completes in one `put_many`.
        """
        size = self.store.leaf_count()
        frontier_keys = [
            (level, (size >> level) - 1)
            for level in range(size.bit_length())
            if (size >> level) & 1
        ]
        frontier = dict(
            zip(
                (level for level, _ in frontier_keys),
                self._fetch(frontier_keys, tree_size=size),
                strict=True,
            )
        )
        writes: list[tuple[int, int, bytes]] = []
        for data in leaves:
            digest = leaf_hash(data)
            level, index = 0, size
            writes.append((0, index, digest))
            while index & 1:
                digest = node_hash(frontier.pop(level), digest)
                level += 1
                index >>= 1
                writes.append((level, index, digest))
            frontier[level] = digest
            size += 1
        if writes:
            self.store.put_many(writes)
        return size

    def leaf(self, leaf_index: int) -> bytes:
        """The leaf hash at `leaf_index`."""
        self._check_index(leaf_index=leaf_index, tree_size=leaf_index + 1)
        return self._fetch([(0, leaf_index)], tree_size=leaf_index + 1)[0]

    def root(self, tree_size: int) -> bytes:
        """MTH of the first `tree_size` leaves (any size up to the current one)."""
        if tree_size < 0:
            raise _bad_size(tree_size)
        if tree_size == 0:
            return EMPTY_ROOT
        return _fold(self._fetch(_perfect_subtrees(0, tree_size), tree_size=tree_size))

    def inclusion_proof(self, *, leaf_index: int, tree_size: int) -> list[bytes]:
        """PATH(leaf_index, D[0:tree_size]) of RFC 9162 section 2.1.3.1, leaf end first."""
        self._check_index(leaf_index=leaf_index, tree_size=tree_size)
        # Walk down from the root: at each split the sibling range joins the path.
        siblings: list[tuple[int, int]] = []
        start, end = 0, tree_size
        while end - start > 1:
            k = _largest_power_of_two_below(end - start)
            if leaf_index < start + k:
                siblings.append((start + k, end))
                end = start + k
            else:
                siblings.append((start, start + k))
                start += k
        siblings.reverse()
        return self._hash_ranges(siblings, tree_size=tree_size)

    def consistency_proof(self, *, first: int, second: int) -> list[bytes]:
        """PROOF(first, D[0:second]) of RFC 9162 section 2.1.4.1 (empty if first is 0 or second)."""
        if not 0 <= first <= second:
            raise InvalidInputError(
                f"A consistency proof needs 0 <= first <= second; got first={first}, "
                f"second={second}.",
                message_zh=f"一致性证明要求 0 <= first <= second；收到 first={first}，"
                f"second={second}。",
            )
        if first in (0, second):
            self._fetch(_perfect_subtrees(0, second)[-1:], tree_size=second)
            return []
        # SUBPROOF(m, D[start:end], b), unrolled; `complete` is the flag b.
        ranges: list[tuple[int, int]] = []
        start, end, complete = 0, second, True
        while first != end:
            k = _largest_power_of_two_below(end - start)
            if first - start <= k:
                ranges.append((start + k, end))
                end = start + k
            else:
                ranges.append((start, start + k))
                start += k
                complete = False
        if not complete:
            ranges.append((start, end))
        ranges.reverse()
        return self._hash_ranges(ranges, tree_size=second)

    def _hash_ranges(self, ranges: Sequence[tuple[int, int]], *, tree_size: int) -> list[bytes]:
        """MTH of each range, fetching every node they need (and a witness) in one call."""
        plans = [_perfect_subtrees(start, end) for start, end in ranges]
        # The node holding the last leaf proves the tree has `tree_size` leaves, even when the
        # proof itself does not touch that leaf.
        witness = _perfect_subtrees(0, tree_size)[-1]
        hashes = self._fetch(
            [key for plan in plans for key in plan] + [witness], tree_size=tree_size
        )
        result: list[bytes] = []
        offset = 0
        for plan in plans:
            result.append(_fold(hashes[offset : offset + len(plan)]))
            offset += len(plan)
        return result

    def _fetch(self, keys: Sequence[NodeKey], *, tree_size: int) -> list[bytes]:
        if not keys:
            return []
        found = self.store.get_many(keys)
        hashes = [digest for digest in found if digest is not None]
        if len(hashes) != len(keys):
            raise InvalidInputError(
                f"Tree size {tree_size} is beyond the end of the audit log. Ask for a size no "
                "larger than the latest signed tree head.",
                message_zh=f"树大小 {tree_size} 超出了审计日志的末尾。"
                "请求的大小不得大于最新签名树头中的大小。",
            )
        return hashes

    @staticmethod
    def _check_index(*, leaf_index: int, tree_size: int) -> None:
        if not 0 <= leaf_index < tree_size:
            raise InvalidInputError(
                f"Leaf index {leaf_index} is not in a tree of size {tree_size}: it must be at "
                "least 0 and smaller than the tree size.",
                message_zh=f"叶序号 {leaf_index} 不在大小为 {tree_size} 的树中："
                "它须不小于 0 且小于树大小。",
            )


def _bad_size(tree_size: int) -> InvalidInputError:
    return InvalidInputError(
        f"Tree size {tree_size} is negative; a tree size counts leaves from 0.",
        message_zh=f"树大小 {tree_size} 为负数；树大小从 0 开始计数叶子。",
    )


def _valid_hash(value: bytes) -> bool:
    return isinstance(value, bytes) and len(value) == HASH_SIZE


def verify_inclusion(
    *,
    leaf_hash: bytes,
    leaf_index: int,
    tree_size: int,
    proof: Sequence[bytes],
    root: bytes,
) -> bool:
    """Whether `proof` shows the leaf with `leaf_hash` at `leaf_index` in the tree of
    `tree_size` leaves whose root is `root` (RFC 9162 section 2.1.3.2, step by step)."""
    if not (_valid_hash(leaf_hash) and _valid_hash(root) and all(map(_valid_hash, proof))):
        return False
    # 1. leaf_index must be smaller than tree_size.
    if leaf_index < 0 or leaf_index >= tree_size:
        return False
    # 2. fn = leaf_index, sn = tree_size - 1.  3. r = hash.
    fn, sn = leaf_index, tree_size - 1
    r = leaf_hash
    # 4. For each p in the inclusion path:
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while fn and not fn & 1:  # LSB(fn) unset: shift until it is set or fn is 0
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    # 5. sn must be 0 and r must equal the root.
    return sn == 0 and hmac.compare_digest(r, root)


def verify_consistency(
    *,
    first: int,
    second: int,
    first_root: bytes,
    second_root: bytes,
    proof: Sequence[bytes],
) -> bool:
    """Whether `proof` shows the tree of `second` leaves (root `second_root`) extends the tree
    of `first` leaves (root `first_root`) (RFC 9162 section 2.1.4.2, step by step).

    The RFC's algorithm is for 0 < first < second. Outside it: first == second holds with an
    empty proof and equal roots; first == 0 holds with an empty proof when `first_root` is the
    empty tree's root (every tree extends the empty one).
    """
    if not (_valid_hash(first_root) and _valid_hash(second_root) and all(map(_valid_hash, proof))):
        return False
    if first < 0 or first > second:
        return False
    if first == 0:
        return not proof and hmac.compare_digest(first_root, EMPTY_ROOT)
    if first == second:
        return not proof and hmac.compare_digest(first_root, second_root)
    # 1. An empty path fails.
    if not proof:
        return False
    path = list(proof)
    # 2. If first is an exact power of 2, prepend first_hash.
    if first & (first - 1) == 0:
        path.insert(0, first_root)
    # 3. fn = first - 1, sn = second - 1.
    fn, sn = first - 1, second - 1
    # 4. While LSB(fn) is set, right-shift fn and sn.
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # 5. fr = sr = the first value of the path.
    fr = sr = path[0]
    # 6. For each subsequent value c:
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while fn and not fn & 1:  # LSB(fn) unset: shift until it is set or fn is 0
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    # 7. fr must equal first_hash, sr must equal second_hash, and sn must be 0.
    return sn == 0 and hmac.compare_digest(fr, first_root) and hmac.compare_digest(sr, second_root)
