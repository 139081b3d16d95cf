"""A variant store built on a full disk: the error names the disk, the free space and the space
the store needs, blames no VCF, and leaves nothing behind. The disk is a real small tmpfs in a
mount namespace of the test's own (no root needed where user namespaces are allowed)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

CHILD = """
import json, os, sys
from pathlib import Path
from genecommons.errors import StorageFullError
from genecommons.secrets import LocalNodeKeys
from genecommons.variants.store import build_store
from genecommons.variants.manifest import new_binding

vcf, disk = Path(sys.argv[1]), Path(sys.argv[2])
binding = new_binding(dataset="GCD00000001", source_sha256="0" * 64, source_name=vcf.name)
try:
    build_store(vcf, disk / "variants" / "GCD00000001", samples={},
                keys=LocalNodeKeys(os.urandom(32)), binding=binding)
    print(json.dumps({"built": True}))
except StorageFullError as error:
    print(json.dumps({"code": error.code, "exit": error.exit_code, "http": error.http_status,
                      "message": error.message, "zh": error.message_zh,
                      "details": error.details,
                      "left": sorted(os.listdir(disk / "variants"))}))
"""


def _namespaces_allowed() -> str | None:
    unshare = shutil.which("unshare")
    if unshare is None:
        return "unshare (util-linux) is not installed"
    probe = subprocess.run(
        [unshare, "--user", "--map-root-user", "--mount", "true"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        return f"this system refuses user and mount namespaces: {probe.stderr.strip()}"
    return None


def test_a_store_that_does_not_fit_names_the_disk_and_the_space_needed(
    tmp_path: Path, datafiles: SimpleNamespace
) -> None:
    refused = _namespaces_allowed()
    if refused:
        pytest.skip(refused)
    samples = [f"P{i}" for i in range(200)]
    vcf = datafiles.vcf(tmp_path / "big.vcf.gz", samples=samples, records=3000)
    disk = tmp_path / "disk"
    disk.mkdir()
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    done = subprocess.run(
        [
            "unshare",
            "--user",
            "--map-root-user",
            "--mount",
            "sh",
            "-c",
            'mount -t tmpfs -o size=192k tmpfs "$2" && exec "$0" "$1" "$3" "$2"',
            sys.executable,
            str(script),
            str(disk),
            str(vcf),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found.get("code") == "storage_full", found
    assert (found["exit"], found["http"]) == (8, 507)
    message = found["message"]
    assert "is full" in message and str(disk / "variants") in message
    assert "big.vcf.gz" in message and "needs about" in message
    assert "cannot be read" not in message and "cannot be converted" not in message
    details = found["details"]
    # the space the disk has for the store (what was written of it is gone) and what it needs
    assert 0 < details["free_bytes"] <= 192 * 1024 < details["needed_bytes"]
    assert details["needed_bytes"] >= vcf.stat().st_size
    assert "已满" in found["zh"]
    assert found["left"] == []  # nothing half built stays
