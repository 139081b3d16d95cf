"""Uploads through the served protocol's read timeouts: an upload whose client stalls is cut off
and keeps what arrived (no error in the server's log), and a slow but progressing upload goes
through to the archive."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from genecommons.access import service as access_service
from genecommons.app import create_app
from genecommons.catalog import service as catalog_service
from genecommons.config import Settings
from genecommons.policy.models import Subject
from genecommons.serving import ReadTimeouts, TimedHttpToolsProtocol

OPERATOR = Subject.operator("upload-timeout-tests")
BODY_SECONDS = 1.5
CLOSED_WITHIN = 30.0  # a generous bound: many times the body's timeout


class QuickTimeouts(TimedHttpToolsProtocol):
    """The served protocol with a body timeout short enough to test."""

    timeouts = ReadTimeouts(
        header_seconds=5, body_seconds=BODY_SECONDS, body_min_bytes_per_second=200
    )


@pytest.fixture
def node(
    archive_settings: Settings, factory: Any, tmp_path: Path, datafiles: Any
) -> Iterator[dict[str, Any]]:
    """A catalog declaring a BAM not archived yet, a steward's token, and the app served on a
    loopback port with the quick timeouts."""
    files = tmp_path / "files"
    files.mkdir()
    bam = datafiles.bam(files / "P1.bam", reads=10_000)
    folder = datafiles.write(tmp_path / "metadata", datafiles.sheets(files, vcf=None, bam=bam))
    accessions = catalog_service.submit(factory, folder, subject=OPERATOR).accessions
    access_service.add_user(
        factory,
        email="steward@example.org",
        roles=["data_steward"],
        institution=accessions["institutions"]["BGC"],
        actor=OPERATOR,
    )
    token = access_service.create_token(factory, email="steward@example.org", actor=OPERATOR)
    app = create_app(archive_settings)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        http=QuickTimeouts,
        lifespan="off",
        log_config=None,  # uvicorn's records reach the test's log capture
        log_level="info",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the test server did not start"
        time.sleep(0.02)
    yield {
        "port": port,
        "bam": bam,
        "file": accessions["files"]["P1.bam"],
        "headers": {"Authorization": f"Bearer {token.token}"},
    }
    server.should_exit = True
    thread.join(timeout=10)
    app.state.services.engine.dispose()


def _patch_head(node: dict[str, Any], upload: int, offset: int, length: int) -> bytes:
    return (
        f"PATCH /api/v1/uploads/{upload} HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: {node['headers']['Authorization']}\r\n"
        f"Content-Type: application/octet-stream\r\nUpload-Offset: {offset}\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def _until_closed(connection: socket.socket) -> bytes:
    received = b""
    try:
        while chunk := connection.recv(65536):
            received += chunk
    except TimeoutError:
        pytest.fail(f"the server kept the stalled upload open; it sent {received!r}")
    return received


def test_a_stalled_upload_is_cut_off_keeps_what_arrived_and_resumes_slowly(
    node: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    base = f"http://127.0.0.1:{node['port']}/api/v1"
    data = node["bam"].read_bytes()
    opened = httpx.post(
        f"{base}/uploads",
        json={"file": node["file"], "size": len(data)},
        headers=node["headers"],
        timeout=30,
    )
    assert opened.status_code == 201, opened.text
    upload = opened.json()["id"]
    sent = 100_000
    with socket.create_connection(("127.0.0.1", node["port"]), timeout=CLOSED_WITHIN) as stalled:
        stalled.sendall(_patch_head(node, upload, 0, len(data)) + data[:sent])
        with caplog.at_level(logging.INFO):
            answer = _until_closed(stalled)
    assert answer.startswith(b"HTTP/1.1 408 ")
    state = httpx.get(f"{base}/uploads/{upload}", headers=node["headers"], timeout=30).json()
    received = int(state["offset"])
    assert 0 < received <= sent
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text

    # the rest, slowly: a chunk every quarter second, several body timeouts in all
    rest = data[received:]
    step = max(1, len(rest) // int(4 * BODY_SECONDS / 0.25))
    with socket.create_connection(("127.0.0.1", node["port"]), timeout=CLOSED_WITHIN) as slow:
        slow.sendall(_patch_head(node, upload, received, len(rest)))
        for start in range(0, len(rest), step):
            slow.sendall(rest[start : start + step])
            time.sleep(0.25)
        response = b""
        while b"\r\n\r\n" not in response or not response.rstrip().endswith(b"}"):
            chunk = slow.recv(65536)
            assert chunk, response
            response += chunk
    assert response.startswith(b"HTTP/1.1 200 "), response[:300]
    assert json.loads(response.partition(b"\r\n\r\n")[2])["offset"] == len(data)
    archived = httpx.post(f"{base}/uploads/{upload}/complete", headers=node["headers"], timeout=60)
    assert archived.status_code == 201, archived.text
    assert archived.json()["size"] == len(data)
