"""Public reference counts: built from sites VCFs (INFO AC/AN) and from genotypes, their keys
those of the variant store, counts equal to a count of the calls read with pysam; bad input
refused in two languages, leaving any earlier reference in place; lookups from many threads."""

from __future__ import annotations

import csv
import gzip
import random
import sqlite3
import threading
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pysam
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from genecommons.config import Settings
from genecommons.errors import ConfigurationError, InvalidInputError
from genecommons.variants.normalize import normalize, parse_key
from genecommons.variants.reference import (
    PublicCounts,
    ReferenceCounts,
    ReferenceSummary,
    build_reference,
    read_sample_names,
)
from genecommons.variants.service import open_reference

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "1000g"
KG_VCF = SHARED / "chr1_11697036-11836540.vcf.gz"
KG_PANEL = SHARED / "integrated_call_samples_v3.20130502.ALL.panel"
INFO_LINES = (
    '##INFO=<ID=AC,Number=A,Type=Integer,Description="Allele count">',
    '##INFO=<ID=AN,Number=1,Type=Integer,Description="Allele number">',
)


def write_vcf(
    path: Path,
    records: Sequence[str],
    *,
    samples: Sequence[str] = (),
    info: bool = True,
    contigs: Sequence[str] = ("chr1", "chr2"),
) -> Path:
    """A plain-text VCF (bgzipped when `path` ends in .gz) of tab-separated `records`."""
    header = [
        "##fileformat=VCFv4.3",
        *(f"##contig=<ID={c}>" for c in contigs),
        *(INFO_LINES if info else ()),
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        "\t".join(
            ["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO"]
            + (["FORMAT", *samples] if samples else [])
        ),
    ]
    text = "\n".join([*header, *records]) + "\n"
    if path.name.endswith(".gz"):
        plain = path.with_name(path.name.removesuffix(".gz"))
        plain.write_text(text, encoding="utf-8")
        pysam.tabix_compress(str(plain), str(path), force=True)
        plain.unlink()
    else:
        path.write_text(text, encoding="utf-8")
    return path


def rows(path: Path) -> dict[str, tuple[int, int]]:
    with sqlite3.connect(path) as connection:
        found = connection.execute("SELECT key, ac, an FROM reference").fetchall()
    return {key: (ac, an) for key, ac, an in found}


def pysam_counts(vcf: Path, samples: Sequence[str] | None = None) -> dict[str, tuple[int, int]]:
    """The ground truth: AC and AN of every normalised ALT, counted from the GT calls that pysam
    reads (missing alleles not in AN), duplicates summed as the reference documents."""
    found: dict[str, tuple[int, int]] = {}
    with pysam.VariantFile(str(vcf)) as handle:
        chosen = list(handle.header.samples) if samples is None else list(samples)
        for record in handle:
            calls = [a for s in chosen for a in (record.samples[s]["GT"] or ()) if a is not None]
            for index, variant in normalize(
                record.chrom, record.pos, record.ref or "", list(record.alts or ())
            ):
                ac, an = calls.count(index), len(calls)
                if variant.key in found:
                    known_ac, known_an = found[variant.key]
                    an = max(an, known_an)
                    ac = min(ac + known_ac, an)
                found[variant.key] = (ac, an)
    return found


def random_calls(rng: random.Random, samples: int, alleles: int) -> list[str]:
    out = []
    for _ in range(samples):
        pick = [str(rng.randrange(alleles)) if rng.random() > 0.05 else "." for _ in range(2)]
        out.append(rng.choice("/|").join(pick))
    return out


# -- building -------------------------------------------------------------------------------


