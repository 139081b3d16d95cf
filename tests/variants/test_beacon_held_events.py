"""A Beacon query by token commits its token's use with its own event (one commit, not two),
and no Beacon response leaves before every event of its request is committed: an error still
records the token's use, and a commit that fails replaces the answer by a 503."""

from __future__ import annotations

import json
from types import SimpleNamespace

from sqlalchemy import select, text

from genecommons.ledger.tables import audit_queue

USE, QUERY = "access:token:use", "variants:beacon:query"


def queued(world: SimpleNamespace) -> list[dict[str, object]]:
    """The events waiting in the queue, in queue order (not yet sequenced into the log)."""
    with world.factory() as session:
        rows = session.execute(
            select(audit_queue.c.id, audit_queue.c.leaf).order_by(audit_queue.c.id)
        )
        return [{"id": r.id, **json.loads(bytes(r.leaf))} for r in rows]


def test_a_query_by_token_commits_the_use_with_the_query(world: SimpleNamespace) -> None:
    before = len(queued(world))
    response = world.client.get(
        "/beacon/g_variants",
        params={
            "referenceName": "chr22",
            "start": 10,
            "referenceBases": "A",
            "alternateBases": "G",
            "assemblyId": "GRCh38",
        },
        headers=world.headers["reader"],
    )
    assert response.status_code == 200, response.text
    events = queued(world)[before:]
    assert [e["tag"] for e in events] == [USE, QUERY]
    assert events[1]["id"] == events[0]["id"] + 1  # one insert, in one transaction
    assert events[0]["actor"] == events[1]["actor"] == "user:reader@example.org"


def test_a_refused_query_still_records_the_tokens_use(world: SimpleNamespace) -> None:
    before = len(queued(world))
    response = world.client.get(
        "/beacon/g_variants",
        params={"referenceName": "chr22", "start": -5, "assemblyId": "GRCh38"},
        headers=world.headers["reader"],
    )
    assert response.status_code == 400, response.text
    assert [e["tag"] for e in queued(world)[before:]] == [USE]


def test_no_answer_leaves_when_its_events_cannot_be_committed(world: SimpleNamespace) -> None:
    # /beacon/filtering_terms reads the caller's datasets and writes no event of its own: its
    # token's use is what the middleware commits before the response
    before = len(queued(world))
    terms = world.client.get("/beacon/filtering_terms", headers=world.headers["reader"])
    assert terms.status_code == 200, terms.text
    assert [e["tag"] for e in queued(world)[before:]] == [USE]
    with world.factory.begin() as session:
        session.execute(text("DROP TABLE audit_queue"))
    refused = world.client.get("/beacon/filtering_terms", headers=world.headers["reader"])
    assert refused.status_code == 503
    assert "audit" in refused.json()["error"]["errorMessage"]
    assert refused.json()["error"]["errorMessage_zh"]
    # an anonymous request holds nothing: it writes no event and still answers
    assert world.client.get("/beacon/filtering_terms").status_code == 200
