"""Audit log use cases: signed tree heads, proofs, entries, verification, witnessing."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session, sessionmaker

from genecommons import clock
from genecommons.audit.sth import (
    SignedTreeHead,
    load_private_key,
    load_public_key_pem,
    public_key_pem,
    save_private_key,
    sign_tree_head,
    verify_tree_head,
)
from genecommons.config import Settings
from genecommons.db import write_transaction
from genecommons.errors import ConfigurationError, InvalidInputError
from genecommons.ledger.events import leaf_document, sequence
from genecommons.ledger.merkle import (
    EMPTY_ROOT,
    MemoryNodeStore,
    MerkleTree,
    canonical_leaf,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)
from genecommons.ledger.store import SqlNodeStore
from genecommons.ledger.tables import (
    audit_alerts,
    audit_events,
    audit_head,
    audit_queue,
    merkle_nodes,
    tree_heads,
)
from genecommons.policy.decision import require
from genecommons.policy.models import Action, Resource, Subject
from genecommons.progress import SILENT, Progress
from genecommons.secrets import (
    derived_passphrase,
    node_keys,
    pem_is_encrypted,
    read_secret_file,
    replace_secret_file,
)

MAX_ENTRIES = 1000


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


TREE_HEAD_KEY_PURPOSE = "tree-head-key-passphrase"


def signing_key(settings: Settings, *, create: bool = False) -> Ed25519PrivateKey:
    """The tree-head signing key from its file (made when `create` and none exists), encrypted
    under GENECOMMONS_AUDIT_KEY_PASSPHRASE or, when none is configured, a passphrase derived
    from the node key store. A key an earlier version wrote unencrypted is read as is until
    `protect_signing_key`."""
    path = settings.audit_key_file
    if create and not path.exists():
        try:
            save_private_key(
                Ed25519PrivateKey.generate(),
                path=path,
                passphrase=_tree_head_passphrase(settings, create=True),
            )
        except ConfigurationError:
            if not path.exists():
                raise  # not a process that lost the race to make it: a real failure
    try:
        encrypted = pem_is_encrypted(path.read_bytes())
    except OSError:
        encrypted = False  # load_private_key says what is wrong with the file
    passphrase = _tree_head_passphrase(settings, create=False) if encrypted else None
    return load_private_key(path=path, passphrase=passphrase)


def _tree_head_passphrase(settings: Settings, *, create: bool) -> bytes:
    if settings.audit_key_passphrase:
        return settings.audit_key_passphrase.get_secret_value().encode("utf-8")
    keys = node_keys(settings, create=create)
    return derived_passphrase(keys, purpose=TREE_HEAD_KEY_PURPOSE)


def protect_signing_key(settings: Settings) -> bool:
    """Encrypt a tree-head key an earlier version wrote unencrypted (the same key: every tree
    head it signed still verifies); whether there was one to encrypt."""
    path = settings.audit_key_file
    if not path.exists() or pem_is_encrypted(read_secret_file(path)):
        return False
    key = load_private_key(path=path)
    pem = key.private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.BestAvailableEncryption(
            _tree_head_passphrase(settings, create=False)
        ),
    )
    replace_secret_file(path, pem)
    return True


def _public(actor: Subject | None) -> None:
    """Ask the decision point about a public read of the log (None: the node itself)."""
    if actor is not None:
        require(actor, Action.READ_AUDIT_PROOFS, Resource("audit"))


def _size(session: Session) -> int:
    size = session.execute(select(audit_head.c.size).where(audit_head.c.id == 1)).scalar()
    return int(size or 0)


def sequence_queued(factory: sessionmaker[Session], *, batch: int = 5000) -> int:
    """Append every queued event (`record_soon`) to the log, one transaction per batch; how
    many were appended."""
    total = 0
    while True:
        with write_transaction(factory) as session:
            appended = sequence(session, limit=batch)
        total += appended
        if appended < batch:
            return total


@dataclass(frozen=True, slots=True)
class QueueState:
    """The events waiting for the sequencer: how many, and when the oldest occurred."""

    depth: int
    oldest_at: datetime | None

    def lag_seconds(self, now: datetime) -> float:
        """How long the oldest waiting event has waited (0 when none waits)."""
        if self.oldest_at is None:
            return 0.0
        return max(0.0, (now - self.oldest_at).total_seconds())


def queue_state(factory: sessionmaker[Session]) -> QueueState:
    """The audit queue now (`record_soon`'s events not yet in the Merkle tree)."""
    with factory() as session:
        depth = int(session.execute(select(func.count()).select_from(audit_queue)).scalar_one())
        oldest = (
            session.execute(select(audit_queue.c.leaf).order_by(audit_queue.c.id).limit(1))
            .scalars()
            .first()
        )
    if oldest is None:
        return QueueState(depth, None)
    moment = datetime.fromisoformat(json.loads(bytes(oldest))["occurred_at"])
    return QueueState(depth, moment)


def alerts_raised(factory: sessionmaker[Session]) -> dict[str, int]:
    """How many early-warning alerts each rule has raised, ever (alerts are never removed)."""
    with factory() as session:
        rows = session.execute(
            select(audit_alerts.c.rule, func.count()).group_by(audit_alerts.c.rule)
        ).all()
    return {str(rule): int(count) for rule, count in rows}


def tree_head(
    factory: sessionmaker[Session],
    key: Ed25519PrivateKey,
    *,
    interval_seconds: int = 60,
    actor: Subject | None = None,
) -> SignedTreeHead:
    """The newest signed tree head; a new one is signed when the log grew and the last is
    older than the interval (or there is none). Public: anyone may watch the log."""
    _public(actor)
    sequence_queued(factory)  # a head covers every event committed before it was asked for
    now_ms = int(clock.now().timestamp() * 1000)
    with write_transaction(factory) as session:
        size = _size(session)
        last = session.execute(
            select(tree_heads).order_by(tree_heads.c.tree_size.desc()).limit(1)
        ).first()
        if last is not None and (
            last.tree_size == size or now_ms - last.timestamp_ms < interval_seconds * 1000
        ):
            return SignedTreeHead(
                int(last.tree_size),
                bytes(last.root_hash),
                int(last.timestamp_ms),
                bytes(last.signature),
            )
        root = MerkleTree(SqlNodeStore(session)).root(size) if size else EMPTY_ROOT
        head = sign_tree_head(tree_size=size, root_hash=root, timestamp_ms=now_ms, private_key=key)
        session.execute(
            insert(tree_heads).values(
                tree_size=size, root_hash=root, timestamp_ms=now_ms, signature=head.signature
            )
        )
    return head


def inclusion(
    factory: sessionmaker[Session], *, leaf_index: int, tree_size: int, actor: Subject | None = None
) -> list[str]:
    """The audit path of a leaf in the tree of `tree_size` (base64 hashes)."""
    _public(actor)
    with factory() as session:
        # one query: the tree fetches the node of leaf tree_size - 1 with the path, and says
        # the size is beyond the log when that node is absent
        proof = MerkleTree(SqlNodeStore(session)).inclusion_proof(
            leaf_index=leaf_index, tree_size=tree_size
        )
    return [_b64(h) for h in proof]


def consistency(
    factory: sessionmaker[Session], *, first: int, second: int, actor: Subject | None = None
) -> list[str]:
    """The proof that the tree of `second` leaves extends the tree of `first` (base64)."""
    _public(actor)
    with factory() as session:  # one query, as for inclusion
        proof = MerkleTree(SqlNodeStore(session)).consistency_proof(first=first, second=second)
    return [_b64(h) for h in proof]


def entries(
    factory: sessionmaker[Session], *, start: int, end: int, actor: Subject
) -> list[dict[str, Any]]:
    """Leaves start..end-1 (`end` excluded, the first version of the route): their exact bytes
    (base64) and decoded."""
    if not 0 <= start < end or end - start > MAX_ENTRIES:
        require(actor, Action.READ_AUDIT, Resource("audit"))
        raise InvalidInputError(
            f"Ask for 1 to {MAX_ENTRIES} entries with 0 <= start < end.",
            message_zh=f"请求的条目数须在 1 到 {MAX_ENTRIES} 之间。",
        )
    return get_entries(factory, start=start, end=end - 1, actor=actor)


def get_entries(
    factory: sessionmaker[Session], *, start: int, end: int, actor: Subject
) -> list[dict[str, Any]]:
    """Leaves start..end, `end` included, as RFC 9162's get-entries: their exact bytes (base64)
    and decoded. At most MAX_ENTRIES from `start` (fewer when the range is longer or passes the
    end of the log: the caller asks again from the next index, as the RFC lets a log answer)."""
    require(actor, Action.READ_AUDIT, Resource("audit"))
    if not 0 <= start <= end:
        raise InvalidInputError(
            f"Ask for entries with 0 <= start <= end (start {start}, end {end}); `end` is the "
            "index of the last entry wanted, included.",
            message_zh=f"请求条目须满足 0 <= start <= end（start {start}，end {end}）；"
            "end 为所需最后一条目的序号（含）。",
        )
    last = min(end, start + MAX_ENTRIES - 1)
    with factory() as session:
        rows = session.execute(
            select(audit_events.c.leaf_index, audit_events.c.leaf)
            .where(audit_events.c.leaf_index >= start, audit_events.c.leaf_index <= last)
            .order_by(audit_events.c.leaf_index)
        ).all()
    return [
        {
            "leaf_index": int(r.leaf_index),
            "leaf": _b64(bytes(r.leaf)),
            "event": json.loads(bytes(r.leaf)),
        }
        for r in rows
    ]


@dataclass(slots=True)
class Verification:
    """What `verify` found: an empty list of problems means the log is intact."""

    tree_size: int = 0
    problems: list[str] = field(default_factory=list)
    queued: int = 0  # events committed with their action, not yet sequenced into the tree


def _events(session: Session) -> Iterator[Any]:
    last = -1
    while True:
        rows = session.execute(
            select(audit_events)
            .where(audit_events.c.leaf_index > last)
            .order_by(audit_events.c.leaf_index)
            .limit(5000)
        ).all()
        if not rows:
            return
        yield from rows
        last = int(rows[-1].leaf_index)


def verify(
    factory: sessionmaker[Session],
    public_key: Ed25519PublicKey,
    *,
    progress: Progress = SILENT,
) -> Verification:
    """Recompute the whole log from storage and compare it with itself and every signed tree
    head: finds edited, deleted, inserted, reordered and truncated events. `progress` hears the
    events re-read, the tree's rebuilding and the tree heads checked."""
    result = Verification()
    memory = MemoryNodeStore()
    tree = MerkleTree(memory)
    with factory() as session:
        expected = 0
        batch: list[bytes] = []
        stored_events = session.execute(select(func.count()).select_from(audit_events)).scalar_one()
        with progress.stage("re-reading the events", total=stored_events, unit="events") as step:
            for row in _events(session):
                index = int(row.leaf_index)
                if index != expected:
                    result.problems.append(
                        f"leaf {expected} is missing (next stored is {index}): deleted or reordered"
                    )
                    expected = index
                leaf = bytes(row.leaf)
                facts = leaf_document_from_row(row)
                if canonical_leaf(facts) != leaf:
                    result.problems.append(
                        f"leaf {index}: its columns do not match its hashed bytes (edited)"
                    )
                batch.append(leaf)
                expected += 1
                step.advance()
        with progress.stage("rebuilding the Merkle tree", total=len(batch), unit="leaves") as step:
            tree.append_many(batch)
            step.update(len(batch))
        size = tree.size()
        result.tree_size = size
        result.queued = int(
            session.execute(select(func.count()).select_from(audit_queue)).scalar_one()
        )
        head = _size(session)
        if head != size:
            result.problems.append(
                f"the log's head says {head} events but {size} are stored (truncated or inserted)"
            )
        stored = session.execute(
            select(merkle_nodes.c.level, merkle_nodes.c.idx, merkle_nodes.c.hash)
        ).all()
        for level, index, value in stored:
            if memory.get(int(level), int(index)) != bytes(value):
                result.problems.append(f"tree node ({level}, {index}) does not match the events")
                break
        heads = session.execute(select(tree_heads).order_by(tree_heads.c.tree_size)).all()
        checking = progress.stage("checking the signed tree heads", total=len(heads), unit="heads")
        with checking as step:
            for head_row in heads:
                _check_head(head_row, tree, size, public_key, result)
                step.advance()
    return result


def _check_head(
    head_row: Any, tree: MerkleTree, size: int, public_key: Ed25519PublicKey, result: Verification
) -> None:
    """Check one signed tree head against the rebuilt tree, noting what is wrong."""
    signed = SignedTreeHead(
        int(head_row.tree_size),
        bytes(head_row.root_hash),
        int(head_row.timestamp_ms),
        bytes(head_row.signature),
    )
    if not verify_tree_head(signed, public_key):
        result.problems.append(f"tree head of size {signed.tree_size}: bad signature")
    if signed.tree_size > size:
        result.problems.append(
            f"a tree head was signed at size {signed.tree_size} but "
            f"only {size} events remain (truncated)"
        )
    elif (tree.root(signed.tree_size) if signed.tree_size else EMPTY_ROOT) != (signed.root_hash):
        result.problems.append(
            f"the events no longer give the root signed at size {signed.tree_size} (rewritten)"
        )


def leaf_document_from_row(row: Any) -> dict[str, Any]:
    """The leaf an event row must hash to, rebuilt from its queryable columns."""
    return leaf_document(
        tag=row.tag,
        actor=row.actor,
        subject=row.subject,
        details=row.details,
        occurred_at=row.occurred_at,
    )


# -- witnessing ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WitnessResult:
    """What a witness saw this time."""

    previous_size: int | None
    tree_size: int
    consistent: bool


class HttpClient(Protocol):
    """What the witness needs of an HTTP client (httpx's, or a test client)."""

    def get(self, url: str, *, params: Mapping[str, Any] | None = None) -> Any:
        """GET `url` relative to the node's base URL."""
        ...


def witness(base_url: str, *, state: Path, client: HttpClient | None = None) -> WitnessResult:
    """Fetch a node's signed tree head, check its signature with the key pinned on first use,
    and prove with a consistency proof that the log only grew since the head seen last."""
    own = client is None
    http: Any = client or httpx.Client(base_url=base_url, timeout=30)
    try:
        saved = json.loads(state.read_text(encoding="utf-8")) if state.exists() else {}
        pem = saved.get("public_key") or http.get("/api/v1/audit/public-key").json()["pem"]
        key = load_public_key_pem(pem.encode("ascii"))
        head = SignedTreeHead.from_json(http.get("/api/v1/audit/sth").json())
        if not verify_tree_head(head, key):
            raise InvalidInputError(
                "The tree head's signature does not verify with the key "
                "seen before: the log or its key was replaced.",
                message_zh="树头签名无法用先前记录的公钥验证：日志或密钥已被替换。",
            )
        previous = saved.get("head")
        consistent = True
        if previous is not None:
            before = SignedTreeHead.from_json(previous)
            if head.tree_size < before.tree_size:
                consistent = False
            elif before.tree_size > 0:
                proof = http.get(
                    "/api/v1/audit/proof/consistency",
                    params={"first": before.tree_size, "second": head.tree_size},
                ).json()["consistency"]
                consistent = verify_consistency(
                    first=before.tree_size,
                    second=head.tree_size,
                    first_root=before.root_hash,
                    second_root=head.root_hash,
                    proof=[base64.b64decode(p) for p in proof],
                )
        if consistent:
            state.parent.mkdir(parents=True, exist_ok=True)
            state.write_text(
                json.dumps({"public_key": pem, "head": head.to_json()}), encoding="utf-8"
            )
        return WitnessResult(
            SignedTreeHead.from_json(previous).tree_size if previous else None,
            head.tree_size,
            consistent,
        )
    finally:
        if own:
            http.close()


def check_inclusion(
    *, leaf: bytes, leaf_index: int, head: SignedTreeHead, proof: list[str]
) -> bool:
    """Whether a leaf is in the tree a signed head describes."""
    return verify_inclusion(
        leaf_hash=leaf_hash(leaf),
        leaf_index=leaf_index,
        tree_size=head.tree_size,
        proof=[base64.b64decode(p) for p in proof],
        root=head.root_hash,
    )


def public_key_document(key: Ed25519PrivateKey, *, actor: Subject | None = None) -> dict[str, str]:
    """The public key as served at /api/v1/audit/public-key."""
    _public(actor)
    return {"algorithm": "Ed25519", "pem": public_key_pem(key.public_key())}
