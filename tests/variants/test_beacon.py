"""The Beacon v2 through HTTP: granularity per dataset follows the caller, queries match
however a variant is written, filters select individuals, the guard shapes boolean and count
answers, every query is audited, and bad input gets a Beacon error response."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pysam
import pytest
from sqlalchemy import insert, select, update

from genecommons import clock
from genecommons.access import service as access_service
from genecommons.access import workflow
from genecommons.access.tables import grants, user_roles, users
from genecommons.audit import service as audit_service
from genecommons.ledger.tables import audit_events
from genecommons.policy.models import Subject
from genecommons.privacy.cells import CellRule
from genecommons.privacy.guards import DefendedPeople
from genecommons.variants.answers import DatasetAnswer, Granularity
from genecommons.variants.store import SiteCounts

GRCH38 = {"assemblyId": "GRCh38"}


def first_carried(world: SimpleNamespace) -> Any:
    """The first SNV of the world's VCF that somebody carries, with its calls."""
    with pysam.VariantFile(str(world.vcf)) as vcf:
        for record in vcf:
            calls = {name: record.samples[name]["GT"] for name in record.samples}
            if any(1 in gt for gt in calls.values()):
                return SimpleNamespace(
                    chrom=record.chrom,
                    pos=record.pos,
                    ref=record.ref,
                    alt=record.alts[0],
                    calls=calls,
                )
    raise AssertionError("no carried variant")


def sequence(site: Any, **extra: Any) -> dict[str, Any]:
    return {
        "referenceName": site.chrom,
        "start": site.pos - 1,
        "referenceBases": site.ref,
        "alternateBases": site.alt,
        **GRCH38,
        **extra,
    }


def post(world: SimpleNamespace, path: str, who: str, **query: Any) -> Any:
    response = world.client.post(
        path, json={"meta": {"apiVersion": "v2.0.0"}, "query": query}, headers=world.headers[who]
    )
    assert response.status_code == 200, response.text
    return response.json()


def sets_of(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["id"]: s for s in document.get("response", {}).get("resultSets", [])}


def test_each_dataset_answers_at_the_granularity_of_the_caller(world: SimpleNamespace) -> None:
    site = first_carried(world)
    opened, registered, controlled = (
        world.datasets[t] for t in ("open", "registered", "controlled")
    )
    anonymous = post(world, "/beacon/g_variants", "anonymous", requestParameters=sequence(site))
    assert anonymous["meta"]["returnedGranularity"] == "boolean"
    assert anonymous["responseSummary"] == {"exists": True}
    reader = post(world, "/beacon/g_variants", "reader", requestParameters=sequence(site))
    assert reader["meta"]["returnedGranularity"] == "count"
    assert {k: (v["resultsCount"], v["results"]) for k, v in sets_of(reader).items()} == {
        opened: (1, []),
        registered: (1, []),
    }
    granted = post(world, "/beacon/g_variants", "researcher", requestParameters=sequence(site))
    assert granted["meta"]["returnedGranularity"] == "record"
    answered = sets_of(granted)
    assert set(answered) == {opened, registered, controlled}
    assert answered[controlled]["info"]["returnedGranularity"] == "record"
    assert len(answered[controlled]["results"]) == 1 and answered[opened]["results"] == []
    lowered = post(
        world,
        "/beacon/g_variants",
        "researcher",
        requestParameters=sequence(site),
        requestedGranularity="boolean",
    )
    assert lowered["meta"]["returnedGranularity"] == "boolean" and "response" not in lowered
    # queued with each answer, in the tree once sequenced (as `serve` does every half second)
    assert audit_service.sequence_queued(world.factory) >= 4  # with the token uses
    with world.factory() as session:
        logged = session.execute(
            select(audit_events.c.actor, audit_events.c.details)
            .where(audit_events.c.tag == "variants:beacon:query")
            .order_by(audit_events.c.leaf_index)
        ).all()
    assert [row.actor for row in logged] == [
        "anonymous",
        "user:reader@example.org",
        "user:researcher@example.org",
        "user:researcher@example.org",
    ]
    assert [row.details["granularity"] for row in logged] == [
        {opened: "boolean"},
        {opened: "count", registered: "count"},
        {opened: "count", registered: "count", controlled: "record"},
        {opened: "boolean", registered: "boolean", controlled: "boolean"},
    ]
    first = logged[0].details
    assert first["entry_type"] == "genomicVariant" and first["address"] == "testclient"
    assert first["parameters"]["referenceName"] == site.chrom and first["filters"] == []