def test_genotype_counts_equal_the_calls_read_by_pysam(tmp_path: Path) -> None:
    rng = random.Random(5)
    samples = [f"S{i}" for i in range(25)]
    records = []
    for pos in range(100, 3000, 7):
        ref = rng.choice(["A", "C", "GT", "TAC"])
        alts = rng.sample([a for a in ("A", "C", "G", "T", "GTT", "<DEL>", "*") if a != ref], 2)
        calls = random_calls(rng, len(samples), 3)
        records.append(f"chr1\t{pos}\t.\t{ref}\t{','.join(alts)}\t.\t.\t.\tGT\t" + "\t".join(calls))
    vcf = write_vcf(tmp_path / "calls.vcf.gz", records, samples=samples)
    summary = build_reference(vcf, tmp_path / "ref.sqlite")
    expected = pysam_counts(vcf)
    assert rows(tmp_path / "ref.sqlite") == expected
    assert summary.source.sites == len(expected)
    assert summary.source.counted_from == "genotypes" and summary.source.samples == 25
    assert summary.source.alleles == max(an for _, an in expected.values())
    chosen = samples[::3]
    build_reference(vcf, tmp_path / "some.sqlite", samples=chosen)
    assert rows(tmp_path / "some.sqlite") == pysam_counts(vcf, chosen)


def test_multiallelic_records_split_and_trim_as_the_store_does(
    tmp_path: Path, sealed_store: Callable[..., Any]
) -> None:
    vcf = write_vcf(
        tmp_path / "calls.vcf.gz",
        [
            "chr1\t100\t.\tACT\tA,AGT\t.\t.\t.\tGT\t0/1\t2/2\t./1",
            "chr1\t150\t.\tG\tgA,<DEL>,*\t.\t.\t.\tGT\t1/2\t0/3\t0/0",
            "chr1\t200\t.\tTCC\tTC\t.\t.\t.\tGT\t0|1\t1|1\t0|0",
        ],
        samples=["P1", "P2", "P3"],
        info=False,
    )
    pysam.tabix_index(str(vcf), preset="vcf", force=True)
    build_reference(vcf, tmp_path / "ref.sqlite")
    counts = ReferenceCounts(tmp_path / "ref.sqlite")
    # ACT>A is already parsimonious; ACT>AGT trims to C>G one base right; G>GA at 150 stays
    # an insertion; <DEL> and * are not sequence variants; TCC>TC trims to TC>T
    assert rows(tmp_path / "ref.sqlite") == {
        "chr1-100-ACT-A": (2, 5),
        "chr1-101-C-G": (2, 5),
        "chr1-150-G-GA": (1, 6),
        "chr1-200-TC-T": (3, 6),
    }
    built = sealed_store(vcf, tmp_path / "store")
    store, opened = built.summary, built.store
    for key in rows(tmp_path / "ref.sqlite"):
        found = opened.lookup(parse_key(key))
        assert found is not None, key
        assert counts.get(key) == (found.counts["all"]["ac"], found.counts["all"]["an"])
    assert store.sites == counts.source.sites


def test_sites_vcf_counts_come_from_info(tmp_path: Path) -> None:
    vcf = write_vcf(
        tmp_path / "sites.vcf",
        [
            "chr1\t10\t.\tA\tG,T\t.\tPASS\tAC=3,0;AN=100",
            "chr2\t20\t.\tCA\tC\t.\tPASS\tAC=7;AN=98;AF=0.07",
        ],
    )
    summary = build_reference(vcf, tmp_path / "ref.sqlite")
    assert rows(tmp_path / "ref.sqlite") == {
        "chr1-10-A-G": (3, 100),
        "chr1-10-A-T": (0, 100),
        "chr2-20-CA-C": (7, 98),
    }
    assert (summary.source.counted_from, summary.source.samples) == ("info", 0)
    assert summary.source.alleles == 100 and summary.records == 2


def test_info_counts_are_used_when_given_and_genotypes_otherwise(tmp_path: Path) -> None:
    vcf = write_vcf(
        tmp_path / "mixed.vcf",
        [
            "chr1\t10\t.\tA\tG\t.\t.\tAC=40;AN=500\tGT\t0/1\t0/0",
            "chr1\t11\t.\tA\tG\t.\t.\t.\tGT\t1/1\t0/1",
        ],
        samples=["P1", "P2"],
    )
    summary = build_reference(vcf, tmp_path / "ref.sqlite")
    assert rows(tmp_path / "ref.sqlite") == {"chr1-10-A-G": (40, 500), "chr1-11-A-G": (3, 4)}
    assert summary.source.counted_from == "info+genotypes"
    # a list of samples counts their calls, whatever INFO says
    build_reference(vcf, tmp_path / "p1.sqlite", samples=["P1"])
    assert rows(tmp_path / "p1.sqlite") == {"chr1-10-A-G": (1, 2), "chr1-11-A-G": (2, 2)}


