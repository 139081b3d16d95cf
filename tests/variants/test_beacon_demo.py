"""The demo, as `make run` makes it (`genecommons init`, `demo`, `submit`): its open dataset
answers boolean Beacon queries to anyone; its controlled dataset is not in their answers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pysam
import pytest
from fastapi.testclient import TestClient

from genecommons.app import create_app
from genecommons.config import Settings


def cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "genecommons", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.mark.slow
def test_the_demo_answers_boolean_queries_on_the_open_tier(tmp_path: Path) -> None:
    env = {**os.environ, "GENECOMMONS_DATA_DIR": str(tmp_path / "data")}
    env.pop("GENECOMMONS_DATABASE_URL", None)
    for args in (
        ["init"],
        ["demo", "--out", str(tmp_path / "demo"), "--individuals", "60", "--length", "200000"],
        ["submit", str(tmp_path / "demo")],
    ):
        done = cli(args, env)
        assert done.returncode == 0, done.stdout + done.stderr
    # one store, built once from the VCF, for the controlled and the open dataset
    assert done.stdout.count("variant store GCD") == 1
    assert "variant store GCD00000001+GCD00000002:" in done.stdout
    with pysam.VariantFile(str(tmp_path / "demo" / "cohort.vcf.gz")) as vcf:
        # an allele carried often enough that the threshold rule would say "exists" (40 copies
        # always clear the keyed threshold; privacy/beacon_guard.py)
        carried = next(r for r in vcf if sum(r.samples[s]["GT"].count(1) for s in r.samples) >= 40)
    app = create_app(Settings(data_dir=tmp_path / "data", environment="test"))
    query = {
        "referenceName": carried.chrom,
        "start": carried.pos - 1,
        "referenceBases": carried.ref,
        "alternateBases": carried.alts[0],
        "assemblyId": "GRCh38",
    }
    with TestClient(app) as client:
        present = client.get("/beacon/g_variants", params=query).json()
        absent = client.get(
            "/beacon/g_variants",
            params={**query, "start": carried.pos + 7, "alternateBases": "ACGT"},
        ).json()
        datasets = client.get("/beacon/datasets").json()
        # 60 people, and the women among them, clear the cell size of 10 whatever the noise
        people = client.get("/beacon/individuals").json()
        women = client.get("/beacon/individuals", params={"filters": "NCIT:C16576"}).json()
    app.state.services.engine.dispose()
    assert people["responseSummary"] == {"exists": True} == women["responseSummary"]
    assert present["meta"]["returnedGranularity"] == "boolean"
    # 60 members and no public reference: too few for any answer about a variant to be safe
    # (privacy/cohort_size.py), and the response says why, in English and Chinese
    assert present["responseSummary"] == {"exists": False}
    assert absent["responseSummary"] == {"exists": False}
    (note,) = present["info"]["notes"]
    assert "fewer than 45 participants" in note["note"] and "少于 45 人" in note["note_zh"]
    assert present["info"] == absent["info"]  # the same reason whatever the allele
    (opened,) = datasets["response"]["collections"]
    assert opened["info"] == {"accessTier": "open", "alias": "DEMO-BEACON"}