def test_a_token_sees_its_grants_and_roles_as_they_stand_at_each_query(
    world: SimpleNamespace,
) -> None:
    """The token, its user's roles and grants in force are read in one statement on every
    query: an expired or revoked grant no longer opens records to the very next query, and a
    role given since counts at once."""
    site = first_carried(world)
    controlled = world.datasets["controlled"]

    def granularity() -> str | None:
        answer = post(world, "/beacon/g_variants", "researcher", requestParameters=sequence(site))
        shown = sets_of(answer).get(controlled)
        return None if shown is None else str(shown["info"]["returnedGranularity"])

    assert granularity() == "record"
    (grant,) = workflow.active_grants(world.factory, email="researcher@example.org")
    with world.factory.begin() as session:  # expired a second ago
        session.execute(
            update(grants)
            .where(grants.c.id == grant["id"])
            .values(expires_at=clock.now() - timedelta(seconds=1))
        )
    assert granularity() is None  # the controlled dataset is not shown below record
    with world.factory.begin() as session:
        session.execute(
            update(grants)
            .where(grants.c.id == grant["id"])
            .values(expires_at=clock.now() + timedelta(days=30))
        )
    assert granularity() == "record"
    dac = Subject.user("dac@example.org", roles=frozenset({"dac_member"}), institution=None)
    workflow.revoke_grant(world.factory, grant_id=grant["id"], reason="Ended.", actor=dac)
    assert granularity() is None
    subject = access_service.authenticate(
        world.factory,
        world.headers["researcher"]["Authorization"].removeprefix("Bearer "),
        events=world.app.state.services.events,
    )
    assert subject.roles == {"researcher"} and subject.grants == frozenset()
    with world.factory.begin() as session:
        user_id = session.execute(
            select(users.c.id).where(users.c.email == "researcher@example.org")
        ).scalar_one()
        session.execute(insert(user_roles).values(user_id=user_id, role="dac_member"))
    subject = access_service.authenticate(
        world.factory,
        world.headers["researcher"]["Authorization"].removeprefix("Bearer "),
        events=world.app.state.services.events,
    )
    assert subject.roles == {"researcher", "dac_member"}


def test_a_variant_matches_however_it_is_written(world: SimpleNamespace) -> None:
    site = first_carried(world)
    written = [
        sequence(site),
        sequence(site, referenceBases=site.ref.lower(), alternateBases=site.alt.lower()),
        # shared trailing and leading bases are trimmed away (no reference genome needed)
        sequence(site, referenceBases=site.ref + "C", alternateBases=site.alt + "C"),
        sequence(
            site, start=site.pos - 3, referenceBases="TT" + site.ref, alternateBases="TT" + site.alt
        ),
        sequence(site, referenceName=site.chrom.removeprefix("chr"), assemblyId="hg38"),
        sequence(site, referenceName="NC_0000" + site.chrom.removeprefix("chr") + ".11"),
        {"referenceName": site.chrom, "start": site.pos - 1, "alternateBases": site.alt},
        {"referenceName": site.chrom, "start": site.pos - 1, "end": site.pos, "variantType": "SNP"},
        {
            "referenceName": site.chrom,
            "start": [site.pos - 5, site.pos - 1],
            "end": [site.pos, site.pos + 3],
        },
    ]
    key = f"{site.chrom}-{site.pos}-{site.ref}-{site.alt}"
    controlled = world.datasets["controlled"]
    for parameters in written:
        found = sets_of(
            post(world, "/beacon/g_variants", "researcher", requestParameters=parameters)
        )
        ids = [r["variantInternalId"] for r in found[controlled]["results"]]
        assert f"{controlled}:{key}" in ids, parameters
    wrong = sequence(site, alternateBases="ACGT".replace(site.ref, "").replace(site.alt, "")[0])
    missed = post(world, "/beacon/g_variants", "researcher", requestParameters=wrong)
    assert missed["responseSummary"]["exists"] is False