def test_a_variant_written_twice_is_merged(tmp_path: Path) -> None:
    # ACT>AGT at 100 is C>G at 101, written again as its own record: the carriers add up, the
    # alleles called are the same chromosomes (the larger AN), and AC never exceeds AN
    vcf = write_vcf(
        tmp_path / "twice.vcf",
        [
            "chr1\t100\t.\tACT\tA,AGT\t.\t.\tAC=1,2;AN=10",
            "chr1\t101\t.\tC\tG\t.\t.\tAC=3;AN=12",
            "chr1\t300\t.\tA\tG\t.\t.\tAC=6;AN=8",
            "chr1\t300\t.\tA\tG\t.\t.\tAC=5;AN=8",
        ],
    )
    build_reference(vcf, tmp_path / "ref.sqlite")
    assert rows(tmp_path / "ref.sqlite") == {
        "chr1-100-ACT-A": (1, 10),
        "chr1-101-C-G": (5, 12),
        "chr1-300-A-G": (8, 8),
    }


def test_a_variant_met_again_after_a_written_batch_is_merged_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from genecommons.variants import reference

    records = [
        "chr1\t100\t.\tACT\tA,AGT\t.\t.\tAC=1,2;AN=10",
        "chr1\t101\t.\tC\tG\t.\t.\tAC=3;AN=12",
        "chr1\t300\t.\tA\tG\t.\t.\tAC=6;AN=8",
        "chr1\t300\t.\tA\tG\t.\t.\tAC=5;AN=8",
    ]
    vcf = write_vcf(tmp_path / "twice.vcf", records)
    build_reference(vcf, tmp_path / "at-once.sqlite")
    monkeypatch.setattr(reference, "_BATCH", 1)  # every key written before the next record
    build_reference(vcf, tmp_path / "one-by-one.sqlite")
    assert rows(tmp_path / "one-by-one.sqlite") == rows(tmp_path / "at-once.sqlite")


def test_reads_bcf(tmp_path: Path) -> None:
    vcf = write_vcf(tmp_path / "sites.vcf", ["chr1\t10\t.\tA\tG\t.\t.\tAC=3;AN=100"])
    bcf = tmp_path / "sites.bcf"
    with (
        pysam.VariantFile(str(vcf)) as source,
        pysam.VariantFile(str(bcf), "wb", header=source.header) as target,
    ):
        for record in source:
            target.write(record)
    build_reference(bcf, tmp_path / "ref.sqlite")
    assert rows(tmp_path / "ref.sqlite") == {"chr1-10-A-G": (3, 100)}


def test_the_meta_table_names_the_source(tmp_path: Path) -> None:
    vcf = write_vcf(tmp_path / "sites.vcf", ["chr1\t10\t.\tA\tG\t.\t.\tAC=3;AN=100"])
    summary = build_reference(vcf, tmp_path / "ref.sqlite")
    import hashlib

    with sqlite3.connect(tmp_path / "ref.sqlite") as connection:
        meta = dict(connection.execute("SELECT key, value FROM meta").fetchall())
        (ddl,) = connection.execute(
            "SELECT sql FROM sqlite_master WHERE name = 'reference'"
        ).fetchone()
    assert "WITHOUT ROWID" in ddl
    assert meta["source"] == "sites.vcf" and meta["sites"] == "1" and meta["alleles"] == "100"
    assert meta["sha256"] == hashlib.sha256(vcf.read_bytes()).hexdigest()
    assert meta["loaded_at"].endswith("+00:00")
    assert summary.source == ReferenceCounts(tmp_path / "ref.sqlite").source


