"""What Beacon v2 clients (EGA's beacon-verifier-v2 among them) expect of the Beacon: a record's
variantInternalId resolves at /g_variants/{id}, a g_variants query without parameters is
answered a page at a time, and the URLs the Beacon hands out name where it is reached."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from fastapi.testclient import TestClient

from genecommons.app import create_app


def _sets(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["id"]: s for s in document["response"]["resultSets"]}


def test_a_variant_internal_id_resolves(world: SimpleNamespace) -> None:
    controlled = world.datasets["controlled"]
    headers = world.headers["researcher"]
    listed = world.client.get("/beacon/g_variants", params={"limit": 3}, headers=headers).json()
    record = _sets(listed)[controlled]["results"][0]
    internal = record["variantInternalId"]
    assert internal.startswith(f"{controlled}:")
    one = world.client.get(f"/beacon/g_variants/{internal}", headers=headers)
    assert one.status_code == 200, one.text
    answered = _sets(one.json())
    assert set(answered) == {controlled}  # the dataset the id names, and no other
    assert [r["variantInternalId"] for r in answered[controlled]["results"]] == [internal]
    # an id naming another dataset than the record's finds nothing there
    other = internal.replace(controlled, world.datasets["open"], 1)
    elsewhere = world.client.get(f"/beacon/g_variants/{other}", headers=headers).json()
    assert controlled not in _sets(elsewhere)


def test_g_variants_without_parameters_pages_through_the_variants(world: SimpleNamespace) -> None:
    controlled = world.datasets["controlled"]
    headers = world.headers["researcher"]
    pages = [
        world.client.get(
            "/beacon/g_variants", params={"skip": skip, "limit": 5}, headers=headers
        ).json()
        for skip in (0, 5)
    ]
    ids = [[r["variantInternalId"] for r in _sets(p)[controlled]["results"]] for p in pages]
    assert len(ids[0]) == len(ids[1]) == 5
    assert not set(ids[0]) & set(ids[1])
    assert all(p["responseSummary"]["exists"] for p in pages)
    # anonymous callers get the open dataset's boolean answer, through the same guard
    anonymous = world.client.get("/beacon/g_variants")
    assert anonymous.status_code == 200, anonymous.text
    assert anonymous.json()["meta"]["returnedGranularity"] == "boolean"
    assert anonymous.json()["responseSummary"] == {"exists": True}
    assert "response" not in anonymous.json()  # a boolean answer: no result sets
    # as far as the most one query may match, and no further
    beyond = world.client.get(
        "/beacon/g_variants",
        params={"skip": world.settings.beacon_max_variants, "limit": 1},
        headers=headers,
    )
    assert beyond.status_code == 400
    assert "referenceName" in beyond.json()["error"]["errorMessage"]


def _map_urls(client: TestClient, **headers: str) -> set[str]:
    document = client.get("/beacon/map", headers=headers).json()
    endpoints = document["response"]["endpointSets"].values()
    return {e["rootUrl"] for e in endpoints}


def test_urls_name_where_the_beacon_is_reached(world: SimpleNamespace) -> None:
    # not configured: the scheme and host the request was sent to
    assert all(u.startswith("http://testserver/beacon/") for u in _map_urls(world.client))
    moved = _map_urls(world.client, host="node.example:8443")
    assert all(u.startswith("http://node.example:8443/beacon/") for u in moved)
    info = world.client.get("/beacon/service-info", headers={"host": "node.example:8443"})
    assert info.json()["organization"]["url"] == "http://node.example:8443/beacon"
    # a Host that is not a plain host[:port] is not repeated: the configured default instead
    for hostile in ("evil.example/phish?", "user@evil.example", "evil.example:80:80"):
        urls = _map_urls(world.client, host=hostile)
        assert all(u.startswith(f"{world.settings.issuer_url}/beacon/") for u in urls), urls
    # configured: always the configured URL, whatever the Host
    configured = world.settings.model_copy(update={"issuer_url": "https://genes.example.org"})
    app = create_app(configured)
    with TestClient(app) as client:
        urls = _map_urls(client, host="node.example:8443")
    app.state.services.engine.dispose()
    assert all(u.startswith("https://genes.example.org/beacon/") for u in urls)
