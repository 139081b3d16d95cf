"""The attack tool's oracles: a Beacon v2 server over real HTTP (a Beacon-shaped FastAPI app on
loopback that records what it is asked; the platform's own Beacon is attacked end to end in
test_attack_http.py), a guard over a built store, and the victims' dosages read from VCF."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pysam
import pytest
import uvicorn
from fastapi import FastAPI

from genecommons.errors import StorageError
from genecommons.privacy.oracles import HttpOracle, StoreOracle, read_dosages
from genecommons.variants.answers import exact_answer
from genecommons.variants.normalize import Variant
from genecommons.variants.store import SampleInfo

PEOPLE = ["P1", "P2", "P3"]
# pos, ref, alt, genotypes of P1..P3
RECORDS = [
    (101, "A", "G", ["0|1", "0|0", "1|1"]),
    (202, "C", "T", ["0|0", "0|0", "0|0"]),
    (303, "G", "A,C", ["0|2", "1|0", "./."]),
]


def write_vcf(path: Path) -> Path:
    lines = [
        "##fileformat=VCFv4.2",
        "##contig=<ID=chr22,length=50818468>",
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t" + "\t".join(PEOPLE),
    ]
    for pos, ref, alt, calls in RECORDS:
        lines.append(f"chr22\t{pos}\t.\t{ref}\t{alt}\t.\tPASS\t.\tGT\t" + "\t".join(calls))
    plain = path.with_suffix("")
    plain.write_text("\n".join(lines) + "\n")
    pysam.tabix_compress(str(plain), str(path), force=True)
    pysam.tabix_index(str(path), preset="vcf", force=True)
    return path


def test_dosages_of_biallelic_sites_in_the_order_asked(tmp_path: Path) -> None:
    vcf = write_vcf(tmp_path / "c.vcf.gz")
    found = read_dosages(vcf)
    assert found.people == tuple(PEOPLE)
    assert found.variants == (Variant("chr22", 101, "A", "G"), Variant("chr22", 202, "C", "T"))
    assert found.dosages.tolist() == [[1, 0, 2], [0, 0, 0]]
    asked = [Variant("chr22", 202, "C", "T"), Variant("chr22", 9, "A", "C")]
    assert read_dosages(vcf, sites=asked).dosages.tolist() == [[0, 0, 0], [0, 0, 0]]


def test_store_oracle_answers_through_the_guard_and_caches(
    tmp_path: Path, sealed_store: Callable[..., Any]
) -> None:
    vcf = write_vcf(tmp_path / "c.vcf.gz")
    built = sealed_store(vcf, tmp_path / "store", {p: SampleInfo() for p in PEOPLE})
    seen: list[str] = []

    def guard(**kwargs: Any) -> Any:
        seen.append(kwargs["subject"].id)
        return exact_answer(**kwargs)

    oracle = StoreOracle(built.store, guard, dataset="GCD1")
    asked = [
        Variant("chr22", 101, "A", "G"),
        Variant("chr22", 202, "C", "T"),
        Variant("chr22", 303, "G", "C"),
    ]
    assert oracle.exists(asked, account="a").tolist() == [1, 0, 1]
    assert oracle.exists(asked, account="a").tolist() == [1, 0, 1]
    assert seen == ["user:a"] * 3  # asked once per variant and account
    assert oracle.counts(asked)[0].tolist() == [3, 0, 1]


class Beacon:
    """A Beacon-shaped app: GET /g_variants answering a sequence query from a set."""

    def __init__(self, present: set[tuple[str, int, str, str]]) -> None:
        self.present = present
        self.requests: list[dict[str, str]] = []
        self.app = FastAPI()

        @self.app.get("/beacon/g_variants")
        def g_variants(
            referenceName: str,  # noqa: N803 - Beacon v2 names
            start: int,
            referenceBases: str,  # noqa: N803
            alternateBases: str,  # noqa: N803
            assemblyId: str,  # noqa: N803
        ) -> dict[str, Any]:
            self.requests.append(
                {"referenceName": referenceName, "start": str(start), "assemblyId": assemblyId}
            )
            if referenceBases == "N":
                return {"meta": {"apiVersion": "v2.0.0"}, "error": {"errorCode": 400}}
            exists = (referenceName, start, referenceBases, alternateBases) in self.present
            return {"meta": {"apiVersion": "v2.0.0"}, "responseSummary": {"exists": exists}}


@pytest.fixture
def beacon() -> Iterator[tuple[Beacon, str]]:
    served = Beacon({("22", 100, "A", "G")})
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(served.app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    yield served, f"http://127.0.0.1:{port}/beacon"
    server.should_exit = True
    thread.join(timeout=10)


def test_http_oracle_speaks_beacon_v2_and_caches(beacon: tuple[Beacon, str]) -> None:
    served, url = beacon
    with HttpOracle(url) as oracle:
        asked = [Variant("chr22", 101, "A", "G"), Variant("chr22", 101, "A", "T")]
        assert oracle.exists(asked, account="x").tolist() == [1, 0]
        assert oracle.exists(asked[:1], account="x").tolist() == [1]
        # one HTTP identity: another victim's account asks nothing again
        assert oracle.exists([*asked, asked[0]], account="y").tolist() == [1, 0, 1]
        # start is 0-based (POS 101 is start 100); asked once per variant
        assert served.requests == [
            {"referenceName": "22", "start": "100", "assemblyId": "GRCh38"},
            {"referenceName": "22", "start": "100", "assemblyId": "GRCh38"},
        ]
        assert oracle.asked == 2


def test_http_oracle_asks_many_variants_at_once(beacon: tuple[Beacon, str]) -> None:
    served, url = beacon
    asked = [Variant("chr22", 101, "A", b) for b in "GTC"] * 20
    with HttpOracle(url, workers=4) as oracle:
        assert oracle.exists(asked, account="x").tolist() == [1, 0, 0] * 20
    assert len(served.requests) == 3


def test_http_oracle_reports_a_beacon_error_response(beacon: tuple[Beacon, str]) -> None:
    _, url = beacon
    with pytest.raises(StorageError) as raised, HttpOracle(url) as oracle:
        oracle.exists([Variant("chr22", 101, "N", "G")], account="x")
    assert raised.value.details == {"variant": "chr22-101-N-G"}


def test_http_oracle_reports_a_beacon_that_does_not_answer(beacon: tuple[Beacon, str]) -> None:
    _, url = beacon
    with pytest.raises(StorageError) as raised, HttpOracle(url + "/nowhere") as oracle:
        oracle.exists([Variant("chr22", 1, "A", "G")], account="x")
    assert raised.value.details == {"variant": "chr22-1-A-G"}
    assert raised.value.message_zh