# -- bad input ------------------------------------------------------------------------------

HEAD = "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"


@pytest.mark.parametrize(
    ("content", "where", "what"),
    [
        (b"", "header", "empty"),
        (b"hello, this is not a VCF\n", "header", "not a readable VCF"),
        (HEAD.encode(), "end of file", "no sequence variants"),
        ((HEAD + "chr1\t5\t.\tA\t<DEL>\t.\t.\tAC=1;AN=2\n").encode(), "end of file", "no seq"),
        ((HEAD + "chr1\t5\t.\tA\tG\t.\t.\tAC=3;AN=2\n").encode(), "record 1 (chr1:5)", "AN=2"),
        ((HEAD + "chr1\t5\t.\tA\tG\t.\t.\tAC=-1;AN=2\n").encode(), "record 1", "impossible"),
        ((HEAD + "chr1\t5\t.\tA\tG\t.\t.\tAC=1;AN=-2\n").encode(), "record 1", "impossible"),
        ((HEAD + "chr1\t5\t.\tA\tG,T\t.\t.\tAC=1,1;AN=1\n").encode(), "record 1", "impossible"),
        ((HEAD + "chr1\t5\t.\tA\tG\t.\t.\tAC=1\n").encode(), "record 1 (chr1:5)", "no AN"),
        ((HEAD + "chr1\t5\t.\tA\tG,T\t.\t.\tAC=1;AN=9\n").encode(), "record 1", "1 value"),
        ((HEAD + "chr1\t5\t.\tA\tG\t.\t.\tAC=x;AN=9\n").encode(), "record 1", "not integers"),
        ((HEAD + "chr1\t5\t.\tA\tG\t.\t.\t.\n").encode(), "record 1 (chr1:5)", "no samples"),
        ((HEAD + "chr1<x>\t5\t.\tA\tG\t.\t.\tAC=1;AN=2\n").encode(), "record 1", "CHROM"),
        ((HEAD + "chr1\t5\t.\tA\tG;rm\t.\t.\tAC=1;AN=2\n").encode(), "record 1", "ALT"),
        ((HEAD + "chr1\t5\t.\tA\tG$(id)\t.\t.\tAC=1;AN=2\n").encode(), "record 1", "ALT"),
        ((HEAD + "chr1\t5\t.\tAXE\tG\t.\t.\tAC=1;AN=2\n").encode(), "record 1", "REF"),
        ((HEAD + "chr\xff\t5\t.\tA\tG\t.\t.\tAC=1;AN=2\n").encode("latin-1"), "record 1", "UTF"),
        (
            (
                HEAD + "chr1\t5\t.\tA\tG\t.\t.\tAC=1;AN=2\n" + "x" * 300 + "\t6\t.\tA\tG\t.\t.\t.\n"
            ).encode(),
            "record 2",
            "CHROM",
        ),
    ],
)
def test_bad_input_is_refused_in_two_languages(
    tmp_path: Path, content: bytes, where: str, what: str
) -> None:
    vcf = tmp_path / "bad.vcf"
    vcf.write_bytes(content)
    with pytest.raises(InvalidInputError) as caught:
        build_reference(vcf, tmp_path / "out" / "ref.sqlite")
    error = caught.value
    assert error.message.startswith("bad.vcf, ") and where in error.message, error.message
    assert what.lower() in error.message.lower(), error.message
    assert error.message_zh.startswith("bad.vcf，") and error.message_zh != error.message
    assert any("\u4e00" <= c <= "\u9fff" for c in error.message_zh)
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_a_truncated_gzip_is_refused(tmp_path: Path) -> None:
    records = [f"chr1\t{p}\t.\tA\tG\t.\t.\tAC=1;AN=2" for p in range(1, 20_000)]
    whole = write_vcf(tmp_path / "whole.vcf.gz", records)
    cut = tmp_path / "cut.vcf.gz"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(InvalidInputError, match="truncated"):
        build_reference(cut, tmp_path / "ref.sqlite")
    # a block damaged in the middle fails while it is read, after the records before it
    damaged = bytearray(whole.read_bytes())
    middle = len(damaged) // 2
    damaged[middle : middle + 50] = bytes(50)
    broken = tmp_path / "broken.vcf.gz"
    broken.write_bytes(bytes(damaged))
    with pytest.raises(InvalidInputError) as caught:
        build_reference(broken, tmp_path / "ref.sqlite")
    assert "after record" in caught.value.message and "之后" in caught.value.message_zh
    assert not (tmp_path / "ref.sqlite").exists()
    # gzip is not bgzip (htslib cannot read it as a VCF): the message says how to recompress
    plain = tmp_path / "plain.vcf.gz"
    plain.write_bytes(gzip.compress((HEAD + "\n".join(records) + "\n").encode()))
    with pytest.raises(InvalidInputError, match="bgzip"):
        build_reference(plain, tmp_path / "ref.sqlite")


