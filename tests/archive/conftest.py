"""Fixtures of the archive's tests: a node with archived files and researchers, a live HTTP
server, and a real S3 protocol server (moto's server mode) on loopback."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import numpy as np
import pytest
import uvicorn
from pydantic import SecretStr

from genecommons.access import committees, institution_service, workflow
from genecommons.access import service as access_service
from genecommons.access.duo_models import ResearchPurpose
from genecommons.app import create_app
from genecommons.archive import ingestion
from genecommons.archive.holdings import archived_here
from genecommons.catalog import service as catalog_service
from genecommons.config import Settings
from genecommons.fingerprint import copy_jobs
from genecommons.policy.models import Subject


@dataclass
class World:
    """A node with archived data: its settings, tokens and accessions."""

    settings: Settings
    factory: Any
    tokens: dict[str, str]
    accessions: dict[str, dict[str, str]]
    files: dict[str, Path]
    dataset: str

    def headers(self, email: str) -> dict[str, str]:
        """Authorization header of a user."""
        return {"Authorization": f"Bearer {self.tokens[email]}"}


OPERATOR = Subject.operator("tester")


@pytest.fixture
def world(
    archive_settings: Settings, factory: Any, tmp_path: Path, datafiles: SimpleNamespace
) -> World:
    """Submit a study whose folder holds a VCF and a BAM (archived on submit), with a granted
    researcher, a researcher without a grant, a steward and their tokens."""
    return build_world(archive_settings, factory, tmp_path, datafiles)


def build_world(
    archive_settings: Settings,
    factory: Any,
    tmp_path: Path,
    datafiles: SimpleNamespace,
    *,
    vcf_options: dict[str, Any] | None = None,
    granted: tuple[str, ...] = ("granted@example.org",),
    fastq_megabytes: int = 0,
) -> World:
    """A submitted study with archived files, users with tokens, and grants to `granted`
    (and a FASTQ of about `fastq_megabytes` of run P1-R1, when asked)."""
    folder = tmp_path / "bundle"
    folder.mkdir()
    vcf = datafiles.vcf(folder / "calls.vcf.gz", **(vcf_options or {}))
    bam = datafiles.bam(folder / "P1.bam")
    sheets = datafiles.sheets(folder, vcf=vcf, bam=bam)
    files = {"vcf": vcf, "bam": bam}
    if fastq_megabytes:
        files["fastq"] = write_fastq(folder / "P1.fastq", megabytes=fastq_megabytes)
        sheets["files"].append(
            {
                "alias": "P1.fastq",
                "run": "P1-R1",
                "format": "fastq",
                **datafiles.digest(files["fastq"]),
            }
        )
    datafiles.write(folder, sheets)
    result = catalog_service.submit(
        factory,
        folder,
        subject=OPERATOR,
        data_files=ingestion.BundleArchiver(archive_settings, OPERATOR),
    )
    institution = result.accessions["institutions"]["BGC"]
    tokens = {}
    users = [(email, ["researcher"]) for email in granted]
    users += [
        ("nogrant@example.org", ["researcher"]),
        ("steward@example.org", ["data_steward"]),
        ("dac@example.org", ["dac_member"]),
    ]
    for email, roles in users:
        access_service.add_user(
            factory, email=email, roles=roles, institution=institution, actor=OPERATOR
        )
        tokens[email] = access_service.create_token(factory, email=email, actor=OPERATOR).token
    institution_service.verify_institution(
        factory,
        institution=institution,
        foreign_controlled=False,
        attestation="Registered in Beijing; no foreign ownership.",
        actor=OPERATOR,
    )
    committees.create_dac(factory, alias="BGC DAC", name="BGC DAC", actor=OPERATOR)
    committees.add_member(
        factory, dac="BGC DAC", email="dac@example.org", chair=True, actor=OPERATOR
    )
    dataset = result.accessions["datasets"]["DS1"]
    member = Subject.user(
        "dac@example.org", roles=frozenset({"dac_member"}), institution=institution
    )
    for email in granted:
        researcher = Subject.user(email, roles=frozenset({"researcher"}), institution=institution)
        workflow.request_access(
            factory,
            actor=researcher,
            purpose=ResearchPurpose(
                title="Hearing loss genetics",
                summary="Find variants.",
                institution="BGC",
                country="CN",
                biomedical=True,
                genetic_research=True,
                ethics_approval=True,
            ),
            datasets=[dataset],
            agreement_version="DAA v1",
            archived_here=archived_here,
        )
        queue = workflow.review_queue(factory, actor=member)
        workflow.decide_request(
            factory,
            item_id=queue[0]["item"],
            approve=True,
            reason="Fits the consent.",
            actor=member,
            expires=date.today() + timedelta(days=30),
        )
    return World(
        settings=archive_settings,
        factory=factory,
        tokens=tokens,
        accessions=result.accessions,
        files=files,
        dataset=dataset,
    )


def write_fastq(path: Path, *, megabytes: int, seed: int = 5) -> Path:
    """A FASTQ of 150 bp reads of random bases, about `megabytes` long."""
    rng = np.random.default_rng(seed)
    reads = megabytes * 1_000_000 // 320
    bases = np.frombuffer(b"ACGT", dtype=np.uint8)[rng.integers(0, 4, (reads, 150))]
    with path.open("wb") as out:
        for i in range(reads):
            out.write(b"@r%d\n%s\n+\n%s\n" % (i, bases[i].tobytes(), b"I" * 150))
    return path


def when_ready(send: Any, *, timeout: float = 60.0) -> httpx.Response:
    """The answer of a request sent again while it says "not ready, retry after" (DRS 202 or
    503 with Retry-After), as a client that honours Retry-After would (polling faster)."""
    deadline = time.monotonic() + timeout
    while True:
        answer: httpx.Response = send()
        if answer.status_code not in (202, 503) or "retry-after" not in answer.headers:
            return answer
        assert int(answer.headers["retry-after"]) >= 1
        if time.monotonic() > deadline:
            raise AssertionError(f"still not ready after {timeout} s: {answer.text}")
        time.sleep(0.1)


@pytest.fixture
def builder(world: World) -> Iterator[threading.Event]:
    """The node's copy builder (what `serve` runs in a process of its own), here in a thread
    of the test process, building copies as requests ask for them."""
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            copy_jobs.build_pending(world.factory, world.settings, stop=stop)
            stop.wait(0.05)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    yield stop
    stop.set()
    thread.join(timeout=60)


@pytest.fixture
def live_server(world: World, builder: threading.Event) -> Iterator[str]:
    """The app served by uvicorn on a loopback port, for clients that speak real HTTP, with
    the copy builder running beside it."""
    app = create_app(world.settings)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)
    app.state.services.engine.dispose()  # the server's own connections, before the schema goes


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A real S3 protocol server (moto's server mode) on a loopback port."""
    from moto.server import ThreadedMotoServer

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_archive_url(moto_endpoint: str) -> dict[str, Any]:
    """Settings that put the archive in a fresh bucket of the S3 server."""
    import boto3

    bucket = f"archive-{uuid.uuid4().hex[:12]}"
    client = boto3.client(
        "s3",
        endpoint_url=moto_endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    client.create_bucket(Bucket=bucket)
    return {
        "archive_url": f"s3://{bucket}/objects",
        "archive_s3_endpoint_url": moto_endpoint,
        "archive_s3_access_key": SecretStr("testing"),
        "archive_s3_secret_key": SecretStr("testing"),
    }
