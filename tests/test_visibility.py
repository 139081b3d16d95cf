"""What a caller may not see does not exist for them, and every refusal is audited.

Built from the application's route table, as the authorization matrix is: every route that
names a record by id answers an outsider alike for a record they may not see (of a private
study, or someone else's) and for one that does not exist, so that ids cannot be enumerated (a
route added with an id and no entry here fails the test); every kind of refusal is an
`access:decision:deny` event once the queue is sequenced; and an outsider probing is caught by
the `repeated-refusals` rule through the watcher.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pysam
import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from genecommons.access import committees, institution_service, workflow
from genecommons.access import service as access_service
from genecommons.access.duo_models import ResearchPurpose
from genecommons.access.keys import InMemoryKeyStore
from genecommons.access.passports import VisaBy, VisaType, issue_visa, passport_claim
from genecommons.app import create_app
from genecommons.archive import ingestion, uploads
from genecommons.archive.holdings import archived_here
from genecommons.audit import service as audit_service
from genecommons.audit import watch
from genecommons.catalog import service as catalog_service
from genecommons.config import Settings
from genecommons.ledger.tables import audit_alerts, audit_events
from genecommons.policy.models import Subject
from genecommons.variants import service as variants_service
from genecommons.variants.beacon import CROSS_LOOKUPS, ENTRY_TYPES

OPERATOR = Subject.operator("visibility")
DENY = "access:decision:deny"
CALLERS = ("anonymous", "eve")  # nobody, and a verified researcher with no part in anything


def _private_copy(data: dict[str, list[dict[str, Any]]]) -> None:
    """Add a private study HIDDEN: a copy of ST1's people, samples, runs and analysis under
    aliases ending in x, with a registered dataset DSX (whose VCF is archived) and a declared
    file the archive does not hold yet."""
    data["studies"].append(
        {"alias": "HIDDEN", "title": "Private cohort", "institution": "BGC", "public": "no"}
    )

    def renamed(value: Any, names: set[str]) -> Any:
        if not isinstance(value, str):
            return value
        return ";".join(f"{part}x" if part in names else part for part in value.split(";"))

    aliases = {row["alias"] for sheet in data.values() for row in sheet if "alias" in row}
    aliases.discard("BGC")
    for sheet in ("consents", "ethics_approvals", "hgr_records", "individuals", "samples"):
        data[sheet] += [
            {k: renamed(v, aliases) for k, v in row.items()} | {"study": "HIDDEN"}
            if "study" in row
            else {k: renamed(v, aliases) for k, v in row.items()}
            for row in list(data[sheet])
        ]
    for sheet in ("phenotypes", "experiments", "runs"):
        data[sheet] += [{k: renamed(v, aliases) for k, v in row.items()} for row in data[sheet]]
    (analysis,) = data["analyses"]
    data["analyses"].append(
        {k: renamed(v, aliases) for k, v in analysis.items()} | {"study": "HIDDEN"}
    )
    (dataset,) = data["datasets"]
    data["datasets"].append(
        dict(dataset, alias="DSX", study="HIDDEN", runs="P1-R1x", analyses="A1x")
    )


@dataclass
class World:
    """A node with a public study ST1 (registered dataset DS1, archived VCF and BAM) and a
    private study HIDDEN (registered dataset DSX, an archived VCF and a declared file), an
    owner with a grant, a request, a token and an upload of their own, and the outsider eve."""

    client: TestClient
    factory: Any
    settings: Settings
    accessions: dict[str, dict[str, str]]
    headers: dict[str, dict[str, str]]
    ids: dict[str, str]  # the owner's grant, request, request item, token; the steward's upload
    variant: str  # a variant of the public dataset
    hidden_variant: str  # a variant of the private dataset only

    def call(self, caller: str) -> dict[str, str]:
        return self.headers[caller]


def _first_variant(vcf: Path, *, avoid: set[tuple[str, int]] | None = None) -> str:
    with pysam.VariantFile(str(vcf)) as handle:
        for record in handle:
            alts = record.alts or ()
            if alts and (record.chrom, record.pos) not in (avoid or set()):
                return f"{record.chrom}-{record.pos}-{record.ref}-{alts[0]}"
    raise AssertionError("no variant to use")


def _sites(vcf: Path) -> set[tuple[str, int]]:
    with pysam.VariantFile(str(vcf)) as handle:
        return {(r.chrom, r.pos) for r in handle}


def purpose() -> ResearchPurpose:
    return ResearchPurpose(
        title="Hearing loss genetics",
        summary="Find variants.",
        institution="BGC",
        country="CN",
        biomedical=True,
        genetic_research=True,
        ethics_approval=True,
    )


@pytest.fixture
def world(
    archive_settings: Settings, engine: Any, tmp_path: Path, datafiles: SimpleNamespace
) -> Iterator[World]:
    """The world, on the test database (`engine` made its tables)."""
    settings = archive_settings
    audit_service.signing_key(settings, create=True)
    folder = tmp_path / "bundle"
    folder.mkdir()
    vcf = datafiles.vcf(folder / "calls.vcf.gz", records=200)
    bam = datafiles.bam(folder / "P1.bam", reads=500)
    hidden = datafiles.vcf(
        folder / "hidden.vcf.gz", samples=("P1-S1x", "P2-S1x", "P3-S1x"), records=200, seed=5
    )
    declared = datafiles.vcf(tmp_path / "declared.vcf.gz", records=20, seed=9)
    data = datafiles.sheets(folder, vcf=vcf, bam=bam)
    data["datasets"][0]["access_tier"] = "registered"
    _private_copy(data)
    for path in (hidden, declared):
        data["files"].append(
            {"alias": path.name, "analysis": "A1x", "format": "vcf", **datafiles.digest(path)}
        )
    datafiles.write(folder, data)
    app = create_app(settings)
    with TestClient(app) as client:
        factory = app.state.services.factory
        result = catalog_service.submit(
            factory,
            folder,
            subject=OPERATOR,
            data_files=ingestion.BundleArchiver(settings, OPERATOR),
        )
        accessions = result.accessions
        for alias, source in (("DS1", vcf), ("DSX", hidden)):
            variants_service.build_dataset_store(
                factory,
                settings,
                subject=OPERATOR,
                dataset=accessions["datasets"][alias],
                vcf=source,
            )
        institution = accessions["institutions"]["BGC"]
        headers: dict[str, dict[str, str]] = {"anonymous": {}}
        roles = {
            "owner": "researcher",
            "eve": "researcher",
            "steward": "data_steward",
            "dac": "dac_member",
        }
        for name, role in roles.items():
            access_service.add_user(
                factory,
                email=f"{name}@example.org",
                roles=[role],
                institution=institution,
                actor=OPERATOR,
            )
            token = access_service.create_token(
                factory, email=f"{name}@example.org", actor=OPERATOR
            ).token
            headers[name] = {"Authorization": f"Bearer {token}"}
        institution_service.verify_institution(
            factory,
            institution=institution,
            foreign_controlled=False,
            attestation="Registered in Beijing; no foreign ownership.",
            actor=OPERATOR,
        )
        committees.create_dac(factory, alias="BGC DAC", name="BGC DAC", actor=OPERATOR)
        committees.add_member(
            factory, dac="BGC DAC", email="dac@example.org", chair=True, actor=OPERATOR
        )
        owner = Subject.user(
            "owner@example.org", roles=frozenset({"researcher"}), institution=institution
        )
        member = Subject.user("dac@example.org", roles=frozenset({"dac_member"}), institution=None)
        granted, _ = workflow.request_access(
            factory,
            actor=owner,
            purpose=purpose(),
            datasets=[accessions["datasets"]["DS1"]],
            agreement_version="DAA v1",
            archived_here=archived_here,
        )
        item = workflow.get_request(factory, granted, actor=OPERATOR)["datasets"][0]["id"]
        grant = workflow.decide_request(
            factory, item_id=item, approve=True, reason="Fits the consent.", actor=member
        )
        pending, _ = workflow.request_access(
            factory,
            actor=owner,
            purpose=purpose(),
            datasets=[accessions["datasets"]["DS1"]],
            agreement_version="DAA v1",
            archived_here=archived_here,
        )
        pending_item = workflow.get_request(factory, pending, actor=OPERATOR)["datasets"][0]["id"]
        steward = Subject.user(
            "steward@example.org", roles=frozenset({"data_steward"}), institution=None
        )
        upload = uploads.start_upload(
            factory, settings, subject=steward, accession=accessions["files"]["declared.vcf.gz"]
        )
        owned = access_service.create_token(factory, email="owner@example.org", actor=OPERATOR)
        yield World(
            client=client,
            factory=factory,
            settings=settings,
            accessions=accessions,
            headers=headers,
            ids={
                "grant": str(grant),
                "request": str(pending),
                "item": str(pending_item),
                "token": str(owned.id),
                "upload": upload.id,
            },
            variant=_first_variant(vcf),
            hidden_variant=_first_variant(hidden, avoid=_sites(vcf)),
        )
    app.state.services.engine.dispose()


def _missing(accession: str) -> str:
    """An accession of the same kind that no record has."""
    return accession[:3] + "9" * (len(accession) - 3)


# -- the routes that name a record by id ------------------------------------------------------

Ask = Callable[[World, str, str], Any]  # (world, caller, id) -> response


@dataclass(frozen=True)
class Probe:
    """How to ask a route for a record by id, which record the outsiders may not see, and an
    id of the same kind that no record has."""

    ask: Ask
    hidden: Callable[[World], str]
    missing: Callable[[World], str]


def _get(path: str, **params: Any) -> Ask:
    return lambda w, c, i: w.client.get(path.format(id=i), params=params, headers=w.call(c))


def _accession(entity: str, alias: str) -> Callable[[World], str]:
    return lambda w: w.accessions[entity][alias]


def _missing_accession(entity: str, alias: str) -> Callable[[World], str]:
    return lambda w: _missing(w.accessions[entity][alias])


def _own(name: str) -> Callable[[World], str]:
    return lambda w: w.ids[name]


HIDDEN_FILE = _accession("files", "hidden.vcf.gz")
MISSING_FILE = _missing_accession("files", "hidden.vcf.gz")
NUMBER = lambda w: "999999"  # noqa: E731 - an id no record has
PUBLIC_KEY = "X-Crypt4GH-Public-Key"


def _file(path: str, *, method: str = "GET", **options: Any) -> Probe:
    def ask(w: World, c: str, i: str) -> Any:
        return w.client.request(method, path.format(id=i), headers=w.call(c), **options)

    return Probe(ask, HIDDEN_FILE, MISSING_FILE)


ID_ROUTES: dict[tuple[str, str], Probe] = {
    ("GET", "/api/v1/studies/{accession}"): Probe(
        _get("/api/v1/studies/{id}"),
        _accession("studies", "HIDDEN"),
        _missing_accession("studies", "HIDDEN"),
    ),
    ("GET", "/api/v1/datasets/{accession}"): Probe(
        _get("/api/v1/datasets/{id}"),
        _accession("datasets", "DSX"),
        _missing_accession("datasets", "DSX"),
    ),
    ("GET", "/api/v1/individuals/{accession}"): Probe(
        _get("/api/v1/individuals/{id}"),
        _accession("individuals", "P1"),
        _missing_accession("individuals", "P1"),
    ),
    ("GET", "/api/v1/samples/{accession}"): Probe(
        _get("/api/v1/samples/{id}"),
        _accession("samples", "P1-S1"),
        _missing_accession("samples", "P1-S1"),
    ),
    ("DELETE", "/api/v1/tokens/{token_id}"): Probe(
        lambda w, c, i: w.client.delete(f"/api/v1/tokens/{i}", headers=w.call(c)),
        _own("token"),
        NUMBER,
    ),
    ("GET", "/api/v1/requests/{request_id}"): Probe(
        _get("/api/v1/requests/{id}"), _own("request"), NUMBER
    ),
    ("GET", "/api/v1/grants/{grant_id}"): Probe(_get("/api/v1/grants/{id}"), _own("grant"), NUMBER),
    ("DELETE", "/api/v1/grants/{grant_id}"): Probe(
        lambda w, c, i: w.client.delete(
            f"/api/v1/grants/{i}", params={"reason": "probe"}, headers=w.call(c)
        ),
        _own("grant"),
        NUMBER,
    ),
    ("GET", "/api/v1/uploads/{upload_id}"): Probe(
        _get("/api/v1/uploads/{id}"), _own("upload"), lambda w: str(uuid.uuid4())
    ),
    ("PATCH", "/api/v1/uploads/{upload_id}"): Probe(
        lambda w, c, i: w.client.patch(
            f"/api/v1/uploads/{i}",
            content=b"##fileformat=VCFv4.2\n",
            headers={**w.call(c), "Upload-Offset": "0"},
        ),
        _own("upload"),
        lambda w: str(uuid.uuid4()),
    ),
    ("POST", "/api/v1/uploads/{upload_id}/complete"): Probe(
        lambda w, c, i: w.client.post(f"/api/v1/uploads/{i}/complete", headers=w.call(c)),
        _own("upload"),
        lambda w: str(uuid.uuid4()),
    ),
    ("GET", "/ga4gh/drs/v1/objects/{object_id}"): _file("/ga4gh/drs/v1/objects/{id}"),
    ("GET", "/ga4gh/drs/v1/objects/{object_id}/access/{access_id}"): _file(
        "/ga4gh/drs/v1/objects/{id}/access/crypt4gh"
    ),
    ("GET", "/ga4gh/drs/v1/objects/{object_id}/download"): _file(
        "/ga4gh/drs/v1/objects/{id}/download"
    ),
    ("GET", "/htsget/reads/{object_id}"): _file("/htsget/reads/{id}?referenceName=chr22"),
    ("POST", "/htsget/reads/{object_id}"): _file("/htsget/reads/{id}", method="POST", json={}),
    ("GET", "/htsget/variants/{object_id}"): _file("/htsget/variants/{id}?referenceName=chr22"),
    ("POST", "/htsget/variants/{object_id}"): _file(
        "/htsget/variants/{id}", method="POST", json={}
    ),
    ("GET", "/htsget/data/{object_id}"): _file("/htsget/data/{id}?start=0&end=65536"),
    # the record named is the dataset (the path names a variant)
    ("GET", "/api/v1/variants/{chrom}-{pos}-{ref}-{alt}"): Probe(
        lambda w, c, i: w.client.get(
            f"/api/v1/variants/{w.variant}", params={"dataset": i}, headers=w.call(c)
        ),
        _accession("datasets", "DSX"),
        _missing_accession("datasets", "DSX"),
    ),
}

# records named in a query or a body rather than the path
ID_PARAMETERS: dict[str, Probe] = {
    "GET /api/v1/datasets?study=": Probe(
        lambda w, c, i: w.client.get("/api/v1/datasets", params={"study": i}, headers=w.call(c)),
        _accession("studies", "HIDDEN"),
        _missing_accession("studies", "HIDDEN"),
    ),
    "POST /api/v1/requests datasets": Probe(
        lambda w, c, i: w.client.post(
            "/api/v1/requests",
            headers=w.call(c),
            json={
                "purpose": {
                    "title": "t",
                    "summary": "s",
                    "institution": "BGC",
                    "country": "CN",
                    "biomedical": True,
                    "ethics_approval": True,
                },
                "datasets": [i],
                "agreement_version": "DAA v1",
            },
        ),
        _accession("datasets", "DSX"),
        _missing_accession("datasets", "DSX"),
    ),
    "POST /api/v1/dac/decisions item": Probe(
        lambda w, c, i: w.client.post(
            "/api/v1/dac/decisions",
            headers=w.call(c),
            json={"item": int(i), "approve": False, "reason": "probe"},
        ),
        _own("item"),
        NUMBER,
    ),
    "POST /api/v1/uploads file": Probe(
        lambda w, c, i: w.client.post("/api/v1/uploads", json={"file": i}, headers=w.call(c)),
        HIDDEN_FILE,
        MISSING_FILE,
    ),
}

# routes whose ids are not secret, or whose answers other rules govern
NOT_SECRET = {
    ("GET", "/api/v1/schemas/{entity}"): "the names of the submission sheets are public",
    ("GET", "/api/v1/institutions/{accession}"): "institutions are public (their verification "
    "is shown to administrators only)",
}
BEACON_IDS = {
    "individuals": _accession("individuals", "P1x"),
    "biosamples": _accession("samples", "P1-S1x"),
    "runs": _accession("runs", "P1-R1x"),
    "analyses": _accession("analyses", "A1x"),
    "datasets": _accession("datasets", "DSX"),
    "cohorts": _accession("studies", "HIDDEN"),
    "g_variants": lambda w: w.hidden_variant,
}
BEACON_MISSING = {
    "individuals": _missing_accession("individuals", "P1x"),
    "biosamples": _missing_accession("samples", "P1-S1x"),
    "runs": _missing_accession("runs", "P1-R1x"),
    "analyses": _missing_accession("analyses", "A1x"),
    "datasets": _missing_accession("datasets", "DSX"),
    "cohorts": _missing_accession("studies", "HIDDEN"),
    "g_variants": lambda w: "chr22-10000001-A-T",  # no dataset holds it (sites from 10,000,000)
}


def _beacon(method: str, path: str) -> Probe:
    source = path.strip("/").split("/")[0]

    def ask(w: World, c: str, i: str) -> Any:
        url = "/beacon" + path.replace("{id}", i)
        if method == "GET":
            return w.client.get(url, headers=w.call(c))
        body = {"meta": {"apiVersion": "v2.0.0"}, "query": {"requestParameters": {}}}
        return w.client.post(url, json=body, headers=w.call(c))

    return Probe(ask, BEACON_IDS[source], BEACON_MISSING[source])


ID_ROUTES.update(
    {
        (method, f"/beacon{path}"): _beacon(method, path)
        for path in [
            *(f"/{entry}/{{id}}" for entry in ENTRY_TYPES),
            *(f"/{source}/{{id}}/{target}" for source, target in CROSS_LOOKUPS),
        ]
        for method in ("GET", "POST")
    }
)


def _id_routes(app: Any) -> set[tuple[str, str]]:
    return {
        (method, route.path)
        for route in app.routes
        if isinstance(route, APIRoute) and route.include_in_schema and "{" in route.path
        for method in route.methods or ()
    }


def test_every_route_with_an_id_is_probed(settings: Settings) -> None:
    app = create_app(settings)
    unprobed = _id_routes(app) - set(ID_ROUTES) - set(NOT_SECRET)
    assert not unprobed, f"routes with an id and no probe: {sorted(unprobed)}"
    app.state.services.engine.dispose()


def _scrubbed(response: Any, ident: str) -> tuple[int, str, Any]:
    """Status, media type and body of an answer, the id asked for written as <id>."""
    pattern = re.compile(rf"(?<![0-9A-Za-z]){re.escape(ident)}(?![0-9A-Za-z])")

    def scrub(value: Any) -> Any:
        if isinstance(value, str):
            return pattern.sub("<id>", value)
        if isinstance(value, list):
            return [scrub(v) for v in value]
        if isinstance(value, dict):
            return {k: scrub(v) for k, v in value.items()}
        return value

    try:
        body = scrub(response.json())
    except json.JSONDecodeError:
        body = scrub(response.text)
    return response.status_code, response.headers.get("content-type", ""), body


def test_a_record_one_may_not_see_answers_as_a_missing_one(world: World) -> None:
    probes = {f"{m} {p}": probe for (m, p), probe in ID_ROUTES.items()} | ID_PARAMETERS
    differ = []
    for name, probe in probes.items():
        for caller in CALLERS:
            hidden, missing = probe.hidden(world), probe.missing(world)
            seen = _scrubbed(probe.ask(world, caller, hidden), hidden)
            absent = _scrubbed(probe.ask(world, caller, missing), missing)
            if seen != absent:
                differ.append(f"{name} as {caller}:\n  hidden  {seen}\n  missing {absent}")
    assert not differ, "\n".join(differ)


def test_a_declared_private_file_answers_as_a_missing_one(world: World) -> None:
    """Not archived yet: nothing is said of it before the caller is found to see it."""
    declared = world.accessions["files"]["declared.vcf.gz"]
    for caller in CALLERS:
        seen = world.client.get(f"/ga4gh/drs/v1/objects/{declared}", headers=world.call(caller))
        absent = world.client.get(
            f"/ga4gh/drs/v1/objects/{_missing(declared)}", headers=world.call(caller)
        )
        assert _scrubbed(seen, declared) == _scrubbed(absent, _missing(declared))
        assert seen.status_code == 404


def test_what_the_owner_and_the_public_see_is_unchanged(world: World) -> None:
    """The rule hides only what the caller may not see: the owner still finds their own
    records, a public study's file is refused (not hidden) and the steward sees everything."""
    client = world.client
    owner, steward = world.call("owner"), world.call("steward")
    assert client.get(f"/api/v1/requests/{world.ids['request']}", headers=owner).status_code == 200
    # the requester may see the item of their request, not decide it: refused, not hidden
    own_item = client.post(
        "/api/v1/dac/decisions",
        headers=owner,
        json={"item": int(world.ids["item"]), "approve": True, "reason": "mine"},
    )
    assert own_item.status_code == 403
    public_file = world.accessions["files"]["calls.vcf.gz"]
    assert client.get(f"/ga4gh/drs/v1/objects/{public_file}").status_code in (401, 403)
    hidden = world.accessions["studies"]["HIDDEN"]
    assert client.get(f"/api/v1/studies/{hidden}", headers=steward).status_code == 200
    listed = client.get("/api/v1/datasets", params={"study": hidden}, headers=steward)
    assert [d["alias"] for d in listed.json()["items"]] == ["DSX"]


