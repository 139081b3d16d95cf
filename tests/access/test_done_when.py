"""The access issue's "Done when", end to end through the HTTP API: a researcher registers,
requests access, a DAC member approves, the researcher receives a passport whose visas verify
against this node's JWKS, and is refused, with the reason, when the consent (DUO), the tier or
the jurisdiction says no."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import KeySet

from genecommons.access import affiliation, committees, institution_service, notify, service
from genecommons.app import create_app
from genecommons.archive import ingestion, keys_and_store
from genecommons.audit.service import signing_key
from genecommons.catalog import service as catalog
from genecommons.config import Settings
from genecommons.db import Base, node_engine
from genecommons.fingerprint import copy_jobs
from genecommons.fingerprint.secret import fingerprint_secret
from genecommons.policy.models import Subject

OPERATOR = Subject.operator("done-when")
PASSWORD = "correct horse battery staple"
PURPOSE = {
    "title": "Genetic causes of hearing loss",
    "summary": "Variant discovery in families with hearing loss.",
    "institution": "BGC",
    "country": "CN",
    "biomedical": True,
    "ethics_approval": True,
}


def register_and_sign_in(client: TestClient, factory: Any, email: str, institution: str) -> dict:
    """Register over HTTP, verify the e-mailed code, sign in; the bearer header."""
    answer = client.post(
        "/api/v1/auth/register",
        json={
            "email": email,
            "name": "Researcher",
            "password": PASSWORD,
            "institution": institution,
        },
    )
    assert answer.status_code == 202, answer.text
    mail = [m for m in notify.pending(factory) if m.recipient == email][-1]
    code = re.search(r"^    (\S+)$", mail.body, re.MULTILINE)
    assert code is not None
    verified = client.post(
        "/api/v1/auth/register/verify",
        json={"email": email, "code": code.group(1), "password": PASSWORD},
    )
    assert verified.status_code == 200 and verified.json()["status"] == "active", verified.text
    signed_in = client.post("/api/v1/auth/token", data={"username": email, "password": PASSWORD})
    assert signed_in.status_code == 200, signed_in.text
    return {"Authorization": f"Bearer {signed_in.json()['access_token']}"}


@pytest.mark.slow
def test_register_request_approve_passport_and_three_refusals(
    settings: Settings, make_bundle: Any, datafiles: Any, tmp_path: Path
) -> None:
    engine = node_engine(settings)
    Base.metadata.create_all(engine)
    engine.dispose()
    signing_key(settings, create=True)
    keys_and_store.archive_keys(settings, create=True)
    fingerprint_secret(settings, create=True)  # as `genecommons init` does
    folder = tmp_path / "files"
    folder.mkdir()
    vcf = datafiles.vcf(folder / "calls.vcf.gz", records=50)
    data = datafiles.sheets(folder, vcf=vcf, bam=None)
    data["institutions"].append(
        {"alias": "OXF", "name_en": "University of Oxford", "country": "GB", "kind": "university"}
    )
    bundle = make_bundle(data)
    shutil.copy(vcf, bundle / vcf.name)
    app = create_app(settings)
    with TestClient(app) as client:
        factory = app.state.services.factory
        result = catalog.submit(
            factory,
            bundle,
            subject=OPERATOR,
            data_files=ingestion.BundleArchiver(settings, OPERATOR),
        )
        dataset = result.accessions["datasets"]["DS1"]  # controlled; consent HMB, NPU
        file_id = result.accessions["files"]["calls.vcf.gz"]
        bgc, oxf = (result.accessions["institutions"][a] for a in ("BGC", "OXF"))
        for accession in (bgc, oxf):  # the administrator verifies both institutions
            institution_service.verify_institution(
                factory,
                institution=accession,
                foreign_controlled=False,
                attestation="registration certificate and ownership declaration",
                actor=OPERATOR,
            )
        # each declares its e-mail domain: an address verified at it confirms the affiliation
        affiliation.set_email_domains(factory, institution=bgc, domains=["bgc.cn"], actor=OPERATOR)
        affiliation.set_email_domains(
            factory, institution=oxf, domains=["ox.ac.uk"], actor=OPERATOR
        )
        committees.create_dac(factory, alias="BGC DAC", name="BGC access committee", actor=OPERATOR)
        service.add_user(
            factory, email="dac@bgc.cn", roles=["dac_member"], institution=bgc, actor=OPERATOR
        )
        committees.add_member(
            factory, dac="BGC DAC", email="dac@bgc.cn", chair=True, actor=OPERATOR
        )
        dac = {
            "Authorization": "Bearer "
            + service.create_token(factory, email="dac@bgc.cn", actor=OPERATOR).token
        }

        # 1. a researcher registers and signs in
        researcher = register_and_sign_in(client, factory, "li.wei@bgc.cn", bgc)

        # the tier says no: record-level data of a controlled dataset needs a grant
        tier = client.get(f"/ga4gh/drs/v1/objects/{file_id}", headers=researcher)
        assert tier.status_code == 403, tier.text
        assert "needs an approved, unexpired access grant" in tier.json()["message"]
        assert tier.json()["details"]["rule"] == "no-grant"
        assert "访问授权" in tier.json()["message_zh"]

        # 2. requests access; 3. a DAC member approves
        body = {"purpose": PURPOSE, "datasets": [dataset], "agreement_version": "DAA v2.0"}
        created = client.post("/api/v1/requests", json=body, headers=researcher)
        assert created.status_code == 201, created.text
        assert created.json()["datasets"][0]["status"] == "pending"
        queue = client.get("/api/v1/dac/queue", headers=dac).json()
        assert [q["dataset"] for q in queue] == [dataset]
        decided = client.post(
            "/api/v1/dac/decisions",
            json={"item": queue[0]["item"], "approve": True, "reason": "Purpose fits the consent."},
            headers=dac,
        )
        assert decided.status_code == 200 and decided.json()["grant"], decided.text

        # 4. the passport: a ControlledAccessGrants visa for the dataset, signed by a key of
        # this node's JWKS
        passport = client.get("/api/v1/userinfo", headers=researcher).json()
        jwks = KeySet.import_key_set(client.get("/.well-known/jwks.json").json())
        required = {"essential": True}
        claims_check = jwt.JWTClaimsRegistry(
            iss={"essential": True, "value": settings.issuer_url},
            exp=required,
            iat=required,
            sub=required,
        )
        visas = []
        for token in passport["ga4gh_passport_v1"]:
            visa = jwt.decode(token, jwks, algorithms=["RS256"])  # the key named by its kid
            claims_check.validate(visa.claims)
            visas.append(visa.claims)
        assert {v["sub"] for v in visas} == {"li.wei@bgc.cn"}  # every visa names the researcher
        grants = [
            v["ga4gh_visa_v1"]
            for v in visas
            if v["ga4gh_visa_v1"]["type"] == "ControlledAccessGrants"
        ]
        assert [g["value"] for g in grants] == [f"{settings.issuer_url}/datasets/{dataset}"]
        assert grants[0]["by"] == "dac"
        # and the data itself is now released to the researcher: their fingerprinted copy is
        # queued (DRS 202), made by the node's builder, then described
        queued = client.get(f"/ga4gh/drs/v1/objects/{file_id}", headers=researcher)
        assert queued.status_code == 202 and queued.headers["retry-after"], queued.text
        assert copy_jobs.build_pending(factory, settings).built == 1
        released = client.get(f"/ga4gh/drs/v1/objects/{file_id}", headers=researcher)
        assert released.status_code == 200, released.text

        # the consent says no: a for-profit institution breaks the dataset's NPU
        commercial = {**body, "purpose": {**PURPOSE, "for_profit_institution": True}}
        duo = client.post("/api/v1/requests", json=commercial, headers=researcher).json()
        outcome = duo["datasets"][0]
        assert outcome["status"] == "rejected" and outcome["verdict"] == "incompatible"
        assert any("NPU" in v for v in outcome["violated"]), outcome["violated"]
        assert any("NPU" in r for r in outcome["reasons_en"]) and outcome["reasons_zh"]

        # the jurisdiction says no: a researcher of a foreign institution, and a consent that
        # forbids provision abroad
        foreigner = register_and_sign_in(client, factory, "j.smith@ox.ac.uk", oxf)
        abroad = {**body, "purpose": {**PURPOSE, "institution": "OXF", "country": "GB"}}
        refused = client.post("/api/v1/requests", json=abroad, headers=foreigner).json()
        outcome = refused["datasets"][0]
        assert outcome["status"] == "rejected" and outcome["verdict"] != "incompatible"
        assert "consent-no-abroad" in outcome["jurisdiction_rules"]
        assert any("abroad" in r for r in outcome["reasons_en"]), outcome["reasons_en"]
        assert client.get("/api/v1/grants", headers=foreigner).json() == []
    app.state.services.engine.dispose()
