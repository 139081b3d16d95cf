"""BGZF slicing and BAI/TBI/CSI parsing against htslib: for random regions, the stream made of
the header and the index's chunks holds every record htslib's own indexed fetch returns (and
only whole records), on generated files and on the real 1000 Genomes slice; a TBI or CSI index
written record by record while the file is written finds what htslib's own index finds."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pysam
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from genecommons.archive.bgzf import (
    EOF_BLOCK,
    BgzfWriter,
    compress_block,
    compress_blocks,
    header_end,
    read_block,
    slice_stream,
)
from genecommons.archive.hts_index import IndexWriter, parse_index
from genecommons.errors import InvalidInputError

THOUSAND_GENOMES = Path("../shared/data/1000g/chr1_11697036-11836540.vcf.gz")
PROPERTY = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def reader(data: bytes) -> Callable[[int, int], bytes]:
    return lambda offset, length: data[offset : offset + length]


def region_stream(path: Path, index: Path, kind: str, contig: str, start: int, end: int) -> bytes:
    """What an htsget client concatenates: the header, the region's chunks, the EOF block."""
    data = path.read_bytes()
    read_at = reader(data)
    parsed = parse_index(index.read_bytes(), kind=kind)  # type: ignore[arg-type]
    header = header_end(read_at, kind="bam" if kind == "bai" else "vcf")
    names = header.reference_names if kind == "bai" else (parsed.reference_names or [])
    parts = list(slice_stream(read_at, start_vo=0, end_vo=header.end_offset))
    if contig in names:
        for begin, finish in parsed.chunks(names.index(contig), start, end):
            parts.extend(slice_stream(read_at, start_vo=begin, end_vo=finish))
    return b"".join(parts) + EOF_BLOCK


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, datafiles: SimpleNamespace) -> SimpleNamespace:
    """A BAM with its BAI, and a VCF with a TBI and a CSI."""
    folder = tmp_path_factory.mktemp("sliced")
    bam = datafiles.bam(folder / "r.bam", reads=6000, seed=5)
    pysam.index(str(bam))
    vcf = datafiles.vcf(folder / "v.vcf.gz", records=3000, seed=9)
    pysam.tabix_index(str(vcf), preset="vcf", keep_original=True, force=True)
    csi_copy = folder / "c.vcf.gz"
    csi_copy.write_bytes(vcf.read_bytes())
    pysam.tabix_index(str(csi_copy), preset="vcf", keep_original=True, force=True, csi=True)
    return SimpleNamespace(bam=bam, vcf=vcf, csi_vcf=csi_copy, folder=folder)


def read_names(stream: bytes, folder: Path) -> list[tuple[str, int, int]]:
    path = folder / "sliced.bam"
    path.write_bytes(stream)
    with pysam.AlignmentFile(str(path), "rb", check_sq=False) as bam:
        return [
            (r.query_name or "", r.reference_start, r.reference_end or 0)
            for r in bam.fetch(until_eof=True)
        ]


def variant_keys(stream: bytes, folder: Path) -> list[tuple[str, int, int]]:
    path = folder / "sliced.vcf.gz"
    path.write_bytes(stream)
    with pysam.VariantFile(str(path)) as vcf:
        return [(r.chrom, r.start, r.stop) for r in vcf.fetch()]


def overlapping(
    records: list[tuple[str, int, int]], start: int, end: int
) -> list[tuple[str, int, int]]:
    return [r for r in records if r[1] < end and r[2] > start]


@PROPERTY
@given(
    contig=st.sampled_from(["chr21", "chr22", "chr3"]),
    start=st.integers(900_000, 3_100_000),
    width=st.integers(1, 600_000),
)
def test_bam_region_holds_what_samtools_fetches(
    files: SimpleNamespace, contig: str, start: int, width: int
) -> None:
    end = start + width
    stream = region_stream(files.bam, files.bam.with_suffix(".bam.bai"), "bai", contig, start, end)
    got = read_names(stream, files.folder)
    with pysam.AlignmentFile(str(files.bam)) as bam:
        expected = (
            [
                (r.query_name, r.reference_start, r.reference_end)
                for r in bam.fetch(contig, start, end)
            ]
            if contig in bam.references
            else []
        )
    assert overlapping(got, start, end) == expected
    assert len(got) == len(set(got))  # no record twice