def test_frequencies_leave_a_private_study_out(world: World) -> None:
    """A verified researcher sees the noisy table of the public study's registered dataset
    and nothing of the private one's (the Beacon tells them nothing of it either)."""
    listed = world.client.get(f"/api/v1/variants/{world.variant}", headers=world.call("eve"))
    assert listed.status_code == 200
    assert [d["dataset"] for d in listed.json()["datasets"]] == [
        world.accessions["datasets"]["DS1"]
    ]
    hidden = world.client.get(
        f"/api/v1/variants/{world.hidden_variant}", headers=world.call("eve")
    ).json()
    assert [d["dataset"] for d in hidden["datasets"]] == [world.accessions["datasets"]["DS1"]]


# -- every refusal is an event ----------------------------------------------------------------


def _events(world: World) -> list[Any]:
    audit_service.sequence_queued(world.factory)
    with world.factory() as session:
        return list(
            session.execute(
                select(audit_events)
                .where(audit_events.c.tag == DENY)
                .order_by(audit_events.c.leaf_index)
            ).all()
        )


def _forged_passport(world: World, subject: str) -> str:
    now = datetime.now(UTC)
    visa = issue_visa(
        keys=InMemoryKeyStore(),  # a key nobody trusts, in the name of this node
        issuer=world.settings.issuer_url,
        subject=subject,
        visa_type=VisaType.CONTROLLED_ACCESS_GRANTS,
        value=f"{world.settings.issuer_url}/datasets/{world.accessions['datasets']['DSX']}",
        source=world.settings.issuer_url,
        by=VisaBy.DAC,
        asserted=now - timedelta(hours=1),
        expires=now + timedelta(hours=1),
        now=now,
    )
    return json.dumps(passport_claim([visa]))


