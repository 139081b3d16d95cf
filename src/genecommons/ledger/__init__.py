"""The ledger: the one path by which every capability appends an audited event, as a leaf of an
RFC 9162 Merkle tree kept in the database (events.py, merkle.py, store.py, tables.py). It sits
at the bottom so that everyone can write to it; the audit capability above it reads it (tree
heads, proofs, verification, early warning)."""
