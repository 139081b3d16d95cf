"""Fixtures of fingerprint's tests: the archive tests' node (`tests/archive/conftest.py`), with a
VCF that can carry marks."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from genecommons.config import Settings

from ..archive.conftest import World, build_world


@pytest.fixture
def fingerprint_world(
    archive_settings: Settings, factory: Any, tmp_path: Path, datafiles: SimpleNamespace
) -> World:
    """As `world`, with a VCF of 120 samples (enough to carry marks) and two granted
    researchers (granted@ and second@example.org)."""
    return build_world(
        archive_settings,
        factory,
        tmp_path,
        datafiles,
        vcf_options={"samples": [f"S{i:03d}" for i in range(120)], "records": 400},
        granted=("granted@example.org", "second@example.org"),
    )
