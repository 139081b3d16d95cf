"""Delivery end to end: files submitted with their metadata reach an approved researcher through
DRS (decrypted by the standard `crypt4gh` tool run as a separate process) and htsget (fetched
by the `htsget` client from PyPI and read with samtools/bcftools as pysam bundles them); others
get a clear refusal, and every delivery is in the audit log."""

from __future__ import annotations

import base64
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import htsget
import httpx
import pysam
import pysam.bcftools
import pysam.samtools
import pytest
from sqlalchemy import select

from genecommons.archive.keys import format_public_key, generate_key_pair, write_key_pair
from genecommons.archive.tables import archive_objects
from genecommons.ledger.tables import audit_events

from .conftest import when_ready

CRYPT4GH = Path(sys.executable).with_name("crypt4gh")


def _recipient(tmp_path: Path) -> tuple[Path, str]:
    pair = generate_key_pair()
    secret, public = tmp_path / "me.sec", tmp_path / "me.pub"
    write_key_pair(secret_path=secret, public_path=public, pair=pair, passphrase="pass-phrase")
    return secret, format_public_key(pair.public)


def _decrypt(secret: Path, encrypted: bytes) -> bytes:
    """Run the standard crypt4gh CLI as its own process."""
    done = subprocess.run(
        [str(CRYPT4GH), "decrypt", "--sk", str(secret)],
        input=encrypted,
        capture_output=True,
        env={"C4GH_PASSPHRASE": "pass-phrase", "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


def _events(world: Any, tag: str, *, wait: bool = False) -> list[Any]:
    """The events of a tag (with `wait`: once there is one; a download is recorded when the
    server has seen its transfer end, which may be after the client has read the last byte)."""
    deadline = time.monotonic() + (30 if wait else 0)
    while True:
        with world.factory() as session:
            found = list(
                session.execute(select(audit_events).where(audit_events.c.tag == tag)).all()
            )
        if found or time.monotonic() >= deadline:
            return found
        time.sleep(0.05)


def test_drs_download_decrypts_with_the_standard_tool(
    world: Any, live_server: str, tmp_path: Path
) -> None:
    secret, public = _recipient(tmp_path)
    headers = world.headers("granted@example.org")
    vcf = world.accessions["files"]["calls.vcf.gz"]
    with httpx.Client(base_url=live_server, timeout=30) as client:
        assert (
            client.put("/api/v1/me/crypt4gh-key", json={"public_key": public}, headers=headers)
        ).status_code == 204
        url = f"/ga4gh/drs/v1/objects/{vcf}"
        # the first request queues the recipient's copy and is told to come back (DRS 1.4: 202)
        first = client.get(url, headers=headers)
        assert first.status_code == 202, first.text
        assert int(first.headers["retry-after"]) >= 1 and first.json()["message_zh"]
        described = when_ready(lambda: client.get(url, headers=headers))
        assert described.status_code == 200, described.text
        body = described.json()
        expected = world.files["vcf"].read_bytes()
        assert body["size"] == len(expected)
        assert {c["type"] for c in body["checksums"]} == {"sha-256", "md5"}
        access = client.get(
            f"/ga4gh/drs/v1/objects/{vcf}/access/{body['access_methods'][0]['access_id']}",
            headers=headers,
        ).json()
        fetch_headers = dict(h.split(": ", 1) for h in access["headers"])
        downloaded = client.get(access["url"], headers=fetch_headers)
    assert downloaded.status_code == 200
    assert int(downloaded.headers["content-length"]) == len(downloaded.content)
    assert _decrypt(secret, downloaded.content) == expected
    # only the header was re-encrypted: the body is the stored body, byte for byte
    with world.factory() as session:
        row = session.execute(select(archive_objects)).first()
    assert row is not None
    (event,) = _events(world, "archive:file:download", wait=True)
    assert event.details["completed"] is True
    assert event.details["bytes"] == event.details["size"] == len(downloaded.content)
    assert len(_events(world, "archive:drs:access")) == 1


def test_download_body_is_the_stored_body(world: Any, live_server: str, tmp_path: Path) -> None:
    _, public = _recipient(tmp_path)
    bam = world.accessions["files"]["P1.bam"]
    key_header = {"X-Crypt4GH-Public-Key": base64.b64encode(public.encode()).decode()}
    with httpx.Client(base_url=live_server, timeout=30) as client:
        first = client.get(
            f"/ga4gh/drs/v1/objects/{bam}/download",
            headers={**world.headers("granted@example.org"), **key_header},
        ).content
    from genecommons.archive.keys_and_store import object_store

    with world.factory() as session:
        key, body_size = session.execute(
            select(archive_objects.c.object_key, archive_objects.c.body_size).where(
                archive_objects.c.format == "bam"
            )
        ).one()
    stored = object_store(world.settings).read_range(key, 0, body_size)
    assert first.endswith(stored) and len(first) - len(stored) < 1000


def test_a_researcher_without_a_grant_gets_a_clear_refusal(world: Any, live_server: str) -> None:
    vcf = world.accessions["files"]["calls.vcf.gz"]
    with httpx.Client(base_url=live_server, timeout=30) as client:
        refused = client.get(
            f"/ga4gh/drs/v1/objects/{vcf}", headers=world.headers("nogrant@example.org")
        )
        assert refused.status_code == 403
        assert refused.json()["status_code"] == 403
        assert "grant" in refused.json()["msg"] and refused.json()["message_zh"]
        anonymous = client.get(f"/htsget/variants/{vcf}?referenceName=chr22")
        assert anonymous.status_code == 403
        assert anonymous.json()["htsget"]["error"] == "PermissionDenied"
        download = client.get(
            f"/ga4gh/drs/v1/objects/{vcf}/download", headers=world.headers("nogrant@example.org")
        )
        assert download.status_code == 403
    assert _events(world, "archive:file:download") == []


def _records(path: Path, region: str, *, kind: str) -> list[str]:
    """Records of `region` read by bcftools / samtools (as pysam bundles them)."""
    if kind == "vcf":
        pysam.tabix_index(str(path), preset="vcf", force=True, keep_original=True)
        out = pysam.bcftools.view("-H", "-r", region, str(path))
    else:
        pysam.index(str(path))
        out = pysam.samtools.view(str(path), region)
    return [line for line in str(out).splitlines() if line]


@pytest.mark.parametrize(
    ("kind", "endpoint", "name", "reference", "start", "end"),
    [
        ("vcf", "variants", "calls.vcf.gz", "chr22", 12_000_000, 12_400_000),
        ("vcf", "variants", "calls.vcf.gz", "chr21", None, None),
        ("bam", "reads", "P1.bam", "chr22", 1_500_000, 1_600_000),
        ("bam", "reads", "P1.bam", "chr21", 2_999_000, 3_100_000),
    ],
)
def test_htsget_client_fetches_exactly_the_region(
    world: Any,
    live_server: str,
    tmp_path: Path,
    kind: str,
    endpoint: str,
    name: str,
    reference: str,
    start: int | None,
    end: int | None,
) -> None:
    accession = world.accessions["files"][name]
    if start is None:  # one base: where the 1000th record of the reference is
        with pysam.VariantFile(str(world.files[kind])) as variants:
            position = [r.pos for r in variants if r.chrom == reference][999]
        start, end = position - 1, position
    out = tmp_path / f"fetched.{'vcf.gz' if kind == 'vcf' else 'bam'}"
    with out.open("wb") as sink:
        htsget.get(
            f"{live_server}/htsget/{endpoint}/{accession}",
            sink,
            reference_name=reference,
            start=start,
            end=end,
            bearer_token=world.tokens["granted@example.org"],
            max_retries=200,  # while the copy is made the ticket is 503 with Retry-After
            retry_wait=0.1,
        )
    region = f"{reference}:{start + 1}-{end}"
    original = tmp_path / f"original.{'vcf.gz' if kind == 'vcf' else 'bam'}"
    original.write_bytes(world.files[kind].read_bytes())
    expected = _records(original, region, kind=kind)
    assert expected, "the region must hold records for the test to mean something"
    assert _records(out, region, kind=kind) == expected
    assert _events(world, "archive:htsget:ticket")


def test_htsget_whole_file_and_header_only(world: Any, live_server: str, tmp_path: Path) -> None:
    accession = world.accessions["files"]["calls.vcf.gz"]
    # the first ticket queues the recipient's copy: 503 with Retry-After, which htsget clients
    # retry (the spec's transient error), with the htsget error object
    first = httpx.get(
        f"{live_server}/htsget/variants/{accession}", headers=world.headers("granted@example.org")
    )
    assert first.status_code == 503 and int(first.headers["retry-after"]) >= 1
    assert first.json()["htsget"]["error"] == "NotReady"
    assert first.json()["htsget"]["message_zh"]
    whole = tmp_path / "whole.vcf.gz"
    with whole.open("wb") as sink:
        htsget.get(
            f"{live_server}/htsget/variants/{accession}",
            sink,
            bearer_token=world.tokens["granted@example.org"],
            max_retries=200,
            retry_wait=0.1,
        )
    with (
        pysam.VariantFile(str(whole)) as fetched,
        pysam.VariantFile(str(world.files["vcf"])) as original,
    ):
        assert [str(r) for r in fetched] == [str(r) for r in original]
    with httpx.Client(base_url=live_server, timeout=30) as client:
        ticket = client.get(
            f"/htsget/variants/{accession}?class=header",
            headers=world.headers("granted@example.org"),
        ).json()
    assert [u["class"] for u in ticket["htsget"]["urls"]] == ["header"]


@pytest.mark.parametrize(
    ("query", "status", "error"),
    [
        ("referenceName=chrUn", 404, "NotFound"),
        ("referenceName=chr22&start=100&end=50", 400, "InvalidRange"),
        ("start=100", 400, "InvalidInput"),
        ("referenceName=chr22&format=BCF", 400, "UnsupportedFormat"),
        ("class=body", 400, "InvalidInput"),
    ],
)
def test_htsget_errors_follow_the_spec(
    world: Any, live_server: str, query: str, status: int, error: str
) -> None:
    accession = world.accessions["files"]["calls.vcf.gz"]
    with httpx.Client(base_url=live_server, timeout=30) as client:
        answer = when_ready(
            lambda: client.get(
                f"/htsget/variants/{accession}?{query}",
                headers=world.headers("granted@example.org"),
            )
        )
    assert answer.status_code == status, answer.text
    assert answer.json()["htsget"]["error"] == error
    assert answer.json()["htsget"]["message"]


def test_a_bam_is_not_served_as_variants(world: Any, live_server: str) -> None:
    accession = world.accessions["files"]["P1.bam"]
    with httpx.Client(base_url=live_server, timeout=30) as client:
        answer = client.get(
            f"/htsget/variants/{accession}", headers=world.headers("granted@example.org")
        )
    assert answer.status_code == 400
    assert answer.json()["htsget"]["error"] == "UnsupportedFormat"
