"""A claimed institution counts for nothing until someone who may vouch for it confirms it: a
data steward of that institution, an administrator, or an e-mail domain it declared. The
outside tester registered with `"institution": "GCO00000001"` and became an active researcher
of it, with a signed ResearcherStatus visa and the registered tier's counts."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from alembic import command
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select, update

from genecommons.access import affiliation, institution_service, notify, service
from genecommons.access.tables import affiliation_claims, users
from genecommons.app import create_app
from genecommons.catalog import service as catalog
from genecommons.config import Settings
from genecommons.db import node_database_key
from genecommons.errors import InvalidInputError
from genecommons.migrate import alembic_config, upgrade_node
from genecommons.policy.decision import decide
from genecommons.policy.models import Action, Resource, Subject

OPERATOR = Subject.operator("tester")
PASSWORD = "a long enough passphrase"


@pytest.fixture
def node(settings: Settings, sheets: Any, make_bundle: Any) -> Iterator[dict[str, Any]]:
    """A node (migrated as `genecommons init` does) with two verified institutions, a data
    steward at each, and a client."""
    upgrade_node(settings)
    app = create_app(settings)
    data = sheets()
    data["institutions"].append({**data["institutions"][0], "alias": "SHH", "name_en": "Other"})
    with TestClient(app) as client:
        factory = app.state.services.factory
        accessions = catalog.submit(factory, make_bundle(data), subject=OPERATOR).accessions
        bgc, shh = accessions["institutions"]["BGC"], accessions["institutions"]["SHH"]
        tokens = {}
        for email, institution in (("steward@bgc.example", bgc), ("steward@shh.example", shh)):
            service.add_user(
                factory,
                email=email,
                roles=["data_steward"],
                institution=institution,
                actor=OPERATOR,
            )
            tokens[email] = {
                "Authorization": "Bearer "
                + service.create_token(factory, email=email, actor=OPERATOR).token
            }
        service.add_user(
            factory, email="r@bgc.example", roles=["researcher"], institution=bgc, actor=OPERATOR
        )
        tokens["r@bgc.example"] = {
            "Authorization": "Bearer "
            + service.create_token(factory, email="r@bgc.example", actor=OPERATOR).token
        }
        for institution in (bgc, shh):
            institution_service.verify_institution(
                factory,
                institution=institution,
                foreign_controlled=False,
                attestation="letter of 2026-01-05",
                actor=OPERATOR,
            )
        yield {"client": client, "factory": factory, "bgc": bgc, "shh": shh, "tokens": tokens}
    app.state.services.engine.dispose()


def _register(client: TestClient, email: str, institution: str) -> str:
    """Register and verify `email` at `institution`; the status the verification answers."""
    answer = client.post(
        "/api/v1/auth/register",
        json={"email": email, "name": "Mallory", "password": PASSWORD, "institution": institution},
    )
    assert answer.status_code == 202, answer.text
    factory = client.app.state.services.factory  # type: ignore[attr-defined]
    mail = [m for m in notify.pending(factory) if m.recipient == email and "Verify" in m.subject]
    found = re.search(r"^    (\S+)$", mail[-1].body, re.MULTILINE)
    assert found
    verified = client.post(
        "/api/v1/auth/register/verify",
        json={"email": email, "code": found.group(1), "password": PASSWORD},
    )
    assert verified.status_code == 200, verified.text
    return str(verified.json()["status"])


def _sign_in(client: TestClient, email: str) -> Any:
    return client.post("/api/v1/auth/token", data={"username": email, "password": PASSWORD})


def _visa_types(passport: dict[str, Any]) -> list[str]:
    return sorted(
        json.loads(base64.urlsafe_b64decode(v.split(".")[1] + "=="))["ga4gh_visa_v1"]["type"]
        for v in passport["ga4gh_passport_v1"]
    )


def test_a_claimed_institution_counts_for_nothing_until_its_steward_confirms_it(
    node: dict[str, Any],
) -> None:
    client, factory, bgc = node["client"], node["factory"], node["bgc"]
    # the attack: the institution is verified, the claim is anyone's to make
    assert _register(client, "mallory@evil.example", bgc) == "awaiting_affiliation"
    refused = _sign_in(client, "mallory@evil.example")
    assert refused.status_code == 403 and refused.json()["message_zh"]
    with factory() as session:
        row = session.execute(
            select(users.c.institution_id, users.c.active).where(
                users.c.email == "mallory@evil.example"
            )
        ).one()
    assert row.institution_id is None and not row.active
    # another institution's steward does not see the claim, nor may act on it
    other = node["tokens"]["steward@shh.example"]
    assert client.get("/api/v1/affiliations", headers=other).json() == []
    own = node["tokens"]["steward@bgc.example"]
    (claim,) = client.get("/api/v1/affiliations", headers=own).json()
    assert (
        client.post(f"/api/v1/affiliations/{claim['id']}/confirm", headers=other).status_code == 404
    )
    # a researcher may not list or confirm claims at all
    researcher = node["tokens"]["r@bgc.example"]
    assert client.get("/api/v1/affiliations", headers=researcher).status_code == 403
    assert (
        client.post(f"/api/v1/affiliations/{claim['id']}/confirm", headers=researcher).status_code
        == 404
    )
    # the institution's own steward confirms: now the account is of it, and active
    confirmed = client.post(f"/api/v1/affiliations/{claim['id']}/confirm", headers=own)
    assert confirmed.status_code == 200 and confirmed.json()["active"] is True
    token = _sign_in(client, "mallory@evil.example").json()["access_token"]
    subject = service.authenticate(factory, token)
    assert subject.institution == bgc and subject.institution_verified


def test_a_rejected_claim_takes_its_unfinished_registration_with_it(node: dict[str, Any]) -> None:
    client, factory, bgc = node["client"], node["factory"], node["bgc"]
    _register(client, "mallory@evil.example", bgc)
    own = node["tokens"]["steward@bgc.example"]
    (claim,) = client.get("/api/v1/affiliations", headers=own).json()
    blank = client.delete(
        f"/api/v1/affiliations/{claim['id']}", params={"reason": " "}, headers=own
    )
    assert blank.status_code == 422
    rejected = client.delete(
        f"/api/v1/affiliations/{claim['id']}", params={"reason": "Not one of ours."}, headers=own
    )
    assert rejected.status_code == 204
    with factory() as session:
        assert (
            session.execute(
                select(users.c.id).where(users.c.email == "mallory@evil.example")
            ).first()
            is None
        )
    told = [m.subject for m in notify.pending(factory) if m.recipient == "mallory@evil.example"]
    assert told[-1] == "Your affiliation was not confirmed / 机构归属未获确认"


@pytest.mark.parametrize(
    ("email", "confirmed"),
    [
        ("li@bgc.org.cn", True),
        ("li@genomics.bgc.org.cn", True),  # a subdomain of a declared domain
        ("li@notbgc.org.cn", False),
        ("li@bgc.org.cn.evil.example", False),
        ("li@gmail.com", False),
    ],
)
def test_an_address_verified_at_a_declared_domain_confirms_the_claim(
    node: dict[str, Any], email: str, confirmed: bool
) -> None:
    client, factory, bgc = node["client"], node["factory"], node["bgc"]
    refused = client.put(
        f"/api/v1/institutions/{bgc}/email-domains",
        json={"domains": ["bgc.org.cn"]},
        headers=node["tokens"]["steward@bgc.example"],
    )
    assert refused.status_code == 403  # administrators declare domains
    affiliation.set_email_domains(factory, institution=bgc, domains=["@BGC.org.cn"], actor=OPERATOR)
    assert affiliation.email_domains(factory, institution=bgc, actor=OPERATOR) == ["bgc.org.cn"]
    status = _register(client, email, bgc)
    assert status == ("active" if confirmed else "awaiting_affiliation")


def test_declaring_a_domain_confirms_the_claims_waiting_at_it(node: dict[str, Any]) -> None:
    client, factory, bgc = node["client"], node["factory"], node["bgc"]
    assert _register(client, "wang@bgc.org.cn", bgc) == "awaiting_affiliation"
    assert _register(client, "mallory@evil.example", bgc) == "awaiting_affiliation"
    done = affiliation.set_email_domains(
        factory, institution=bgc, domains=["bgc.org.cn"], actor=OPERATOR
    )
    assert done["confirmed"] == ["wang@bgc.org.cn"]
    assert _sign_in(client, "wang@bgc.org.cn").status_code == 200
    assert _sign_in(client, "mallory@evil.example").status_code == 403
    with pytest.raises(InvalidInputError):
        affiliation.set_email_domains(
            factory, institution=bgc, domains=["not a domain"], actor=OPERATOR
        )


def test_an_account_registered_before_counts_its_claim_for_nothing(
    settings: Settings, sheets: Any, make_bundle: Any
) -> None:
    """An account an earlier version activated at the institution it named is, after the
    upgrade, at no institution until the claim is confirmed: no registered tier, no
    AffiliationAndRole or ResearcherStatus visa."""
    url = settings.effective_database_url
    upgrade_node(settings)
    app = create_app(settings)
    with TestClient(app) as client:
        factory = app.state.services.factory
        bgc = catalog.submit(factory, make_bundle(), subject=OPERATOR).accessions["institutions"][
            "BGC"
        ]
        institution_service.verify_institution(
            factory, institution=bgc, foreign_controlled=False, attestation="x", actor=OPERATOR
        )
        service.add_user(
            factory,
            email="early@evil.example",
            roles=["researcher"],
            institution=bgc,
            actor=OPERATOR,
            password=PASSWORD,
        )
        with factory() as session, session.begin():  # as the earlier registration left it
            session.execute(
                update(users)
                .where(users.c.email == "early@evil.example")
                .values(created_by="self-registration")
            )
        app.state.services.engine.dispose()
        command.downgrade(alembic_config(url, key=lambda: node_database_key(settings)), "0013")
        upgrade_node(settings)
        token = _sign_in(client, "early@evil.example").json()["access_token"]
        subject = service.authenticate(factory, token)
        assert subject.institution is None and not subject.institution_verified
        registered = Resource("dataset", accession="GCD00000001", tier="registered")
        assert not decide(subject, Action.READ_AGGREGATES, registered).allowed
        passport = client.get(
            "/api/v1/userinfo", headers={"Authorization": f"Bearer {token}"}
        ).json()
        assert _visa_types(passport) == []
        with factory() as session:
            (claim,) = session.execute(select(affiliation_claims)).all()
        affiliation.confirm(factory, claim_id=claim.id, actor=OPERATOR)
        passport = client.get(
            "/api/v1/userinfo", headers={"Authorization": f"Bearer {token}"}
        ).json()
        assert _visa_types(passport) == ["AffiliationAndRole", "ResearcherStatus"]
        assert service.authenticate(factory, token).institution_verified
    app.state.services.engine.dispose()


_LABELS = st.lists(
    st.from_regex(r"[a-z0-9]([a-z0-9-]{0,6}[a-z0-9])?", fullmatch=True)
    | st.sampled_from(["a", "b"]),
    min_size=1,
    max_size=4,
)


@given(declared=_LABELS.filter(lambda labels: len(labels) >= 2), host=_LABELS)
def test_an_address_is_at_a_domain_or_below_it_never_beside_it(
    declared: list[str], host: list[str]
) -> None:
    domain = affiliation.normalize_domain(".".join(declared))
    # the reference, label by label: the host's last labels are the domain's
    expected = host[-len(declared) :] == declared and len(host) >= len(declared)
    assert affiliation.email_at(f"x@{'.'.join(host)}", {domain}) is expected
    assert affiliation.email_at(f"x@{'.'.join(host)}.{domain}", {domain})
    assert affiliation.email_at(f"X@{domain.upper()}", {domain})


@pytest.mark.parametrize("junk", ["", "localhost", "a..b", "-a.b", "a_b.c", "exa mple.org", "@"])
def test_a_declared_domain_is_a_domain(junk: str) -> None:
    with pytest.raises(InvalidInputError):
        affiliation.normalize_domain(junk)
