"""Benchmark: the archive beside the `crypt4gh` CLI, in one run.

1. Ingest (MD5 + SHA-256, format check, Crypt4GH encryption, store) of a 2 GB BAM, against
   `crypt4gh encrypt` alone on the same file: the throughput ratio (goal >= 0.70).
2. Header re-encryption for a download, for a 10 MB and a 2 GB file (goal < 20 ms, within 2x).
3. A DRS download streamed over loopback HTTP by uvicorn to an httpx client (goal >= 300 MB/s).
4. An htsget ticket for a region of a 5 GB BAM, in the service and over HTTP (goal < 100 ms).

The data files are generated once into --workdir (default .bench-data/archive) and kept.

    .venv/bin/python -m benchmarks.archive_delivery [--bam-gb 2] [--big-bam-gb 5]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from datetime import date, timedelta
from pathlib import Path

import httpx
import numpy as np
import pysam

from genecommons.access import committees, workflow
from genecommons.access import service as access_service
from genecommons.access.duo_models import ResearchPurpose
from genecommons.archive import htsget as htsget_delivery
from genecommons.archive import ingestion
from genecommons.archive.crypt import reencrypt_header
from genecommons.archive.holdings import archived_here
from genecommons.archive.htsget_requests import Region
from genecommons.archive.ingest import Declared, ingest
from genecommons.archive.keys import KeyPair, format_public_key, generate_key_pair
from genecommons.archive.store import LocalObjectStore
from genecommons.catalog import service as catalog_service
from genecommons.config import Settings
from genecommons.db import Base, make_session_factory, node_engine
from genecommons.fingerprint.service import RecipientCopyService
from genecommons.node_init import create_node_secrets
from genecommons.policy.models import Subject

OPERATOR = Subject.operator("bench")
READ_LENGTH = 1000


def write_bam(path: Path, *, gigabytes: float, seed: int = 1) -> Path:
    """A sorted BAM of 1 kb reads on chr1..chr4 of about `gigabytes` (htslib's default
    compression, as samtools writes)."""
    if path.exists():
        return path
    rng = np.random.default_rng(seed)
    # a 1 kb read of random bases and qualities compresses to about 0.54 kB
    per_read = 540
    reads = int(gigabytes * 1e9 / per_read)
    contigs = [(f"chr{i}", 250_000_000) for i in range(1, 5)]
    header = {
        "HD": {"VN": "1.6", "SO": "coordinate"},
        "SQ": [{"SN": n, "LN": n_} for n, n_ in contigs],
    }
    per_contig = reads // len(contigs)
    bases = np.frombuffer(b"ACGT", dtype=np.uint8)
    tmp = path.with_suffix(".tmp.bam")
    with pysam.AlignmentFile(str(tmp), "wb", header=header) as bam:
        template = pysam.AlignedSegment(bam.header)
        template.cigarstring = f"{READ_LENGTH}M"
        template.mapping_quality = 60
        for reference in range(len(contigs)):
            starts = np.sort(rng.integers(0, contigs[reference][1] - READ_LENGTH, per_contig))
            pool = bases[rng.integers(0, 4, 64 * READ_LENGTH)].tobytes().decode()
            quals = rng.integers(2, 41, 64 * READ_LENGTH).astype(np.uint8)
            for i, start in enumerate(starts):
                offset = (i * 7919) % (63 * READ_LENGTH)
                read = pysam.AlignedSegment(bam.header)
                read.query_name = f"r{reference}_{i}"
                read.reference_id = reference
                read.reference_start = int(start)
                read.mapping_quality = 60
                read.cigarstring = f"{READ_LENGTH}M"
                read.query_sequence = pool[offset : offset + READ_LENGTH]
                read.query_qualities = quals[offset : offset + READ_LENGTH]
                bam.write(read)
    tmp.rename(path)
    return path


def digest(path: Path) -> tuple[str, str]:
    """MD5 and SHA-256 of a file."""
    md5, sha = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 22):
            md5.update(chunk)
            sha.update(chunk)
    return md5.hexdigest(), sha.hexdigest()


def rate(size: int, seconds: float) -> str:
    """MB/s."""
    return f"{size / seconds / 1e6:8.1f} MB/s"


def _timed_ingest(bam: Path, work: Path, keys: KeyPair, declared: Declared) -> float:
    store_root = work / "store"
    shutil.rmtree(store_root, ignore_errors=True)
    start = time.perf_counter()
    with bam.open("rb") as source:
        ingest(
            source,
            declared=declared,
            keys=keys,
            store=LocalObjectStore(store_root),
            object_key="bench/object.c4gh",
        )
    seconds = time.perf_counter() - start
    shutil.rmtree(store_root)
    return seconds


def bench_ingest(bam: Path, work: Path) -> None:
    """Ingest vs `crypt4gh encrypt` on the same file, and where the ingest's time goes."""
    keys = generate_key_pair()
    public = work / "archive.pub"
    public.write_text(format_public_key(keys.public))
    size = bam.stat().st_size
    md5, sha = digest(bam)
    crypt4gh = Path(sys.executable).with_name("crypt4gh")
    out = work / "peer.c4gh"
    checked = Declared(name=bam.name, format="bam", md5=md5, sha256=sha, size=size)
    unchecked = Declared(name=bam.name, format="other", md5=md5, sha256=sha, size=size)
    timings: dict[str, list[float]] = {"peer": [], "ours": [], "unchecked": [], "checker": []}
    for _ in range(2):
        start = time.perf_counter()
        with bam.open("rb") as source, out.open("wb") as sink:
            subprocess.run(
                [str(crypt4gh), "encrypt", "--recipient_pk", str(public)],
                stdin=source,
                stdout=sink,
                check=True,
            )
        timings["peer"].append(time.perf_counter() - start)
        out.unlink()
        timings["ours"].append(_timed_ingest(bam, work, keys, checked))
        timings["unchecked"].append(_timed_ingest(bam, work, keys, unchecked))
        start = time.perf_counter()
        with bam.open("rb") as source:
            subprocess.run(
                [sys.executable, "-m", "genecommons.archive.formats", "--format", "bam"],
                stdin=source,
                stdout=subprocess.DEVNULL,
                check=True,
            )
        timings["checker"].append(time.perf_counter() - start)
    best = {name: min(values) for name, values in timings.items()}
    peer = best["peer"]
    print(f"ingest of a {size / 1e9:.2f} GB BAM (best of 2)")
    rows = (
        ("crypt4gh encrypt (CLI)", "peer"),
        ("genecommons ingest (check+hash+encrypt)", "ours"),
        ("  of which without the format check", "unchecked"),
        ("  the BAM check alone (pysam, 1 core)", "checker"),
    )
    for label, name in rows:
        seconds = best[name]
        print(
            f"  {label:42s} {seconds:7.2f} s  {rate(size, seconds)}  "
            f"ratio to crypt4gh {peer / seconds:.2f}"
        )
    print("  goal: ingest >= 0.70 of crypt4gh's throughput")