@dataclass(frozen=True)
class Refused:
    """A refusal to provoke, and the event it must leave."""

    ask: Callable[[World], Any]
    actor: str
    kind: str
    answered: int | None
    route: str


def _as(
    caller: str, method: str, path: str, *, params: dict[str, Any] | None = None, **options: Any
) -> Callable[[World], Any]:
    """A call as `caller`, its path and query naming the world's records ({grant}, ...)."""

    def ask(w: World) -> Any:
        names = {**w.ids, **_named(w)}
        query = {
            k: v.format(**names) if isinstance(v, str) else v for k, v in (params or {}).items()
        }
        return w.client.request(
            method, path.format(**names), params=query, headers=w.call(caller), **options
        )

    return ask


def _named(w: World) -> dict[str, str]:
    return {
        "individual": w.accessions["individuals"]["P1"],
        "hidden_study": w.accessions["studies"]["HIDDEN"],
        "hidden_file": w.accessions["files"]["hidden.vcf.gz"],
        "public_file": w.accessions["files"]["calls.vcf.gz"],
    }


EVE = "user:eve@example.org"
ANYONE = "address:testclient"  # what the test client's requests come from
REFUSALS: dict[str, Refused] = {
    "individuals listed": Refused(
        _as("eve", "GET", "/api/v1/individuals"),
        EVE,
        "individual",
        403,
        "GET /api/v1/individuals",
    ),
    "an individual read": Refused(
        _as("eve", "GET", "/api/v1/individuals/{individual}"),
        EVE,
        "individual",
        404,
        "GET /api/v1/individuals/{accession}",
    ),
    "submissions listed": Refused(
        _as("eve", "GET", "/api/v1/submissions"),
        EVE,
        "submission",
        403,
        "GET /api/v1/submissions",
    ),
    "a compliance report": Refused(
        _as(
            "eve",
            "GET",
            "/api/v1/compliance/report",
            params={"start": "2026-01-01", "end": "2026-12-31"},
        ),
        EVE,
        "compliance",
        403,
        "GET /api/v1/compliance/report",
    ),
    "audit entries": Refused(
        _as("eve", "GET", "/api/v1/audit/entries", params={"start": 0, "end": 2}),
        EVE,
        "audit",
        403,
        "GET /api/v1/audit/entries",
    ),
    "audit get-entries": Refused(
        _as("eve", "GET", "/api/v1/audit/get-entries", params={"start": 0, "end": 1}),
        EVE,
        "audit",
        403,
        "GET /api/v1/audit/get-entries",
    ),
    "audit alerts": Refused(
        _as("eve", "GET", "/api/v1/audit/alerts"), EVE, "audit", 403, "GET /api/v1/audit/alerts"
    ),
    "someone else's request": Refused(
        _as("eve", "GET", "/api/v1/requests/{request}"),
        EVE,
        "request",
        404,
        "GET /api/v1/requests/{request_id}",
    ),
    "someone else's grant": Refused(
        _as("eve", "DELETE", "/api/v1/grants/{grant}", params={"reason": "x"}),
        EVE,
        "grant",
        404,
        "DELETE /api/v1/grants/{grant_id}",
    ),
    "someone else's token": Refused(
        _as("eve", "DELETE", "/api/v1/tokens/{token}"),
        EVE,
        "token",
        404,
        "DELETE /api/v1/tokens/{token_id}",
    ),
    "a DAC decision": Refused(
        lambda w: w.client.post(
            "/api/v1/dac/decisions",
            headers=w.call("eve"),
            json={"item": int(w.ids["item"]), "approve": True, "reason": "x"},
        ),
        EVE,
        "request",
        404,
        "POST /api/v1/dac/decisions",
    ),
    "someone else's upload": Refused(
        _as("eve", "GET", "/api/v1/uploads/{upload}"),
        EVE,
        "upload",
        404,
        "GET /api/v1/uploads/{upload_id}",
    ),
    "a private study's dataset requested": Refused(
        lambda w: ID_PARAMETERS["POST /api/v1/requests datasets"].ask(
            w, "eve", w.accessions["datasets"]["DSX"]
        ),
        EVE,
        "dataset",
        404,
        "POST /api/v1/requests",
    ),
    "a private study's datasets listed": Refused(
        _as("anonymous", "GET", "/api/v1/datasets", params={"study": "{hidden_study}"}),
        ANYONE,
        "study",
        404,
        "GET /api/v1/datasets",
    ),
    "a private file by DRS": Refused(
        _as("anonymous", "GET", "/ga4gh/drs/v1/objects/{hidden_file}"),
        ANYONE,
        "file",
        404,
        "GET /ga4gh/drs/v1/objects/{object_id}",
    ),
    "a public study's file by DRS": Refused(
        _as("anonymous", "GET", "/ga4gh/drs/v1/objects/{public_file}"),
        ANYONE,
        "file",
        None,  # 401 or 403, as DRS has it
        "GET /ga4gh/drs/v1/objects/{object_id}",
    ),
    "a forged token": Refused(
        lambda w: w.client.get(
            "/api/v1/auth/me", headers={"Authorization": "Bearer gct_" + "A" * 43}
        ),
        ANYONE,
        "token",
        401,
        "GET /api/v1/auth/me",
    ),
    "a forged passport": Refused(
        lambda w: w.client.get(
            "/api/v1/auth/me",
            headers={
                **w.call("eve"),
                "X-GA4GH-Passport": _forged_passport(w, "eve@example.org"),
            },
        ),
        EVE,
        "passport",
        None,  # the request goes on without the forged visa
        "GET /api/v1/auth/me",
    ),
}