def test_record_answers_give_carriers_and_frequencies(world: SimpleNamespace) -> None:
    site = first_carried(world)
    controlled = world.datasets["controlled"]
    answered = sets_of(
        post(world, "/beacon/g_variants", "researcher", requestParameters=sequence(site))
    )
    record = answered[controlled]["results"][0]
    samples = world.accessions["samples"]
    individuals = world.accessions["individuals"]
    expected = {
        (samples[name], individuals[name.removesuffix("-S1")], "1/1" if gt == (1, 1) else "0/1")
        for name, gt in site.calls.items()
        if 1 in gt
    }
    assert {
        (c["biosampleId"], c["individualId"], c["zygosity"]["label"])
        for c in record["caseLevelData"]
    } == expected
    frequencies = {f["population"]: f for f in record["frequencyInPopulations"][0]["frequencies"]}
    chb = site.calls["P1-S1"] + site.calls["P2-S1"]
    assert (frequencies["CHB"]["alleleCount"], frequencies["CHB"]["alleleNumber"]) == (
        chb.count(1),
        4,
    )
    assert frequencies["all"]["alleleFrequency"] == pytest.approx(
        sum(gt.count(1) for gt in site.calls.values()) / 6
    )
    assert record["variation"]["location"]["interval"]["start"]["value"] == site.pos - 1


def carried_by(world: SimpleNamespace, site: Any, samples: Sequence[str]) -> bool:
    return any(1 in site.calls[s] for s in samples)


def test_filters_select_the_individuals_asked_for(world: SimpleNamespace) -> None:
    site = first_carried(world)
    controlled = world.datasets["controlled"]
    individuals = world.accessions["individuals"]

    def people(*filters: Any, **parameters: Any) -> set[str]:
        document = post(
            world, "/beacon/individuals", "researcher", filters=list(filters), **parameters
        )
        return (
            {r["id"] for r in sets_of(document)[controlled]["results"]}
            if sets_of(document).get(controlled)
            else set()
        )

    everyone = {individuals[p] for p in ("P1", "P2", "P3")}
    assert people() == everyone
    assert people({"id": "NCIT:C16576"}) == {individuals["P2"]}  # female
    assert people({"id": "sex", "operator": "=", "value": "male"}) == {
        individuals["P1"],
        individuals["P3"],
    }
    assert people({"id": "population", "operator": "=", "value": "JPT"}) == {individuals["P3"]}
    assert people({"id": "population", "operator": "!", "value": "JPT"}) == {
        individuals["P1"],
        individuals["P2"],
    }
    assert (
        people({"id": "ethnic_group", "operator": "=", "value": "汉族"}) == everyone
    )  # GB/T 3304 01
    assert people({"id": "HP:0000365"}) == everyone  # P2's HP:0000407 lies below it
    assert people({"id": "HP:0000365", "includeDescendantTerms": False}) == {
        individuals["P1"],
        individuals["P3"],
    }
    carriers = {individuals[s.removesuffix("-S1")] for s, gt in site.calls.items() if 1 in gt}
    assert people(requestParameters=sequence(site)) == carriers
    # counts by sex come straight from the sites index
    document = post(
        world,
        "/beacon/g_variants",
        "researcher",
        requestParameters=sequence(site),
        filters=[{"id": "NCIT:C16576"}],
        includeResultsetResponses="ALL",
    )
    answered = sets_of(document)
    assert answered[controlled]["exists"] is carried_by(world, site, ["P2-S1"])
    if answered[controlled]["exists"]:
        frequencies = answered[controlled]["results"][0]["frequencyInPopulations"][0]["frequencies"]
        assert frequencies[0]["population"] == "female"
        assert frequencies[0]["alleleCount"] == site.calls["P2-S1"].count(1)