def bench_reencrypt() -> None:
    """Header re-encryption for a download, for a 10 MB and a 2 GB file."""
    from genecommons.archive.crypt import BodyEncryptor

    keys = generate_key_pair()
    recipient = generate_key_pair()
    print("header re-encryption (p50 / p99 over 500)")
    results = {}
    for label, size in (("10 MB", 10 * 10**6), ("2 GB", 2 * 10**9)):
        # the header does not depend on the body's size; the body is encrypted only for 10 MB
        encryptor = BodyEncryptor()
        header = encryptor.header_for([keys.public], sender=keys)
        if size <= 10**7:
            encryptor.update(os.urandom(size))
            encryptor.finish()
        samples = []
        for _ in range(500):
            start = time.perf_counter()
            reencrypt_header(header, keys=keys, recipient_public=recipient.public)
            samples.append(time.perf_counter() - start)
        cuts = statistics.quantiles(samples, n=100)
        results[label] = cuts[49]
        print(f"  {label:>6}: p50 {cuts[49] * 1e3:6.3f} ms  p99 {cuts[98] * 1e3:6.3f} ms")
    print(f"  ratio 2 GB / 10 MB: {results['2 GB'] / results['10 MB']:.2f} (goal within 2x)")


class Node:
    """A node with one study whose files are archived, a granted researcher and a server."""

    def __init__(self, work: Path, files: dict[str, Path]) -> None:
        data = work / "node"
        shutil.rmtree(data, ignore_errors=True)
        data.mkdir()
        self.settings = Settings(data_dir=data, environment="test")
        engine = node_engine(self.settings)
        Base.metadata.create_all(engine)
        self.factory = make_session_factory(engine)
        create_node_secrets(self.settings)  # as `genecommons init` makes them
        bundle = work / "bundle"
        shutil.rmtree(bundle, ignore_errors=True)
        bundle.mkdir()
        rows = []
        for name, path in files.items():
            md5, sha = digest(path)
            rows.append(f"{name}\tP1-R1\t\tbam\t{md5}\t{sha}\t{path.stat().st_size}")
        _write_sheets(bundle, rows)
        result = catalog_service.submit(self.factory, bundle, subject=OPERATOR)
        self.accessions = result.accessions["files"]
        for name, path in files.items():
            start = time.perf_counter()
            ingestion.archive_path(
                self.factory,
                self.settings,
                subject=OPERATOR,
                accession=self.accessions[name],
                path=path,
            )
            print(
                f"  archived {name} ({path.stat().st_size / 1e9:.2f} GB) in "
                f"{time.perf_counter() - start:.1f} s"
            )
        institution = result.accessions["institutions"]["BGC"]
        access_service.add_user(
            self.factory,
            email="r@example.org",
            roles=["researcher"],
            institution=institution,
            actor=OPERATOR,
        )
        access_service.add_user(
            self.factory,
            email="d@example.org",
            roles=["dac_member"],
            institution=institution,
            actor=OPERATOR,
        )
        self.token = access_service.create_token(
            self.factory, email="r@example.org", actor=OPERATOR
        ).token
        committees.create_dac(self.factory, alias="BGC DAC", name="BGC", actor=OPERATOR)
        committees.add_member(
            self.factory, dac="BGC DAC", email="d@example.org", chair=True, actor=OPERATOR
        )
        researcher = Subject.user(
            "r@example.org", roles=frozenset({"researcher"}), institution=institution
        )
        workflow.request_access(
            self.factory,
            actor=researcher,
            purpose=ResearchPurpose(
                title="t",
                summary="s",
                institution="BGC",
                country="CN",
                biomedical=True,
                genetic_research=True,
                ethics_approval=True,
            ),
            datasets=[result.accessions["datasets"]["DS1"]],
            agreement_version="DAA v1",
            archived_here=archived_here,
        )
        member = Subject.user(
            "d@example.org", roles=frozenset({"dac_member"}), institution=institution
        )
        item = workflow.review_queue(self.factory, actor=member)[0]["item"]
        workflow.decide_request(
            self.factory,
            item_id=item,
            approve=True,
            reason="ok",
            actor=member,
            expires=date.today() + timedelta(days=30),
        )
        self.researcher = access_service.authenticate(self.factory, self.token)

    def serve(self) -> str:
        """Start uvicorn on a loopback port; its base URL."""
        import uvicorn

        from genecommons.app import create_app

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(self.settings), host="127.0.0.1", port=port, log_level="warning"
            )
        )
        threading.Thread(target=server.run, daemon=True).start()
        while not server.started:
            time.sleep(0.05)
        return f"http://127.0.0.1:{port}"


