"""schemathesis against the application's own OpenAPI: no request it generates may cause a
server error (5xx), whatever the parameters and bodies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from genecommons.app import create_app
from genecommons.archive.service import archive_keys
from genecommons.config import Settings
from genecommons.db import Base, make_engine

schemathesis = pytest.importorskip("schemathesis")


@pytest.mark.slow
def test_no_server_errors(tmp_path: Path, oidc_provider: Any) -> None:
    from schemathesis.checks import not_a_server_error

    url = f"sqlite:///{tmp_path / 'fuzz.sqlite3'}"
    engine = make_engine(url)
    Base.metadata.create_all(engine)
    engine.dispose()
    node = Settings(  # with sign-in through a real OpenID provider on loopback
        data_dir=tmp_path / "data",
        database_url=url,
        oidc_issuer=oidc_provider.issuer,
        oidc_client_id="genecommons",
    )
    archive_keys(node, create=True)  # as `genecommons init` leaves a platform
    app = create_app(node)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20
    calls: list[str] = []
    for operation in operations:

        @settings(
            max_examples=40,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def fuzz(case: Any) -> None:
            calls.append(case.operation.label)
            case.call_and_validate(checks=[not_a_server_error])

        fuzz()
    assert len(set(calls)) == len(operations)  # every operation was exercised
    app.state.engine.dispose()
