"""The demo names a DAC; the node it is submitted to gets that DAC and a member account, once,
so that every journey (request, DAC decision, grant, download) can be walked on the demo."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pyotp
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from genecommons.access import committees, listings, service
from genecommons.app import create_app
from genecommons.archive import ingestion, keys_and_store
from genecommons.audit.service import signing_key
from genecommons.catalog import service as catalog
from genecommons.config import Settings
from genecommons.db import Base, node_engine
from genecommons.demo import commands, sheets
from genecommons.demo.cohort import write_demo
from genecommons.demo.service import DAC_MEMBER_EMAIL, DemoCommittee, ensure_committee
from genecommons.fingerprint import copy_jobs
from genecommons.fingerprint.secret import fingerprint_secret
from genecommons.policy.models import Subject

OPERATOR = Subject.operator("demo-test")


def test_the_committee_is_made_once_and_its_credentials_shown_once(
    factory: Any, settings: Settings
) -> None:
    first = ensure_committee(factory, settings, actor=OPERATOR)
    assert first.dac == sheets.DAC and first.dac_created and first.member_added
    assert first.password and first.totp_secret and first.totp_uri
    assert first.totp_uri.startswith("otpauth://totp/")
    again = ensure_committee(factory, settings, actor=OPERATOR)
    assert again == DemoCommittee(
        dac=sheets.DAC, dac_created=False, member=DAC_MEMBER_EMAIL, member_added=False
    )
    # nothing twice: one DAC, one account, one membership
    dacs = listings.list_dacs(factory, actor=OPERATOR, page=1, page_size=50)
    assert [d["alias"] for d in dacs.items] == [sheets.DAC]
    assert dacs.items[0]["members"] == [{"email": DAC_MEMBER_EMAIL, "chair": True}]
    accounts = [u["email"] for u in listings.list_users(factory, actor=OPERATOR).items]
    assert accounts.count(DAC_MEMBER_EMAIL) == 1
    # stored as any other account: a password hash and a sealed authenticator secret, with
    # which the member signs in (DAC members need both factors)
    issued = service.sign_in(
        factory,
        settings,
        email=DAC_MEMBER_EMAIL,
        password=first.password,
        address="127.0.0.1",
        otp=pyotp.TOTP(first.totp_secret).now(),
    )
    assert issued.token


def test_a_missing_membership_is_restored_without_new_credentials(
    factory: Any, settings: Settings
) -> None:
    committees.create_dac(factory, alias=sheets.DAC, name="made by hand", actor=OPERATOR)
    service.add_user(
        factory, email=DAC_MEMBER_EMAIL, roles=["dac_member"], institution=None, actor=OPERATOR
    )
    made = ensure_committee(factory, settings, actor=OPERATOR)
    assert not made.dac_created and made.member_added and made.password is None


def test_the_command_prints_the_credentials_the_first_time_only(
    factory: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[dict[str, Any]] = []

    def fake(factory_: Any, settings_: Any, *, actor: Subject) -> DemoCommittee:
        calls.append({"factory": factory_, "settings": settings_, "actor": actor})
        return ensure_committee(factory, settings, actor=actor)

    class Context:
        pass

    context = Context()
    context.factory, context.settings = factory, settings  # type: ignore[attr-defined]
    monkeypatch.setattr(commands, "runtime", lambda: context)
    monkeypatch.setattr(commands.service, "ensure_committee", fake)
    import typer

    app = typer.Typer()
    app.command("demo-committee")(commands.committee)
    app.command("other")(lambda: None)
    first = CliRunner().invoke(app, ["demo-committee"])
    assert first.exit_code == 0, first.output
    assert "password 密码: " in first.output and "TOTP secret" in first.output
    second = CliRunner().invoke(app, ["demo-committee"])
    assert second.exit_code == 0, second.output
    assert "password" not in second.output and "exist already" in second.output
    assert [c["factory"] for c in calls] == [factory, factory]
    assert all(c["actor"].kind == "operator" for c in calls)


@pytest.mark.slow
def test_request_decision_grant_and_download_on_the_demo(
    settings: Settings, tmp_path: Path
) -> None:
    engine = node_engine(settings)
    Base.metadata.create_all(engine)
    engine.dispose()
    signing_key(settings, create=True)  # as `genecommons init` does
    keys_and_store.archive_keys(settings, create=True)
    fingerprint_secret(settings, create=True)
    demo = write_demo(
        tmp_path / "demo", individuals=6, reference_individuals=0, sequence_length=20_000
    )
    app = create_app(settings)
    with TestClient(app) as client:
        factory = app.state.services.factory
        result = catalog.submit(
            factory,
            demo.out_dir,
            subject=OPERATOR,
            data_files=ingestion.BundleArchiver(settings, OPERATOR),
        )
        dataset = result.accessions["datasets"][sheets.DATASET]
        (file_id,) = result.accessions["files"].values()
        committee = ensure_committee(factory, settings, actor=OPERATOR)
        assert committee.password is not None and committee.totp_secret is not None
        center = result.accessions["institutions"][sheets.CENTER]
        service.add_user(
            factory,
            email="li.wei@demo.cn",
            roles=["researcher"],
            institution=center,
            actor=OPERATOR,
        )
        researcher = {
            "Authorization": "Bearer "
            + service.create_token(factory, email="li.wei@demo.cn", actor=OPERATOR).token
        }
        purpose = {
            "title": "Height and type 2 diabetes",
            "summary": "Association of height and T2D in the demo cohort.",
            "institution": sheets.CENTER,
            "country": "CN",
            "biomedical": True,
            "ethics_approval": True,
        }
        body = {"purpose": purpose, "datasets": [dataset], "agreement_version": sheets.POLICY}
        created = client.post("/api/v1/requests", json=body, headers=researcher)
        assert created.status_code == 201, created.text
        # before the demo had its committee, this was refused: no DAC could decide it
        assert created.json()["datasets"][0]["status"] == "pending", created.text

        signed_in = client.post(
            "/api/v1/auth/token",
            data={
                "username": committee.member,
                "password": committee.password,
                "otp": pyotp.TOTP(committee.totp_secret).now(),
            },
        )
        assert signed_in.status_code == 200, signed_in.text
        member = {"Authorization": f"Bearer {signed_in.json()['access_token']}"}
        queue = client.get("/api/v1/dac/queue", headers=member).json()
        assert [q["dataset"] for q in queue] == [dataset]
        decided = client.post(
            "/api/v1/dac/decisions",
            json={"item": queue[0]["item"], "approve": True, "reason": "Fits the consent."},
            headers=member,
        )
        assert decided.status_code == 200 and decided.json()["grant"], decided.text
        grants = client.get("/api/v1/grants", headers=researcher).json()
        assert [g["dataset"] for g in grants] == [dataset]

        queued = client.get(f"/ga4gh/drs/v1/objects/{file_id}", headers=researcher)
        assert queued.status_code == 202, queued.text
        assert copy_jobs.build_pending(factory, settings).built == 1
        released = client.get(f"/ga4gh/drs/v1/objects/{file_id}", headers=researcher)
        assert released.status_code == 200, released.text
    app.state.services.engine.dispose()


@pytest.mark.slow
def test_make_runs_path_twice_makes_the_committee_once(
    tmp_path: Path, genecommons_cli: Any
) -> None:
    """`make run`'s commands, twice, as processes of their own: the credentials are printed
    the first time only, and the committee is listed with its one member."""
    env = {
        **os.environ,
        "GENECOMMONS_DATA_DIR": str(tmp_path / "data"),
        "GENECOMMONS_ENVIRONMENT": "development",
    }
    env.pop("GENECOMMONS_DATABASE_URL", None)
    demo = tmp_path / "demo"
    genecommons_cli(
        env,
        "demo",
        "--out",
        str(demo),
        "--individuals",
        "6",
        "--reference-individuals",
        "0",
        "--length",
        "20000",
    )
    printed = []
    for _ in range(2):
        genecommons_cli(env, "init")
        genecommons_cli(env, "submit", str(demo))
        printed.append(genecommons_cli(env, "demo-committee").stdout)
    assert "password 密码: " in printed[0] and "otpauth://totp/" in printed[0]
    assert "password" not in printed[1] and "exist already" in printed[1]
    listed = json.loads(genecommons_cli(env, "dac", "list", "--json").stdout)
    assert [(d["alias"], d["members"]) for d in listed["items"]] == [
        (sheets.DAC, [{"email": DAC_MEMBER_EMAIL, "chair": True}])
    ]
    users = json.loads(genecommons_cli(env, "users", "list", "--json").stdout)["items"]
    assert [u["email"] for u in users].count(DAC_MEMBER_EMAIL) == 1
    member = json.loads(genecommons_cli(env, "users", "show", DAC_MEMBER_EMAIL, "--json").stdout)
    assert member["roles"] == ["dac_member"] and member["authenticator"] is True
