"""A download is audited with the bytes that actually went, as a real client sees it (uvicorn on
loopback, SQLite and PostgreSQL): a client that stops reading half way (a raw socket with a
small receive buffer, an httpx stream closed early) leaves an event with at least what it
received and less than the object, marked incomplete; a whole download leaves one with the
object's size, marked complete; an htsget data block cut short likewise."""

from __future__ import annotations

import socket
import time
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest
from sqlalchemy import select

from genecommons.access import service as access_service
from genecommons.archive import htsget as htsget_delivery
from genecommons.archive import served
from genecommons.archive.keys import format_public_key, generate_key_pair
from genecommons.config import Settings
from genecommons.fingerprint.service import RecipientCopyService
from genecommons.ledger.tables import audit_events

from .conftest import World, build_world

# delivery serves fingerprinted copies through fingerprint's service, as the app does
COPIES = RecipientCopyService()

GRANTED = "granted@example.org"


@pytest.fixture
def world(archive_settings: Settings, factory: Any, tmp_path: Any, datafiles: Any) -> World:
    """The archive's world with a 24 MB FASTQ: far more than loopback's socket buffers hold."""
    return build_world(archive_settings, factory, tmp_path, datafiles, fastq_megabytes=24)


def _downloads(world: World, *, wait_for: int = 1) -> list[dict[str, Any]]:
    """The download events, once `wait_for` of them are in the log (the server records one
    when the transfer has ended, after the client has gone)."""
    deadline = time.monotonic() + 60
    while True:
        with world.factory() as session:
            found = [
                dict(row.details)
                for row in session.execute(
                    select(audit_events).where(audit_events.c.tag == "archive:file:download")
                )
            ]
        if len(found) >= wait_for or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def _key_header() -> str:
    return format_public_key(generate_key_pair().public).splitlines()[1]


def test_a_client_that_stops_reading_leaves_an_event_with_the_bytes_sent(
    world: World, live_server: str
) -> None:
    fastq = world.accessions["files"]["P1.fastq"]
    address = urlparse(live_server)
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client.connect((address.hostname, address.port))
    client.sendall(
        (
            f"GET /ga4gh/drs/v1/objects/{fastq}/download HTTP/1.1\r\n"
            f"Host: {address.netloc}\r\nAuthorization: Bearer {world.tokens[GRANTED]}\r\n"
            f"X-Crypt4GH-Public-Key: {_key_header()}\r\n\r\n"
        ).encode()
    )
    received = b""
    while b"\r\n\r\n" not in received or len(received) < 200_000:
        data = client.recv(4096)
        assert data, "the server closed the connection first"
        received += data
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    length = int(
        next(line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
        .split(b":")[1]
        .strip()
    )
    client.close()  # with unread data: the connection is reset
    (event,) = _downloads(world)
    assert event["completed"] is False
    assert event["size"] == length > 20_000_000
    assert len(body) <= event["bytes"] < length


def test_an_httpx_stream_closed_early_and_a_whole_download(world: World, live_server: str) -> None:
    fastq = world.accessions["files"]["P1.fastq"]
    headers = {
        "Authorization": f"Bearer {world.tokens[GRANTED]}",
        "X-Crypt4GH-Public-Key": _key_header(),
    }
    url = f"{live_server}/ga4gh/drs/v1/objects/{fastq}/download"
    got = 0
    with httpx.Client(timeout=60) as client:
        with client.stream("GET", url, headers=headers) as response:
            assert response.status_code == 200
            length = int(response.headers["content-length"])
            for chunk in response.iter_raw(65536):
                got += len(chunk)
                if got > 2_000_000:
                    break
        (cut,) = _downloads(world)
        whole = client.get(url, headers=headers)
    assert cut["completed"] is False and got <= cut["bytes"] < length
    assert whole.status_code == 200 and len(whole.content) == length
    events = _downloads(world, wait_for=2)
    assert events[1]["completed"] is True and events[1]["bytes"] == length


def test_an_htsget_data_block_cut_short_records_what_went(world: World) -> None:
    bam = world.accessions["files"]["P1.bam"]
    subject = access_service.authenticate(world.factory, world.tokens[GRANTED])
    size = world.files["bam"].stat().st_size
    transfer = htsget_delivery.htsget_data(
        world.factory,
        world.settings,
        subject=subject,
        copies=COPIES,
        object_id=bam,
        start=0,
        end=size << 16,
    )
    first = next(transfer)
    second = next(transfer)
    transfer.close()  # the client went away while the second piece was on its way
    with world.factory() as session:
        (event,) = [
            row.details
            for row in session.execute(
                select(audit_events).where(audit_events.c.tag == "archive:htsget:data")
            )
        ]
    assert event["completed"] is False
    assert event["bytes"] == len(first) + len(second) == 2 * served.SEND_PIECE < size