@PROPERTY
@given(
    kind=st.sampled_from(["tbi", "csi"]),
    contig=st.sampled_from(["chr21", "chr22", "chrX"]),
    start=st.integers(9_000_000, 21_000_000),
    width=st.integers(1, 3_000_000),
)
def test_vcf_region_holds_what_bcftools_fetches(
    files: SimpleNamespace, kind: str, contig: str, start: int, width: int
) -> None:
    path = files.vcf if kind == "tbi" else files.csi_vcf
    end = start + width
    index = path.with_name(path.name + f".{kind}")
    got = variant_keys(region_stream(path, index, kind, contig, start, end), files.folder)
    with pysam.VariantFile(str(path)) as vcf:
        expected = (
            [(r.chrom, r.start, r.stop) for r in vcf.fetch(contig, start, end)]
            if contig in vcf.header.contigs
            else []
        )
    assert overlapping(got, start, end) == expected


@PROPERTY
@given(
    kind=st.sampled_from(["tbi", "csi"]),
    start=st.integers(11_690_000, 11_840_000),
    width=st.integers(1, 60_000),
)
def test_thousand_genomes_region_holds_what_bcftools_fetches(
    tmp_path_factory: pytest.TempPathFactory, kind: str, start: int, width: int
) -> None:
    if not THOUSAND_GENOMES.exists():
        pytest.skip(f"{THOUSAND_GENOMES} is absent (shared test data not mounted)")
    folder = tmp_path_factory.mktemp("kg", numbered=True)
    end = start + width
    index = THOUSAND_GENOMES.with_name(THOUSAND_GENOMES.name + f".{kind}")
    stream = region_stream(THOUSAND_GENOMES, index, kind, "1", start, end)
    got = variant_keys(stream, folder)
    with pysam.VariantFile(str(THOUSAND_GENOMES), index_filename=str(index)) as vcf:
        expected = [(r.chrom, r.start, r.stop) for r in vcf.fetch("1", start, end)]
    assert overlapping(got, start, end) == expected


# -- slicing itself ---------------------------------------------------------------------------


@settings(max_examples=80, deadline=None)
@given(
    payload=st.binary(min_size=1, max_size=200_000),
    cuts=st.tuples(st.integers(0, 200_000), st.integers(0, 200_000)),
)
def test_slice_between_virtual_offsets_gives_exactly_those_bytes(
    payload: bytes, cuts: tuple[int, int]
) -> None:
    blocks = compress_blocks(payload)
    # the virtual offset of every plaintext position
    offsets, coffset = [], 0
    while coffset < len(blocks):
        data, size = read_block(reader(blocks), coffset)
        offsets.extend((coffset << 16) | i for i in range(len(data)))
        coffset += size
    offsets.append(coffset << 16)
    low, high = sorted(min(c, len(payload)) for c in cuts)
    sliced = b"".join(slice_stream(reader(blocks), start_vo=offsets[low], end_vo=offsets[high]))
    assert gzip.decompress(sliced) == payload[low:high]


def test_damaged_block_is_refused_with_its_offset() -> None:
    block = bytearray(compress_block(b"hello world" * 100))
    block[-6] ^= 0xFF  # the CRC
    with pytest.raises(InvalidInputError) as error:
        read_block(reader(bytes(block)), 0)
    assert error.value.details["offset"] == 0
    with pytest.raises(InvalidInputError):
        read_block(reader(b"not a block at all, not at all"), 0)


