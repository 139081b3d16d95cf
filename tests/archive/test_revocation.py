"""Revoked or expired means closed, at the next request, on every path: as an outside tester
tried it, a researcher saves what a grant in force gave them (the node's own passport from
/api/v1/userinfo, a DRS access URL with its headers, an htsget ticket with its URLs); once the
grant is revoked (by the CLI or the API) or has expired, every one of them is refused."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from genecommons import clock
from genecommons.access import workflow
from genecommons.access.tables import grants
from genecommons.app import create_app
from genecommons.archive.keys import format_public_key, generate_key_pair
from genecommons.db import write_transaction

from .conftest import when_ready

GRANTED = "granted@example.org"


@pytest.fixture
def client(world: Any, builder: Any) -> Iterator[TestClient]:
    """The node's app, with its copy builder running (a researcher's copy is made on request)."""
    app = create_app(world.settings)
    with TestClient(app) as client:
        yield client
    app.state.services.engine.dispose()


def _saved(client: TestClient, world: Any) -> dict[str, Any]:
    """What the researcher keeps while the grant is in force, each checked to work then."""
    headers = world.headers(GRANTED)
    vcf = world.accessions["files"]["calls.vcf.gz"]
    public = format_public_key(generate_key_pair().public)
    assert (
        client.put("/api/v1/me/crypt4gh-key", json={"public_key": public}, headers=headers)
    ).status_code == 204
    passport = client.get("/api/v1/userinfo", headers=headers).json()
    types = [
        json.loads(_b64(visa.split(".")[1]))["ga4gh_visa_v1"]["type"]
        for visa in passport["ga4gh_passport_v1"]
    ]
    assert "ControlledAccessGrants" in types  # the passport names the grant
    with_passport = {**headers, "X-GA4GH-Passport": json.dumps(passport)}
    access = when_ready(
        lambda: client.get(f"/ga4gh/drs/v1/objects/{vcf}/access/crypt4gh", headers=with_passport)
    )
    assert access.status_code == 200, access.text
    ticket = when_ready(
        lambda: client.get(
            f"/htsget/variants/{vcf}", params={"referenceName": "chr22"}, headers=with_passport
        )
    )
    assert ticket.status_code == 200, ticket.text
    saved = {
        "vcf": vcf,
        "passport": with_passport,
        "access": access.json(),
        "ticket": ticket.json()["htsget"]["urls"],
    }
    for status in _attempts(client, saved):
        assert status == 200
    return saved


def _b64(part: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _attempts(client: TestClient, saved: dict[str, Any]) -> list[int]:
    """Every path the saved credentials and URLs open: their status codes."""
    vcf, passport = saved["vcf"], saved["passport"]
    access = saved["access"]
    access_headers = dict(h.split(": ", 1) for h in access["headers"])
    statuses = [
        client.get(f"/ga4gh/drs/v1/objects/{vcf}", headers=passport).status_code,
        client.get(f"/ga4gh/drs/v1/objects/{vcf}/access/crypt4gh", headers=passport).status_code,
        client.get(f"/ga4gh/drs/v1/objects/{vcf}/download", headers=passport).status_code,
        client.get(
            f"/htsget/variants/{vcf}", params={"referenceName": "chr22"}, headers=passport
        ).status_code,
        client.post(
            f"/htsget/variants/{vcf}",
            json={"regions": [{"referenceName": "chr22"}]},
            headers=passport,
        ).status_code,
        # the saved DRS access URL, with the headers it came with
        client.get(access["url"], headers=access_headers).status_code,
    ]
    for item in saved["ticket"]:
        if item["url"].startswith("data:"):
            continue  # the end-of-file marker, inline
        statuses.append(client.get(item["url"], headers=item.get("headers", {})).status_code)
    return statuses


def _grant_id(world: Any) -> int:
    (grant,) = workflow.active_grants(world.factory, email=GRANTED)
    return int(grant["id"])


def _by_cli(world: Any, client: TestClient, run: Callable[..., Any]) -> None:
    env = {
        **os.environ,
        "GENECOMMONS_DATA_DIR": str(world.settings.data_dir),
        "GENECOMMONS_DATABASE_URL": world.settings.effective_database_url,
        "GENECOMMONS_ENVIRONMENT": "test",
    }
    run(env, "grants", "revoke", str(_grant_id(world)), "--reason", "Breach of the agreement.")


def _by_api(world: Any, client: TestClient, run: Callable[..., Any]) -> None:
    for params in ({}, {"reason": ""}, {"reason": "   "}):  # a reason is required
        refused = client.delete(
            f"/api/v1/grants/{_grant_id(world)}",
            params=params,
            headers=world.headers("dac@example.org"),
        )
        assert refused.status_code == 422 and refused.json()["message_zh"], refused.text
    answer = client.delete(
        f"/api/v1/grants/{_grant_id(world)}",
        params={"reason": "Breach of the agreement."},
        headers=world.headers("dac@example.org"),
    )
    assert answer.status_code == 204, answer.text


def _by_expiry(world: Any, client: TestClient, run: Callable[..., Any]) -> None:
    # the grant's end date passes (the passport's visa was signed to outlive this moment)
    with world.factory() as session, session.begin():
        session.execute(
            update(grants)
            .where(grants.c.id == _grant_id(world))
            .values(expires_at=clock.now() - timedelta(seconds=1))
        )


@pytest.mark.parametrize("end", [_by_cli, _by_api, _by_expiry], ids=["cli", "api", "expiry"])
def test_a_grant_that_ends_closes_every_saved_path(
    world: Any,
    client: TestClient,
    genecommons_cli: Callable[..., Any],
    end: Callable[..., None],
) -> None:
    saved = _saved(client, world)
    end(world, client, genecommons_cli)
    statuses = _attempts(client, saved)
    assert statuses and all(status == 403 for status in statuses), statuses
    me = client.get("/api/v1/auth/me", headers=saved["passport"]).json()
    assert me["grants"] == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_revocation_refused_as_busy_says_so_and_did_not_happen(
    world: Any, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With another writer holding SQLite's write lock past the bound, DELETE answers 503 with
    Retry-After (not a 500), and the grant stays in force; sent again, it is revoked."""
    monkeypatch.setattr("genecommons.db.locking.BUSY_SECONDS", 0.2)
    grant = _grant_id(world)

    def revoke() -> Any:
        return client.delete(
            f"/api/v1/grants/{grant}",
            params={"reason": "Breach of the agreement."},
            headers=world.headers("dac@example.org"),
        )

    with write_transaction(world.factory):  # another writer, holding the write lock
        refused = revoke()
    assert refused.status_code == 503, refused.text
    assert refused.headers["Retry-After"] == "1"
    assert refused.json()["code"] == "busy" and refused.json()["message_zh"]
    assert [g["id"] for g in workflow.active_grants(world.factory, email=GRANTED)] == [grant]
    assert revoke().status_code == 204
    assert workflow.active_grants(world.factory, email=GRANTED) == []
