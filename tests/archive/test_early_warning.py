"""Early warning on a node with archived data, over real HTTP: a researcher whose grant was
revoked asks for a file again; the refusal is an event, the watcher raises an alert, and an
auditor lists it with the log entries behind it and their inclusion proofs."""

from __future__ import annotations

import base64
from typing import Any

import httpx
from sqlalchemy import select

from genecommons.access import service as access_service
from genecommons.access import workflow
from genecommons.audit import service as audit_service
from genecommons.audit import watch
from genecommons.audit.sth import SignedTreeHead, load_public_key_pem, verify_tree_head
from genecommons.ledger.tables import audit_events

from .conftest import OPERATOR, when_ready


def test_a_request_after_the_grant_was_revoked_raises_an_alert(
    world: Any, live_server: str
) -> None:
    vcf = world.accessions["files"]["calls.vcf.gz"]
    access_service.add_user(
        world.factory,
        email="auditor@example.org",
        roles=["auditor"],
        institution=None,
        actor=OPERATOR,
    )
    auditor = access_service.create_token(
        world.factory, email="auditor@example.org", actor=OPERATOR
    ).token
    with httpx.Client(base_url=live_server, timeout=30) as client:
        before = when_ready(
            lambda: client.get(
                f"/ga4gh/drs/v1/objects/{vcf}", headers=world.headers("granted@example.org")
            )
        )
        assert before.status_code == 200
        (grant,) = workflow.active_grants(world.factory, email="granted@example.org")
        workflow.revoke_grant(
            world.factory, grant_id=grant["id"], reason="Left the project.", actor=OPERATOR
        )
        after = client.get(
            f"/ga4gh/drs/v1/objects/{vcf}", headers=world.headers("granted@example.org")
        )
        assert after.status_code == 403
        report = watch.watch_once(world.factory, world.settings)
        assert report.raised == 1
        listed = client.get("/api/v1/audit/alerts", headers={"Authorization": f"Bearer {auditor}"})
        assert listed.status_code == 200, listed.text
        refused = client.get("/api/v1/audit/alerts", headers=world.headers("granted@example.org"))
        assert refused.status_code == 403
        pem = client.get("/api/v1/audit/public-key").json()["pem"]
    body = listed.json()
    (alert,) = body["alerts"]
    assert alert["rule"] == "after-grant-end"
    assert alert["details"]["why"] == "revoked" and alert["details"]["grant"] == grant["id"]
    assert alert["details"]["dataset"] == world.dataset
    (evidence,) = alert["evidence"]
    assert evidence["event"]["tag"] == "access:decision:deny"
    assert evidence["event"]["actor"] == "user:granted@example.org"
    assert evidence["event"]["subject"] == f"file:{vcf}"
    head = SignedTreeHead.from_json(body["sth"])
    assert verify_tree_head(head, load_public_key_pem(pem.encode("ascii")))
    leaf = base64.b64decode(evidence["leaf"])
    assert audit_service.check_inclusion(
        leaf=leaf, leaf_index=evidence["leaf_index"], head=head, proof=evidence["audit_path"]
    )
    with world.factory() as session:
        tags = set(session.execute(select(audit_events.c.tag)).scalars())
    # the token uses were recorded (queued, then sequenced by the watcher), with the alert
    assert {"access:token:use", "access:decision:deny", "audit:alert:raise"} <= tags