def test_single_and_cross_entry_routes(world: SimpleNamespace) -> None:
    site = first_carried(world)
    controlled = world.datasets["controlled"]
    individuals, samples = world.accessions["individuals"], world.accessions["samples"]
    key = f"{site.chrom}-{site.pos}-{site.ref}-{site.alt}"
    headers = world.headers["researcher"]
    one = world.client.get(f"/beacon/g_variants/{key}", headers=headers).json()
    assert sets_of(one)[controlled]["results"][0]["variantInternalId"] == f"{controlled}:{key}"
    carriers = world.client.get(f"/beacon/g_variants/{key}/biosamples", headers=headers).json()
    assert {r["id"] for r in sets_of(carriers)[controlled]["results"]} == {
        samples[s] for s, gt in site.calls.items() if 1 in gt
    }
    person = world.client.get(f"/beacon/individuals/{individuals['P1']}", headers=headers).json()
    assert [r["id"] for r in sets_of(person)[controlled]["results"]] == [individuals["P1"]]
    own = world.client.get(
        f"/beacon/individuals/{individuals['P1']}/g_variants",
        params={
            "referenceName": site.chrom,
            "start": site.pos - 1,
            "end": site.pos,
            "includeResultsetResponses": "ALL",
        },
        headers=headers,
    ).json()
    assert sets_of(own)[controlled]["exists"] is carried_by(world, site, ["P1-S1"])
    for name in ("P1", "P2"):
        run = world.accessions["runs"][f"{name}-R1"]
        of_run = world.client.get(
            f"/beacon/runs/{run}/g_variants",
            params={**own["meta"]["receivedRequestSummary"]["requestParameters"]["g_variant"]},
            headers=headers,
        ).json()
        answered = sets_of(of_run).get(controlled, {"exists": False})
        assert answered["exists"] is carried_by(world, site, [f"{name}-S1"])
    runs = world.client.get(f"/beacon/datasets/{controlled}/individuals", headers=headers).json()
    assert set(sets_of(runs)) == {controlled}
    listed = world.client.get("/beacon/datasets", headers=world.headers["anonymous"]).json()
    assert [c["id"] for c in listed["response"]["collections"]] == [world.datasets["open"]]
    cohorts = world.client.get("/beacon/cohorts", headers=headers).json()
    assert cohorts["response"]["collections"][0]["cohortSize"] == 3


def test_counts_of_people_below_records_are_noisy_consistent_and_small_cells_withheld(
    world: SimpleNamespace,
) -> None:
    opened, registered = world.datasets["open"], world.datasets["registered"]
    controlled = world.datasets["controlled"]
    serving = world.app.state.services
    world.app.state.services = replace(  # world: "exact"
        serving, people_guard=DefendedPeople(serving.settings)
    )
    # the world's datasets hold 3 people each: under the cell size of 10, nothing is disclosed
    reader = post(world, "/beacon/individuals", "reader")
    for accession in (opened, registered):
        told = sets_of(reader)[accession]
        assert (told["exists"], told["resultsCount"]) == (False, 0)
        assert "Not disclosed" in told["info"]["note"] and "未披露" in told["info"]["note_zh"]
    anonymous = post(world, "/beacon/individuals", "anonymous")
    assert anonymous["responseSummary"] == {"exists": False}
    granted = post(world, "/beacon/individuals", "researcher")
    assert sets_of(granted)[controlled]["resultsCount"] == 3  # records: exact
    # with a cell size of 1 the noisy counts show: the same set of people, however it is
    # asked for, gets the same count
    rule = CellRule(key=b"c" * 32, minimum=1, scale=2.0)
    world.app.state.services = replace(
        serving, people_guard=DefendedPeople(serving.settings, rule=rule)
    )
    female = [
        {"id": "NCIT:C16576"},
        {"id": "sex", "operator": "=", "value": "female"},
        {"id": "population", "operator": "!", "value": "JPT"},  # P1 and P2
    ]
    counts = []
    for filters in (female[:1], female[1:2], female[2:]):
        for _ in range(2):
            told = sets_of(post(world, "/beacon/individuals", "reader", filters=filters))
            counts.append(told[opened]["resultsCount"])
    members = world.accessions["individuals"]
    assert counts[:4] == [rule.released([members["P2"]])] * 4
    assert counts[4:] == [rule.released([members["P1"], members["P2"]])] * 2


