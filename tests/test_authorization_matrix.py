"""The authorization matrix: every route x every role, and x every dataset tier for the routes
that name a dataset.

The expected outcome of each route is declared below; the test enumerates the application's
route table, so a route added without a rule here fails it.
"""

from __future__ import annotations

import base64
import io
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pysam
from fastapi.testclient import TestClient
from sqlalchemy import select

from genecommons.access import committees, registration, service, workflow
from genecommons.access.duo_models import ResearchPurpose
from genecommons.access.tables import affiliation_claims, users
from genecommons.app import create_app
from genecommons.archive import ingestion, uploads
from genecommons.archive.holdings import archived_here
from genecommons.catalog import service as catalog
from genecommons.config import Settings
from genecommons.db import Base, node_engine
from genecommons.node_init import create_node_secrets
from genecommons.policy.models import Role, Subject
from genecommons.variants import service as variants_service
from genecommons.variants.beacon import CROSS_LOOKUPS, ENTRY_TYPES

OPERATOR = Subject.operator("matrix")
ROLES = ["anonymous", *(r.value for r in Role)]
TIERS = ["open", "registered", "controlled"]
SIGNED_IN = set(ROLES) - {"anonymous"}
STEWARDS = {"data_steward", "admin"}

# route -> the roles allowed (the others must be refused with 401, 403 or 404)
EXPECTED: dict[tuple[str, str], set[str]] = {
    ("GET", "/api/v1/schemas/{entity}"): set(ROLES),
    ("POST", "/api/v1/submissions"): {"submitter"} | STEWARDS,
    ("GET", "/api/v1/submissions"): STEWARDS,
    ("GET", "/api/v1/studies"): set(ROLES),
    ("GET", "/api/v1/studies/{accession}"): set(ROLES),
    ("GET", "/api/v1/datasets"): set(ROLES),
    ("GET", "/api/v1/datasets/{accession}"): set(ROLES),
    ("GET", "/api/v1/individuals"): STEWARDS,
    ("GET", "/api/v1/individuals/{accession}"): STEWARDS,
    ("GET", "/api/v1/samples"): STEWARDS,
    ("GET", "/api/v1/samples/{accession}"): STEWARDS,
    ("POST", "/api/v1/auth/token"): set(ROLES),
    # OIDC sign-in, registration: open to all (each reaches its own check, see the test)
    ("GET", "/api/v1/auth/oidc/login"): set(ROLES),
    ("GET", "/api/v1/auth/oidc/callback"): set(ROLES),
    ("POST", "/api/v1/auth/oidc/second-factor"): set(ROLES),
    ("POST", "/api/v1/auth/register"): set(ROLES),
    ("POST", "/api/v1/auth/register/verify"): set(ROLES),
    ("GET", "/api/v1/auth/me"): SIGNED_IN,
    ("POST", "/api/v1/tokens"): SIGNED_IN,
    ("DELETE", "/api/v1/tokens/{token_id}"): SIGNED_IN,
    ("POST", "/api/v1/requests"): {"researcher"},
    # each sees the requests they may know of (a page of none for most)
    ("GET", "/api/v1/requests"): SIGNED_IN,
    ("GET", "/api/v1/requests/{request_id}"): {"researcher", "dac_member", "admin", "auditor"},
    ("GET", "/api/v1/dac/queue"): SIGNED_IN,
    ("POST", "/api/v1/dac/decisions"): {"dac_member"},
    ("GET", "/api/v1/grants"): SIGNED_IN,
    ("GET", "/api/v1/grants/{grant_id}"): {"researcher", "dac_member", "admin", "auditor"},
    ("DELETE", "/api/v1/grants/{grant_id}"): {"dac_member", "admin"},
    ("GET", "/api/v1/institutions"): set(ROLES),
    ("GET", "/api/v1/institutions/{accession}"): set(ROLES),
    ("GET", "/api/v1/institutions/{accession}/email-domains"): {"admin"},
    ("PUT", "/api/v1/institutions/{accession}/email-domains"): {"admin"},
    # claims to the institution: its data steward (all roles are at BGC here) and admins
    ("GET", "/api/v1/affiliations"): {"data_steward", "admin"},
    ("POST", "/api/v1/affiliations/{claim_id}/confirm"): {"data_steward", "admin"},
    ("DELETE", "/api/v1/affiliations/{claim_id}"): {"data_steward", "admin"},
    ("GET", "/api/v1/compliance/report"): {"auditor", "admin", "data_steward"},
    ("GET", "/api/v1/privacy/reports/{dataset}"): {"auditor", "admin", "data_steward"},
    ("GET", "/api/v1/audit/sth"): set(ROLES),
    ("GET", "/api/v1/audit/proof/inclusion"): set(ROLES),
    ("GET", "/api/v1/audit/proof/consistency"): set(ROLES),
    ("GET", "/api/v1/audit/public-key"): set(ROLES),
    ("GET", "/api/v1/audit/entries"): {"auditor", "admin"},
    ("GET", "/api/v1/audit/get-entries"): {"auditor", "admin"},
    ("GET", "/api/v1/audit/alerts"): {"auditor", "admin"},
    ("GET", "/.well-known/jwks.json"): set(ROLES),
    ("GET", "/api/v1/userinfo"): SIGNED_IN,
    ("POST", "/api/v1/uploads"): STEWARDS,  # the files were declared by the operator
    ("GET", "/api/v1/uploads/{upload_id}"): {"data_steward"},  # the uploader only
    ("PATCH", "/api/v1/uploads/{upload_id}"): {"data_steward"},
    ("POST", "/api/v1/uploads/{upload_id}/complete"): {"data_steward"},
    ("GET", "/api/v1/files"): STEWARDS,
    ("GET", "/api/v1/archive/public-key"): set(ROLES),
    ("PUT", "/api/v1/me/crypt4gh-key"): SIGNED_IN,
    ("GET", "/ga4gh/drs/v1/service-info"): set(ROLES),
    # file data: the holder of a grant (the researcher, granted on the tier's dataset) only
    ("GET", "/ga4gh/drs/v1/objects/{object_id}"): {"researcher"},
    ("GET", "/ga4gh/drs/v1/objects/{object_id}/access/{access_id}"): {"researcher"},
    ("GET", "/ga4gh/drs/v1/objects/{object_id}/download"): {"researcher"},
    ("POST", "/ga4gh/drs/v1/objects/{object_id}"): {"researcher"},
    ("POST", "/ga4gh/drs/v1/objects/{object_id}/access/{access_id}"): {"researcher"},
    ("POST", "/ga4gh/drs/v1/objects"): {"researcher"},
    ("POST", "/ga4gh/drs/v1/objects/access"): {"researcher"},
    ("GET", "/htsget/reads/service-info"): set(ROLES),
    ("GET", "/htsget/variants/service-info"): set(ROLES),
    ("GET", "/htsget/reads/{object_id}"): {"researcher"},
    ("POST", "/htsget/reads/{object_id}"): {"researcher"},
    ("GET", "/htsget/variants/{object_id}"): {"researcher"},
    ("POST", "/htsget/variants/{object_id}"): {"researcher"},
    ("GET", "/htsget/data/{object_id}"): {"researcher"},
    # asked of the controlled dataset: its grant holder only (aggregates of the open tier are
    # public, tested in tests/privacy/test_frequencies.py)
    ("GET", "/api/v1/variants/{chrom}-{pos}-{ref}-{alt}"): {"researcher"},
}

