"""The audit log in the database: events as Merkle leaves, signed heads, proofs over HTTP,
verification that finds every kind of tampering, and a witness that the log only grew."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, insert, select, update

from genecommons.access import service as access
from genecommons.app import create_app
from genecommons.audit import service
from genecommons.audit.sth import SignedTreeHead
from genecommons.config import Settings
from genecommons.db import Base, node_engine
from genecommons.ledger.events import EventTag, record_event
from genecommons.ledger.merkle import canonical_leaf, leaf_hash, verify_consistency
from genecommons.ledger.tables import audit_events, audit_head, tree_heads
from genecommons.policy.models import Subject


def append(factory: Any, count: int, *, start: int = 0) -> None:
    with factory() as session, session.begin():
        for i in range(start, start + count):
            record_event(
                session,
                tag=EventTag.RECORD_READ,
                actor=f"user:u{i}@example.org",
                subject=f"individual:GCI{i:08d}",
                details={"n": i, "why": "test"},
            )


@pytest.fixture
def setup(settings: Settings) -> Any:
    engine = node_engine(settings)
    Base.metadata.create_all(engine)
    engine.dispose()
    key = service.signing_key(settings, create=True)
    app = create_app(settings)
    with TestClient(app) as client:
        yield app.state.services.factory, key, client
    app.state.services.engine.dispose()


def test_events_are_leaves_and_proofs_verify(setup: Any) -> None:
    factory, key, client = setup
    append(factory, 37)
    head = SignedTreeHead.from_json(client.get("/api/v1/audit/sth").json())
    assert head.tree_size == 37
    pem = client.get("/api/v1/audit/public-key").json()["pem"]
    assert "BEGIN PUBLIC KEY" in pem
    with factory() as session:
        leaf = bytes(
            session.execute(
                select(audit_events.c.leaf).where(audit_events.c.leaf_index == 21)
            ).scalar_one()
        )
    proof = client.get(
        "/api/v1/audit/proof/inclusion", params={"leaf_index": 21, "tree_size": 37}
    ).json()["audit_path"]
    assert service.check_inclusion(leaf=leaf, leaf_index=21, head=head, proof=proof)
    assert not service.check_inclusion(leaf=leaf + b" ", leaf_index=21, head=head, proof=proof)
    first = service.tree_head(factory, key, interval_seconds=0)
    append(factory, 10, start=37)
    second = service.tree_head(factory, key, interval_seconds=0)
    consistency = client.get(
        "/api/v1/audit/proof/consistency",
        params={"first": first.tree_size, "second": second.tree_size},
    )
    assert verify_consistency(
        first=first.tree_size,
        second=second.tree_size,
        first_root=first.root_hash,
        second_root=second.root_hash,
        proof=[base64.b64decode(p) for p in consistency.json()["consistency"]],
    )
    assert (
        client.get(
            "/api/v1/audit/proof/inclusion", params={"leaf_index": 0, "tree_size": 10**6}
        ).status_code
        == 422
    )


def test_entries_are_for_auditors(setup: Any) -> None:
    factory, _, client = setup
    append(factory, 3)
    assert client.get("/api/v1/audit/entries", params={"start": 0, "end": 3}).status_code == 403
    access.add_user(
        factory,
        email="aud@example.org",
        roles=["auditor"],
        institution=None,
        actor=Subject.operator("t"),
    )
    token = access.create_token(factory, email="aud@example.org", actor=Subject.operator("t")).token
    body = client.get(
        "/api/v1/audit/entries",
        params={"start": 0, "end": 3},
        headers={"Authorization": f"Bearer {token}"},
    ).json()
    entries = body["entries"]
    # the user creation and token were audited too: 3 + 2 events
    assert [e["leaf_index"] for e in entries] == [0, 1, 2]
    raw = base64.b64decode(entries[1]["leaf"])
    assert canonical_leaf(entries[1]["event"]) == raw
    assert entries[1]["event"]["details"] == {"n": 1, "why": "test"}
    assert len(leaf_hash(raw)) == 32


def _auditor_headers(factory: Any) -> dict[str, str]:
    access.add_user(
        factory,
        email="aud@example.org",
        roles=["auditor"],
        institution=None,
        actor=Subject.operator("t"),
    )
    token = access.create_token(factory, email="aud@example.org", actor=Subject.operator("t")).token
    return {"Authorization": f"Bearer {token}"}


def _mth(leaves: list[bytes]) -> bytes:
    """RFC 9162 section 2.1.1 Merkle Tree Hash, written from the definition (the reference)."""
    if len(leaves) == 1:
        return leaf_hash(leaves[0])
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + _mth(leaves[:k]) + _mth(leaves[k:])).digest()


def test_get_entries_end_is_included_as_rfc_9162_says(
    setup: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    factory, _, client = setup
    headers = _auditor_headers(factory)  # 2 events
    append(factory, 9)
    size = SignedTreeHead.from_json(client.get("/api/v1/audit/sth").json()).tree_size
    assert size == 11
    # a Certificate-Transparency style monitor: get-entries start=0 end=tree_size-1, page by
    # page from the index after the last one received (the log answers at most 4 at a time here)
    monkeypatch.setattr(service, "MAX_ENTRIES", 4)
    leaves: list[bytes] = []
    while len(leaves) < size:
        page = client.get(
            "/api/v1/audit/get-entries",
            params={"start": len(leaves), "end": size - 1},
            headers=headers,
        )
        assert page.status_code == 200, page.text
        got = page.json()["entries"]
        assert got, "the log answered no entry before the end of the tree"
        assert [e["leaf_index"] for e in got] == list(range(len(leaves), len(leaves) + len(got)))
        leaves.extend(base64.b64decode(e["leaf"]) for e in got)
    assert len(leaves) == size
    head = SignedTreeHead.from_json(client.get("/api/v1/audit/sth").json())
    assert _mth(leaves) == head.root_hash  # the monitor rebuilt the signed root: nothing missed
    one = client.get("/api/v1/audit/get-entries", params={"start": 5, "end": 5}, headers=headers)
    assert [e["leaf_index"] for e in one.json()["entries"]] == [5]
    past = client.get(
        "/api/v1/audit/get-entries", params={"start": 9, "end": 10**6}, headers=headers
    )
    indexes = [e["leaf_index"] for e in past.json()["entries"]]  # to the end of the log so far
    assert indexes == list(range(9, 9 + len(indexes))) and 2 <= len(indexes) <= 4
    backwards = client.get(
        "/api/v1/audit/get-entries", params={"start": 6, "end": 5}, headers=headers
    )
    assert backwards.status_code == 422
    assert "start <= end" in backwards.json()["message"]
    assert client.get("/api/v1/audit/get-entries", params={"start": 0, "end": 3}).status_code == 403


def test_old_entries_route_keeps_its_excluded_end_and_is_marked_deprecated(setup: Any) -> None:
    factory, _, client = setup
    headers = _auditor_headers(factory)
    append(factory, 4)
    old = client.get("/api/v1/audit/entries", params={"start": 1, "end": 4}, headers=headers)
    assert [e["leaf_index"] for e in old.json()["entries"]] == [1, 2, 3]
    new = client.get("/api/v1/audit/get-entries", params={"start": 1, "end": 4}, headers=headers)
    assert [e["leaf_index"] for e in new.json()["entries"]] == [1, 2, 3, 4]
    assert old.json()["entries"] == new.json()["entries"][:3]
    assert old.headers["Deprecation"] == "true" and "get-entries" in old.headers["Link"]
    assert "Deprecation" not in new.headers
    paths = client.get("/openapi.json").json()["paths"]
    assert paths["/api/v1/audit/entries"]["get"]["deprecated"] is True
    assert "excluded" in paths["/api/v1/audit/entries"]["get"]["description"]
    assert "included" in paths["/api/v1/audit/get-entries"]["get"]["description"]
    assert not paths["/api/v1/audit/get-entries"]["get"].get("deprecated", False)


def _tamper(factory: Any, how: str) -> None:
    with factory() as session, session.begin():
        if how == "edit-columns":
            session.execute(
                update(audit_events)
                .where(audit_events.c.leaf_index == 5)
                .values(actor="user:someone-else@example.org")
            )
        elif how == "edit-leaf":
            row = session.execute(select(audit_events).where(audit_events.c.leaf_index == 5)).one()
            forged = canonical_leaf(
                {**__import__("json").loads(bytes(row.leaf)), "actor": "user:x"}
            )
            session.execute(
                update(audit_events)
                .where(audit_events.c.leaf_index == 5)
                .values(leaf=forged, actor="user:x")
            )
        elif how == "delete":
            session.execute(delete(audit_events).where(audit_events.c.leaf_index == 7))
        elif how == "insert":
            row = session.execute(select(audit_events).where(audit_events.c.leaf_index == 3)).one()
            session.execute(
                insert(audit_events).values(
                    leaf_index=30,
                    occurred_at=row.occurred_at,
                    tag=row.tag,
                    actor=row.actor,
                    subject=row.subject,
                    details=row.details,
                    leaf=bytes(row.leaf),
                )
            )
        elif how == "reorder":
            session.execute(
                update(audit_events).where(audit_events.c.leaf_index == 2).values(leaf_index=-1)
            )
            session.execute(
                update(audit_events).where(audit_events.c.leaf_index == 3).values(leaf_index=2)
            )
            session.execute(
                update(audit_events).where(audit_events.c.leaf_index == -1).values(leaf_index=3)
            )
        elif how == "truncate":
            session.execute(delete(audit_events).where(audit_events.c.leaf_index >= 15))
            session.execute(update(audit_head).values(size=15))


@pytest.mark.parametrize(
    "how", ["edit-columns", "edit-leaf", "delete", "insert", "reorder", "truncate"]
)
def test_verify_finds_tampering(setup: Any, how: str) -> None:
    factory, key, _ = setup
    append(factory, 20)
    service.tree_head(factory, key, interval_seconds=0)
    assert service.verify(factory, key.public_key()).problems == []
    _tamper(factory, how)
    problems = service.verify(factory, key.public_key()).problems
    assert problems, f"{how} was not found"


def test_forged_tree_head_signature_is_found(setup: Any) -> None:
    factory, key, _ = setup
    append(factory, 4)
    service.tree_head(factory, key, interval_seconds=0)
    with factory() as session, session.begin():
        session.execute(update(tree_heads).values(signature=b"\0" * 64))
    assert any("signature" in p for p in service.verify(factory, key.public_key()).problems)


def test_witness_sees_growth_and_catches_a_rewrite(setup: Any, tmp_path: Path) -> None:
    factory, key, client = setup
    state = tmp_path / "witness.json"
    append(factory, 8)
    service.tree_head(factory, key, interval_seconds=0)
    first = service.witness("http://node", state=state, client=client)
    assert first.consistent and first.previous_size is None and first.tree_size == 8
    append(factory, 5, start=8)
    service.tree_head(factory, key, interval_seconds=0)
    grown = service.witness("http://node", state=state, client=client)
    assert grown.consistent and (grown.previous_size, grown.tree_size) == (8, 13)
    # rewrite history: change an old event, rebuild the tree, sign a new head over it
    with factory() as session, session.begin():
        from genecommons.ledger.tables import merkle_nodes

        rows = session.execute(select(audit_events).order_by(audit_events.c.leaf_index)).all()
        session.execute(delete(audit_events))
        session.execute(delete(merkle_nodes))
        session.execute(delete(audit_head))
        session.execute(delete(tree_heads))
    with factory() as session, session.begin():
        for row in rows:
            record_event(
                session,
                tag=EventTag(row.tag),
                actor="user:rewritten@example.org",
                subject=row.subject,
                details=row.details,
                now=row.occurred_at,
            )
    append(factory, 2, start=13)
    service.tree_head(factory, key, interval_seconds=0)
    rewritten = service.witness("http://node", state=state, client=client)
    assert not rewritten.consistent


def test_a_node_without_its_tree_head_key_says_to_run_init(bare_settings: Settings) -> None:
    """Reading the log's head never makes the key: `genecommons init` does."""
    settings = bare_settings.model_copy(update={"beacon_guard": "exact"})  # no Beacon key read
    engine = node_engine(settings)
    Base.metadata.create_all(engine)
    engine.dispose()
    app = create_app(settings)
    with TestClient(app, raise_server_exceptions=False) as client:
        answer = client.get("/api/v1/audit/sth")
    app.state.services.engine.dispose()
    assert answer.status_code == 500
    assert answer.json()["code"] == "configuration"
    assert "genecommons init" in answer.json()["message"]
    assert "genecommons init" in answer.json()["message_zh"]
    assert not settings.audit_key_file.exists()