def _write_sheets(folder: Path, file_rows: list[str]) -> None:
    """The smallest submission holding one run and the given BAM files, in dataset DS1."""
    sheets = {
        "institutions": [
            "alias\tname_en\tcountry\tprovince\tkind",
            "BGC\tBeijing Genome Center\tCN\t110000\tresearch_institute",
        ],
        "studies": [
            "alias\ttitle\tinstitution\tstudy_type\tparticipants_planned",
            "ST1\tBench\tBGC\tcohort\t1",
        ],
        "consents": ["alias\tstudy\tversion\tpermission\tabroad_allowed", "C1\tST1\t1\tHMB\tno"],
        "ethics_approvals": [
            "alias\tstudy\tcommittee\tnumber\tapproved_on",
            "E1\tST1\tIRB\tIRB-1\t2024-01-10",
        ],
        "hgr_records": [
            "alias\tstudy\tcategory\trecord_type\tnumber\tissued_on",
            "H1\tST1\tcollection\tapproval\t2024CJ0001\t2024-02-01",
        ],
        "individuals": [
            "alias\tstudy\tsex\tbirth_year\tethnic_group\tprovince\tconsent",
            "P1\tST1\tmale\t1980\t01\t440000\tC1",
        ],
        "samples": [
            "alias\tindividual\ttissue\tcollection_date\tcollection_institution\t"
            "ethics_approval\thgr_records",
            "P1-S1\tP1\tblood\t2024-03-01\tBGC\tE1\tH1",
        ],
        "experiments": [
            "alias\tsample\tlibrary_strategy\tplatform\tinstrument",
            "P1-X1\tP1-S1\tWGS\tDNBSEQ\tDNBSEQ-G400",
        ],
        "runs": ["alias\texperiment", "P1-R1\tP1-X1"],
        "files": ["alias\trun\tanalysis\tformat\tmd5\tsha256\tsize", *file_rows],
        "datasets": [
            "alias\tstudy\ttitle\taccess_tier\tduo_codes\tdac\truns",
            "DS1\tST1\tBench\tcontrolled\tHMB\tBGC DAC\tP1-R1",
        ],
    }
    for name, lines in sheets.items():
        (folder / f"{name}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def bench_download(node: Node, base: str, name: str, size: int) -> None:
    """Stream a DRS download over loopback."""
    recipient = generate_key_pair()
    headers = {
        "Authorization": f"Bearer {node.token}",
        "X-Crypt4GH-Public-Key": format_public_key(recipient.public).splitlines()[1],
    }
    url = f"{base}/ga4gh/drs/v1/objects/{node.accessions[name]}/download"
    best = float("inf")
    with httpx.Client(timeout=600) as client:
        for _ in range(3):
            received = 0
            start = time.perf_counter()
            with client.stream("GET", url, headers=headers) as response:
                response.raise_for_status()
                for chunk in response.iter_raw(1 << 20):
                    received += len(chunk)
            best = min(best, time.perf_counter() - start)
    print(
        f"DRS download of {received / 1e9:.2f} GB over loopback (best of 3): "
        f"{best:.2f} s  {rate(received, best)}  (goal >= 300 MB/s)"
    )
    del size


def bench_ticket(node: Node, base: str, name: str) -> None:
    """htsget tickets for random 1 Mb regions of the big BAM."""
    accession = node.accessions[name]
    rng = random.Random(3)
    regions = [(f"chr{rng.randint(1, 4)}", rng.randrange(0, 240_000_000)) for _ in range(300)]

    def ticket(reference: str, position: int) -> float:
        start = time.perf_counter()
        htsget_delivery.htsget_ticket(
            node.factory,
            node.settings,
            subject=node.researcher,
            copies=RecipientCopyService(),
            endpoint="reads",
            object_id=accession,
            requested_format=None,
            regions=[Region(reference, position, position + 1_000_000)],
            header_only=False,
            base_url=base,
            headers={},
        )
        return time.perf_counter() - start

    cold = ticket("chr1", 1_000_000)
    samples = [ticket(reference, position) for reference, position in regions]
    cuts = statistics.quantiles(samples, n=100)
    print(f"htsget ticket, region of 1 Mb of a {node_size(node, name)} BAM")
    print(f"  first (reads and parses the index): {cold * 1e3:7.1f} ms")
    print(f"  service: p50 {cuts[49] * 1e3:6.2f} ms  p99 {cuts[98] * 1e3:6.2f} ms (goal < 100 ms)")
    http = []
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {node.token}"}) as client:
        for reference, position in regions[:200]:
            start = time.perf_counter()
            response = client.get(
                f"/htsget/reads/{accession}",
                params={"referenceName": reference, "start": position, "end": position + 1_000_000},
            )
            response.raise_for_status()
            http.append(time.perf_counter() - start)
    cuts = statistics.quantiles(http, n=100)
    print(f"  over HTTP: p50 {cuts[49] * 1e3:6.2f} ms  p99 {cuts[98] * 1e3:6.2f} ms")


SIZES: dict[str, float] = {}


def node_size(node: Node, name: str) -> str:
    """The size of an archived file, for the report."""
    return f"{SIZES[name]:.2f} GB"


def main() -> None:
    """Generate the files once, then run the four measurements."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workdir", type=Path, default=Path(".bench-data/archive"))
    parser.add_argument("--bam-gb", type=float, default=2.0)
    parser.add_argument("--big-bam-gb", type=float, default=5.0)
    args = parser.parse_args()
    work = args.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    print("generating test files (once) …", flush=True)
    bam = write_bam(work / f"reads-{args.bam_gb:g}gb.bam", gigabytes=args.bam_gb)
    big = write_bam(work / f"reads-{args.big_bam_gb:g}gb.bam", gigabytes=args.big_bam_gb)
    SIZES[bam.name] = bam.stat().st_size / 1e9
    SIZES[big.name] = big.stat().st_size / 1e9
    bench_ingest(bam, work)
    bench_reencrypt()
    print("archiving the files on a node …", flush=True)
    node = Node(work, {bam.name: bam, big.name: big})
    base = node.serve()
    bench_download(node, base, bam.name, bam.stat().st_size)
    bench_ticket(node, base, big.name)
    shutil.rmtree(work / "node", ignore_errors=True)


if __name__ == "__main__":
    main()