# The Beacon answers everyone: what each caller learns is decided per dataset inside
# (tests/variants/test_beacon.py checks the granularity each role gets).
BEACON_INFO = ["/", "/info", "/service-info", "/configuration", "/map", "/entry_types"]
BEACON_QUERIES = [
    "/filtering_terms",
    *(f"/{entry}" for entry in ENTRY_TYPES),
    *(f"/{entry}/{{id}}" for entry in ENTRY_TYPES),
    *(f"/{source}/{{id}}/{target}" for source, target in CROSS_LOOKUPS),
]
EXPECTED.update({("GET", f"/beacon{path}"): set(ROLES) for path in BEACON_INFO})
EXPECTED.update(
    {
        (method, f"/beacon{path}"): set(ROLES)
        for path in BEACON_QUERIES
        for method in ("GET", "POST")
    }
)


class World:
    """A catalog with a dataset per tier, an account per role and the means to make fresh
    requests, tokens and grants for the calls that consume them."""

    def __init__(self, client: TestClient, bundle: Path, provider: Any) -> None:
        self.client = client
        self.provider = provider
        self.factory = client.app.state.services.factory  # type: ignore[attr-defined]
        self.settings = client.app.state.services.settings  # type: ignore[attr-defined]
        result = catalog.submit(
            self.factory,
            bundle,
            subject=OPERATOR,
            data_files=ingestion.BundleArchiver(self.settings, OPERATOR),
        )
        self.files = result.accessions["files"]
        self.granted: set[str] = set()
        self.claims = 0
        self.accessions = result.accessions
        self.datasets = {tier: result.accessions["datasets"][f"DS-{tier}"] for tier in TIERS}
        self.bundle = bundle
        committees.create_dac(self.factory, alias="BGC DAC", name="BGC", actor=OPERATOR)
        self.headers: dict[str, dict[str, str]] = {"anonymous": {}}
        for role in SIGNED_IN:
            email = f"{role}@example.org"
            service.add_user(
                self.factory,
                email=email,
                roles=[role],
                institution=self.accessions["institutions"]["BGC"],
                actor=OPERATOR,
            )
            token = service.create_token(self.factory, email=email, actor=OPERATOR).token
            self.headers[role] = {"Authorization": f"Bearer {token}"}
        committees.add_member(
            self.factory, dac="BGC DAC", email="dac_member@example.org", chair=True, actor=OPERATOR
        )
        for role in ROLES:  # each role's identity at the OpenID provider
            provider.user(f"idp-{role}", email=f"idp-{role}@example.org", email_verified=True)

    def oidc_round_trip(self, role: str) -> Any:
        """Sign in through the OpenID provider (a signed-in role links its account)."""
        start = self.client.get(
            "/api/v1/auth/oidc/login", headers=self.headers[role], follow_redirects=False
        )
        back = urlsplit(self.provider.authorize(start.headers["location"], f"idp-{role}"))
        return self.client.get(f"{back.path}?{back.query}")

    def request(self, tier: str) -> int:
        request_id, _ = workflow.request_access(
            self.factory,
            actor=Subject.user(
                "researcher@example.org",
                roles=frozenset({"researcher"}),
                institution=self.accessions["institutions"]["BGC"],
            ),
            purpose=purpose(),
            datasets=[self.datasets[tier]],
            agreement_version="DAA v1",
            archived_here=archived_here,
        )
        return request_id

    def pending_item(self, tier: str) -> int:
        shown = workflow.get_request(self.factory, self.request(tier), actor=OPERATOR)
        item: int = shown["datasets"][0]["id"]
        return item

    def grant(self, tier: str) -> int:
        grant = workflow.decide_request(
            self.factory,
            item_id=self.pending_item(tier),
            approve=True,
            reason="ok",
            actor=Subject.user(
                "dac_member@example.org", roles=frozenset({"dac_member"}), institution=None
            ),
        )
        assert grant is not None
        return grant

    def with_grant(self, tier: str) -> None:
        """The researcher holds a grant on the tier's dataset (which releases the files)."""
        if tier not in self.granted:
            self.grant(tier)
            self.granted.add(tier)

    def data(self, role: str, tier: str) -> dict[str, str]:
        """Headers of a data call: the role's credentials after the researcher's grant."""
        self.with_grant(tier)
        return self.headers[role]

    def upload(self, *, data: bytes = b"") -> str:
        """An upload opened by the data steward (the operator declared the files)."""
        steward = Subject.user(
            "data_steward@example.org", roles=frozenset({"data_steward"}), institution=None
        )
        state = uploads.start_upload(
            self.factory, self.settings, subject=steward, accession=self.files["extra.vcf.gz"]
        )
        if data:
            uploads.append_upload(
                self.factory,
                self.settings,
                subject=steward,
                upload_id=state.id,
                offset=0,
                chunks=[data],
            )
        return state.id

    def variant(self) -> str:
        """A variant of the controlled dataset, whose variant store is built on first use."""
        dataset = self.datasets["controlled"]
        if not variants_service.store_path(self.settings, dataset).exists():
            variants_service.build_dataset_store(
                self.factory,
                self.settings,
                subject=OPERATOR,
                dataset=dataset,
                vcf=self.bundle / "calls.vcf.gz",
            )
        with pysam.VariantFile(str(self.bundle / "calls.vcf.gz")) as vcf:
            record = next(iter(vcf))
        return f"{record.chrom}-{record.pos}-{record.ref}-{record.alts[0]}"

    def claim(self) -> int:
        """A fresh self-registration claiming BGC: its claim's id."""
        self.claims += 1
        email = f"claimant{self.claims}@elsewhere.example"
        registration.register(
            self.factory,
            self.settings,
            email=email,
            name="Claimant",
            password="a long enough passphrase",
            institution=self.accessions["institutions"]["BGC"],
            address=f"10.8.{self.claims // 250}.{self.claims % 250}",
        )
        with self.factory() as session:
            claim_id: int = session.execute(
                select(affiliation_claims.c.id)
                .join(users, users.c.id == affiliation_claims.c.user_id)
                .where(users.c.email == email)
            ).scalar_one()
        return claim_id

    def own_token(self, role: str) -> int:
        email = "researcher@example.org" if role == "anonymous" else f"{role}@example.org"
        return service.create_token(self.factory, email=email, actor=OPERATOR).id