def test_unknown_samples_are_named(tmp_path: Path) -> None:
    vcf = write_vcf(tmp_path / "calls.vcf", ["chr1\t5\t.\tA\tG\t.\t.\t.\tGT\t0/1"], samples=["P1"])
    with pytest.raises(InvalidInputError, match="'NOBODY'") as caught:
        build_reference(vcf, tmp_path / "ref.sqlite", samples=["P1", "NOBODY"])
    assert "不在该 VCF 中" in caught.value.message_zh
    with pytest.raises(InvalidInputError, match="empty"):
        build_reference(vcf, tmp_path / "ref.sqlite", samples=[])


def test_sample_names_are_read_one_a_line(tmp_path: Path) -> None:
    names = tmp_path / "names.txt"
    names.write_text("# public half\nP1\n\n  P2 \n", encoding="utf-8")
    assert read_sample_names(names) == ["P1", "P2"]
    with pytest.raises(InvalidInputError, match="cannot be read"):
        read_sample_names(tmp_path / "absent.txt")


# -- atomicity ------------------------------------------------------------------------------


def test_a_failure_half_way_keeps_the_previous_reference(tmp_path: Path) -> None:
    target = tmp_path / "variants" / "reference.sqlite"
    good = write_vcf(tmp_path / "good.vcf", ["chr1\t10\t.\tA\tG\t.\t.\tAC=3;AN=100"])
    build_reference(good, target)
    before = target.read_bytes()
    records = [f"chr1\t{p}\t.\tA\tG\t.\t.\tAC=1;AN=2" for p in range(1, 120_000)]
    records.append("chr1\t130000\t.\tA\tG\t.\t.\tAC=5;AN=2")  # after two written batches
    bad = write_vcf(tmp_path / "bad.vcf.gz", records)
    with pytest.raises(InvalidInputError, match="record 120000"):
        build_reference(bad, target)
    assert target.read_bytes() == before
    assert sorted(p.name for p in target.parent.iterdir()) == ["reference.sqlite"]
    assert ReferenceCounts(target).get("chr1-10-A-G") == (3, 100)

    def refuse(summary: ReferenceSummary) -> None:
        assert summary.source.sites == 119_999  # complete, not yet in place
        raise RuntimeError("the audit event could not be written")

    with pytest.raises(RuntimeError):
        build_reference(
            write_vcf(tmp_path / "ok.vcf.gz", records[:-1]), target, before_replace=refuse
        )
    assert target.read_bytes() == before
    assert sorted(p.name for p in target.parent.iterdir()) == ["reference.sqlite"]


def test_a_new_reference_replaces_the_old(tmp_path: Path) -> None:
    target = tmp_path / "reference.sqlite"
    build_reference(write_vcf(tmp_path / "a.vcf", ["chr1\t10\t.\tA\tG\t.\t.\tAC=3;AN=100"]), target)
    old = ReferenceCounts(target)
    build_reference(write_vcf(tmp_path / "b.vcf", ["chr1\t20\t.\tA\tC\t.\t.\tAC=1;AN=50"]), target)
    new = ReferenceCounts(target)
    assert (new.get("chr1-10-A-G"), new.get("chr1-20-A-C"), new.alleles) == (None, (1, 50), 50)
    # an instance opened before keeps reading the file it opened
    assert (old.get("chr1-10-A-G"), old.alleles) == ((3, 100), 100)


