"""DRS and htsget deliveries of a fingerprinted dataset's VCF (SQLite and PostgreSQL): each
recipient gets a copy of its own, built in the background after its first request, described
by its own DRS id, size and checksums, decrypted with the crypt4gh library, read with pysam,
traced back to its recipient; the archived object stays as it was and no plaintext is left on
disk; a dataset whose setting is off is served the archived file as before."""

from __future__ import annotations

import base64
import hashlib
import io
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import crypt4gh.lib
import pysam
import pytest
from sqlalchemy import select

from genecommons.access import service as access_service
from genecommons.archive import drs as drs_delivery
from genecommons.archive import htsget as htsget_delivery
from genecommons.archive.htsget_requests import Region
from genecommons.archive.keys import generate_key_pair
from genecommons.archive.keys_and_store import object_store
from genecommons.archive.tables import archive_objects
from genecommons.errors import NotFoundError
from genecommons.fingerprint import copy_jobs
from genecommons.fingerprint import service as fingerprint_service
from genecommons.fingerprint.service import RecipientCopyService
from genecommons.fingerprint.tables import fingerprint_copies, fingerprint_deliveries
from genecommons.ledger.tables import audit_events
from genecommons.policy.models import Subject

# delivery serves fingerprinted copies through fingerprint's service, as the app does
COPIES = RecipientCopyService()

OPERATOR = Subject.operator("tester")
BASE = "http://node.test"


def _subject(world: Any, email: str) -> Subject:
    return access_service.authenticate(world.factory, world.tokens[email])


def _download(world: Any, subject: Subject, object_id: str) -> bytes:
    """The delivered stream decrypted with the recipient's secret key (the crypt4gh library)."""
    pair = generate_key_pair()
    result = drs_delivery.download(
        world.factory,
        world.settings,
        subject=subject,
        copies=COPIES,
        object_id=object_id,
        recipient_public=pair.public,
    )
    encrypted = b"".join(result.chunks)
    assert len(encrypted) == result.size
    out = io.BytesIO()
    crypt4gh.lib.decrypt([(0, pair.secret, None)], io.BytesIO(encrypted), out)
    return out.getvalue()


def _records(path: Path, region: tuple[str, int, int] | None = None) -> list[tuple[Any, ...]]:
    with pysam.VariantFile(str(path)) as vcf:
        rows = vcf.fetch(*region) if region else vcf.fetch()
        return [
            (r.chrom, r.pos, r.ref, r.alts, tuple(s["GT"] for s in r.samples.values()))
            for r in rows
        ]


def _built(world: Any, ask: Any) -> Any:
    """What `ask()` answers once the copy it needs is built: the first answer is "not ready"
    (the request never builds), then the builder runs."""
    with pytest.raises(copy_jobs.CopyNotReadyError) as pending:
        ask()
    assert pending.value.retry_after >= 1
    assert copy_jobs.build_pending(world.factory, world.settings).built == 1
    return ask()


def _no_plaintext_on_disk(world: Any) -> None:
    """Every file the node wrote is encrypted or a database: nothing holds VCF text or BGZF."""
    for path in world.settings.data_dir.rglob("*"):
        if path.is_file() and not path.name.endswith((".sqlite3", ".key", ".sec", ".pub")):
            start = path.read_bytes()[:16]
            assert not start.startswith((b"\x1f\x8b", b"##fileformat")), path


def _stored_body(world: Any) -> tuple[str, str]:
    with world.factory() as session:
        key, body_size, body_sha256 = session.execute(
            select(
                archive_objects.c.object_key,
                archive_objects.c.body_size,
                archive_objects.c.body_sha256,
            ).where(archive_objects.c.format == "vcf")
        ).one()
    stored = object_store(world.settings).read_range(key, 0, body_size)
    return hashlib.sha256(stored).hexdigest(), body_sha256