def test_every_refusal_is_an_event(world: World) -> None:
    problems = []
    for name, refused in REFUSALS.items():
        before = len(_events(world))
        response = refused.ask(world)
        events = _events(world)[before:]
        if len(events) != 1:
            problems.append(f"{name}: {len(events)} events ({response.status_code})")
            continue
        (event,) = events
        details = event.details
        expected = refused.answered if refused.answered is not None else details["answered"]
        checks = {
            "actor": (event.actor, refused.actor),
            "kind": (details["kind"], refused.kind),
            "route": (details["route"], refused.route),
            "answered": (details["answered"], expected),
            "address": (details["address"], "testclient"),
        }
        if refused.answered is not None:
            checks["status"] = (response.status_code, refused.answered)
        wrong = {k: v for k, v in checks.items() if v[0] != v[1]}
        if wrong or not details["rule"]:
            problems.append(f"{name}: {wrong} rule={details['rule']!r}")
    assert not problems, "\n".join(problems)


def test_an_unseen_record_is_audited_with_the_truth(world: World) -> None:
    """The answer says "not found"; the log says which record was refused, why, and that the
    caller was answered 404."""
    hidden = world.accessions["datasets"]["DSX"]
    before = len(_events(world))
    answer = world.client.get(f"/api/v1/datasets/{hidden}", headers=world.call("eve"))
    assert answer.status_code == 404 and "private" not in answer.text.lower()
    (event,) = _events(world)[before:]
    assert event.subject == f"dataset:{hidden}"
    assert event.details["rule"] == "private-metadata"
    assert event.details["answered"] == 404