class Withholding:
    """A guard that tells nothing: it proves that boolean and count answers come from the guard
    alone, once per dataset and query, with the caller and address."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str, Granularity, int]] = []
        self.groups: set[str] = set()

    def __call__(
        self,
        *,
        subject: Subject,
        address: str,
        dataset: str,
        granularity: Granularity,
        matches: Sequence[SiteCounts],
    ) -> DatasetAnswer:
        self.calls.append((subject.id, address, dataset, granularity, len(matches)))
        self.groups = {group for site in matches for group in site.counts}
        return DatasetAnswer(
            exists=False, count=0, withheld=True, note="withheld", note_zh="不予提供"
        )


def test_the_guard_alone_shapes_boolean_and_count_answers(world: SimpleNamespace) -> None:
    site = first_carried(world)
    guard = Withholding()
    world.app.state.services = replace(world.app.state.services, variant_guard=guard)
    anonymous = post(world, "/beacon/g_variants", "anonymous", requestParameters=sequence(site))
    assert anonymous["responseSummary"] == {"exists": False}
    reader = post(world, "/beacon/g_variants", "reader", requestParameters=sequence(site))
    assert reader["responseSummary"] == {"exists": False, "numTotalResults": 0}
    assert {s["info"]["note"] for s in sets_of(reader).values()} == {"withheld"}
    granted = post(world, "/beacon/g_variants", "researcher", requestParameters=sequence(site))
    assert sets_of(granted)[world.datasets["controlled"]]["exists"] is True  # records: exact
    assert {"all", "CHB", "JPT", "female", "male"} <= guard.groups  # every group of the index
    assert guard.calls == [
        ("anonymous", "testclient", world.datasets["open"], Granularity.BOOLEAN, 1),
        ("user:reader@example.org", "testclient", world.datasets["open"], Granularity.COUNT, 1),
        (
            "user:reader@example.org",
            "testclient",
            world.datasets["registered"],
            Granularity.COUNT,
            1,
        ),
        ("user:researcher@example.org", "testclient", world.datasets["open"], Granularity.COUNT, 1),
        (
            "user:researcher@example.org",
            "testclient",
            world.datasets["registered"],
            Granularity.COUNT,
            1,
        ),
    ]


BAD_GETS = [
    (
        {"referenceName": "chr1", "start": 100, "alternateBases": "A", "assemblyId": "hg99"},
        "assemblyId",
    ),
    ({"referenceName": "chr1", "start": 200, "end": 100}, "greater than start"),
    ({"referenceName": "chr1", "start": -5, "alternateBases": "A"}, "start"),
    ({"referenceName": "chr1", "start": 300_000_000, "end": 300_000_010}, "beyond the end"),
    ({"referenceName": "chr1", "start": 1, "end": 50_000_000}, "split the query"),
    ({"referenceName": "chr1", "start": "1,2", "end": "9,5"}, "bracket"),
    ({"referenceName": "chr1", "start": 100}, "sequence query"),
    (
        {"referenceName": "chr1' OR '1'='1", "start": 100, "alternateBases": "A"},
        "not a human chromosome",
    ),
    (
        {"referenceName": "chr1", "start": 100, "alternateBases": "A;DROP TABLE sites"},
        "not a sequence",
    ),
    ({"referenceName": "chr1", "start": 100, "alternateBases": "<DEL>"}, "not a sequence"),
    ({"referenceName": "chr1", "start": "1e9x", "alternateBases": "A"}, "start"),
    ({"referenceName": "chr1", "start": 100, "end": 200, "variantType": "DUP"}, "variantType"),
    ({"geneId": "BRCA1"}, "not supported"),
    ({"filters": "HP:9999999"}, "Unknown filter"),
    ({"filters": "FOO:bar"}, "Unknown filter"),
    ({"filters": "population=CHB' --"}, "Unknown filter"),
    ({"filters": "ethnic_group=Martian"}, "Unknown filter"),
    ({"filters": "<script>alert(1)</script>"}, "Unknown filter"),
    (
        {"referenceName": "1", "start": 1, "alternateBases": "A", "hacker": "1"},
        "Unknown query parameter",
    ),
    ({"limit": 100_000}, "limit"),
    ({"requestedGranularity": "everything"}, "requestedGranularity"),
]


@pytest.mark.parametrize(("params", "said"), BAD_GETS, ids=[str(i) for i in range(len(BAD_GETS))])
def test_bad_requests_get_a_beacon_error(
    shared_world: SimpleNamespace, beacon_schemas: Any, params: dict[str, Any], said: str
) -> None:
    response = shared_world.client.get("/beacon/g_variants", params=params)
    assert response.status_code == 400, response.text
    document = response.json()
    assert said in document["error"]["errorMessage"]
    assert document["error"]["errorCode"] == 400
    assert " / " in document["error"]["errorMessage"]  # English / Chinese
    assert not beacon_schemas.errors(document, "framework/json/responses/beaconErrorResponse.json")


BAD_BODIES: list[Any] = [
    b"{not json",
    b"\xff\xfe",
    b"[1, 2, 3]",
    b'{"meta": {}, "query": {"requestParameters": {"start": "abc"}}}',
    b'{"meta": {}, "query": {"requestParameters": {"referenceName": 22, "start": [1, 2, 3]}}}',
    b'{"meta": {}, "query": {"filters": [{"id": "HP:0000365", "operator": "LIKE"}]}}',
    b'{"meta": {}, "query": {"filters": [{"nope": 1}]}}',
    b'{"meta": {}, "query": {"pagination": {"skip": -1}}}',
    b'{"meta": {}, "query": {"unknown": true}}',
    b'{"meta": {}, "query": {"filters": ' + b"[" + b",".join([b'"HP:0000365"'] * 50) + b"]}}",
    b'{"meta": {}, "query": {"requestParameters": {"referenceName": "chr1", "start": [1e30], '
    b'"alternateBases": "A"}}}',
    b'{"meta": {}, "query": {"requestParameters": {"referenceName": "' + b"A" * 5000 + b'"}}}',
]


@pytest.mark.parametrize("body", BAD_BODIES, ids=[str(i) for i in range(len(BAD_BODIES))])
def test_bad_bodies_get_a_beacon_error(shared_world: SimpleNamespace, body: bytes) -> None:
    for path in ("/beacon/g_variants", "/beacon/individuals"):
        response = shared_world.client.post(
            path, content=body, headers={"content-type": "application/json"}
        )
        assert response.status_code == 400, response.text
        assert response.json()["error"]["errorCode"] == 400


def test_who_asks_is_checked_before_what_is_asked(shared_world: SimpleNamespace) -> None:
    """The token is checked in the thread that answers; a bad token is still a 401 before any
    complaint about the query, by GET and POST, and a good one gets the query's own error."""
    bad = {"Authorization": "Bearer gct_" + "0" * 43}  # well formed, unknown
    malformed = {"referenceName": "chr22", "start": "abc"}
    asked = [
        shared_world.client.get("/beacon/g_variants", params=malformed, headers=bad),
        shared_world.client.post("/beacon/g_variants", content=b"{not json", headers=bad),
        shared_world.client.get("/beacon/filtering_terms", headers=bad),
        shared_world.client.get("/beacon/g_variants", headers={"Authorization": "Basic x"}),
    ]
    assert [r.status_code for r in asked] == [401, 401, 401, 401], [r.text for r in asked]
    for response in asked:
        assert response.json()["error"]["errorCode"] == 401
        assert " / " in response.json()["error"]["errorMessage"]  # English / Chinese
    good = shared_world.headers["reader"]
    response = shared_world.client.get("/beacon/g_variants", params=malformed, headers=good)
    assert response.status_code == 400, response.text


