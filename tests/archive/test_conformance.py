"""DRS 1.4 and htsget 1.3 as their specifications say, over HTTP: the request rules, the error
objects and statuses, the bulk and passport-in-body routes of DRS, htsget's CORS and media
type. (The third-party clients and suites run in test_delivery.py and `make conformance`.)"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from genecommons.access.keys import InMemoryKeyStore
from genecommons.access.passports import VisaBy, VisaType, issue_visa, passport_claim
from genecommons.app import create_app
from genecommons.archive.drs import MAX_BULK
from genecommons.archive.htsget_requests import MAX_TICKET_BODY, MEDIA_TYPE

from .conftest import when_ready

NODE_B = "https://node-b.example"


@pytest.fixture
def node_b() -> InMemoryKeyStore:
    """Another node, whose DAC's visas this node trusts."""
    return InMemoryKeyStore()


class PatientClient(TestClient):
    """A client that honours Retry-After, as the spec's clients do: a request answered "not
    ready yet" (a researcher's fingerprinted copy being made) is sent again until it is."""

    def request(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        return when_ready(lambda: super(PatientClient, self).request(*args, **kwargs))


@pytest.fixture
def client(
    world: Any, node_b: InMemoryKeyStore, tmp_path: Path, builder: Any
) -> Iterator[TestClient]:
    """The node's app, trusting node B's visas, with its copy builder running."""
    trusted = tmp_path / "trusted.json"
    trusted.write_text(json.dumps({NODE_B: node_b.jwks()}), encoding="utf-8")
    app = create_app(world.settings.model_copy(update={"trusted_issuers_file": trusted}))
    with PatientClient(app) as test_client:
        yield test_client
    app.state.services.engine.dispose()


def _visa(world: Any, keys: InMemoryKeyStore, subject: str) -> str:
    now = datetime.now(UTC)
    return issue_visa(
        keys=keys,
        issuer=NODE_B,
        subject=subject,
        visa_type=VisaType.CONTROLLED_ACCESS_GRANTS,
        value=f"{world.settings.issuer_url}/datasets/{world.dataset}",
        source=NODE_B,
        by=VisaBy.DAC,
        asserted=now - timedelta(hours=1),
        expires=now + timedelta(hours=1),
        now=now,
    )


# -- htsget -----------------------------------------------------------------------------------


def test_htsget_service_info_names_the_spec_fields(client: TestClient) -> None:
    info = client.get("/htsget/variants/service-info").json()["htsget"]
    assert info["fieldsParameterEffective"] is False
    assert "fieldsParametersEffective" not in info
    assert info["tagsParametersEffective"] is False


def _post(client: TestClient, world: Any, body: Any, query: str = "") -> Any:
    accession = world.accessions["files"]["calls.vcf.gz"]
    return client.post(
        f"/htsget/variants/{accession}{query}",
        content=body if isinstance(body, bytes) else json.dumps(body),
        headers={**world.headers("granted@example.org"), "Content-Type": "application/json"},
    )


@pytest.mark.parametrize(
    ("body", "query", "status", "error"),
    [
        ({"regions": []}, "", 400, "InvalidInput"),
        ({}, "?referenceName=chr22", 400, "InvalidInput"),
        ({"class": "header", "regions": [{"referenceName": "chr22"}]}, "", 400, "InvalidInput"),
        ({"class": "header", "fields": ["QNAME"]}, "", 400, "InvalidInput"),
        ({"class": "body"}, "", 400, "InvalidInput"),
        ({"tags": ["AB", "CD"], "notags": ["CD"]}, "", 400, "InvalidInput"),
        ({"regions": [{"start": 1}]}, "", 400, "InvalidInput"),
        ({"regions": [{"referenceName": "chr22", "start": -1}]}, "", 400, "InvalidInput"),
        ({"regions": [{"referenceName": "chr22", "start": 2**32}]}, "", 400, "InvalidInput"),
        ({"regions": [{"referenceName": "chr22", "start": 9, "end": 9}]}, "", 400, "InvalidRange"),
        ({"referenceName": "chr22"}, "", 400, "InvalidInput"),
        ({"format": "BCF"}, "", 400, "UnsupportedFormat"),
        (b"{not json", "", 400, "InvalidInput"),
        (b"[1, 2]", "", 400, "InvalidInput"),
        ({"regions": [{"referenceName": "chr22"}] * 20_000}, "", 413, "PayloadTooLarge"),
    ],
)
def test_htsget_post_requests_are_checked_as_the_spec_says(
    client: TestClient, world: Any, body: Any, query: str, status: int, error: str
) -> None:
    answer = _post(client, world, body, query)
    assert answer.status_code == status, answer.text
    assert answer.json()["htsget"]["error"] == error
    assert answer.json()["htsget"]["message"]


def test_a_body_too_large_is_refused_before_it_is_all_read(client: TestClient, world: Any) -> None:
    answer = _post(client, world, b" " * (MAX_TICKET_BODY + 1))
    assert answer.status_code == 413
    assert answer.json()["htsget"]["error"] == "PayloadTooLarge"


def test_htsget_post_honours_class_header(client: TestClient, world: Any) -> None:
    header = _post(client, world, {"class": "header", "format": "vcf"})
    assert header.status_code == 200, header.text
    assert [u["class"] for u in header.json()["htsget"]["urls"]] == ["header"]
    whole = _post(client, world, {"regions": [{"referenceName": "chr22"}]})
    assert [u["class"] for u in whole.json()["htsget"]["urls"]][:2] == ["header", "body"]


@pytest.mark.parametrize(
    ("query", "status", "error"),
    [
        ("class=header&referenceName=chr22", 400, "InvalidInput"),
        ("class=header&tags=AB", 400, "InvalidInput"),
        ("tags=AB,CD&notags=CD", 400, "InvalidInput"),
        ("referenceName=chr22&start=4294967296", 400, "InvalidInput"),
        ("referenceName=chr22&start=-1", 400, "InvalidInput"),
        ("referenceName=chr22&start=10&end=9", 400, "InvalidRange"),
        ("referenceName=chr22&format=CRAM", 400, "UnsupportedFormat"),
        # 32-bit unsigned: past 2^31 - 1 is a valid (empty) region
        ("referenceName=chr22&start=2147483648&end=4294967295", 200, None),
        ("referenceName=chr22&start=12000000&end=12000000", 200, None),  # empty, not reversed
        ("class=header&format=VCF", 200, None),
        ("tags=&notags=AB", 200, None),
    ],
)
def test_htsget_get_requests_are_checked_as_the_spec_says(
    client: TestClient, world: Any, query: str, status: int, error: str | None
) -> None:
    accession = world.accessions["files"]["calls.vcf.gz"]
    answer = client.get(
        f"/htsget/variants/{accession}?{query}", headers=world.headers("granted@example.org")
    )
    assert answer.status_code == status, answer.text
    if error is not None:
        assert answer.json()["htsget"]["error"] == error
        assert answer.headers["content-type"].startswith("application/json")
    else:
        assert answer.headers["content-type"].startswith(MEDIA_TYPE)
        assert answer.json()["htsget"]["format"] == "VCF"


def test_htsget_answers_cross_origin_requests(client: TestClient, world: Any) -> None:
    accession = world.accessions["files"]["calls.vcf.gz"]
    origin = "https://browser-app.example"
    preflight = client.options(
        f"/htsget/variants/{accession}",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == origin
    assert preflight.headers["access-control-allow-headers"] == "authorization"
    assert preflight.headers["access-control-max-age"] == str(30 * 24 * 3600)
    ticket = client.get(
        f"/htsget/variants/{accession}",
        headers={**world.headers("granted@example.org"), "Origin": origin},
    )
    assert ticket.status_code == 200
    assert ticket.headers["access-control-allow-origin"] == origin
    assert "access-control-allow-credentials" not in ticket.headers
    # only htsget: the rest of the API names no origin
    other = client.get("/ga4gh/drs/v1/service-info", headers={"Origin": origin})
    assert "access-control-allow-origin" not in other.headers


# -- DRS --------------------------------------------------------------------------------------


def test_drs_errors_are_drs_error_objects(client: TestClient, world: Any) -> None:
    too_long = client.get(
        "/ga4gh/drs/v1/objects/" + "X" * 41, headers=world.headers("granted@example.org")
    )
    assert too_long.status_code == 400
    assert too_long.json()["status_code"] == 400 and too_long.json()["msg"]
    assert too_long.headers["content-type"] == "application/json"
    vcf = world.accessions["files"]["calls.vcf.gz"]
    anonymous = client.get(f"/ga4gh/drs/v1/objects/{vcf}")
    assert anonymous.status_code == 401
    assert anonymous.json()["status_code"] == 401
    assert anonymous.headers["www-authenticate"] == "Bearer"
    refused = client.get(
        f"/ga4gh/drs/v1/objects/{vcf}", headers=world.headers("nogrant@example.org")
    )
    assert refused.status_code == 403


def test_drs_service_info_advertises_what_bulk_requests_take(client: TestClient) -> None:
    info = client.get("/ga4gh/drs/v1/service-info").json()
    assert info["maxBulkRequestLength"] == info["drs"]["maxBulkRequestLength"] == MAX_BULK > 1


def test_drs_bulk_objects(client: TestClient, world: Any) -> None:
    vcf = world.accessions["files"]["calls.vcf.gz"]
    bam = world.accessions["files"]["P1.bam"]
    asked = {"bulk_object_ids": [vcf, bam, "GCF99999999", vcf]}
    _copy_made(client, world, vcf)
    granted = client.post(
        "/ga4gh/drs/v1/objects", json=asked, headers=world.headers("granted@example.org")
    )
    assert granted.status_code == 200, granted.text
    answer = granted.json()
    assert answer["summary"] == {"requested": 3, "resolved": 2, "unresolved": 1}
    assert [o["id"] for o in answer["resolved_drs_object"]] == [vcf, bam]
    assert answer["unresolved_drs_objects"] == [{"error_code": 404, "object_ids": ["GCF99999999"]}]
    refused = client.post(
        "/ga4gh/drs/v1/objects", json=asked, headers=world.headers("nogrant@example.org")
    ).json()
    assert refused["resolved_drs_object"] == []
    assert {u["error_code"] for u in refused["unresolved_drs_objects"]} == {403, 404}
    anonymous = client.post("/ga4gh/drs/v1/objects", json=asked).json()
    assert {u["error_code"] for u in anonymous["unresolved_drs_objects"]} == {401, 404}
    too_many = client.post(
        "/ga4gh/drs/v1/objects",
        json={"bulk_object_ids": [vcf] * (MAX_BULK + 1)},
        headers=world.headers("granted@example.org"),
    )
    assert too_many.status_code == 413
    assert too_many.json()["status_code"] == 413


def _copy_made(client: TestClient, world: Any, accession: str) -> None:
    """The granted researcher's fingerprinted copy of `accession`, made (a bulk answer names a
    copy still being made among its unresolved objects, as not ready)."""
    answer = client.get(
        f"/ga4gh/drs/v1/objects/{accession}", headers=world.headers("granted@example.org")
    )
    assert answer.status_code == 200, answer.text


def test_drs_bulk_access_urls(client: TestClient, world: Any) -> None:
    vcf = world.accessions["files"]["calls.vcf.gz"]
    _copy_made(client, world, vcf)
    answer = client.post(
        "/ga4gh/drs/v1/objects/access",
        json={
            "bulk_object_access_ids": [
                {"bulk_object_id": vcf, "bulk_access_ids": ["crypt4gh", "s3"]},
            ]
        },
        headers=world.headers("granted@example.org"),
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["summary"] == {"requested": 2, "resolved": 1, "unresolved": 1}
    (url,) = body["resolved_drs_object_access_urls"]
    assert url["drs_object_id"] == vcf and url["drs_access_id"] == "crypt4gh"
    assert url["url"].endswith(f"/ga4gh/drs/v1/objects/{vcf}/download")
    assert body["unresolved_drs_objects"] == [{"error_code": 404, "object_ids": [vcf]}]


def test_drs_passports_in_the_body_grant_what_their_visas_say(
    client: TestClient, world: Any, node_b: InMemoryKeyStore
) -> None:
    vcf = world.accessions["files"]["calls.vcf.gz"]
    headers = world.headers("nogrant@example.org")
    visa = _visa(world, node_b, "nogrant@example.org")
    without = client.post(f"/ga4gh/drs/v1/objects/{vcf}", json={}, headers=headers)
    assert without.status_code == 403
    # a visa as it is, or the passport JWT that carries it
    passport_jwt = "e30." + _b64(passport_claim([visa])) + ".c2ln"
    for passports in ([visa], [passport_jwt]):
        described = client.post(
            f"/ga4gh/drs/v1/objects/{vcf}", json={"passports": passports}, headers=headers
        )
        assert described.status_code == 200, described.text
        assert described.json()["id"] == vcf
    access = client.post(
        f"/ga4gh/drs/v1/objects/{vcf}/access/crypt4gh",
        json={"passports": [visa]},
        headers=headers,
    )
    assert access.status_code == 200, access.text
    # the URL's headers carry the visas, so that the download is allowed too
    fetch = dict(h.split(": ", 1) for h in access.json()["headers"])
    assert json.loads(fetch["X-GA4GH-Passport"]) == passport_claim([visa])
    # someone else's visa, a forged one, or a passport without its user's token: refused
    for passports, caller, status in (
        ([_visa(world, node_b, "granted@example.org")], headers, 403),
        ([_visa(world, InMemoryKeyStore(), "nogrant@example.org")], headers, 403),
        ([visa], {}, 401),
    ):
        refused = client.post(
            f"/ga4gh/drs/v1/objects/{vcf}", json={"passports": passports}, headers=caller
        )
        assert refused.status_code == status, refused.text
        assert refused.json()["status_code"] == status


def _b64(document: Any) -> str:
    import base64

    raw = json.dumps(document).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def test_a_method_not_served_answers_405_with_every_allowed_method(client: TestClient) -> None:
    answer = client.request("DELETE", "/ga4gh/drs/v1/objects/GCF00000001")
    assert answer.status_code == 405
    assert answer.headers["allow"] == "GET, POST"
    beacon = client.request("PUT", "/beacon/g_variants")
    assert beacon.status_code == 405
    assert beacon.headers["allow"] == "GET, POST"
