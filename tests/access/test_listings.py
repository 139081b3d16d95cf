"""Listings of institutions, DACs, requests, grants, tokens and accounts: each caller sees what
the decision point lets them know of, and nothing else (not even that it exists); the CLI lists
and shows each, the HTTP API where it has routes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from rich.console import Console
from typer.testing import CliRunner

from genecommons.access import (
    affiliation,
    commands,
    committees,
    institution_service,
    listings,
    service,
    workflow,
)
from genecommons.access.duo_models import ResearchPurpose
from genecommons.app import create_app
from genecommons.archive.holdings import archived_here
from genecommons.catalog import service as catalog
from genecommons.catalog.service import Page
from genecommons.cli import app as cli_app
from genecommons.config import Settings
from genecommons.db import Base, node_engine
from genecommons.errors import (
    AccessDeniedError,
    AuthenticationError,
    InvalidInputError,
    NotFoundError,
)
from genecommons.policy.models import Subject

OPERATOR = Subject.operator("listings")
RES, OTHER, DAC, ADMIN, AUDITOR = (
    "res@example.org",
    "other@example.org",
    "dac@example.org",
    "admin@example.org",
    "auditor@example.org",
)
ROLES = {
    RES: "researcher",
    OTHER: "researcher",
    DAC: "dac_member",
    ADMIN: "admin",
    AUDITOR: "auditor",
}


@dataclass
class World:
    """A submitted catalog (institution BGC, verified; dataset DS1 of the BGC DAC), an account
    per role, a request of each researcher (RES's approved: a grant), and a token each."""

    factory: Any
    institution: str
    dataset: str
    subjects: dict[str, Subject]
    requests: dict[str, int]
    grant: int
    tokens: dict[str, int]
    bearer: dict[str, str]


def _purpose() -> ResearchPurpose:
    return ResearchPurpose(
        title="Hearing loss genetics",
        summary="Find variants.",
        institution="BGC",
        country="CN",
        biomedical=True,
        genetic_research=True,
        ethics_approval=True,
    )


def build_world(factory: Any, bundle: Any) -> World:
    result = catalog.submit(factory, bundle, subject=OPERATOR)
    institution = result.accessions["institutions"]["BGC"]
    dataset = result.accessions["datasets"]["DS1"]
    subjects, tokens, bearer = {}, {}, {}
    for email, role in ROLES.items():
        service.add_user(
            factory, email=email, roles=[role], institution=institution, actor=OPERATOR
        )
        subjects[email] = Subject.user(email, roles=frozenset({role}), institution=institution)
        issued = service.create_token(factory, email=email, actor=OPERATOR, label=f"{role} key")
        tokens[email], bearer[email] = issued.id, issued.token
    committees.create_dac(factory, alias="BGC DAC", name="BGC committee", actor=OPERATOR)
    committees.add_member(factory, dac="BGC DAC", email=DAC, chair=True, actor=OPERATOR)
    institution_service.verify_institution(
        factory,
        institution=institution,
        foreign_controlled=False,
        attestation="ownership declaration of 2026-01-05",
        actor=OPERATOR,
    )
    affiliation.set_email_domains(
        factory, institution=institution, domains=["bgc.cn"], actor=OPERATOR
    )
    requests = {}
    for email in (RES, OTHER):
        requests[email], _ = workflow.request_access(
            factory,
            actor=subjects[email],
            purpose=_purpose(),
            datasets=[dataset],
            agreement_version="DAA v1",
            archived_here=archived_here,
        )
    item = workflow.get_request(factory, requests[RES], actor=OPERATOR)["datasets"][0]["id"]
    grant = workflow.decide_request(
        factory, item_id=item, approve=True, reason="fits", actor=subjects[DAC]
    )
    assert grant is not None
    return World(factory, institution, dataset, subjects, requests, grant, tokens, bearer)


@pytest.fixture
def world(factory: Any, make_bundle: Any) -> World:
    return build_world(factory, make_bundle())


PUBLIC_INSTITUTION = {
    "accession",
    "alias",
    "name_en",
    "name_zh",
    "country",
    "province",
    "city",
    "kind",
}


def test_anyone_sees_an_institution_administrators_see_its_verification(world: World) -> None:
    for caller in (Subject.anonymous(), world.subjects[RES], world.subjects[DAC]):
        (shown,) = listings.list_institutions(world.factory, actor=caller).items
        assert set(shown) == PUBLIC_INSTITUTION
        assert shown["accession"] == world.institution and shown["country"] == "CN"
        assert listings.get_institution(world.factory, world.institution, actor=caller) == shown
    for caller in (OPERATOR, world.subjects[ADMIN]):
        (shown,) = listings.list_institutions(world.factory, actor=caller).items
        assert set(shown) == PUBLIC_INSTITUTION | {"verification", "email_domains"}
        assert shown["verification"]["verified"] is True
        assert shown["verification"]["attestation"] == "ownership declaration of 2026-01-05"
        assert shown["verification"]["verified_by"] == OPERATOR.id
        assert shown["email_domains"] == ["bgc.cn"]
    # an administrator's token scoped away from verifying institutions sees what anyone sees
    scoped = Subject.user(
        ADMIN,
        roles=frozenset({"admin"}),
        institution=None,
        scopes=frozenset({"catalog:metadata:read"}),
    )
    (shown,) = listings.list_institutions(world.factory, actor=scoped).items
    assert set(shown) == PUBLIC_INSTITUTION
    with pytest.raises(NotFoundError):
        listings.get_institution(world.factory, "GCO99999999", actor=OPERATOR)


def _ids(page: Any) -> list[int]:
    return [item["id"] for item in page.items]


def test_a_researcher_sees_only_their_own_requests_grants_and_tokens(world: World) -> None:
    res, other = world.subjects[RES], world.subjects[OTHER]
    assert _ids(listings.list_requests(world.factory, actor=res)) == [world.requests[RES]]
    assert _ids(listings.list_requests(world.factory, actor=other)) == [world.requests[OTHER]]
    assert listings.list_requests(world.factory, actor=other).total == 1
    assert _ids(listings.list_grants(world.factory, actor=res)) == [world.grant]
    assert listings.list_grants(world.factory, actor=other).items == []
    assert listings.list_grants(world.factory, actor=other).total == 0
    # naming another's account narrows, it never widens
    assert listings.list_grants(world.factory, actor=other, holder=RES).items == []
    assert listings.list_requests(world.factory, actor=other, requester=RES).items == []
    assert _ids(listings.list_tokens(world.factory, actor=res)) == [world.tokens[RES]]
    assert listings.list_tokens(world.factory, actor=other, user=RES).items == []
    # by id, another's record is answered as a missing one
    for ask, ident, missing in (
        (listings.get_grant, world.grant, 999_999),
        (listings.get_token, world.tokens[RES], 999_999),
    ):
        with pytest.raises(NotFoundError) as hidden:
            ask(world.factory, ident, actor=other)
        with pytest.raises(NotFoundError) as absent:
            ask(world.factory, missing, actor=other)
        assert hidden.value.message.replace(str(ident), "#") == absent.value.message.replace(
            str(missing), "#"
        )
        assert hidden.value.refusal is not None and absent.value.refusal is None
    assert listings.get_grant(world.factory, world.grant, actor=res)["status"] == "active"
    token = listings.get_token(world.factory, world.tokens[RES], actor=res)
    assert token["user"] == RES and token["label"] == "researcher key"
    assert not {"digest", "token"} & set(token)


def test_reviewers_and_watchers_see_what_they_look_after(world: World) -> None:
    both = sorted(world.requests.values())
    dac, admin, auditor = (world.subjects[e] for e in (DAC, ADMIN, AUDITOR))
    assert _ids(listings.list_requests(world.factory, actor=dac)) == both
    assert _ids(listings.list_grants(world.factory, actor=dac)) == [world.grant]
    for watcher in (admin, auditor, OPERATOR):
        assert _ids(listings.list_requests(world.factory, actor=watcher)) == both
        assert _ids(listings.list_grants(world.factory, actor=watcher)) == [world.grant]
    # tokens: their owner and administrators only
    assert _ids(listings.list_tokens(world.factory, actor=dac)) == [world.tokens[DAC]]
    assert _ids(listings.list_tokens(world.factory, actor=auditor)) == [world.tokens[AUDITOR]]
    assert _ids(listings.list_tokens(world.factory, actor=admin)) == sorted(world.tokens.values())


def test_anonymous_lists_nothing_of_anyone(world: World) -> None:
    for listing in (listings.list_requests, listings.list_grants, listings.list_tokens):
        with pytest.raises(AuthenticationError):
            listing(world.factory, actor=Subject.anonymous())


def test_accounts_and_committee_rosters(world: World) -> None:
    res, admin, dac = (world.subjects[e] for e in (RES, ADMIN, DAC))
    everyone = listings.list_users(world.factory, actor=admin)
    assert [u["email"] for u in everyone.items] == list(ROLES)
    with pytest.raises(AccessDeniedError):
        listings.list_users(world.factory, actor=res)
    assert listings.get_user(world.factory, RES, actor=res)["roles"] == ["researcher"]
    with pytest.raises(NotFoundError):
        listings.get_user(world.factory, OTHER, actor=res)
    # the committee's name is no secret (datasets name it); its roster is
    (shown,) = listings.list_dacs(world.factory, actor=res).items
    assert shown["alias"] == "BGC DAC" and "members" not in shown
    for caller in (dac, admin, OPERATOR):
        roster = listings.get_dac(world.factory, "BGC DAC", actor=caller)["members"]
        assert roster == [{"email": DAC, "chair": True}]


def test_paging_is_the_catalogs(world: World) -> None:
    first = listings.list_tokens(world.factory, actor=OPERATOR, page=1, page_size=2)
    second = listings.list_tokens(world.factory, actor=OPERATOR, page=2, page_size=2)
    last = listings.list_tokens(world.factory, actor=OPERATOR, page=3, page_size=2)
    assert first.total == second.total == last.total == len(ROLES)
    assert _ids(first) + _ids(second) + _ids(last) == sorted(world.tokens.values())
    assert (first.page, first.page_size, len(last.items)) == (1, 2, 1)
    for page, size in ((0, 10), (1, 0), (1, 1001)):
        with pytest.raises(InvalidInputError):
            listings.list_institutions(world.factory, actor=OPERATOR, page=page, page_size=size)


def test_grants_in_force_and_ended(world: World) -> None:
    workflow.revoke_grant(world.factory, grant_id=world.grant, reason="ended", actor=OPERATOR)
    assert listings.list_grants(world.factory, actor=OPERATOR, in_force=True).items == []
    (ended,) = listings.list_grants(world.factory, actor=OPERATOR).items
    assert ended["status"] == "revoked" and ended["revoked_at"]


# --- the CLI: rich tables on a terminal, --json for scripts -----------------------------------


@pytest.fixture
def cli(world: World, monkeypatch: pytest.MonkeyPatch) -> Any:
    context = type("Context", (), {"factory": world.factory})()
    monkeypatch.setattr(commands, "runtime", lambda: context)
    monkeypatch.setattr(commands, "console", Console(width=250))  # cells unwrapped
    runner = CliRunner()

    def run(*args: str) -> str:
        done = runner.invoke(cli_app, list(args))
        assert done.exit_code == 0, done.output
        return done.output

    return run


def test_the_cli_lists_and_shows_every_kind(world: World, cli: Any) -> None:
    listed = json.loads(cli("institutions", "list", "--json"))
    assert listed["total"] == 1 and listed["page"] == 1 and listed["page_size"] == 50
    assert listed["items"][0]["verification"]["verified"] is True  # the operator sees it
    shown = json.loads(cli("institutions", "show", world.institution, "--json"))
    assert shown == listed["items"][0]
    assert world.institution in cli("institutions", "list")
    assert "ownership declaration" in cli("institutions", "show", world.institution)
    assert [d["alias"] for d in json.loads(cli("dac", "list", "--json"))["items"]] == ["BGC DAC"]
    assert f"{DAC} (chair)" in cli("dac", "list")
    assert "BGC committee" in cli("dac", "show", "BGC DAC")
    requests = json.loads(cli("requests", "list", "--json"))["items"]
    assert [r["id"] for r in requests] == sorted(world.requests.values())
    mine = json.loads(cli("requests", "list", "--requester", OTHER, "--json"))["items"]
    assert [r["requester"] for r in mine] == [OTHER]
    assert (
        json.loads(cli("requests", "show", str(world.requests[RES]), "--json"))["requester"] == RES
    )
    grants = json.loads(cli("grants", "list", RES, "--json"))["items"]
    assert [g["id"] for g in grants] == [world.grant]
    assert json.loads(cli("grants", "show", str(world.grant), "--json"))["holder"] == RES
    tokens = json.loads(cli("tokens", "list", "--user", RES, "--json"))["items"]
    assert [t["id"] for t in tokens] == [world.tokens[RES]]
    assert "researcher key" in cli("tokens", "show", str(world.tokens[RES]))
    users = json.loads(cli("users", "list", "--page-size", "2", "--page", "2", "--json"))
    assert [u["email"] for u in users["items"]] == [DAC, ADMIN] and users["total"] == 5
    assert json.loads(cli("users", "show", RES, "--json"))["institution"] == world.institution


def test_the_cli_forwards_what_it_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []

    def fake(factory: Any, **kwargs: Any) -> Any:
        calls.append(kwargs)
        return Page([], 0, kwargs["page"], kwargs["page_size"])

    monkeypatch.setattr(commands, "runtime", lambda: type("C", (), {"factory": None})())
    monkeypatch.setattr(commands.listings, "list_grants", fake)
    done = CliRunner().invoke(
        cli_app, ["grants", "list", "x@example.org", "--all", "--page", "3", "--page-size", "7"]
    )
    assert done.exit_code == 0, done.output
    (call,) = calls
    assert call["holder"] == "x@example.org" and call["in_force"] is False
    assert (call["page"], call["page_size"]) == (3, 7)
    assert call["actor"].kind == "operator"


# --- the HTTP API --------------------------------------------------------------------------


def test_the_api_lists_institutions_requests_and_shows_grants(
    settings: Settings, make_bundle: Any
) -> None:
    engine = node_engine(settings)
    Base.metadata.create_all(engine)
    engine.dispose()
    app = create_app(settings)
    with TestClient(app) as client:
        world = build_world(app.state.services.factory, make_bundle())
        bearer = {e: {"Authorization": f"Bearer {t}"} for e, t in world.bearer.items()}
        anonymous = client.get("/api/v1/institutions")
        assert anonymous.status_code == 200, anonymous.text
        body = anonymous.json()
        assert (body["total"], body["page"], body["page_size"]) == (1, 1, 50)
        assert set(body["items"][0]) == PUBLIC_INSTITUTION
        one = client.get(f"/api/v1/institutions/{world.institution}")
        assert one.status_code == 200 and one.json() == body["items"][0]
        assert client.get("/api/v1/institutions/GCO99999999").status_code == 404
        admin = client.get("/api/v1/institutions", headers=bearer[ADMIN]).json()["items"][0]
        assert admin["verification"]["verified"] is True and admin["email_domains"] == ["bgc.cn"]
        assert (
            "verification"
            not in client.get(
                f"/api/v1/institutions/{world.institution}", headers=bearer[RES]
            ).json()
        )

        mine = client.get("/api/v1/requests", headers=bearer[OTHER])
        assert mine.status_code == 200, mine.text
        assert [r["id"] for r in mine.json()["items"]] == [world.requests[OTHER]]
        assert mine.json()["total"] == 1
        assert client.get("/api/v1/requests").status_code == 401
        assert client.get("/api/v1/requests", params={"page_size": 0}).status_code == 422

        shown = client.get(f"/api/v1/grants/{world.grant}", headers=bearer[RES])
        assert shown.status_code == 200 and shown.json()["dataset"] == world.dataset
        hidden = client.get(f"/api/v1/grants/{world.grant}", headers=bearer[OTHER])
        absent = client.get("/api/v1/grants/999999", headers=bearer[OTHER])
        assert hidden.status_code == absent.status_code == 404
        assert (
            client.get(f"/api/v1/grants/{world.grant}", headers=bearer[AUDITOR]).status_code == 200
        )
    app.state.services.engine.dispose()