def test_each_recipient_gets_a_copy_of_its_own_that_traces_back(
    fingerprint_world: Any, tmp_path: Path
) -> None:
    world = fingerprint_world
    vcf = world.accessions["files"]["calls.vcf.gz"]
    original = world.files["vcf"].read_bytes()
    alice, bob = _subject(world, "granted@example.org"), _subject(world, "second@example.org")
    described = _built(
        world,
        lambda: drs_delivery.drs_object(
            world.factory,
            world.settings,
            subject=alice,
            copies=COPIES,
            object_id=vcf,
            base_url=BASE,
        ),
    )
    copy_id = described["id"]
    assert copy_id.startswith(f"{vcf}-fp-") and described["self_uri"].endswith(copy_id)
    # asked again, by either id: the same copy, made once
    again = drs_delivery.drs_object(
        world.factory,
        world.settings,
        subject=alice,
        copies=COPIES,
        object_id=copy_id,
        base_url=BASE,
    )
    assert again == described
    alice_copy = _download(world, alice, vcf)
    assert _download(world, alice, copy_id) == alice_copy
    checksums = {c["type"]: c["checksum"] for c in described["checksums"]}
    assert described["size"] == len(alice_copy) != len(original)
    assert checksums["sha-256"] == hashlib.sha256(alice_copy).hexdigest()
    assert checksums["md5"] == hashlib.md5(alice_copy, usedforsecurity=False).hexdigest()
    bob_copy = _built(world, lambda: _download(world, bob, vcf))
    assert bob_copy != alice_copy
    # the copies hold the archived file's sites and samples, a few calls changed
    (tmp_path / "alice.vcf.gz").write_bytes(alice_copy)
    (tmp_path / "bob.vcf.gz").write_bytes(bob_copy)
    theirs = _records(tmp_path / "alice.vcf.gz")
    archived = _records(world.files["vcf"])
    assert [r[:4] for r in theirs] == [r[:4] for r in archived]
    changed = sum(
        a != b
        for x, y in zip(theirs, archived, strict=True)
        for a, b in zip(x[4], y[4], strict=True)
    )
    assert 0 < changed < 0.01 * len(archived) * 120
    # a copy's id is its recipient's alone
    with pytest.raises(NotFoundError):
        drs_delivery.drs_object(
            world.factory,
            world.settings,
            subject=bob,
            copies=COPIES,
            object_id=copy_id,
            base_url=BASE,
        )
    # each leaked copy names its recipient
    for leaked, who in (
        ("alice.vcf.gz", "granted@example.org"),
        ("bob.vcf.gz", "second@example.org"),
    ):
        found = fingerprint_service.trace_leak(
            world.factory, world.settings, subject=OPERATOR, leaked=tmp_path / leaked
        )
        assert found.dataset == world.dataset
        assert [s.recipient for s in found.verdict.named] == [who]
        assert found.verdict.named[0].p_value < 1e-6
    # deliveries and audit events, one per download; two copies made
    with world.factory() as session:
        rows = session.execute(select(fingerprint_deliveries)).all()
        events = session.execute(
            select(audit_events.c.tag).where(audit_events.c.tag == "audit:fingerprint:deliver")
        ).all()
        made = session.execute(select(fingerprint_copies.c.recipient)).scalars().all()
    assert [(r.recipient, r.channel, r.fingerprinted) for r in rows] == [
        ("granted@example.org", "drs", True),
        ("granted@example.org", "drs", True),
        ("second@example.org", "drs", True),
    ]
    assert rows[0].what["copy"] == copy_id and rows[0].what["source"] == f"file:{vcf}"
    assert rows[0].what["sha256"] == checksums["sha-256"]
    assert len(events) == 3
    assert sorted(made) == ["granted@example.org", "second@example.org"]
    # the archived object is untouched, and no plaintext was written anywhere
    actual, recorded = _stored_body(world)
    assert actual == recorded
    _no_plaintext_on_disk(world)


def _fetch_ticket(world: Any, subject: Subject, ticket: dict[str, Any]) -> bytes:
    parts = []
    for item in ticket["htsget"]["urls"]:
        url = item["url"]
        if url.startswith("data:"):
            parts.append(base64.b64decode(url.split(",", 1)[1]))
            continue
        parsed = urlparse(url)
        query = parse_qs(parsed.query)
        parts.append(
            b"".join(
                htsget_delivery.htsget_data(
                    world.factory,
                    world.settings,
                    subject=subject,
                    copies=COPIES,
                    object_id=parsed.path.rsplit("/", 1)[-1],
                    start=int(query["start"][0]),
                    end=int(query["end"][0]),
                )
            )
        )
    return b"".join(parts)


def test_an_htsget_region_holds_exactly_the_copys_records_there(
    fingerprint_world: Any, tmp_path: Path
) -> None:
    world = fingerprint_world
    vcf = world.accessions["files"]["calls.vcf.gz"]
    alice = _subject(world, "granted@example.org")
    ticket = _built(
        world,
        lambda: htsget_delivery.htsget_ticket(
            world.factory,
            world.settings,
            subject=alice,
            copies=COPIES,
            endpoint="variants",
            object_id=vcf,
            requested_format=None,
            regions=[Region("chr22", 12_000_000, 15_000_000)],
            header_only=False,
            base_url=BASE,
            headers={},
        ),
    )
    copy_id = urlparse(ticket["htsget"]["urls"][0]["url"]).path.rsplit("/", 1)[-1]
    assert copy_id.startswith(f"{vcf}-fp-")
    sliced = tmp_path / "slice.vcf.gz"
    sliced.write_bytes(_fetch_ticket(world, alice, ticket))
    whole = tmp_path / "copy.vcf.gz"
    whole.write_bytes(_download(world, alice, vcf))
    pysam.tabix_index(str(whole), preset="vcf", force=True, keep_original=True)
    region = ("chr22", 12_000_000, 15_000_000)
    expected = _records(Path(f"{whole}"), region)
    assert expected
    # the slice holds the copy's records of the region (blocks may bring a few neighbours)
    got = [r for r in _records(sliced) if r[0] == "chr22" and 12_000_000 < r[1] <= 15_000_000]
    assert got == expected
    assert _records(whole) != _records(world.files["vcf"])
    with world.factory() as session:
        channels = (
            session.execute(
                select(fingerprint_deliveries.c.channel).order_by(fingerprint_deliveries.c.id)
            )
            .scalars()
            .all()
        )
    assert channels == ["htsget", "drs"]
    actual, recorded = _stored_body(world)
    assert actual == recorded


def test_a_dataset_whose_setting_is_off_is_served_the_archived_file(
    fingerprint_world: Any,
) -> None:
    world = fingerprint_world
    vcf = world.accessions["files"]["calls.vcf.gz"]
    fingerprint_service.set_policy(
        world.factory, subject=OPERATOR, dataset=world.dataset, required=False
    )
    alice = _subject(world, "granted@example.org")
    described = drs_delivery.drs_object(
        world.factory, world.settings, subject=alice, copies=COPIES, object_id=vcf, base_url=BASE
    )
    assert described["id"] == vcf
    original = world.files["vcf"].read_bytes()
    assert described["size"] == len(original)
    assert _download(world, alice, vcf) == original
    with world.factory() as session:
        assert not session.execute(select(fingerprint_deliveries)).all()
        assert not session.execute(select(fingerprint_copies)).all()
