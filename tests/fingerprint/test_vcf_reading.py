"""Reading an archived VCF's calls (`genotypes.from_vcf`, the streaming `vcf_blocks.read_vcf`)
against pysam reading the same file, on generated call matrices (hypothesis): haploid and
diploid, phased or not, missing alleles, multiallelic sites; against a slow reference parser on
generated VCF text of every layout, compressed or not, cut into chunks anywhere; and a clear
error for what is not a VCF or is damaged."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pysam
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from genecommons.archive import bgzf
from genecommons.errors import InvalidInputError
from genecommons.fingerprint import genotypes, vcf_blocks


@st.composite
def call_sets(draw: st.DrawFn) -> genotypes.Genotypes:
    sites = draw(st.integers(1, 12))
    samples = draw(st.integers(1, 6))
    ploidy = draw(st.sampled_from([1, 2]))
    alts = draw(st.lists(st.integers(1, 3), min_size=sites, max_size=sites))
    calls = draw(hnp.arrays(np.int8, (sites, samples, ploidy), elements=st.integers(-1, 3)))
    calls = np.minimum(calls, np.asarray(alts, dtype=np.int8)[:, None, None])
    phased = draw(hnp.arrays(np.bool_, (sites, samples)))
    if ploidy == 1:
        phased[:] = False
    positions = np.cumsum(draw(st.lists(st.integers(1, 50), min_size=sites, max_size=sites)))
    return genotypes.Genotypes(
        calls=calls,
        phased=phased,
        samples=tuple(f"S{i}" for i in range(samples)),
        chroms=("chr22",) * sites,
        positions=(1000 + positions).astype(np.int64),
        alleles=tuple(("A", *["C", "G", "T"][:n]) for n in alts),
        contigs=(("chr22", 50_818_468),),
    )


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(source=call_sets())
def test_from_vcf_reads_what_was_written_as_pysam_does(
    source: genotypes.Genotypes, tmp_path_factory: pytest.TempPathFactory
) -> None:
    path = tmp_path_factory.mktemp("vcf") / "calls.vcf.gz"
    handle = genotypes.BgzfFile(path)
    genotypes.write_vcf(source, handle, source="test")
    handle.close()
    read = genotypes.from_vcf(path.read_bytes())
    assert read.samples == source.samples
    assert read.positions.tolist() == source.positions.tolist()
    assert read.alleles == source.alleles
    assert read.contigs == source.contigs
    assert np.array_equal(read.calls, source.calls)
    assert np.array_equal(read.phased, source.phased)
    with pysam.VariantFile(str(path)) as vcf:
        for i, record in enumerate(vcf.fetch()):
            for j, sample in enumerate(record.samples.values()):
                expected = tuple(-1 if a is None else a for a in sample["GT"])
                assert tuple(int(a) for a in read.calls[i, j]) == expected
                if len(expected) == 2:
                    assert bool(read.phased[i, j]) == sample.phased


def test_what_is_not_a_vcf_is_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="#CHROM"):
        genotypes.from_vcf(b"##fileformat=VCFv4.3\n", name="x.vcf")
    with pytest.raises(InvalidInputError, match="line 2"):
        genotypes.from_vcf(b"#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tS1\nchr1\t5\n")


# -- the streaming reader against a slow reference ---------------------------------------------


def _reference_gt(text: bytes) -> tuple[tuple[int, ...], bool]:
    phased = b"|" in text
    alleles = text.replace(b"|", b"/").split(b"/")
    calls = tuple(-1 if a in (b"", b".") or not a.isdigit() else min(int(a), 127) for a in alleles)
    return calls, phased


def _reference_from_vcf(data: bytes) -> genotypes.Genotypes:
    """The whole-file reader as it was before reading became a stream: every line, every cell,
    one at a time (obviously what the format says, and slow)."""
    text = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
    contigs: list[tuple[str, int | None]] = []
    samples: tuple[str, ...] = ()
    chroms, positions, alleles, rows, phases = [], [], [], [], []
    for raw in text.split(b"\n"):
        if not raw:
            continue
        if raw.startswith(b"##"):
            if raw.startswith(b"##contig=<"):
                fields = dict(
                    part.split("=", 1)
                    for part in raw[10:].rstrip(b">").decode().split(",")
                    if "=" in part
                )
                length = fields.get("length")
                contigs.append(
                    (fields.get("ID", ""), int(length) if length and length.isdigit() else None)
                )
            continue
        fields_b = raw.rstrip(b"\r").split(b"\t")
        if raw.startswith(b"#CHROM"):
            samples = tuple(f.decode() for f in fields_b[9:])
            continue
        chroms.append(fields_b[0].decode())
        positions.append(int(fields_b[1]))
        alts = fields_b[4].decode()
        alleles.append((fields_b[3].decode(), *([] if alts == "." else alts.split(","))))
        keys = fields_b[8].split(b":")
        at = keys.index(b"GT") if b"GT" in keys else -1
        parsed = [_reference_gt(c.split(b":")[at] if at >= 0 else b".") for c in fields_b[9:]]
        rows.append([p[0] for p in parsed])
        phases.append([p[1] for p in parsed])
    ploidy = max((len(c) for row in rows for c in row), default=2)
    calls = np.full((len(rows), len(samples), ploidy), -2, dtype=np.int8)
    for i, row in enumerate(rows):
        for j, call in enumerate(row):
            calls[i, j, : len(call)] = call
    return genotypes.Genotypes(
        calls=calls,
        phased=np.asarray(phases, dtype=np.bool_).reshape(len(rows), len(samples)),
        samples=samples,
        chroms=tuple(chroms),
        positions=np.asarray(positions, dtype=np.int64),
        alleles=tuple(alleles),
        contigs=tuple(contigs),
    )


CALLS = ["0|0", "0|1", "1|0", "1|1", "0/0", "0/1", "1/1", "./.", ".|.", "./1", "0|.", "0", "1"]
ODD_CALLS = [".", "2/1", "0|2", "10/1", "1/12", "0/1/2", "x/1", ""]
CELLS = st.sampled_from([*CALLS, *ODD_CALLS])
LAYOUTS = st.sampled_from(["GT", "GT:DP", "DP:GT", "DP", "GT:AD:DP"])


@st.composite
def vcf_texts(draw: st.DrawFn) -> bytes:
    """VCF text of the layouts found in the wild: GT alone or among other fields, diploid and
    haploid and polyploid calls, multi-digit alleles, no GT at all, CRLF lines, blank lines."""
    samples = draw(st.integers(1, 7))
    sites = draw(st.integers(0, 40))
    common = draw(st.booleans())  # mostly the fast layout, or anything
    end = "\r\n" if draw(st.integers(0, 5)) == 0 else "\n"
    lines = [
        "##fileformat=VCFv4.3",
        "##contig=<ID=chr21,length=46709983>",
        "##contig=<ID=chr22>",
        "\t".join(["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT"])
        + "".join(f"\tS{i}" for i in range(samples)),
    ]
    for site in range(sites):
        layout = "GT" if common and draw(st.integers(0, 9)) else draw(LAYOUTS)
        cells = []
        for _ in range(samples):
            gt = draw(st.sampled_from(["0|1", "1/1", "0/0", ".|."])) if common else draw(CELLS)
            values = {"GT": gt, "DP": str(draw(st.integers(0, 99))), "AD": "3,4"}
            cells.append(":".join(values[key] for key in layout.split(":")))
        alts = draw(st.sampled_from(["G", ".", "G,T", "GT"]))
        ref = draw(st.sampled_from(["A", "AC", "ACGTACGT"]))
        lines.append(
            "\t".join(
                ["chr22", str(1000 + 7 * site), ".", ref, alts, ".", "PASS", ".", layout, *cells]
            )
        )
        if end == "\n" and draw(st.integers(0, 20)) == 0:
            lines.append("")
    return (end.join(lines) + end).encode()


@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(text=vcf_texts(), compression=st.sampled_from(["plain", "gzip", "bgzf"]), data=st.data())
def test_the_streaming_reader_reads_what_the_reference_reads(
    text: bytes, compression: str, data: st.DataObject
) -> None:
    if compression == "gzip":
        raw = gzip.compress(text)
    elif compression == "bgzf":
        raw = bgzf.compress_blocks(text, level=1) + bgzf.EOF_BLOCK
    else:
        raw = text
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=6)))
    chunks = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
    block = data.draw(st.integers(1, 9))
    expected = _reference_from_vcf(raw)
    head, blocks = vcf_blocks.read_vcf(iter(chunks), block_sites=block)
    read = list(blocks)
    assert head.samples == expected.samples and head.contigs == expected.contigs
    assert [b.first for b in read] == list(range(0, len(expected.positions), block))
    got = genotypes.from_vcf_stream(iter(chunks))
    assert got.alleles == expected.alleles and got.chroms == expected.chroms
    assert np.array_equal(got.positions, expected.positions)
    assert np.array_equal(got.calls, expected.calls)
    assert np.array_equal(got.phased, expected.phased)
    assert np.array_equal(got.dosages(), expected.dosages())


def test_a_truncated_or_damaged_stream_is_refused_clearly() -> None:
    text = b"##fileformat=VCFv4.3\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tS1\n"
    text += b"".join(b"chr1\t%d\t.\tA\tG\t.\t.\t.\tGT\t0|1\n" % (i + 1) for i in range(2000))
    packed = gzip.compress(text)
    with pytest.raises(InvalidInputError, match="damaged"):
        genotypes.from_vcf_stream([packed[: len(packed) // 2]])
    broken = bytearray(packed)
    broken[len(packed) // 2] ^= 0xFF
    with pytest.raises(InvalidInputError):
        genotypes.from_vcf_stream([bytes(broken)])
