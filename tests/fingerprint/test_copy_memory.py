"""A recipient's copy is built in memory bounded by a block of sites, not by the file: building
the copy of a VCF ten times as long (each build in a fresh process, its peak RSS read from the
kernel) takes hardly more memory, while the text grows by tens of MB. Blocks are made small
(64 Ki calls) so that both files fill them; what still grows with the file is the plan (a few
bytes per marked position) and the index."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

CHILD = r"""
import resource, sys
from pathlib import Path
import numpy as np
from genecommons.archive import keys_and_store
from genecommons.fingerprint import copies
from genecommons.archive.bgzf import BgzfWriter
from genecommons.archive.crypt import BodyEncryptor
from genecommons.fingerprint import codes
from genecommons.fingerprint import service as fingerprint_service
from genecommons.config import Settings
from genecommons.fingerprint.secret import fingerprint_secret
from genecommons.archive.recipient_copies import Source

step, sites, work = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
samples = 100
codes.SEGMENT_CELLS = 1 << 16
settings = Settings(data_dir=work, environment="test")
keys = keys_and_store.archive_keys(settings, create=True)
fingerprint_secret(settings, create=True)
encryptor = BodyEncryptor()
header = encryptor.header_for([keys.public], sender=keys)
cell = np.array([b"0|0\t", b"0|1\t", b"1|0\t", b"1|1\t"], dtype="S4")
rng = np.random.default_rng(7)
text = 0

def chunks():
    global text
    sink = __import__("io").BytesIO()
    writer = BgzfWriter(sink)
    names = "\t".join(f"S{i}" for i in range(samples))
    writer.write(
        f"##fileformat=VCFv4.3\n##contig=<ID=chr22,length=50818468>\n#CHROM\tPOS\tID\tREF\t"
        f"ALT\tQUAL\tFILTER\tINFO\tFORMAT\t{names}\n".encode()
    )
    for start in range(0, sites, 1000):
        rows = min(1000, sites - start)
        p = rng.uniform(0.1, 0.5, size=(rows, 1, 1))
        codes = ((rng.random((rows, samples, 2)) < p) * [2, 1]).sum(axis=2)
        cells = np.ascontiguousarray(cell[codes]).view(np.uint8).reshape(rows, 4 * samples)
        cells[:, -1] = 10
        for j in range(rows):
            record = f"chr22\t{100 + 50 * (start + j)}\t.\tA\tG\t.\tPASS\t.\tGT\t".encode()
            writer.write(record + cells[j].tobytes())
            text += len(record) + 4 * samples
        yield bytes(encryptor.update(sink.getvalue()))
        sink.seek(0)
        sink.truncate()
    writer.close()
    yield bytes(encryptor.update(sink.getvalue())) + bytes(encryptor.finish())

if step == "archive":  # in a process of its own, so that the build's peak is the build's
    size = keys_and_store.object_store(settings).put("GCF1/o.c4gh", chunks())
    (work / "header").write_bytes(header)
    print(size, text)
    sys.exit(0)
size = keys_and_store.object_store(settings).size("GCF1/o.c4gh")
source = Source(
    file_id=1, accession="GCF1", name="calls.vcf.gz", object_key="GCF1/o.c4gh",
    header=(work / "header").read_bytes(), body_size=size,
)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
values = copies.build_copy(
    settings, source=source, dataset="GCD1", recipient="a@example.org",
    copy_id="GCF1-fp-0000000000000001",
)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
assert values["marked_positions"] > sites // 10, values["marked_positions"]
print(after - before)
"""


def _child(step: str, sites: int, work: Path) -> list[int]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, step, str(sites), str(work)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [int(v) for v in done.stdout.split()]


def _build(sites: int, work: Path) -> tuple[float, int]:
    """The peak RSS growth (MB) while building the copy of a VCF of `sites` sites x 100
    samples, in a fresh process (the VCF is made and archived by another), and the VCF's text
    size."""
    _, text = _child("archive", sites, work)
    (growth_kb,) = _child("build", sites, work)
    return growth_kb / 1024, text


@pytest.mark.slow
def test_a_copy_ten_times_as_long_takes_hardly_more_memory(tmp_path: Path) -> None:
    small, small_text = _build(4_000, tmp_path / "small")
    large, large_text = _build(40_000, tmp_path / "large")
    assert large_text - small_text > 14_000_000
    # the text grew by more than 14 MB; reading the whole file as before grew by several
    # times the text; the streamed build grows by the plan and the index only
    assert large - small < 8, (small, large)
