"""What `make run` leaves on disk: every file the node writes is readable by its own user only
(0600, directories 0700), and no genotype of the cohort is in the clear anywhere the node keeps
data. The steps are `make run`'s, each as its own process (init, demo, submit, load-reference,
check-reference, serve answering a few requests, stopped), then the data directory is walked."""

from __future__ import annotations

import gzip
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pysam
import pytest


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _serve_briefly(env: dict[str, str], port: int, cohort: Path) -> None:
    server = subprocess.Popen(
        [sys.executable, "-m", "genecommons", "serve", "--port", str(port), "--workers", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            assert server.poll() is None, "serve stopped"
            try:
                if httpx.get(f"{base}/beacon/info", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "serve did not start"
            time.sleep(0.5)
        with pysam.VariantFile(str(cohort)) as vcf:
            record = next(iter(vcf))
        query = {
            "referenceName": record.chrom,
            "start": record.pos - 1,
            "referenceBases": record.ref,
            "alternateBases": record.alts[0],
            "assemblyId": "GRCh38",
        }
        assert httpx.get(f"{base}/beacon/g_variants", params=query, timeout=60).status_code == 200
        assert httpx.get(f"{base}/beacon/datasets", timeout=60).status_code == 200
        assert httpx.get(f"{base}/api/v1/datasets", timeout=60).status_code == 200
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(30)
        assert server.stderr is not None
        server.stderr.close()


def _genotype_lines(cohort: Path, count: int = 20) -> list[bytes]:
    """The calls of a few records of the cohort, as the VCF writes them (tab-separated)."""
    lines = [
        line
        for line in gzip.decompress(cohort.read_bytes()).split(b"\n")
        if line and not line.startswith(b"#")
    ]
    return [line.split(b"\t", 9)[9][:48] for line in lines[:: max(1, len(lines) // count)]]


@pytest.mark.slow
def test_make_run_leaves_only_private_files_and_no_genotype_in_the_clear(
    tmp_path: Path, genecommons_cli: Callable[..., Any]
) -> None:
    data = tmp_path / "genecommons-data"
    demo = data / "demo"  # where `make run` puts it (DEMO_DIR)
    env = {**os.environ, "GENECOMMONS_DATA_DIR": str(data)}
    env.pop("GENECOMMONS_DATABASE_URL", None)  # the embedded default, as `make run`
    genecommons_cli(env, "init")
    genecommons_cli(env, "demo", "--out", str(demo), "--individuals", "60", "--length", "150000")
    genecommons_cli(env, "submit", str(demo))
    genecommons_cli(env, "variants", "load-reference", str(demo / "public_frequencies.vcf.gz"))
    genecommons_cli(env, "privacy", "check-reference")
    _serve_briefly(env, _free_port(), demo / "cohort.vcf.gz")

    loose = []
    for folder, directories, files in os.walk(data):
        for name in directories:
            mode = stat.S_IMODE((Path(folder) / name).lstat().st_mode)
            if mode != 0o700:
                loose.append(f"{Path(folder, name).relative_to(data)}/ {mode:o}")
        for name in files:
            mode = stat.S_IMODE((Path(folder) / name).lstat().st_mode)
            if mode & 0o077 or not mode & 0o600:
                loose.append(f"{Path(folder, name).relative_to(data)} {mode:o}")
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert not loose, loose

    # the demo folder is the submission's input (a submitter's files), not what the node keeps
    kept = [path for path in data.rglob("*") if path.is_file() and demo not in path.parents]
    assert any(path.parent.name == "calls.vcz" or "calls.vcz" in path.parts for path in kept)
    samples = list(pysam.VariantFile(str(demo / "cohort.vcf.gz")).header.samples)
    needles = _genotype_lines(demo / "cohort.vcf.gz")
    stores = data / "variants"
    for path in kept:
        content = path.read_bytes()
        for needle in needles:
            assert needle not in content, (path, needle)
        if stores in path.parents and path.name != "reference.sqlite":
            for sample in samples[:10]:
                # the catalog lists sample names (metadata); the stores must not show them
                assert sample.encode() not in content, (path, sample)
            # compressed chunks hide text from grep too: every value must be sealed
            assert not content.startswith(b"SQLite format 3"), path
            if "calls.vcz" in path.parts:
                assert content.startswith(b"GCZ1"), path


def test_no_file_the_node_keeps_holds_an_identifier_or_a_phenotype_of_a_submission(
    tmp_path: Path, genecommons_cli: Callable[..., Any]
) -> None:
    """After a real submission of the demo, no file under the data directory holds, as bytes,
    an individual's or a sample's id or a phenotype's label of it: the catalog database (and
    its WAL) is encrypted, as the archive and the variant store are."""
    data, demo = tmp_path / "data", tmp_path / "demo"  # the submission's input: not the node's
    env = {**os.environ, "GENECOMMONS_DATA_DIR": str(data), "GENECOMMONS_ENVIRONMENT": "test"}
    env.pop("GENECOMMONS_DATABASE_URL", None)  # the embedded default: SQLite in the data dir
    genecommons_cli(env, "demo", "--out", str(demo), "--individuals", "20", "--length", "50000")
    genecommons_cli(env, "init")
    genecommons_cli(env, "submit", str(demo))

    def column(sheet: str, name: str) -> set[str]:
        lines = (demo / f"{sheet}.tsv").read_text(encoding="utf-8").splitlines()
        index = lines[0].split("\t").index(name)
        return {line.split("\t")[index] for line in lines[1:] if line}

    individuals, samples = column("individuals", "alias"), column("samples", "alias")
    labels = {label for label in column("phenotypes", "label") if len(label) >= 8}
    assert len(individuals) == 20 and len(samples) >= 20 and labels
    needles = [value.encode() for value in sorted(individuals | samples | labels)]
    kept = [path for path in data.rglob("*") if path.is_file()]
    assert any(path.name == "genecommons.sqlite3" for path in kept)
    found = []
    for path in kept:
        content = path.read_bytes()
        found.extend((str(path.relative_to(data)), n.decode()) for n in needles if n in content)
    assert found == []
