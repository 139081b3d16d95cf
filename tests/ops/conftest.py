"""A node for the operations endpoints: its keys made as `genecommons init` makes them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from genecommons.access import service as access_service
from genecommons.app import create_app
from genecommons.config import Settings
from genecommons.policy.models import Role, Subject

OPERATOR = Subject.operator("ops-tests")


@pytest.fixture
def node_settings(archive_settings: Settings) -> Settings:
    """Settings of a node whose key files all exist (`archive_settings` runs init's path)."""
    return archive_settings


@dataclass
class Node:
    """A test client of a node, its session factory and bearer headers by caller."""

    client: TestClient
    factory: sessionmaker[Session]
    headers: dict[str, dict[str, str]]


def bearer(token: str) -> dict[str, str]:
    """The Authorization header of `token`."""
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def node(node_settings: Settings, engine: object) -> Iterator[Node]:
    """A served node (`engine` made its tables) with an administrator, a token of it scoped to
    the metrics only, one scoped to something else, and a researcher."""
    app = create_app(node_settings)
    factory = app.state.services.factory
    access_service.add_user(
        factory, email="admin@example.org", roles=[Role.ADMIN], institution=None, actor=OPERATOR
    )
    access_service.add_user(
        factory, email="res@example.org", roles=[Role.RESEARCHER], institution=None, actor=OPERATOR
    )

    def token(email: str, scopes: list[str] | None = None) -> dict[str, str]:
        issued = access_service.create_token(factory, email=email, actor=OPERATOR, scopes=scopes)
        return bearer(issued.token)

    headers = {
        "anonymous": {},
        "admin": token("admin@example.org"),
        "scraper": token("admin@example.org", ["ops:metrics:read"]),
        "admin-other-scope": token("admin@example.org", ["audit:entry:read"]),
        "researcher": token("res@example.org"),
    }
    with TestClient(app) as client:
        yield Node(client, factory, headers)
    app.state.services.engine.dispose()