@settings(max_examples=40, deadline=None)
@given(
    pieces=st.lists(
        st.binary(max_size=70_000) | st.just(b"chr1\t100\t.\tA\tG\n" * 5000), max_size=6
    ),
    level=st.integers(1, 9),
)
def test_the_libdeflate_writer_writes_what_gzip_and_htslib_read(
    pieces: list[bytes], level: int, tmp_path_factory: pytest.TempPathFactory
) -> None:
    import io

    sink = io.BytesIO()
    writer = BgzfWriter(sink, level=level)
    for piece in pieces:
        assert writer.write(piece) == len(piece)
    writer.close()
    data = sink.getvalue()
    assert data.endswith(EOF_BLOCK)
    assert gzip.decompress(data) == b"".join(pieces)
    # every block is whole and at most 64 KiB, as BGZF requires
    offset = 0
    while offset < len(data):
        block, size = read_block(reader(data), offset)
        assert size <= 65536 and len(block) <= 0xFF00
        offset += size
    path = tmp_path_factory.mktemp("bgzf") / "out.gz"
    path.write_bytes(data)
    with pysam.BGZFile(str(path), "rb") as handle:
        assert handle.read() == b"".join(pieces)


# -- indexes written in the pass that writes the file -------------------------------------------


def _write_indexed(path: Path, *, kind: str, seed: int) -> Path:
    """A bgzipped VCF written with BgzfWriter, its index built record by record from the
    writer's virtual offsets (as a fingerprinted copy is); the index is `<path>.ours`."""
    import random

    rng = random.Random(seed)
    far = kind == "csi"  # positions beyond what a TBI covers
    contigs = [("chr21", 46_709_983), ("chr22", 50_818_468)]
    if far:
        contigs.append(("chrBig", 1_500_000_000))
    index = IndexWriter(kind=IndexWriter.kind_for(1_400_000_000 if far else 50_000_000))
    assert index.kind == kind
    with path.open("wb") as out:
        writer = BgzfWriter(out)
        header = "##fileformat=VCFv4.3\n" + "".join(
            f"##contig=<ID={name},length={length}>\n" for name, length in contigs
        )
        header += '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
        header += "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tS1\tS2\n"
        writer.write(header.encode())
        for name, length in contigs:
            top = min(length, 1_400_000_000) if far else 25_000_000
            for position in sorted(rng.sample(range(1, top), 2500)):
                ref = "A" * rng.choice([1, 1, 1, 2, 40, 20_000])  # some span many windows
                line = f"{name}\t{position}\t.\t{ref}\tG\t.\tPASS\t.\tGT\t0|1\t1/1\n".encode()
                start = writer.tell()
                writer.write(line)
                index.push(
                    reference=name,
                    begin=position - 1,
                    end=position - 1 + len(ref),
                    start=start,
                    stop=writer.tell(),
                )
        writer.close()
    path.with_name(path.name + ".ours").write_bytes(index.finish())
    theirs = path.with_name("theirs-" + path.name)
    theirs.write_bytes(path.read_bytes())
    pysam.tabix_index(str(theirs), preset="vcf", force=True, keep_original=True, csi=far)
    return path


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("written")
    return {kind: _write_indexed(folder / f"{kind}.vcf.gz", kind=kind, seed=3) for kind in KINDS}


KINDS = ("tbi", "csi")


@PROPERTY
@given(
    kind=st.sampled_from(KINDS),
    contig=st.sampled_from(["chr21", "chr22", "chrBig", "chrX"]),
    start=st.integers(0, 1_400_000_000),
    width=st.integers(1, 5_000_000),
    near=st.booleans(),
)
def test_an_index_written_with_the_file_finds_what_htslibs_finds(
    written: dict[str, Path], kind: str, contig: str, start: int, width: int, near: bool
) -> None:
    path = written[kind]
    if near or contig != "chrBig":
        start %= 25_000_000
    end = start + width
    ours = pysam.TabixFile(str(path), index=str(path.with_name(path.name + ".ours")))
    reference = path.with_name("theirs-" + path.name)
    theirs = pysam.TabixFile(str(reference), index=f"{reference}.{kind}")
    try:
        if contig not in theirs.contigs:
            assert contig not in ours.contigs
            return
        expected = list(theirs.fetch(contig, start, end))
        assert list(ours.fetch(contig, start, end)) == expected
    finally:
        ours.close()
        theirs.close()
    # and the server's own parser of the index cuts a stream holding exactly those records
    stream = region_stream(path, path.with_name(path.name + ".ours"), kind, contig, start, end)
    got = variant_keys(stream, path.parent)
    assert [f"{c}\t{s + 1}" for c, s, _ in overlapping(got, start, end)] == [
        "\t".join(line.split("\t")[:2]) for line in expected
    ]