# -- lookups --------------------------------------------------------------------------------


def test_lookups_from_many_threads(tmp_path: Path, in_threads: Any) -> None:
    records = [f"chr1\t{p}\t.\tA\tG\t.\t.\tAC={p % 97};AN=200" for p in range(1, 5001)]
    build_reference(write_vcf(tmp_path / "sites.vcf.gz", records), tmp_path / "ref.sqlite")
    counts: PublicCounts = ReferenceCounts(tmp_path / "ref.sqlite")
    assert counts.alleles == 200
    failures: list[str] = []
    barrier = threading.Barrier(8)

    def look(offset: int) -> None:
        barrier.wait()
        for p in range(1 + offset, 5001, 3):
            if counts.get(f"chr1-{p}-A-G") != (p % 97, 200):
                failures.append(f"chr1-{p}-A-G")
            if counts.get(f"chr1-{p}-A-T") is not None:
                failures.append(f"chr1-{p}-A-T")

    assert in_threads(8, look) == [None] * 8
    assert failures == []


def test_a_reference_pickles_without_its_connections(tmp_path: Path) -> None:
    import pickle

    vcf = write_vcf(tmp_path / "sites.vcf", ["chr1\t10\t.\tA\tG\t.\t.\tAC=3;AN=100"])
    build_reference(vcf, tmp_path / "ref.sqlite")
    counts = ReferenceCounts(tmp_path / "ref.sqlite")
    assert counts.get("chr1-10-A-G") == (3, 100)
    copy = pickle.loads(pickle.dumps(counts))  # noqa: S301 - our own bytes
    assert (copy.get("chr1-10-A-G"), copy.alleles, copy.source) == ((3, 100), 100, counts.source)


def test_opening_a_missing_or_foreign_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="No public reference") as caught:
        ReferenceCounts.open(tmp_path / "absent.sqlite")
    assert "GENECOMMONS_BEACON_REFERENCE" in caught.value.message
    assert "公共参考" in caught.value.message_zh
    (tmp_path / "text.sqlite").write_text("not a database at all, but long enough" * 100)
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE meta (key TEXT, value TEXT)")
    for path in (tmp_path / "text.sqlite", other):
        with pytest.raises(ConfigurationError, match="is not a GeneCommons public reference"):
            ReferenceCounts(path)