def test_unknown_endpoints_get_a_beacon_error(shared_world: SimpleNamespace) -> None:
    for method, path in (("GET", "/beacon/variants"), ("DELETE", "/beacon/g_variants")):
        response = shared_world.client.request(method, path)
        assert response.status_code in (404, 405)
        assert "/beacon/map" in response.json()["error"]["errorMessage"]
    long = shared_world.client.get("/beacon/individuals/" + "X" * 300)
    assert long.status_code == 400 and long.json()["error"]["errorCode"] == 400


def test_a_huge_range_in_a_dense_dataset_is_refused(world: SimpleNamespace) -> None:
    limited = world.settings.model_copy(update={"beacon_max_variants": 3})
    world.app.state.services = replace(world.app.state.services, settings=limited)
    response = world.client.get(
        "/beacon/g_variants",
        params={"referenceName": "chr21", "start": 10_000_000, "end": 11_000_000},
        headers=world.headers["researcher"],
    )
    assert response.status_code == 400 and "narrow the range" in response.text


def test_the_default_guard_withholds_rare_alleles(world: SimpleNamespace) -> None:
    """Served as `make run` serves it, the open tier's answer about an allele that three
    people carry at most is withheld (privacy/beacon_guard.py), where the truth is "exists"."""
    from fastapi.testclient import TestClient

    from genecommons.app import create_app
    from genecommons.privacy.guards import DefendedGuard

    site = first_carried(world)
    body = {"meta": {"apiVersion": "v2.0.0"}, "query": {"requestParameters": sequence(site)}}
    truth = world.client.post("/beacon/g_variants", json=body).json()
    app = create_app(world.settings)
    try:
        assert isinstance(app.state.services.variant_guard, DefendedGuard)
        with TestClient(app) as client:
            defended = client.post("/beacon/g_variants", json=body).json()
    finally:
        app.state.services.engine.dispose()
    assert truth["responseSummary"] == {"exists": True}
    assert defended["responseSummary"] == {"exists": False}


