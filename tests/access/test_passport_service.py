"""Passports over HTTP: this node's JWKS and visas, and another node's visas accepted."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from genecommons.access import committees, service, workflow
from genecommons.access.duo_models import ResearchPurpose
from genecommons.access.keys import InMemoryKeyStore
from genecommons.access.passports import (
    TrustedIssuers,
    VisaBy,
    VisaType,
    controlled_access_datasets,
    issue_visa,
    passport_claim,
    verify_passport,
)
from genecommons.app import create_app
from genecommons.archive.holdings import archived_here
from genecommons.catalog import service as catalog
from genecommons.config import Settings
from genecommons.db import Base, node_engine
from genecommons.policy.models import Subject

OPERATOR = Subject.operator("t")
NODE_B = "https://node-b.example"


def test_passports(settings: Settings, make_bundle: Any, tmp_path: Path) -> None:
    node_b = InMemoryKeyStore()
    trusted_file = tmp_path / "trusted.json"
    trusted_file.write_text(json.dumps({NODE_B: node_b.jwks()}), encoding="utf-8")
    settings = settings.model_copy(update={"trusted_issuers_file": trusted_file})
    engine = node_engine(settings)
    Base.metadata.create_all(engine)
    engine.dispose()
    app = create_app(settings)
    with TestClient(app) as client:
        factory = app.state.services.factory
        data = catalog.submit(factory, make_bundle(), subject=OPERATOR)
        dataset = data.accessions["datasets"]["DS1"]
        for email, role in (("res@example.org", "researcher"), ("dac@example.org", "dac_member")):
            service.add_user(
                factory,
                email=email,
                roles=[role],
                institution=data.accessions["institutions"]["BGC"],
                actor=OPERATOR,
            )
        committees.create_dac(factory, alias="BGC DAC", name="BGC", actor=OPERATOR)
        committees.add_member(
            factory, dac="BGC DAC", email="dac@example.org", chair=True, actor=OPERATOR
        )
        token = service.create_token(factory, email="res@example.org", actor=OPERATOR).token
        headers = {"Authorization": f"Bearer {token}"}
        assert client.get("/api/v1/userinfo").status_code == 401
        jwks = client.get("/.well-known/jwks.json").json()
        assert jwks["keys"] and all("d" not in k for k in jwks["keys"])
        before = client.get("/api/v1/userinfo", headers=headers).json()
        types = sorted(
            json.loads(base64.urlsafe_b64decode(v.split(".")[1] + "=="))["ga4gh_visa_v1"]["type"]
            for v in before["ga4gh_passport_v1"]
        )
        assert types == ["AffiliationAndRole", "ResearcherStatus"]
        # approve a request: the passport now carries a ControlledAccessGrants visa
        researcher = Subject.user(
            "res@example.org",
            roles=frozenset({"researcher"}),
            institution=data.accessions["institutions"]["BGC"],
        )
        request_id, _ = workflow.request_access(
            factory,
            actor=researcher,
            agreement_version="DAA v1",
            archived_here=archived_here,
            datasets=[dataset],
            purpose=ResearchPurpose(
                title="t",
                summary="s",
                institution="BGC",
                country="CN",
                biomedical=True,
                ethics_approval=True,
            ),
        )
        item = workflow.get_request(factory, request_id, actor=OPERATOR)["datasets"][0]["id"]
        workflow.decide_request(
            factory,
            item_id=item,
            approve=True,
            reason="ok",
            actor=Subject.user(
                "dac@example.org", roles=frozenset({"dac_member"}), institution=None
            ),
        )
        passport = client.get("/api/v1/userinfo", headers=headers).json()
        trusted = TrustedIssuers({settings.issuer_url: jwks})
        visas, rejected = verify_passport(passport, trusted=trusted, now=datetime.now(UTC))
        assert rejected == []
        assert controlled_access_datasets(visas, now=datetime.now(UTC)) == {
            f"{settings.issuer_url}/datasets/{dataset}"
        }
        # another node's DAC approved the same researcher for our dataset: its visa counts
        service.add_user(
            factory,
            email="visitor@example.org",
            roles=["researcher"],
            institution=None,
            actor=OPERATOR,
        )
        visitor = {
            "Authorization": "Bearer "
            + service.create_token(factory, email="visitor@example.org", actor=OPERATOR).token
        }
        now = datetime.now(UTC)

        def foreign(keys: Any, issuer: str, subject: str) -> str:
            return json.dumps(
                passport_claim(
                    [
                        issue_visa(
                            keys=keys,
                            issuer=issuer,
                            subject=subject,
                            visa_type=VisaType.CONTROLLED_ACCESS_GRANTS,
                            value=f"{settings.issuer_url}/datasets/{dataset}",
                            source=issuer,
                            by=VisaBy.DAC,
                            asserted=now - timedelta(hours=1),
                            expires=now + timedelta(hours=1),
                            now=now,
                        )
                    ]
                )
            )

        me = client.get(
            "/api/v1/auth/me",
            headers={**visitor, "X-GA4GH-Passport": foreign(node_b, NODE_B, "visitor@example.org")},
        )
        assert me.json()["grants"] == [dataset]
        for forged in (
            foreign(InMemoryKeyStore(), NODE_B, "visitor@example.org"),
            foreign(InMemoryKeyStore(), "https://evil.example", "visitor@example.org"),
            foreign(node_b, NODE_B, "someone-else@example.org"),
        ):
            me = client.get("/api/v1/auth/me", headers={**visitor, "X-GA4GH-Passport": forged})
            assert me.json()["grants"] == []
        bad = client.get("/api/v1/auth/me", headers={**visitor, "X-GA4GH-Passport": "{"})
        assert bad.status_code == 401
    app.state.services.engine.dispose()


def test_this_nodes_own_visas_grant_nothing_whatever_issuer_they_name(
    settings: Settings, make_bundle: Any, tmp_path: Path
) -> None:
    """The grants table is this node's authority for its own grants: a ControlledAccessGrants
    visa signed with this node's key counts for nothing, also when it names another issuer
    that the trusted issuers file (wrongly) lists with this node's keys."""
    alias = "https://alias-of-this-node.example"
    trusted_file = tmp_path / "trusted.json"
    settings = settings.model_copy(update={"trusted_issuers_file": trusted_file})
    engine = node_engine(settings)
    Base.metadata.create_all(engine)
    engine.dispose()
    app = create_app(settings)
    with TestClient(app) as client:
        factory = app.state.services.factory
        data = catalog.submit(factory, make_bundle(), subject=OPERATOR)
        dataset = data.accessions["datasets"]["DS1"]
        service.add_user(
            factory, email="res@example.org", roles=["researcher"], institution=None, actor=OPERATOR
        )
        token = service.create_token(factory, email="res@example.org", actor=OPERATOR).token
        own = client.get("/.well-known/jwks.json").json()
        trusted_file.write_text(json.dumps({alias: own}), encoding="utf-8")
        now = datetime.now(UTC)
        for issuer in (settings.issuer_url, alias):
            visa = issue_visa(
                keys=app.state.services.visa_keys,
                issuer=issuer,
                subject="res@example.org",
                visa_type=VisaType.CONTROLLED_ACCESS_GRANTS,
                value=f"{settings.issuer_url}/datasets/{dataset}",
                source=issuer,
                by=VisaBy.DAC,
                asserted=now - timedelta(hours=1),
                expires=now + timedelta(hours=1),
                now=now,
            )
            me = client.get(
                "/api/v1/auth/me",
                headers={
                    "Authorization": f"Bearer {token}",
                    "X-GA4GH-Passport": json.dumps(passport_claim([visa])),
                },
            )
            assert me.status_code == 200 and me.json()["grants"] == [], issuer
    app.state.services.engine.dispose()
