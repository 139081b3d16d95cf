"""Benchmark: the audit log's Merkle tree at ten million entries, in memory.

Appends N canonical-JSON-sized entries to a `MerkleTree` over `MemoryNodeStore` in batches
(as the log appends a transaction's events), then times, over random leaves and random past
tree sizes: the root of a size, inclusion proofs, consistency proofs and their verification.
The store here is memory; a database store adds its query time to each proof (one `get_many`).

    .venv/bin/python -m benchmarks.audit_merkle --leaves 10000000
"""

from __future__ import annotations

import argparse
import random
import resource
import statistics
import time
from collections.abc import Callable

from genecommons.ledger.merkle import (
    MemoryNodeStore,
    MerkleTree,
    canonical_leaf,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)


def percentiles(samples: list[float]) -> str:
    """p50 / p95 / p99 / max of durations in seconds, as milliseconds."""
    cuts = statistics.quantiles(samples, n=100)
    return (
        f"p50 {cuts[49] * 1e3:7.3f} ms  p95 {cuts[94] * 1e3:7.3f} ms  "
        f"p99 {cuts[98] * 1e3:7.3f} ms  max {max(samples) * 1e3:7.3f} ms"
    )


def timed(action: Callable[[], object], repeat: int) -> list[float]:
    """Durations of `repeat` calls of `action`."""
    durations = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        durations.append(time.perf_counter() - start)
    return durations


def main() -> None:
    """Build the tree, then print append throughput and proof latencies."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--leaves", type=int, default=10_000_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--proofs", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    # An event-sized entry (about 200 bytes of canonical JSON); the counter makes each unique.
    template = canonical_leaf(
        {
            "tag": "access:grant:create",
            "actor": "user:0000000000",
            "subject": "EGAD00000000000",
            "details": {"request": "REQ-000000", "purpose": "DUO:0000007", "expires": "2031-01-01"},
            "time": "2026-01-01T00:00:00.000000+00:00",
        }
    )
    tree = MerkleTree(MemoryNodeStore())
    started = time.perf_counter()
    done = 0
    while done < args.leaves:
        count = min(args.batch, args.leaves - done)
        tree.append_many([template + i.to_bytes(8, "big") for i in range(done, done + count)])
        done += count
    elapsed = time.perf_counter() - started
    size = tree.size()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"leaves                 {size:,}")
    print(
        f"append (memory store)  {elapsed:.1f} s, {size / elapsed:,.0f} leaves/s, batch {args.batch}"
    )
    print(f"peak RSS               {rss_mb:,.0f} MB")

    sizes = [size] + [rng.randint(1, size) for _ in range(args.proofs - 1)]
    pairs = [(rng.randrange(n), n) for n in sizes]
    ranges = [
        tuple(sorted((rng.randint(1, size), rng.randint(1, size)))) for _ in range(args.proofs)
    ]
    roots = {n: tree.root(n) for n in sizes}
    for first, second in ranges:
        roots.setdefault(first, tree.root(first))
        roots.setdefault(second, tree.root(second))

    it = iter(sizes * 2)
    print(f"root(size)             {percentiles(timed(lambda: tree.root(next(it)), len(sizes)))}")

    it_pairs = iter(pairs)
    print(
        "inclusion proof        "
        + percentiles(
            timed(
                lambda: tree.inclusion_proof(leaf_index=(p := next(it_pairs))[0], tree_size=p[1]),
                len(pairs),
            )
        )
    )
    it_ranges = iter(ranges)
    print(
        "consistency proof      "
        + percentiles(
            timed(
                lambda: tree.consistency_proof(first=(r := next(it_ranges))[0], second=r[1]),
                len(ranges),
            )
        )
    )

    inclusion = [
        (
            m,
            n,
            tree.inclusion_proof(leaf_index=m, tree_size=n),
            leaf_hash(template + m.to_bytes(8, "big")),
        )
        for m, n in pairs
    ]
    it_inclusion = iter(inclusion)

    def check_inclusion() -> None:
        m, n, proof, leaf = next(it_inclusion)
        assert verify_inclusion(
            leaf_hash=leaf, leaf_index=m, tree_size=n, proof=proof, root=roots[n]
        )

    print(f"verify inclusion       {percentiles(timed(check_inclusion, len(inclusion)))}")
    consistency = [(f, s, tree.consistency_proof(first=f, second=s)) for f, s in ranges]
    it_consistency = iter(consistency)

    def check_consistency() -> None:
        f, s, proof = next(it_consistency)
        assert verify_consistency(
            first=f, second=s, first_root=roots[f], second_root=roots[s], proof=proof
        )

    print(f"verify consistency     {percentiles(timed(check_consistency, len(consistency)))}")
    longest = max(len(proof) for _, _, proof, _ in inclusion)
    print(f"longest inclusion path {longest} hashes")


if __name__ == "__main__":
    main()