def test_an_institutions_accounts_share_its_count_budget_over_http(world: SimpleNamespace) -> None:
    """Served with the defended guard, the reader's count answer spends the institution's
    budget, and the researcher of the same institution (another account) is then told so."""
    from fastapi.testclient import TestClient

    from genecommons.app import create_app
    from genecommons.privacy.beacon_guard import INSTITUTION_SPENT_NOTE, INSTITUTION_SPENT_NOTE_ZH

    carried = []
    with pysam.VariantFile(str(world.vcf)) as vcf:
        for record in vcf:
            if len(record.ref) == len(record.alts[0]) == 1 and any(
                1 in record.samples[name]["GT"] for name in record.samples
            ):
                carried.append(
                    SimpleNamespace(
                        chrom=record.chrom, pos=record.pos, ref=record.ref, alt=record.alts[0]
                    )
                )
    first, second = carried[0], carried[1]
    # thresholds of 1-3 copies: the world's rare alleles sit in the window and cost something;
    # the institution may learn one of them, each account and address a hundred. The world's
    # few members would leave its Beacon answering nothing (privacy/cohort_size.py): the size
    # rule's cut points at 1 keep it on the threshold rule, whose budgets are tested here
    settings = world.settings.model_copy(
        update={
            "beacon_threshold_min": 1,
            "beacon_threshold_max": 3,
            "beacon_institution_budget": 0.01,
            "beacon_no_answer_below": 1,
            "beacon_common_only_below": 1,
        }
    )
    registered = world.datasets["registered"]
    app = create_app(settings)
    try:
        with TestClient(app) as client:

            def ask(who: str, site: Any) -> dict[str, Any]:
                body = {
                    "meta": {"apiVersion": "v2.0.0"},
                    "query": {
                        "requestParameters": sequence(site),
                        "includeResultsetResponses": "ALL",
                    },
                }
                response = client.post("/beacon/g_variants", json=body, headers=world.headers[who])
                assert response.status_code == 200, response.text
                found: dict[str, Any] = sets_of(response.json())[registered]
                return found

            told = ask("reader", first)
            refused = ask("reader", second)
            other = ask("researcher", second)
    finally:
        app.state.services.engine.dispose()
    assert "budget" not in str(told)
    for answer in (refused, other):
        assert answer["exists"] is False and answer["resultsCount"] == 0
        assert INSTITUTION_SPENT_NOTE in str(answer) and INSTITUTION_SPENT_NOTE_ZH in str(answer)