def purpose() -> ResearchPurpose:
    return ResearchPurpose(
        title="t",
        summary="s",
        institution="BGC",
        country="CN",
        biomedical=True,
        genetic_research=True,
        ethics_approval=True,
    )


def zipped(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in folder.iterdir():
            archive.write(path, path.name)
    return buffer.getvalue()


Call = Callable[[World, str, str], Any]
# a Crypt4GH public key (the base64 line of its PEM) to deliver to
RECIPIENT = base64.b64encode(bytes(range(1, 33))).decode()

CALLS: dict[tuple[str, str], Call] = {
    ("GET", "/api/v1/schemas/{entity}"): lambda w, r, t: w.client.get(
        "/api/v1/schemas/datasets", headers=w.headers[r]
    ),
    ("POST", "/api/v1/submissions"): lambda w, r, t: w.client.post(
        "/api/v1/submissions",
        params={"dry_run": True},
        headers=w.headers[r],
        files={"file": ("b.zip", zipped(w.bundle), "application/zip")},
    ),
    ("GET", "/api/v1/submissions"): lambda w, r, t: w.client.get(
        "/api/v1/submissions", headers=w.headers[r]
    ),
    ("GET", "/api/v1/studies"): lambda w, r, t: w.client.get(
        "/api/v1/studies", headers=w.headers[r]
    ),
    ("GET", "/api/v1/studies/{accession}"): lambda w, r, t: w.client.get(
        f"/api/v1/studies/{w.accessions['studies']['ST1']}", headers=w.headers[r]
    ),
    ("GET", "/api/v1/datasets"): lambda w, r, t: w.client.get(
        "/api/v1/datasets", params={"access_tier": t}, headers=w.headers[r]
    ),
    ("GET", "/api/v1/datasets/{accession}"): lambda w, r, t: w.client.get(
        f"/api/v1/datasets/{w.datasets[t]}", headers=w.headers[r]
    ),
    ("GET", "/api/v1/individuals"): lambda w, r, t: w.client.get(
        "/api/v1/individuals", headers=w.headers[r]
    ),
    ("GET", "/api/v1/individuals/{accession}"): lambda w, r, t: w.client.get(
        f"/api/v1/individuals/{w.accessions['individuals']['P1']}", headers=w.headers[r]
    ),
    ("GET", "/api/v1/samples"): lambda w, r, t: w.client.get(
        "/api/v1/samples", headers=w.headers[r]
    ),
    ("GET", "/api/v1/samples/{accession}"): lambda w, r, t: w.client.get(
        f"/api/v1/samples/{w.accessions['samples']['P1-S1']}", headers=w.headers[r]
    ),
    # OIDC sign-in before the password sign-ins below: those fail on purpose, and five
    # failures from one address throttle every sign-in from it
    ("GET", "/api/v1/auth/oidc/login"): lambda w, r, t: w.client.get(
        "/api/v1/auth/oidc/login", headers=w.headers[r], follow_redirects=False
    ),
    ("GET", "/api/v1/auth/oidc/callback"): lambda w, r, t: w.oidc_round_trip(r),
    ("POST", "/api/v1/auth/oidc/second-factor"): lambda w, r, t: w.client.post(
        "/api/v1/auth/oidc/second-factor", data={"ticket": "x" * 43, "otp": "123456"}
    ),
    ("POST", "/api/v1/auth/register"): lambda w, r, t: w.client.post(
        "/api/v1/auth/register",
        json={
            "email": f"new-{r}@example.org",
            "name": "N",
            "password": "p" * 12,
            "institution": w.accessions["institutions"]["BGC"],
        },
    ),
    ("POST", "/api/v1/auth/register/verify"): lambda w, r, t: w.client.post(
        "/api/v1/auth/register/verify",
        json={"email": f"new-{r}@example.org", "code": "x", "password": "p" * 12},
    ),
    # sign-in is open to all: anyone may try, and wrong credentials are a 401 for everyone
    ("POST", "/api/v1/auth/token"): lambda w, r, t: w.client.post(
        "/api/v1/auth/token", data={"username": f"{r}@example.org", "password": "x" * 12}
    ),
    ("GET", "/api/v1/auth/me"): lambda w, r, t: w.client.get(
        "/api/v1/auth/me", headers=w.headers[r]
    ),
    ("POST", "/api/v1/tokens"): lambda w, r, t: w.client.post(
        "/api/v1/tokens", json={"days": 1}, headers=w.headers[r]
    ),
    ("DELETE", "/api/v1/tokens/{token_id}"): lambda w, r, t: w.client.delete(
        f"/api/v1/tokens/{w.own_token(r)}", headers=w.headers[r]
    ),
    ("POST", "/api/v1/requests"): lambda w, r, t: w.client.post(
        "/api/v1/requests",
        headers=w.headers[r],
        json={
            "purpose": {
                "title": "t",
                "summary": "s",
                "institution": "BGC",
                "country": "CN",
                "biomedical": True,
                "ethics_approval": True,
            },
            "datasets": [w.datasets[t]],
            "agreement_version": "DAA v1",
        },
    ),
    ("GET", "/api/v1/requests/{request_id}"): lambda w, r, t: w.client.get(
        f"/api/v1/requests/{w.request(t)}", headers=w.headers[r]
    ),
    ("GET", "/api/v1/dac/queue"): lambda w, r, t: w.client.get(
        "/api/v1/dac/queue", headers=w.headers[r]
    ),
    ("POST", "/api/v1/dac/decisions"): lambda w, r, t: w.client.post(
        "/api/v1/dac/decisions",
        headers=w.headers[r],
        json={"item": w.pending_item(t), "approve": True, "reason": "ok"},
    ),
    ("GET", "/api/v1/institutions/{accession}/email-domains"): lambda w, r, t: w.client.get(
        f"/api/v1/institutions/{w.accessions['institutions']['BGC']}/email-domains",
        headers=w.headers[r],
    ),
    ("PUT", "/api/v1/institutions/{accession}/email-domains"): lambda w, r, t: w.client.put(
        f"/api/v1/institutions/{w.accessions['institutions']['BGC']}/email-domains",
        json={"domains": ["bgc.example"]},
        headers=w.headers[r],
    ),
    ("GET", "/api/v1/affiliations"): lambda w, r, t: w.client.get(
        "/api/v1/affiliations", headers=w.headers[r]
    ),
    ("POST", "/api/v1/affiliations/{claim_id}/confirm"): lambda w, r, t: w.client.post(
        f"/api/v1/affiliations/{w.claim()}/confirm", headers=w.headers[r]
    ),
    ("DELETE", "/api/v1/affiliations/{claim_id}"): lambda w, r, t: w.client.delete(
        f"/api/v1/affiliations/{w.claim()}", params={"reason": "matrix"}, headers=w.headers[r]
    ),
    ("GET", "/api/v1/grants"): lambda w, r, t: w.client.get("/api/v1/grants", headers=w.headers[r]),
    ("GET", "/api/v1/grants/{grant_id}"): lambda w, r, t: w.client.get(
        f"/api/v1/grants/{w.grant(t)}", headers=w.headers[r]
    ),
    ("GET", "/api/v1/requests"): lambda w, r, t: w.client.get(
        "/api/v1/requests", headers=w.headers[r]
    ),
    ("GET", "/api/v1/institutions"): lambda w, r, t: w.client.get(
        "/api/v1/institutions", headers=w.headers[r]
    ),
    ("GET", "/api/v1/institutions/{accession}"): lambda w, r, t: w.client.get(
        f"/api/v1/institutions/{w.accessions['institutions']['BGC']}", headers=w.headers[r]
    ),
    ("DELETE", "/api/v1/grants/{grant_id}"): lambda w, r, t: w.client.delete(
        f"/api/v1/grants/{w.grant(t)}", params={"reason": "matrix"}, headers=w.headers[r]
    ),
    ("GET", "/api/v1/privacy/reports/{dataset}"): lambda w, r, t: w.client.get(
        f"/api/v1/privacy/reports/{w.datasets[t]}", headers=w.headers[r]
    ),
    ("GET", "/api/v1/compliance/report"): lambda w, r, t: w.client.get(
        "/api/v1/compliance/report",
        headers=w.headers[r],
        params={"start": "2026-01-01", "end": "2026-12-31", "format": "csv", "section": "expiring"},
    ),
    ("GET", "/api/v1/audit/sth"): lambda w, r, t: w.client.get(
        "/api/v1/audit/sth", headers=w.headers[r]
    ),
    ("GET", "/api/v1/audit/proof/inclusion"): lambda w, r, t: w.client.get(
        "/api/v1/audit/proof/inclusion",
        params={"leaf_index": 0, "tree_size": 2},
        headers=w.headers[r],
    ),
    ("GET", "/api/v1/audit/proof/consistency"): lambda w, r, t: w.client.get(
        "/api/v1/audit/proof/consistency",
        params={"first": 1, "second": 2},
        headers=w.headers[r],
    ),
    ("GET", "/api/v1/audit/public-key"): lambda w, r, t: w.client.get(
        "/api/v1/audit/public-key", headers=w.headers[r]
    ),
    ("GET", "/api/v1/audit/entries"): lambda w, r, t: w.client.get(
        "/api/v1/audit/entries", params={"start": 0, "end": 2}, headers=w.headers[r]
    ),
    ("GET", "/api/v1/audit/get-entries"): lambda w, r, t: w.client.get(
        "/api/v1/audit/get-entries", params={"start": 0, "end": 1}, headers=w.headers[r]
    ),
    ("GET", "/api/v1/audit/alerts"): lambda w, r, t: w.client.get(
        "/api/v1/audit/alerts", params={"limit": 5}, headers=w.headers[r]
    ),
    ("GET", "/.well-known/jwks.json"): lambda w, r, t: w.client.get(
        "/.well-known/jwks.json", headers=w.headers[r]
    ),
    ("GET", "/api/v1/userinfo"): lambda w, r, t: w.client.get(
        "/api/v1/userinfo", headers=w.headers[r]
    ),
    ("POST", "/api/v1/uploads"): lambda w, r, t: w.client.post(
        "/api/v1/uploads", json={"file": w.files["extra.vcf.gz"]}, headers=w.headers[r]
    ),
    ("GET", "/api/v1/uploads/{upload_id}"): lambda w, r, t: w.client.get(
        f"/api/v1/uploads/{w.upload()}", headers=w.headers[r]
    ),
    ("PATCH", "/api/v1/uploads/{upload_id}"): lambda w, r, t: w.client.patch(
        f"/api/v1/uploads/{w.upload()}",
        content=b"##fileformat=VCFv4.2\n",
        headers={**w.headers[r], "Upload-Offset": "0"},
    ),
    ("POST", "/api/v1/uploads/{upload_id}/complete"): lambda w, r, t: w.client.post(
        f"/api/v1/uploads/{w.upload(data=b'not the declared file')}/complete",
        headers=w.headers[r],
    ),
    ("GET", "/api/v1/files"): lambda w, r, t: w.client.get("/api/v1/files", headers=w.headers[r]),
    ("GET", "/api/v1/archive/public-key"): lambda w, r, t: w.client.get(
        "/api/v1/archive/public-key", headers=w.headers[r]
    ),
    ("PUT", "/api/v1/me/crypt4gh-key"): lambda w, r, t: w.client.put(
        "/api/v1/me/crypt4gh-key", json={"public_key": RECIPIENT}, headers=w.headers[r]
    ),
    ("GET", "/ga4gh/drs/v1/service-info"): lambda w, r, t: w.client.get(
        "/ga4gh/drs/v1/service-info", headers=w.headers[r]
    ),
    ("GET", "/ga4gh/drs/v1/objects/{object_id}"): lambda w, r, t: w.client.get(
        f"/ga4gh/drs/v1/objects/{w.files['calls.vcf.gz']}", headers=w.data(r, t)
    ),
    ("GET", "/ga4gh/drs/v1/objects/{object_id}/access/{access_id}"): lambda w, r, t: w.client.get(
        f"/ga4gh/drs/v1/objects/{w.files['calls.vcf.gz']}/access/crypt4gh", headers=w.data(r, t)
    ),
    ("GET", "/ga4gh/drs/v1/objects/{object_id}/download"): lambda w, r, t: w.client.get(
        f"/ga4gh/drs/v1/objects/{w.files['calls.vcf.gz']}/download",
        headers={**w.data(r, t), "X-Crypt4GH-Public-Key": RECIPIENT},
    ),
    ("POST", "/ga4gh/drs/v1/objects/{object_id}"): lambda w, r, t: w.client.post(
        f"/ga4gh/drs/v1/objects/{w.files['calls.vcf.gz']}", json={}, headers=w.data(r, t)
    ),
    ("POST", "/ga4gh/drs/v1/objects/{object_id}/access/{access_id}"): lambda w, r, t: w.client.post(
        f"/ga4gh/drs/v1/objects/{w.files['calls.vcf.gz']}/access/crypt4gh",
        json={},
        headers=w.data(r, t),
    ),
    ("POST", "/ga4gh/drs/v1/objects"): lambda w, r, t: _bulk_answer(
        w.client.post(
            "/ga4gh/drs/v1/objects",
            json={"bulk_object_ids": [w.files["calls.vcf.gz"]]},
            headers=w.data(r, t),
        ),
        "resolved_drs_object",
    ),
    ("POST", "/ga4gh/drs/v1/objects/access"): lambda w, r, t: _bulk_answer(
        w.client.post(
            "/ga4gh/drs/v1/objects/access",
            json={
                "bulk_object_access_ids": [
                    {"bulk_object_id": w.files["calls.vcf.gz"], "bulk_access_ids": ["crypt4gh"]}
                ]
            },
            headers=w.data(r, t),
        ),
        "resolved_drs_object_access_urls",
    ),
    ("GET", "/htsget/reads/service-info"): lambda w, r, t: w.client.get(
        "/htsget/reads/service-info", headers=w.headers[r]
    ),
    ("GET", "/htsget/variants/service-info"): lambda w, r, t: w.client.get(
        "/htsget/variants/service-info", headers=w.headers[r]
    ),
    ("GET", "/htsget/reads/{object_id}"): lambda w, r, t: w.client.get(
        f"/htsget/reads/{w.files['P1.bam']}?referenceName=chr22", headers=w.data(r, t)
    ),
    ("POST", "/htsget/reads/{object_id}"): lambda w, r, t: w.client.post(
        f"/htsget/reads/{w.files['P1.bam']}",
        json={"regions": [{"referenceName": "chr21", "start": 0, "end": 2_000_000}]},
        headers=w.data(r, t),
    ),
    ("GET", "/htsget/variants/{object_id}"): lambda w, r, t: w.client.get(
        f"/htsget/variants/{w.files['calls.vcf.gz']}?referenceName=chr22", headers=w.data(r, t)
    ),
    ("POST", "/htsget/variants/{object_id}"): lambda w, r, t: w.client.post(
        f"/htsget/variants/{w.files['calls.vcf.gz']}", json={}, headers=w.data(r, t)
    ),
    ("GET", "/htsget/data/{object_id}"): lambda w, r, t: w.client.get(
        f"/htsget/data/{w.files['calls.vcf.gz']}",
        params={"start": 0, "end": 65536},
        headers=w.data(r, t),
    ),
    ("GET", "/api/v1/variants/{chrom}-{pos}-{ref}-{alt}"): lambda w, r, t: w.client.get(
        f"/api/v1/variants/{w.variant()}",
        params={"dataset": w.datasets["controlled"]},
        headers=w.data(r, "controlled"),
    ),
}


def beacon_call(method: str, path: str) -> Call:
    """A Beacon query as `method`: a variant range where the entry type needs one, the
    world's own records as ids."""

    def call(w: World, r: str, t: str) -> Any:
        ids = {
            "g_variants": "chr22-10000100-A-G",
            "individuals": w.accessions["individuals"]["P1"],
            "biosamples": w.accessions["samples"]["P1-S1"],
            "runs": w.accessions["runs"]["P1-R1"],
            "analyses": w.accessions["analyses"]["A1"],
            "cohorts": w.accessions["studies"]["ST1"],
        }
        parts = path.strip("/").split("/")
        if "{id}" in parts and parts[0] == "datasets":
            ids["datasets"] = w.datasets[t]
        url = "/beacon/" + "/".join(ids[parts[0]] if p == "{id}" else p for p in parts)
        variant = {"referenceName": "chr22", "start": 10_000_000, "end": 10_100_000}
        # a variant range for g_variants listings; a variant's own routes take none
        wanted = parts[-1] == "g_variants" and not (parts[0] == "g_variants" and len(parts) > 1)
        parameters = variant if wanted else {}
        if method == "GET":
            return w.client.get(url, params=parameters, headers=w.headers[r])
        body = {"meta": {"apiVersion": "v2.0.0"}, "query": {"requestParameters": parameters}}
        return w.client.post(url, json=body, headers=w.headers[r])

    return call


CALLS.update(
    {
        (method, f"/beacon{path}"): beacon_call(method, path)
        for method, path in [
            *(("GET", p) for p in BEACON_INFO),
            *((m, p) for p in BEACON_QUERIES for m in ("GET", "POST")),
        ]
    }
)


# The routes whose call names a dataset, or acts on a request or grant for one: asked on each
# tier's dataset. The others name none; each is asked once per role, given NO_TIER, with which a
# call that does name a dataset fails (KeyError) instead of quietly asking about no tier.
TIERED = {
    ("GET", "/api/v1/datasets"),
    ("GET", "/api/v1/datasets/{accession}"),
    ("POST", "/api/v1/requests"),
    ("GET", "/api/v1/requests/{request_id}"),
    ("POST", "/api/v1/dac/decisions"),
    ("GET", "/api/v1/grants/{grant_id}"),
    ("DELETE", "/api/v1/grants/{grant_id}"),
    *((m, p) for m, p in EXPECTED if p.startswith(("/ga4gh/drs/v1/objects", "/htsget/"))),
    *((m, p) for m, p in EXPECTED if p.startswith("/beacon/datasets/{id}")),
    ("GET", "/api/v1/privacy/reports/{dataset}"),
}
TIERED -= {("GET", "/htsget/reads/service-info"), ("GET", "/htsget/variants/service-info")}
NO_TIER = "no tier"


def _bulk_answer(response: httpx.Response, resolved: str) -> httpx.Response:
    """A bulk DRS answer (200 whatever each id's outcome) as the status of its one id: 200 if it
    was resolved, else the status it is listed under."""
    if response.status_code != 200:
        return response
    body = response.json()
    if body[resolved]:
        return response
    return httpx.Response(body["unresolved_drs_objects"][0]["error_code"], json=body)


def routes_of(app: Any) -> set[tuple[str, str]]:
    """Every operation of the app, as its OpenAPI document lists them (the included routers'
    routes are not in `app.routes` itself: FastAPI keeps them with their routers)."""
    return {
        (method.upper(), path)
        for path, item in app.openapi()["paths"].items()
        for method in item
        if method.upper() in {"GET", "POST", "PUT", "PATCH", "DELETE"}
    }


def test_every_route_has_a_rule(settings: Settings) -> None:
    app = create_app(settings)
    missing = routes_of(app) - set(EXPECTED)
    assert not missing, f"routes without an authorization rule: {sorted(missing)}"
    assert set(CALLS) == set(EXPECTED)
    assert set(EXPECTED) >= TIERED
    app.state.services.engine.dispose()


def test_authorization_matrix(
    oidc_settings: Settings,
    oidc_provider: Any,
    make_bundle: Any,
    datafiles: Any,
    tmp_path: Path,
) -> None:
    settings = oidc_settings
    engine = node_engine(settings)
    Base.metadata.create_all(engine)
    engine.dispose()
    folder = tmp_path / "files"
    folder.mkdir()
    vcf = datafiles.vcf(folder / "calls.vcf.gz", records=200)
    bam = datafiles.bam(folder / "P1.bam", reads=500)
    extra = datafiles.vcf(tmp_path / "extra.vcf.gz", records=50, seed=3)
    data = datafiles.sheets(folder, vcf=vcf, bam=bam)
    data["files"].append(
        {"alias": extra.name, "analysis": "A1", "format": "vcf", **datafiles.digest(extra)}
    )
    dataset = data["datasets"][0]
    data["datasets"] = [dict(dataset, alias=f"DS-{tier}", access_tier=tier) for tier in TIERS]
    create_node_secrets(settings)  # as `genecommons init` does
    bundle = make_bundle(data)
    for path in (vcf, bam):
        shutil.copy(path, bundle / path.name)  # the bundle holds two of its three files
    app = create_app(settings)
    mismatches = []
    with TestClient(app) as client:
        world = World(client, bundle, oidc_provider)
        for key, call in CALLS.items():
            for role in ROLES:
                for tier in TIERS if key in TIERED else [NO_TIER]:
                    response = call(world, role, tier)
                    allowed = response.status_code < 400
                    refused = response.status_code in (401, 403, 404)
                    if key == ("POST", "/api/v1/auth/token"):
                        # reached the credential check (or, after five tries from one
                        # address, the sign-in throttle)
                        allowed = response.status_code in (401, 429)
                    if key == ("POST", "/api/v1/auth/oidc/second-factor"):
                        allowed = response.status_code == 401  # reached the ticket check
                    if key[1].startswith("/api/v1/auth/register"):
                        # reached the registration (or the code) check, or after five tries
                        # from one address within the hour, the registration throttle
                        allowed = response.status_code in (202, 422, 429)
                    if key == ("POST", "/api/v1/uploads/{upload_id}/complete"):
                        allowed = response.status_code == 422  # reached the checksum check
                    if response.status_code == 503 and "retry-after" in response.headers:
                        allowed = True  # let through: the caller's fingerprinted copy is queued
                    expected = role in EXPECTED[key]
                    if (expected and not allowed) or (not expected and not refused):
                        mismatches.append(
                            f"{key[0]} {key[1]} as {role} on {tier}: {response.status_code} "
                            f"{response.text[:120]}"
                        )
    app.state.services.engine.dispose()
    assert not mismatches, "\n".join(mismatches)
