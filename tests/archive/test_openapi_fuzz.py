"""schemathesis with every check (`--checks all`) against the application's own OpenAPI, run as
its command-line tool against a real server on loopback, over every operation, once without a
token and once with a granted researcher's: no server error, every status and content type
documented, schema-valid requests accepted and invalid ones refused, 405s that carry Allow.

It lives with the archive's tests because their world is the fullest node the suite builds
(archived files, a grant, stewards): the authorized paths of DRS and htsget answer too.
The operations are fuzzed in two parts, the Beacon's (half of them, and most of the time) and the
rest, each a test of its own that pytest-xdist can give to either worker: together every
operation.
What the checks must not flag is configured, one narrow exception each with its reason, in
tests/schemathesis.toml."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

CONFIG = Path(__file__).resolve().parents[1] / "schemathesis.toml"
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
# the operations of each part: the Beacon's, and all the others
PARTS = {
    "beacon": ["--include-path-regex", "^/beacon/"],
    "others": ["--exclude-path-regex", "^/beacon/"],
}


@pytest.mark.slow
@pytest.mark.parametrize(
    "database_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
@pytest.mark.parametrize("caller", ["anonymous", "granted@example.org"])
@pytest.mark.parametrize("part", sorted(PARTS))
def test_schemathesis_finds_nothing(
    world: Any, live_server: str, tmp_path: Path, caller: str, part: str
) -> None:
    """(On PostgreSQL, the stricter of the two databases: it refuses NUL in text, for one.)"""
    headers = (
        [] if caller == "anonymous" else ["-H", f"Authorization: Bearer {world.tokens[caller]}"]
    )
    done = subprocess.run(
        [
            str(SCHEMATHESIS),
            "--config-file",
            str(CONFIG),
            "--no-color",
            "run",
            f"{live_server}/openapi.json",
            *PARTS[part],
            "--checks",
            "all",
            *headers,
            "--report-dir",
            str(tmp_path / "report"),
        ],
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    output = done.stdout + done.stderr
    assert "Tested: " in output, output[-3000:]
    # every operation of the part was tested
    selected = re.search(r"Selected: (\d+)/\d+\s+Tested: (\d+)", output)
    assert selected and int(selected[1]) == int(selected[2]) > 0, output[-3000:]
    assert done.returncode == 0, output[-20000:]
