"""A NUL character in any part of a request is refused with a clear 4xx, never a server error
(PostgreSQL refuses NUL in text: every route would otherwise fail at its first query)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from genecommons.app import create_app
from genecommons.config import Settings
from genecommons.db import Base, node_engine


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """The app on an empty database (SQLite and PostgreSQL)."""
    engine = node_engine(settings)
    Base.metadata.create_all(engine)
    engine.dispose()
    app = create_app(settings)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client
    app.state.services.engine.dispose()


@pytest.mark.parametrize(
    ("method", "url", "kwargs", "status"),
    [
        ("POST", "/api/v1/uploads", {"json": {"file": "GCF\x0000000001"}}, 422),
        ("POST", "/api/v1/auth/token", {"data": {"username": "a\x00@b.org", "password": "x"}}, 422),
        ("GET", "/api/v1/datasets?study=GCS%0000000001", {}, 422),
        ("GET", "/api/v1/datasets/GCD%0000000001", {}, 422),
        ("POST", "/ga4gh/drs/v1/objects", {"json": {"bulk_object_ids": ["GCF\x00"]}}, 400),
        ("GET", "/ga4gh/drs/v1/objects/GCF%0000000001", {}, 400),
        ("POST", "/htsget/variants/GCF00000001", {"json": {"fields": ["\x00"]}}, 400),
    ],
)
def test_nul_is_refused_everywhere(
    client: TestClient, method: str, url: str, kwargs: dict[str, object], status: int
) -> None:
    answer = client.request(method, url, **kwargs)  # type: ignore[arg-type]
    assert answer.status_code == status, answer.text
    assert "NUL" in answer.text
