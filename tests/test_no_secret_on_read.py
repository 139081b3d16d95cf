"""A read never makes a secret: on a node `genecommons init` has not run on, reading the JWKS,
the visa signing key or the Beacon's threshold key answers that init is needed (in English and
Chinese) and leaves the data directory as it was."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from genecommons.access import passport_service
from genecommons.config import Settings
from genecommons.errors import ConfigurationError
from genecommons.node_init import create_node_secrets
from genecommons.privacy import beacon_rules
from genecommons.secrets import create_secret_file


def _listing(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*")) if root.exists() else []


READS: dict[str, Callable[[Settings], object]] = {
    "jwks": lambda settings: passport_service.key_store(settings).jwks(),
    "visa signing key": lambda settings: passport_service.key_store(settings).signer(),
    "beacon key": beacon_rules.beacon_key,
    "threshold rule": beacon_rules.threshold_rule,
    "people's cells": beacon_rules.cell_rule,
}


@pytest.mark.parametrize("read", READS.values(), ids=READS.keys())
@pytest.mark.parametrize("node_key", [False, True], ids=["bare", "node-key-only"])
def test_reading_a_missing_key_makes_no_file_and_says_to_run_init(
    bare_settings: Settings,
    node_key_files: dict[str, bytes],
    read: Callable[[Settings], object],
    node_key: bool,
) -> None:
    if node_key:  # a node key without the others (an init stopped half-way)
        for name, content in node_key_files.items():
            create_secret_file(bare_settings.key_dir / name, content)
    before = _listing(bare_settings.data_dir)
    with pytest.raises(ConfigurationError) as refused:
        read(bare_settings)
    assert "genecommons init" in refused.value.message
    assert "genecommons init" in refused.value.message_zh
    assert _listing(bare_settings.data_dir) == before


def test_init_makes_what_the_reads_need(
    bare_settings: Settings, node_key_files: dict[str, bytes]
) -> None:
    for name, content in node_key_files.items():  # scrypt is slow by design: the session's
        create_secret_file(bare_settings.key_dir / name, content)
    create_node_secrets(bare_settings)
    for read in READS.values():
        read(bare_settings)


def test_the_jwks_route_of_an_uninitialised_node_makes_no_key(
    bare_settings: Settings, node_key_files: dict[str, bytes]
) -> None:
    from genecommons.app import create_app

    for name, content in node_key_files.items():
        create_secret_file(bare_settings.key_dir / name, content)
    exact = bare_settings.model_copy(update={"beacon_guard": "exact"})  # no Beacon key read
    app = create_app(exact)
    try:
        before = _listing(exact.data_dir)
        with TestClient(app) as client:
            answer = client.get("/.well-known/jwks.json")
        assert answer.status_code == 500
        assert "genecommons init" in answer.json()["message"]
        assert "genecommons init" in answer.json()["message_zh"]
        assert _listing(exact.data_dir) == before
    finally:
        app.state.services.engine.dispose()


def test_the_clis_services_read_the_beacon_key_only_when_a_guard_is_asked(
    bare_settings: Settings, node_key_files: dict[str, bytes]
) -> None:
    """A command that asks no Beacon guard (`backup restore`, onto a node whose keys are not
    there yet) runs; the guard, asked, says to run init."""
    from genecommons.services import build_services
    from genecommons.variants.answers import Granularity

    for name, content in node_key_files.items():
        create_secret_file(bare_settings.key_dir / name, content)
    services = build_services(bare_settings, defer_guards=True)
    try:
        before = _listing(bare_settings.data_dir)
        with pytest.raises(ConfigurationError) as refused:
            services.people_guard(Granularity.COUNT, ["GCI000001"])
        assert "genecommons init" in refused.value.message
        assert _listing(bare_settings.data_dir) == before
        with pytest.raises(ConfigurationError):  # at once, for the app
            build_services(bare_settings)
    finally:
        services.engine.dispose()
