"""The outside tester's attack, replayed with the real CLI: `genecommons submit` killed with
SIGKILL once its dataset's variant store has appeared, then a different cohort submitted. The
new dataset answers its own counts, never the killed submission's."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pysam
import pytest

KILLED_CAN_BE_SEEN_FOR = 120.0  # seconds the submission may take to reach its store


def _cohort(folder: Path, datafiles: SimpleNamespace, *, seed: int, padding: int = 0) -> Path:
    """A submission of P1-P3 with one joint-called VCF in DS1; `padding` more VCFs of an
    analysis in no dataset, archived after it (files go in name order), keep the submission
    busy after the store is in place and before it commits."""
    folder.mkdir(parents=True)
    vcf = datafiles.vcf(folder / "calls.vcf.gz", records=60, seed=seed)
    sheets = datafiles.sheets(folder, vcf=vcf, bam=None)
    if padding:
        sheets["analyses"].append(dict(sheets["analyses"][0], alias="A2"))
        for number in range(padding):
            extra = datafiles.vcf(folder / f"z{number:03d}.vcf.gz", records=400, seed=100 + number)
            sheets["files"].append(
                {"alias": extra.name, "analysis": "A2", "format": "vcf", **datafiles.digest(extra)}
            )
    datafiles.write(folder, sheets)
    return folder


def _carried(vcf: Path) -> list[str]:
    with pysam.VariantFile(str(vcf)) as handle:
        return [
            f"{r.chrom}-{r.pos}-{r.ref}-{r.alts[0]}"
            for r in handle
            if any(1 in (s["GT"] or ()) for s in r.samples.values())
        ]


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "genecommons", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.mark.slow
def test_a_store_left_by_a_killed_submission_never_serves_another_dataset(
    tmp_path: Path,
    datafiles: SimpleNamespace,
    database_url: str,
    genecommons_cli: Callable[..., Any],
) -> None:
    data = tmp_path / "data"
    env = {
        **os.environ,
        "GENECOMMONS_DATA_DIR": str(data),
        "GENECOMMONS_DATABASE_URL": database_url,
    }
    genecommons_cli(env, "init")
    killed = _cohort(tmp_path / "a", datafiles, seed=1, padding=40)
    submit = subprocess.Popen(
        [sys.executable, "-m", "genecommons", "submit", str(killed)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    stores = data / "variants"
    deadline = time.monotonic() + KILLED_CAN_BE_SEEN_FOR
    try:
        while not any(p.name.startswith("GCD") for p in stores.glob("GCD*")):
            assert submit.poll() is None, "the submission ended before its store appeared"
            assert time.monotonic() < deadline, "no store appeared"
            time.sleep(0.005)
        os.kill(submit.pid, signal.SIGKILL)
    finally:
        submit.kill()
        submit.wait(30)
        assert submit.stderr is not None
        submit.stderr.close()
    (left,) = [p.name for p in stores.glob("GCD*")]
    # a different cohort, submitted next
    other = _cohort(tmp_path / "b", datafiles, seed=2)
    genecommons_cli(env, "submit", str(other))
    datasets = genecommons_cli(env, "datasets", "list").stdout
    (dataset,) = {word for word in datasets.split() if word.startswith("GCD")}
    assert dataset != left  # the killed submission's accession is not given again
    only_killed = set(_carried(killed / "calls.vcf.gz")) - set(_carried(other / "calls.vcf.gz"))
    for key in sorted(only_killed)[:3]:
        shown = _run(env, "variants", "show", dataset, key)
        assert shown.returncode == 1 and "not in" in shown.stdout, shown.stdout + shown.stderr
    own = _carried(other / "calls.vcf.gz")[0]
    shown = genecommons_cli(env, "variants", "show", dataset, own).stdout
    assert "all" in shown and " 6 " in shown  # AN: three diploid people
    # the leftover is found and removed
    found = _run(env, "variants", "verify")
    assert found.returncode == 1 and left in found.stdout and "leftover" in found.stdout
    genecommons_cli(env, "variants", "verify", "--remove")
    assert not (stores / left).exists()
    assert genecommons_cli(env, "variants", "verify").returncode == 0