# -- probing is seen by the early warning ------------------------------------------------------


def test_probing_raises_the_repeated_refusals_alert(world: World) -> None:
    """An outsider trying twenty ids of private records and of other people's grants and
    tokens, and an anonymous prober doing the same, are each caught by `repeated-refusals`."""
    hidden = [
        world.accessions["studies"]["HIDDEN"],
        world.accessions["datasets"]["DSX"],
        world.accessions["files"]["hidden.vcf.gz"],
    ]
    for caller in CALLERS:
        for attempt in range(20):
            kind = attempt % 5
            if kind == 0:
                world.client.get(f"/api/v1/studies/{hidden[0]}", headers=world.call(caller))
            elif kind == 1:
                world.client.get(f"/api/v1/datasets/{hidden[1]}", headers=world.call(caller))
            elif kind == 2:
                world.client.get(f"/ga4gh/drs/v1/objects/{hidden[2]}", headers=world.call(caller))
            elif kind == 3:
                world.client.delete(
                    f"/api/v1/grants/{world.ids['grant']}",
                    params={"reason": "x"},
                    headers=world.call(caller),
                )
            else:
                world.client.delete(
                    f"/api/v1/tokens/{world.ids['token']}", headers=world.call(caller)
                )
    watch.watch_once(world.factory, world.settings)
    with world.factory() as session:
        keys = set(
            session.execute(
                select(audit_alerts.c.key).where(audit_alerts.c.rule == "repeated-refusals")
            ).scalars()
        )
        raised = session.execute(
            select(func.count())
            .select_from(audit_alerts)
            .where(audit_alerts.c.rule == "repeated-refusals")
        ).scalar_one()
    assert {EVE, ANYONE} <= keys, keys
    assert raised == len(keys)  # once per prober and window
