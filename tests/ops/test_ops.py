"""GET /livez, /readyz and /metrics, request ids, and the JSON log lines (in one process; the
several-worker server is tests/ops/test_serve.py)."""

from __future__ import annotations

import io
import json
import logging
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select
from starlette.types import Receive, Scope, Send

from genecommons.app import create_app
from genecommons.audit import service as audit_service
from genecommons.config import Settings
from genecommons.ledger.events import EventTag, record_soon
from genecommons.ledger.tables import audit_events
from genecommons.logs import JsonFormatter, RequestIdFilter
from genecommons.request_ids import RequestIds

from .conftest import Node

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample of a scrape by name and labels (parsed by prometheus-client's parser)."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sample `name` with exactly `labels` (0 when the series does not exist yet)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def scrape(node: Node) -> Samples:
    response = node.client.get("/metrics", headers=node.headers["scraper"])
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(response.text)


# -- liveness and readiness ------------------------------------------------------------------


def test_livez_and_readyz_of_a_ready_node(node: Node) -> None:
    assert node.client.get("/livez").json() == {"status": "live"}
    response = node.client.get("/readyz")
    assert response.status_code == 200, response.text
    checks = {c["name"]: c["ready"] for c in response.json()["checks"]}
    assert checks == {"database": True, "object_store": True, "keys": True, "audit_sequencer": True}


def test_unreachable_database_is_not_ready_but_live(node_settings: Settings) -> None:
    # nothing listens on port 9 of loopback: the connection is refused at once
    settings = node_settings.model_copy(
        update={"database_url": "postgresql+psycopg://nobody@127.0.0.1:9/none?connect_timeout=3"}
    )
    app = create_app(settings)
    with TestClient(app) as client:
        assert client.get("/livez").status_code == 200
        response = client.get("/readyz")
    app.state.services.engine.dispose()
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    body = response.json()
    failed = {c["name"] for c in body["details"] if not c["ready"]}
    assert failed == {"database", "audit_sequencer"}
    assert "GENECOMMONS_DATABASE_URL" in body["message"]
    assert "数据库无响应" in body["message_zh"]


def test_a_missing_key_makes_the_node_not_ready(node: Node, node_settings: Settings) -> None:
    node_settings.fingerprint_key_file.unlink()
    response = node.client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    (keys,) = [c for c in body["details"] if c["name"] == "keys"]
    assert not keys["ready"]
    assert str(node_settings.fingerprint_key_file) in keys["message"]
    assert "genecommons init" in keys["message"] and "密钥文件缺失" in keys["message_zh"]
    assert all(c["ready"] for c in body["details"] if c["name"] != "keys")


def test_an_object_store_that_cannot_be_written_is_not_ready(
    node_settings: Settings, engine: object, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    settings = node_settings.model_copy(update={"archive_url": str(blocker / "archive")})
    app = create_app(settings)
    with TestClient(app) as client:
        response = client.get("/readyz")
    app.state.services.engine.dispose()
    assert response.status_code == 503
    (store,) = [c for c in response.json()["details"] if c["name"] == "object_store"]
    assert (
        "is not a directory" in store["message"] and "GENECOMMONS_ARCHIVE_URL" in store["message"]
    )


def test_a_lagging_sequencer_is_not_ready_until_it_catches_up(node: Node) -> None:
    with node.factory() as session, session.begin():
        record_soon(
            session,
            tag=EventTag.TOKEN_USED,
            actor="user:lagging",
            now=datetime.now(UTC) - timedelta(minutes=5),
        )
    response = node.client.get("/readyz")
    assert response.status_code == 503
    (sequencer,) = [c for c in response.json()["details"] if c["name"] == "audit_sequencer"]
    assert "1 events waiting" in sequencer["message"]
    lagging = scrape(node)
    assert value(lagging, "genecommons_audit_queue_depth") >= 1
    assert value(lagging, "genecommons_audit_sequencer_lag_seconds") >= 290
    audit_service.sequence_queued(node.factory)
    assert node.client.get("/readyz").status_code == 200
    # what waits now is the scrape's own token use, just queued
    caught_up = scrape(node)
    assert value(caught_up, "genecommons_audit_queue_depth") == 1
    assert value(caught_up, "genecommons_audit_sequencer_lag_seconds") < 60


# -- who may read the metrics ----------------------------------------------------------------


@pytest.mark.parametrize("caller", ["anonymous", "researcher", "admin-other-scope"])
def test_metrics_are_refused_to_others(node: Node, caller: str) -> None:
    response = node.client.get("/metrics", headers=node.headers[caller])
    assert response.status_code == 403
    body = response.json()
    assert body["details"] == {"rule": "operators-only"}
    assert "ops:metrics:read" in body["message"] and "ops:metrics:read" in body["message_zh"]
    assert "genecommons_" not in response.text
    # the refusal is in the audit log, as every refusal of the decision point
    audit_service.sequence_queued(node.factory)
    with node.factory() as session:
        denied = session.execute(
            select(audit_events.c.details).where(audit_events.c.tag == str(EventTag.ACCESS_DENIED))
        ).scalars()
        assert any(d["action"] == "ops:metrics:read" for d in denied)


@pytest.mark.parametrize("caller", ["admin", "scraper"])
def test_metrics_are_given_to_administrators_within_their_scopes(node: Node, caller: str) -> None:
    response = node.client.get("/metrics", headers=node.headers[caller])
    assert response.status_code == 200
    assert "genecommons_http_requests_total" in response.text


def test_metrics_are_given_to_listed_addresses_only(node_settings: Settings, engine: Any) -> None:
    settings = node_settings.model_copy(update={"metrics_allow_ips": "10.9.0.0/16, ::1"})
    app = create_app(settings)
    answers = {}
    for address in ("10.9.3.4", "::1", "10.8.3.4", "127.0.0.1"):
        with TestClient(app, client=(address, 40000)) as client:
            answers[address] = client.get("/metrics").status_code
    app.state.services.engine.dispose()
    assert answers == {"10.9.3.4": 200, "::1": 200, "10.8.3.4": 403, "127.0.0.1": 403}


def test_an_address_list_that_is_not_addresses_is_refused() -> None:
    with pytest.raises(ValueError, match="METRICS_ALLOW_IPS"):
        Settings(metrics_allow_ips="10.0.0.1, prometheus.internal")


# -- what the metrics count ------------------------------------------------------------------


def test_requests_are_counted_by_route_template_and_status(node: Node) -> None:
    before = scrape(node)
    for _ in range(3):
        node.client.get("/livez")
    assert node.client.get("/api/v1/studies/GCS999999").status_code == 404
    assert node.client.get("/no/such/place/42").status_code == 404
    after = scrape(node)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    requests = "genecommons_http_requests_total"
    assert delta(requests, method="GET", route="/livez", status="200") == 3
    assert delta(requests, method="GET", route="/api/v1/studies/{accession}", status="404") == 1
    assert delta(requests, method="GET", route="unmatched", status="404") == 1
    latency = "genecommons_http_request_duration_seconds"
    assert delta(f"{latency}_count", method="GET", route="/livez") == 3
    assert delta(f"{latency}_bucket", method="GET", route="/livez", le="+Inf") == 3
    assert not any("GCS999999" in str(labels) or "/no/such" in str(labels) for _, labels in after)


def test_beacon_answers_are_counted_by_granularity(node: Node) -> None:
    before = scrape(node)
    response = node.client.get("/beacon/individuals", params={"requestedGranularity": "count"})
    assert response.status_code == 200, response.text
    returned = response.json()["meta"]["returnedGranularity"]
    after = scrape(node)
    name = "genecommons_beacon_answers_total"
    labels = {"entry_type": "individuals", "granularity": returned}
    assert value(after, name, **labels) - value(before, name, **labels) == 1


def test_ingested_bytes_are_counted(
    node: Node, node_settings: Settings, make_bundle: Any, datafiles: Any, tmp_path: Path
) -> None:
    from genecommons.archive import ingestion
    from genecommons.catalog import service as catalog_service

    from .conftest import OPERATOR

    folder = tmp_path / "files"
    folder.mkdir()
    vcf = datafiles.vcf(folder / "calls.vcf.gz", records=50)
    bundle = make_bundle(datafiles.sheets(folder, vcf=vcf, bam=None))
    (bundle / vcf.name).write_bytes(vcf.read_bytes())
    before = scrape(node)
    catalog_service.submit(
        node.factory,
        bundle,
        subject=OPERATOR,
        data_files=ingestion.BundleArchiver(node_settings, OPERATOR),
    )
    after = scrape(node)
    name = "genecommons_ingest_bytes_total"
    assert (
        value(after, name, format="vcf") - value(before, name, format="vcf") == vcf.stat().st_size
    )


# -- request ids -----------------------------------------------------------------------------


def test_a_sane_request_id_is_echoed_and_any_other_replaced(node: Node) -> None:
    sane = "7f1c-req.01:abc"
    assert node.client.get("/livez", headers={"X-Request-ID": sane}).headers["x-request-id"] == sane
    made = set()
    for header in ({}, {"X-Request-ID": "x" * 129}, {"X-Request-ID": "two words"}):
        echoed = node.client.get("/livez", headers=header).headers["x-request-id"]
        assert re.fullmatch(r"[0-9a-f]{32}", echoed), echoed
        made.add(echoed)
    assert len(made) == 3


def test_the_request_id_is_in_the_audit_events_of_its_request(node: Node) -> None:
    # a refusal (queued with the refusals of the same moment) and a token made (appended to
    # the log in the request's transaction): the two ways an event is recorded
    refused = node.client.get("/metrics", headers={"X-Request-ID": "req-refused-1"})
    assert refused.status_code == 403
    made = node.client.post(
        "/api/v1/tokens",
        json={"days": 1, "scopes": ["ops:metrics:read"]},
        headers={**node.headers["admin"], "X-Request-ID": "req-token-1"},
    )
    assert made.status_code in (200, 201), made.text
    audit_service.sequence_queued(node.factory)
    with node.factory() as session:
        rows = session.execute(select(audit_events.c.tag, audit_events.c.details)).all()
    recorded = {((r.details or {}).get("request_id"), str(r.tag)) for r in rows}
    assert ("req-refused-1", str(EventTag.ACCESS_DENIED)) in recorded
    assert ("req-token-1", str(EventTag.TOKEN_USED)) in recorded
    assert ("req-token-1", str(EventTag.TOKEN_CREATED)) in recorded


def test_json_log_lines_carry_the_request_id() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger("genecommons.tests.ops")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        logger.info("answering %s", scope["path"], extra={"dataset": "GCD000001"})
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    try:
        transport = httpx.ASGITransport(app=RequestIds(app))

        async def ask() -> None:
            async with httpx.AsyncClient(transport=transport, base_url="http://node") as client:
                response = await client.get("/x", headers={"X-Request-ID": "log-req-9"})
                assert response.headers["x-request-id"] == "log-req-9"

        import asyncio

        asyncio.run(ask())
        logger.info("outside any request")
    finally:
        logger.removeHandler(handler)
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["request_id"] == "log-req-9" and first["message"] == "answering /x"
    assert first["dataset"] == "GCD000001" and first["level"] == "INFO"
    assert first["logger"] == "genecommons.tests.ops"
    assert second["request_id"] is None
