"""Recipients' copies built in the background, as a requester, an operator and a crash see them
(SQLite and PostgreSQL): the first request only queues a job and is told to come back; requests
at the same time make one job; the streamed copy carries exactly the marks of the whole-matrix
scheme (read back with pysam, an independent parser); a copy finished after its grant was
revoked is not handed out; a builder killed with SIGKILL half way leaves no copy that passes for
whole and its job is built again; a build that cannot succeed fails once, with a bilingual
error, and is not tried forever."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import crypt4gh.lib
import numpy as np
import pysam
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from genecommons.access import service as access_service
from genecommons.access import workflow
from genecommons.access.tables import grants, users
from genecommons.app import create_app
from genecommons.archive import drs as drs_delivery
from genecommons.archive.crypt import BodyDecryptor, session_keys
from genecommons.archive.keys import format_public_key, generate_key_pair
from genecommons.archive.keys_and_store import archive_keys, object_store
from genecommons.archive.tables import archive_objects
from genecommons.config import Settings
from genecommons.errors import AccessDeniedError
from genecommons.fingerprint import codes, copies, copy_jobs, genotypes, models
from genecommons.fingerprint.secret import fingerprint_secret
from genecommons.fingerprint.service import RecipientCopyService
from genecommons.fingerprint.tables import fingerprint_copies, fingerprint_copy_jobs
from genecommons.policy.models import Subject

from ..archive.conftest import World, build_world

# delivery serves fingerprinted copies through fingerprint's service, as the app does
COPIES = RecipientCopyService()

OPERATOR = Subject.operator("tester")
BASE = "http://node.test"
ALICE = "granted@example.org"


def _subject(world: World, email: str = ALICE) -> Subject:
    return access_service.authenticate(world.factory, world.tokens[email])


def _vcf(world: World) -> str:
    return world.accessions["files"]["calls.vcf.gz"]


def _describe(world: World, subject: Subject, *, settings: Settings | None = None) -> Any:
    return drs_delivery.drs_object(
        world.factory,
        settings or world.settings,
        subject=subject,
        copies=COPIES,
        object_id=_vcf(world),
        base_url=BASE,
    )


def _download(world: World, subject: Subject) -> bytes:
    pair = generate_key_pair()
    result = drs_delivery.download(
        world.factory,
        world.settings,
        subject=subject,
        copies=COPIES,
        object_id=_vcf(world),
        recipient_public=pair.public,
    )
    out = io.BytesIO()
    crypt4gh.lib.decrypt([(0, pair.secret, None)], io.BytesIO(b"".join(result.chunks)), out)
    return out.getvalue()


def _jobs(world: World) -> list[Any]:
    with world.factory() as session:
        return list(session.execute(select(fingerprint_copy_jobs)).all())


def _copies(world: World) -> list[Any]:
    with world.factory() as session:
        return list(session.execute(select(fingerprint_copies)).all())


def test_the_first_requests_queue_one_job_and_are_told_to_come_back(
    fingerprint_world: World,
) -> None:
    world = fingerprint_world
    alice = _subject(world)
    answers: list[BaseException | None] = []

    def ask() -> None:
        try:
            _describe(world, alice)
        except copy_jobs.CopyNotReadyError as error:
            answers.append(error)
        else:
            answers.append(None)

    threads = [threading.Thread(target=ask) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(isinstance(a, copy_jobs.CopyNotReadyError) for a in answers)
    error = answers[0]
    assert isinstance(error, copy_jobs.CopyNotReadyError)
    assert 1 <= error.retry_after <= copy_jobs.MAX_RETRY_AFTER
    assert error.message_zh and error.details["state"] == "queued"
    (job,) = _jobs(world)  # six requests at once: one job
    assert (job.state, job.recipient, job.attempts) == ("pending", ALICE, 0)
    assert _copies(world) == []
    # nothing was built on the requests' threads; a builder makes it, once
    assert copy_jobs.build_pending(world.factory, world.settings) == models.BuildReport(built=1)
    assert copy_jobs.build_pending(world.factory, world.settings) == models.BuildReport()
    described = _describe(world, alice)
    assert described["id"].startswith(f"{_vcf(world)}-fp-")
    (job,) = _jobs(world)
    assert (job.state, job.attempts, job.progress) == ("done", 1, 1.0)


def _pysam_genotypes(path: Path) -> genotypes.Genotypes:
    """The archived VCF as pysam (htslib) reads it: an independent parser."""
    with pysam.VariantFile(str(path)) as vcf:
        samples = tuple(vcf.header.samples)
        contigs = tuple((name, vcf.header.contigs[name].length) for name in vcf.header.contigs)
        rows, phases, chroms, positions, alleles = [], [], [], [], []
        for record in vcf:
            chroms.append(record.chrom)
            positions.append(record.pos)
            alleles.append(tuple(record.alleles))
            calls = [record.samples[s]["GT"] for s in samples]
            rows.append([[-1 if a is None else a for a in call] for call in calls])
            phases.append([record.samples[s].phased for s in samples])
    return genotypes.Genotypes(
        calls=np.asarray(rows, dtype=np.int8),
        phased=np.asarray(phases, dtype=np.bool_),
        samples=samples,
        chroms=tuple(chroms),
        positions=np.asarray(positions, dtype=np.int64),
        alleles=tuple(alleles),
        contigs=contigs,
    )


def test_the_streamed_copy_carries_the_marks_of_the_whole_matrix(
    fingerprint_world: World, tmp_path: Path
) -> None:
    world = fingerprint_world
    alice = _subject(world)
    with pytest.raises(copy_jobs.CopyNotReadyError):
        _describe(world, alice)
    copy_jobs.build_pending(world.factory, world.settings)
    delivered = _download(world, alice)
    (row,) = _copies(world)
    # the reference: the whole matrix read by pysam, planned, marked and written at once
    source = _pysam_genotypes(world.files["vcf"])
    secret = fingerprint_secret(world.settings)
    dosages = source.dosages()
    plan = codes.make_plan(dosages, secret=secret, dataset=world.dataset)
    bits = codes.recipient_bits(plan, secret=secret, dataset=world.dataset, recipient=ALICE)
    marked = genotypes.mark(source, plan, bits)
    expected = tmp_path / "expected.vcf.gz"
    handle = genotypes.BgzfFile(expected)
    genotypes.write_vcf(
        marked,
        handle,
        source=f"GeneCommons {_vcf(world)}",
        extra=[f"##genecommons_copy={row.copy_id}"],
    )
    handle.close()
    assert len(plan) > 100 and row.marked_positions == len(plan)
    assert delivered == expected.read_bytes()
    assert row.utility == codes.utility(dosages, marked.dosages()).as_json()
    # the index made in the same pass finds what htslib's own index finds
    (tmp_path / "copy.vcf.gz").write_bytes(delivered)
    store = object_store(world.settings)
    decryptor = BodyDecryptor(session_keys(row.index_header, keys=archive_keys(world.settings)))
    body = store.read_range(row.index_key, 0, row.index_body_size)
    (tmp_path / "copy.vcf.gz.tbi").write_bytes(decryptor.update(body) + decryptor.finish())
    theirs = tmp_path / "htslib.vcf.gz"
    theirs.write_bytes(delivered)
    pysam.tabix_index(str(theirs), preset="vcf", force=True, keep_original=True)
    ours = pysam.TabixFile(str(tmp_path / "copy.vcf.gz"))
    reference = pysam.TabixFile(str(theirs))
    for contig, start, end in [
        ("chr21", 10_000_000, 10_500_000),
        ("chr22", 12_345_678, 15_000_000),
        ("chr22", 19_999_000, 25_000_000),
        ("chr21", 0, 9_000_000),
    ]:
        assert list(ours.fetch(contig, start, end)) == list(reference.fetch(contig, start, end))
    ours.close()
    reference.close()


def _grant_of(world: World, email: str) -> int:
    with world.factory() as session:
        return int(
            session.execute(
                select(grants.c.id)
                .join(users, users.c.id == grants.c.user_id)
                .where(users.c.email == email)
            ).scalar_one()
        )


def test_a_copy_finished_after_its_grant_was_revoked_is_not_handed_out(
    fingerprint_world: World,
) -> None:
    world = fingerprint_world
    with pytest.raises(copy_jobs.CopyNotReadyError):
        _describe(world, _subject(world))
    workflow.revoke_grant(
        world.factory,
        grant_id=_grant_of(world, ALICE),
        reason="Left the project.",
        actor=OPERATOR,
    )
    assert copy_jobs.build_pending(world.factory, world.settings).built == 1
    (made,) = _copies(world)
    revoked = _subject(world)
    with pytest.raises(AccessDeniedError):
        _describe(world, revoked)
    with pytest.raises(AccessDeniedError):
        drs_delivery.download(
            world.factory,
            world.settings,
            subject=revoked,
            copies=COPIES,
            object_id=made.copy_id,
            recipient_public=generate_key_pair().public,
        )


@pytest.fixture
def big_fingerprint_world(
    archive_settings: Settings, factory: Any, tmp_path: Path, datafiles: SimpleNamespace
) -> World:
    """A fingerprinted VCF big enough (200 samples, 12,000 sites) that its build takes a
    while."""
    return build_world(
        archive_settings,
        factory,
        tmp_path,
        datafiles,
        vcf_options={"samples": [f"S{i:03d}" for i in range(200)], "records": 6000},
    )


def test_a_builder_killed_half_way_leaves_no_copy_and_its_job_is_built_again(
    big_fingerprint_world: World, tmp_path: Path
) -> None:
    world = big_fingerprint_world
    alice = _subject(world)
    with pytest.raises(copy_jobs.CopyNotReadyError):
        _describe(world, alice)
    env = {
        **os.environ,
        "GENECOMMONS_DATA_DIR": str(world.settings.data_dir),
        "GENECOMMONS_DATABASE_URL": world.settings.effective_database_url,
        "GENECOMMONS_ENVIRONMENT": "test",
        "GENECOMMONS_COPY_BUILD_LEASE_SECONDS": "0.4",
    }
    builder = subprocess.Popen(
        [sys.executable, "-m", "genecommons", "fingerprint", "build-pending"], env=env
    )
    try:
        deadline = time.monotonic() + 120
        while True:  # until it is writing the copy (the second pass)
            (job,) = _jobs(world)
            if job.state == "building" and job.progress >= 0.55:
                break
            assert job.state in ("pending", "building"), job
            assert time.monotonic() < deadline and builder.poll() is None
            time.sleep(0.01)
        builder.send_signal(signal.SIGKILL)
    finally:
        builder.wait(timeout=30)
    (job,) = _jobs(world)
    killed = job.attempt_copy_id
    assert job.state == "building" and killed
    assert _copies(world) == []  # nothing passes for a copy
    with pytest.raises(copy_jobs.CopyNotReadyError):
        _describe(world, alice)
    # the next builder, once the dead one's lease is over, removes its leftovers and builds
    settings = world.settings.model_copy(update={"copy_build_lease_seconds": 0.4})
    time.sleep(0.5)
    assert copy_jobs.build_pending(world.factory, settings) == models.BuildReport(built=1)
    (job,) = _jobs(world)
    assert (job.state, job.attempts) == ("done", 2)
    store = object_store(world.settings)
    accession = _vcf(world)
    assert not any(store.exists(key) for key in copies.copy_keys(accession, killed))
    described = _describe(world, alice)
    copy = _download(world, alice)
    assert described["id"] != killed and len(copy) == described["size"]
    whole = tmp_path / "copy.vcf.gz"
    whole.write_bytes(copy)
    with pysam.VariantFile(str(whole)) as vcf:
        assert sum(1 for _ in vcf) == 12_000


def test_a_build_that_cannot_succeed_fails_once_with_a_clear_error(
    fingerprint_world: World,
) -> None:
    world = fingerprint_world
    alice = _subject(world)
    with pytest.raises(copy_jobs.CopyNotReadyError):
        _describe(world, alice)
    # the archived object's bytes are altered behind the archive's back
    with world.factory() as session:
        key = session.execute(
            select(archive_objects.c.object_key).where(archive_objects.c.format == "vcf")
        ).scalar_one()
    path = Path(object_store(world.settings).root) / key  # type: ignore[attr-defined]
    path.chmod(0o600)
    damaged = bytearray(path.read_bytes())
    damaged[100] ^= 0xFF
    path.write_bytes(bytes(damaged))
    assert copy_jobs.build_pending(world.factory, world.settings) == models.BuildReport(failed=1)
    with pytest.raises(copy_jobs.CopyFailedError) as failed:
        _describe(world, alice)
    assert "could not be made" in failed.value.message and "segment" in failed.value.message
    assert "无法生成" in failed.value.message_zh
    assert failed.value.http_status == 500
    # not tried again by itself; an operator puts it back
    assert copy_jobs.build_pending(world.factory, world.settings) == models.BuildReport()
    (job,) = _jobs(world)
    assert (job.state, job.attempts) == ("failed", 1)
    assert copy_jobs.retry_failed(world.factory, subject=OPERATOR) == 1
    assert [j.state for j in copy_jobs.list_jobs(world.factory, subject=OPERATOR)] == ["pending"]


def test_a_job_whose_builders_keep_dying_is_failed_not_retried_forever(
    fingerprint_world: World,
) -> None:
    world = fingerprint_world
    alice = _subject(world)
    with pytest.raises(copy_jobs.CopyNotReadyError):
        _describe(world, alice)
    limit = world.settings.copy_build_max_attempts
    # as the last of `limit` builders, each killed half way, left it
    with world.factory.begin() as session:
        session.execute(
            update(fingerprint_copy_jobs).values(
                state="building",
                attempts=limit,
                attempt_copy_id=f"{_vcf(world)}-fp-00000000000000aa",
                heartbeat_at=fingerprint_copy_jobs.c.created_at,
                started_at=fingerprint_copy_jobs.c.created_at,
            )
        )
    settings = world.settings.model_copy(update={"copy_build_lease_seconds": 0.1})
    time.sleep(0.2)
    assert copy_jobs.build_pending(world.factory, settings) == models.BuildReport()
    (job,) = _jobs(world)
    assert job.state == "failed" and job.error["code"] == "interrupted"
    with pytest.raises(copy_jobs.CopyFailedError) as failed:
        _describe(world, alice, settings=settings)
    assert f"interrupted {limit} times" in failed.value.message


def test_a_copy_removed_after_its_build_is_built_again(fingerprint_world: World) -> None:
    world = fingerprint_world
    alice = _subject(world)
    with pytest.raises(copy_jobs.CopyNotReadyError):
        _describe(world, alice)
    copy_jobs.build_pending(world.factory, world.settings)
    first = _describe(world, alice)["id"]
    with world.factory.begin() as session:  # as an operator clearing copies would
        session.execute(fingerprint_copies.delete())
    with pytest.raises(copy_jobs.CopyNotReadyError):
        _describe(world, alice)
    assert copy_jobs.build_pending(world.factory, world.settings).built == 1
    assert _describe(world, alice)["id"] not in (first, None)


def test_every_route_that_needs_the_copy_says_when_to_come_back(fingerprint_world: World) -> None:
    # no builder runs: the job waits, and each route answers as its clients expect
    world = fingerprint_world
    vcf = _vcf(world)
    headers = {**world.headers(ALICE), "X-Crypt4GH-Public-Key": _public_key_line()}
    app = create_app(world.settings)
    with TestClient(app) as client:
        drs = client.get(f"/ga4gh/drs/v1/objects/{vcf}", headers=headers)
        access = client.get(f"/ga4gh/drs/v1/objects/{vcf}/access/crypt4gh", headers=headers)
        download = client.get(f"/ga4gh/drs/v1/objects/{vcf}/download", headers=headers)
        ticket = client.get(f"/htsget/variants/{vcf}?referenceName=chr22", headers=headers)
        posted = client.post(f"/htsget/variants/{vcf}", json={}, headers=headers)
        data = client.get(f"/htsget/data/{vcf}?start=0&end=65536", headers=headers)
        refused = client.get(
            f"/ga4gh/drs/v1/objects/{vcf}", headers=world.headers("nogrant@example.org")
        )
    app.state.services.engine.dispose()
    for answer, status in (
        (drs, 202),  # DRS 1.4: "retry this same request after Retry-After"
        (access, 202),
        (download, 503),  # a byte stream: 202 would pass for the data; curl --retry waits
        (ticket, 503),  # htsget: a transient error, which clients retry
        (posted, 503),
        (data, 503),
    ):
        assert answer.status_code == status, answer.text
        assert 1 <= int(answer.headers["retry-after"]) <= copy_jobs.MAX_RETRY_AFTER
    assert drs.json()["status_code"] == 202 and drs.json()["message_zh"]
    assert ticket.json()["htsget"]["error"] == "NotReady"
    assert refused.status_code == 403  # access is decided before anything is queued
    assert len(_jobs(world)) == 1  # six requests, one job


def _public_key_line() -> str:
    return format_public_key(generate_key_pair().public).splitlines()[1]