def test_open_reference_follows_the_setting(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", environment="test")
    assert settings.effective_beacon_reference == tmp_path / "data/variants/reference.sqlite"
    assert open_reference(settings) is None
    vcf = write_vcf(tmp_path / "sites.vcf", ["chr1\t10\t.\tA\tG\t.\t.\tAC=3;AN=100"])
    build_reference(vcf, settings.effective_beacon_reference)
    opened = open_reference(settings)
    assert opened is not None and opened.get("chr1-10-A-G") == (3, 100)
    elsewhere = Settings(
        data_dir=tmp_path / "data", beacon_reference=tmp_path / "gnomad.sqlite", environment="test"
    )
    assert elsewhere.effective_beacon_reference == tmp_path / "gnomad.sqlite"
    assert open_reference(elsewhere) is None


# -- properties -----------------------------------------------------------------------------

BASES = st.text(alphabet="ACGTacgt", min_size=1, max_size=6)
ALT = st.one_of(BASES, st.sampled_from(["*", "<DEL>", "<INS:ME:ALU>", "."]))
RECORD = st.tuples(
    st.sampled_from(["chr1", "2", "chrX", "HLA-A*01:01"]),
    st.integers(min_value=1, max_value=10**9),
    BASES,
    st.lists(ALT, min_size=1, max_size=4),
    st.integers(min_value=0, max_value=2**31),  # seeds the calls
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(records=st.lists(RECORD, min_size=1, max_size=8))
def test_keys_round_trip_and_counts_follow_the_calls(
    tmp_path: Path, records: list[tuple[str, int, str, list[str], int]]
) -> None:
    lines = []
    expected: dict[str, tuple[int, int]] = {}
    for chrom, pos, ref, alts, seed in records:
        if "." in alts:
            alts = ["."]  # no ALT: `.` stands alone
        calls = random_calls(random.Random(seed), 4, len(alts) + 1)
        lines.append(
            f"{chrom}\t{pos}\t.\t{ref}\t{','.join(alts)}\t.\t.\t.\tGT\t" + "\t".join(calls)
        )
        alleles = [a for call in calls for a in call.replace("|", "/").split("/") if a != "."]
        for index, variant in normalize(chrom, pos, ref, [] if alts == ["."] else alts):
            ac, an = alleles.count(str(index)), len(alleles)
            if variant.key in expected:
                an = max(an, expected[variant.key][1])
                ac = min(ac + expected[variant.key][0], an)
            expected[variant.key] = (ac, an)
    folder = tmp_path / f"case-{uuid.uuid4().hex}"
    folder.mkdir()
    vcf = write_vcf(
        folder / "calls.vcf",
        lines,
        samples=["A", "B", "C", "D"],
        info=False,
        contigs=("chr1", "2", "chrX", "HLA-A*01:01"),
    )
    if not expected:
        with pytest.raises(InvalidInputError, match="no sequence variants"):
            build_reference(vcf, folder / "ref.sqlite")
        return
    build_reference(vcf, folder / "ref.sqlite")
    built = rows(folder / "ref.sqlite")
    assert built == expected
    for key in built:
        assert parse_key(key).key == key


# -- real data ------------------------------------------------------------------------------


def kg_panel() -> dict[str, str]:
    with KG_PANEL.open() as handle:
        return {row["sample"]: row["pop"] for row in csv.DictReader(handle, delimiter="\t")}


@pytest.mark.slow
def test_the_1000_genomes_slice(tmp_path: Path) -> None:
    if not KG_VCF.exists() or not KG_PANEL.exists():
        pytest.skip(f"{SHARED} is absent (the shared 1000 Genomes test data is not mounted)")
    summary = build_reference(KG_VCF, tmp_path / "kg.sqlite")
    # two of the 4,296 records are structural variants with symbolic ALTs (<CN0>, <INS:ME:SVA>)
    assert (summary.records, summary.source.sites, summary.source.alleles) == (4296, 4294, 5008)
    assert summary.source.counted_from == "info"
    counts = ReferenceCounts(tmp_path / "kg.sqlite")
    with pysam.VariantFile(str(KG_VCF)) as vcf:
        in_vcf = list(vcf.header.samples)
    han = [s for s, population in kg_panel().items() if population == "CHB" and s in in_vcf]
    names = tmp_path / "chb.txt"
    names.write_text("\n".join(han) + "\n")
    chb = build_reference(KG_VCF, tmp_path / "chb.sqlite", samples=read_sample_names(names))
    assert (chb.source.counted_from, chb.source.samples, chb.source.alleles) == (
        "genotypes",
        103,
        206,
    )
    chb_counts = ReferenceCounts(tmp_path / "chb.sqlite")
    with pysam.VariantFile(str(KG_VCF)) as vcf:
        for k, record in enumerate(vcf):
            if k % 97 or not record.alts or record.alts[0].startswith("<"):
                continue
            ((_, variant),) = normalize(record.chrom, record.pos, record.ref or "", record.alts)
            everyone = [a for s in record.samples.values() for a in s["GT"] if a is not None]
            chosen = [a for s in han for a in record.samples[s]["GT"] if a is not None]
            assert counts.get(variant.key) == (everyone.count(1), len(everyone)), variant.key
            assert chb_counts.get(variant.key) == (chosen.count(1), len(chosen)), variant.key
