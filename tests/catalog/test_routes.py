"""The catalog's HTTP API: schemas, listings, visibility, submissions, OpenAPI."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from genecommons.app import create_app
from genecommons.catalog import service
from genecommons.catalog.models import ENTITIES
from genecommons.config import Settings
from genecommons.db import Base, node_engine
from genecommons.policy.models import Subject


@pytest.fixture
def client(settings: Settings) -> Any:
    engine = node_engine(settings)
    Base.metadata.create_all(engine)
    engine.dispose()
    app = create_app(settings)
    with TestClient(app) as test_client:
        yield test_client
    app.state.services.engine.dispose()


@pytest.fixture
def loaded(client: Any, make_bundle: Any, sheets: Any) -> service.SubmissionResult:
    data = sheets()
    data["studies"].append(
        {"alias": "HIDDEN", "title": "<b>Private</b>", "institution": "BGC", "public": "no"}
    )
    factory = client.app.state.services.factory
    return service.submit(factory, make_bundle(data), subject=Subject.operator("t"))


@pytest.mark.parametrize("entity", [*ENTITIES, "phenotypes"])
def test_schema_per_entity(client: Any, entity: str) -> None:
    response = client.get(f"/api/v1/schemas/{entity}")
    assert response.status_code == 200
    schema = response.json()
    assert schema["type"] == "object" and schema["properties"]


def test_unknown_schema_is_a_bilingual_404(client: Any) -> None:
    response = client.get("/api/v1/schemas/nothing")
    assert response.status_code == 404
    body = response.json()
    assert body["code"] == "not_found" and body["message_zh"]


def test_public_listing_and_paging(client: Any, loaded: Any) -> None:
    response = client.get("/api/v1/studies", params={"page": 1, "page_size": 10})
    assert response.status_code == 200
    body = response.json()
    assert body["total"] == 1 and [s["alias"] for s in body["items"]] == ["ST1"]
    datasets = client.get("/api/v1/datasets", params={"access_tier": "controlled"}).json()
    assert datasets["total"] == 1
    accession = loaded.accessions["studies"]["ST1"]
    detail = client.get(f"/api/v1/studies/{accession}").json()
    assert detail["accession"] == accession and detail["counts"]["individuals"] == 3


def test_private_study_is_not_found_for_anonymous(client: Any, loaded: Any) -> None:
    accession = loaded.accessions["studies"]["HIDDEN"]
    assert client.get(f"/api/v1/studies/{accession}").status_code == 404


@pytest.mark.parametrize("path", ["/api/v1/individuals", "/api/v1/samples", "/api/v1/submissions"])
def test_individual_level_refused_to_anonymous(client: Any, loaded: Any, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 403
    assert response.json()["message_zh"]
    accession = loaded.accessions["individuals"]["P1"]
    # one the caller may not see answers as one that does not exist
    hidden = client.get(f"/api/v1/individuals/{accession}")
    absent = client.get("/api/v1/individuals/GCI99999999")
    assert hidden.status_code == absent.status_code == 404


def test_anonymous_cannot_submit(client: Any, make_bundle: Any) -> None:
    folder = make_bundle()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in Path(folder).iterdir():
            archive.write(path, path.name)
    response = client.post(
        "/api/v1/submissions", files={"file": ("bundle.zip", buffer.getvalue(), "application/zip")}
    )
    assert response.status_code == 403


def test_bad_paging_is_a_clear_422(client: Any) -> None:
    response = client.get("/api/v1/studies", params={"page": 0})
    assert response.status_code == 422
    assert response.json()["details"][0]["place"] == "query.page"


def test_openapi_lists_the_routes(client: Any) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/api/v1/studies",
        "/api/v1/datasets/{accession}",
        "/api/v1/individuals",
        "/api/v1/samples",
        "/api/v1/submissions",
        "/api/v1/schemas/{entity}",
    ):
        assert path in paths
    assert client.get("/docs").status_code == 200


def test_html_in_text_is_returned_as_json_data(client: Any, loaded: Any) -> None:
    response = client.get("/api/v1/studies")
    assert response.headers["content-type"].startswith("application/json")
