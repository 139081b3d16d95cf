"""Format checks: valid files pass with their counts, each kind of damage is refused with its
place, hostile input (bombs, truncation, random corruption) never hangs or escapes as anything
but a FormatError."""

from __future__ import annotations

import gzip
import io
import json
import random
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from types import SimpleNamespace

import pysam
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from genecommons.archive import formats
from genecommons.archive.bgzf import compress_block, compress_blocks
from genecommons.archive.formats import FormatError, check_file, check_stream, make_index, sniff


def fastq(records: int = 5) -> bytes:
    return b"".join(b"@r%d\nACGTN\n+\nIIIII\n" % i for i in range(records))


def check(data: bytes, fmt: str, **options: object) -> formats.FormatSummary:
    return check_stream(io.BytesIO(data), declared_format=fmt, name="x", **options)  # type: ignore[arg-type]


def rule_of(error: pytest.ExceptionInfo[FormatError]) -> str:
    return str(error.value.details["rule"])


@pytest.fixture(scope="module")
def samples(
    tmp_path_factory: pytest.TempPathFactory, datafiles: SimpleNamespace
) -> SimpleNamespace:
    """A small valid BAM and VCF, written once for the module."""
    folder = tmp_path_factory.mktemp("formats")
    bam = datafiles.bam(folder / "s.bam", reads=400)
    vcf = datafiles.vcf(folder / "s.vcf.gz", records=200)
    return SimpleNamespace(bam=bam, vcf=vcf, bam_bytes=bam.read_bytes(), vcf_bytes=vcf.read_bytes())


# -- sniffing -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"BAM\x01rest", ("bam", "none")),
        (b"BCF\x02\x02", ("bcf", "none")),
        (b"CRAM\x03\x00", ("cram", "none")),
        (b"##fileformat=VCFv4.2\n", ("vcf", "none")),
        (b"@read\nACGT\n", ("fastq", "none")),
        (b"%PDF-1.7", ("pdf", "none")),
        # mtime fixed: a timestamp in a test id makes xdist workers collect different tests
        (gzip.compress(b"@r\nA\n+\nI\n", mtime=0), ("fastq", "gzip")),
        (b"plain text", ("unknown", "none")),
    ],
)
def test_sniff_names_content_and_compression(head: bytes, expected: tuple[str, str]) -> None:
    assert sniff(head) == expected


def test_sniff_sees_bgzf_inside(samples: SimpleNamespace) -> None:
    assert sniff(samples.vcf_bytes[:65536]) == ("vcf", "bgzf")
    assert sniff(samples.bam_bytes[:65536]) == ("bam", "bgzf")


@given(st.binary(max_size=300))
def test_sniff_never_fails_on_any_bytes(head: bytes) -> None:
    content, compression = sniff(head)
    assert compression in {"none", "gzip", "bgzf"}
    assert content in {"bam", "bcf", "cram", "vcf", "fastq", "pdf", "unknown"}


# -- FASTQ --------------------------------------------------------------------------------


def test_fastq_plain_and_gzipped_are_counted() -> None:
    assert check(fastq(7), "fastq").records == 7
    summary = check(gzip.compress(fastq(9)), "fastq")
    assert (summary.records, summary.compressed) == (9, "gzip")


def test_fastq_multi_member_gzip_is_read_to_the_end() -> None:
    data = gzip.compress(fastq(3)) + gzip.compress(fastq(4))
    assert check(data, "fastq").records == 7


def test_fastq_crlf_and_no_final_newline_are_accepted() -> None:
    assert check(fastq(2).replace(b"\n", b"\r\n").rstrip(b"\r\n"), "fastq").records == 2


@pytest.mark.parametrize(
    ("data", "rule", "line"),
    [
        (fastq(2) + b"r9\nACGT\n+\nIIII\n", "fastq.header", 9),
        (fastq(1) + b"@r9\nACGT\n-\nIIII\n", "fastq.separator", 7),
        (fastq(1) + b"@r9\nACGT\n+\nIII\n", "fastq.lengths", 8),
        (fastq(1) + b"@r9\nACXT\n+\nIIII\n", "fastq.alphabet", 6),
        (fastq(1) + b"@r9\nACGT\n+\nII I\n", "fastq.quality", 8),
        (fastq(2) + b"@r9\nACGT\n", "fastq.truncated", 10),
    ],
)
def test_fastq_damage_is_refused_at_its_line(data: bytes, rule: str, line: int) -> None:
    with pytest.raises(FormatError) as error:
        check(data, "fastq")
    assert rule_of(error) == rule
    assert error.value.details["line"] == line
    assert f"line {line}" in str(error.value)
    assert error.value.message_zh


def test_empty_fastq_is_refused() -> None:
    with pytest.raises(FormatError) as error:
        check(b"@", "fastq")
    assert rule_of(error) in {"fastq.truncated", "fastq.empty"}


# -- gzip: bombs and truncation -----------------------------------------------------------


def test_gzip_bomb_is_stopped_by_the_size_cap() -> None:
    bomb = gzip.compress(b"@r\n" + b"A" * (8 << 20))
    with pytest.raises(FormatError) as error:
        check(bomb, "fastq", max_decompressed=1 << 20)
    assert rule_of(error) == "gzip.bomb"


def test_gzip_bomb_is_stopped_by_the_ratio(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(formats, "RATIO_GRACE", 1 << 20)
    bomb = gzip.compress(b"\0" * (16 << 20))  # compresses ~1000:1
    assert len(bomb) * formats.MAX_RATIO < 16 << 20
    with pytest.raises(FormatError) as error:
        check(gzip.compress(fastq(1)) + bomb, "fastq")
    assert rule_of(error) == "gzip.bomb"


def test_variants_gzip_bomb_is_stopped_before_htslib(
    samples: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(formats, "RATIO_GRACE", 1 << 20)
    header = b"##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
    bomb = gzip.compress(header + b"\0" * (16 << 20))
    with pytest.raises(FormatError) as error:
        check(bomb, "vcf")
    assert rule_of(error) == "gzip.bomb"


def test_truncated_gzip_is_refused() -> None:
    data = gzip.compress(fastq(50))
    with pytest.raises(FormatError) as error:
        check(data[: len(data) // 2], "fastq")
    assert rule_of(error) == "gzip.truncated"


def test_corrupt_gzip_is_refused() -> None:
    rng = random.Random(3)
    reads = b"".join(
        b"@r%d\n%s\n+\n%s\n" % (i, bytes(rng.choices(b"ACGT", k=100)), b"I" * 100)
        for i in range(20_000)
    )
    data = bytearray(gzip.compress(reads, compresslevel=1))
    middle = len(data) // 2
    data[middle : middle + 10] = b"\xff" * 10
    with pytest.raises(FormatError) as error:
        check(bytes(data), "fastq")
    assert rule_of(error) in {"gzip.corrupt", "fastq.header", "fastq.alphabet", "fastq.lengths"}
    assert error.value.details.get("offset", 1) > 0


# -- declared format against content ------------------------------------------------------


@pytest.mark.parametrize("fmt", ["bam", "vcf", "fastq", "cram", "bcf"])
def test_content_that_is_not_the_declared_format_is_refused(fmt: str) -> None:
    with pytest.raises(FormatError) as error:
        check(b"%PDF-1.7\n" + b"x" * 1000, fmt)
    assert rule_of(error) == "format.content"
    assert "PDF" in str(error.value)


# -- BAM ----------------------------------------------------------------------------------


def test_valid_bam_is_counted(samples: SimpleNamespace) -> None:
    summary = check_file(samples.bam, declared_format="bam")
    assert summary.records == 400
    assert summary.contigs == ["chr21", "chr22"]
    assert summary.compressed == "bgzf"


def test_bam_without_eof_block_is_truncated(samples: SimpleNamespace) -> None:
    with pytest.raises(FormatError) as error:
        check(samples.bam_bytes[: -len(formats.EOF_BLOCK)], "bam")
    assert rule_of(error) == "bam.eof"


def test_bam_cut_inside_a_block_is_refused(samples: SimpleNamespace) -> None:
    with pytest.raises(FormatError) as error:
        check(samples.bam_bytes[: len(samples.bam_bytes) // 2], "bam")
    assert rule_of(error) in {"bam.record", "bam.eof"}


def test_bam_with_a_damaged_block_names_the_record(samples: SimpleNamespace) -> None:
    data = bytearray(samples.bam_bytes)
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(64)
    with pytest.raises(FormatError) as error:
        check(bytes(data), "bam")
    assert rule_of(error) == "bam.record"
    assert 1 <= error.value.details["record"] <= 400


def test_bam_whose_records_are_damaged_inside_sound_blocks_names_the_record(
    samples: SimpleNamespace,
) -> None:
    plain = bytearray(gzip.decompress(samples.bam_bytes))
    # walk the header and 200 records, then give record 201 an impossible length
    (text_length,) = struct.unpack_from("<i", plain, 4)
    position = 8 + text_length
    (references,) = struct.unpack_from("<i", plain, position)
    position += 4
    for _ in range(references):
        position += 8 + struct.unpack_from("<i", plain, position)[0]
    for _ in range(200):
        position += 4 + struct.unpack_from("<i", plain, position)[0]
    plain[position : position + 4] = (2**31 - 1).to_bytes(4, "little")
    damaged = compress_blocks(bytes(plain)) + formats.EOF_BLOCK
    with pytest.raises(FormatError) as error:
        check(damaged, "bam")
    assert rule_of(error) == "bam.record"
    assert error.value.details["record"] == 201


def test_bam_whose_header_is_garbage_is_refused() -> None:
    block = formats_bgzf_block(b"BAM\x01" + b"\xff" * 200)
    with pytest.raises(FormatError) as error:
        check(block + formats.EOF_BLOCK, "bam")
    assert rule_of(error) in {"bam.header", "bam.record"}


def formats_bgzf_block(payload: bytes) -> bytes:
    return compress_block(payload)


# -- VCF ----------------------------------------------------------------------------------


def test_valid_vcf_is_counted_and_fits_its_assembly(samples: SimpleNamespace) -> None:
    summary = check_file(samples.vcf, declared_format="vcf", assembly="GRCh38")
    assert (summary.records, summary.contigs, summary.compressed) == (
        400,
        ["chr21", "chr22"],
        "bgzf",
    )


def test_plain_and_gzip_vcf_are_read(samples: SimpleNamespace) -> None:
    plain = zlib.decompress(samples.vcf_bytes, 16 + zlib.MAX_WBITS)
    # a BGZF file is multi-member: decompress every member
    text = gzip.decompress(samples.vcf_bytes)
    assert plain == text[: len(plain)]
    assert check(text, "vcf").records == 400
    assert check(gzip.compress(text), "vcf").compressed == "gzip"


def vcf_text(records: list[str], contigs: str = "##contig=<ID=chr1,length=248956422>\n") -> bytes:
    header = "##fileformat=VCFv4.2\n" + contigs + "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
    return (header + "".join(line + "\n" for line in records)).encode()


def test_unsorted_positions_are_refused_at_the_record() -> None:
    data = vcf_text(["chr1\t200\t.\tA\tG\t.\t.\t.", "chr1\t100\t.\tA\tG\t.\t.\t."])
    with pytest.raises(FormatError) as error:
        check(data, "vcf")
    assert rule_of(error) == "vcf.sorted"
    assert error.value.details["record"] == 2
    assert "bcftools sort" in str(error.value)


def test_a_contig_that_comes_back_is_unsorted() -> None:
    contigs = "##contig=<ID=chr1,length=248956422>\n##contig=<ID=chr2,length=242193529>\n"
    data = vcf_text(
        ["chr1\t1\t.\tA\tG\t.\t.\t.", "chr2\t1\t.\tA\tG\t.\t.\t.", "chr1\t5\t.\tA\tG\t.\t.\t."],
        contigs,
    )
    with pytest.raises(FormatError) as error:
        check(data, "vcf")
    assert rule_of(error) == "vcf.sorted"
    assert error.value.details["record"] == 3


def test_contig_outside_the_assembly_is_refused() -> None:
    data = vcf_text(["chrUn_x\t1\t.\tA\tG\t.\t.\t."], "##contig=<ID=chrUn_x>\n")
    with pytest.raises(FormatError) as error:
        check(data, "vcf", assembly="GRCh38")
    assert rule_of(error) == "vcf.contig"
    check(data, "vcf")  # without an assembly declared, the contig is not judged


def test_position_past_the_contig_end_is_refused() -> None:
    data = vcf_text(["chr1\t248956500\t.\tA\tG\t.\t.\t."])
    with pytest.raises(FormatError) as error:
        check(data, "vcf", assembly="GRCh38")
    assert rule_of(error) == "vcf.position"
    assert "248956422" in str(error.value)


def test_grch37_names_are_judged_against_grch37() -> None:
    data = vcf_text(["1\t249250000\t.\tA\tG\t.\t.\t."], "##contig=<ID=1,length=249250621>\n")
    assert check(data, "vcf", assembly="GRCh37").records == 1
    with pytest.raises(FormatError):
        check(data, "vcf", assembly="GRCh38")


def test_unparseable_record_is_refused() -> None:
    data = vcf_text(["chr1\tnot-a-number\t.\tA\tG\t.\t.\t."])
    with pytest.raises(FormatError) as error:
        check(data, "vcf")
    assert rule_of(error) in {"vcf.record", "vcf.header"}


def test_vcf_without_header_line_is_refused() -> None:
    with pytest.raises(FormatError) as error:
        check(b"##fileformat=VCFv4.2\nchr1\t1\t.\tA\tG\t.\t.\t.\n", "vcf")
    assert rule_of(error) in {"vcf.header", "vcf.record"}


# -- hostile input: random damage never hangs and is refused as a FormatError --------------
# Through the checker process, as the ingest runs it: htslib's complaints about a damaged
# header (printed by pysam while freeing the file) stay in that process.


def checked_by_worker(content: bytes, fmt: str) -> dict[str, object]:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "genecommons.archive.formats",
            "--format",
            fmt,
            "--assembly",
            "GRCh38",
        ],
        input=content,
        capture_output=True,
        check=False,
        timeout=120,
    )
    assert run.returncode in (0, 3), run.stderr.decode(errors="replace")
    reply: dict[str, object] = json.loads(run.stdout)
    return reply


def damaged(content: bytes, data: st.DataObject) -> bytes:
    mutable = bytearray(content)
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(mutable) - 1))
        mutable[at] = data.draw(st.integers(0, 255))
    return bytes(mutable[: data.draw(st.integers(0, len(mutable)))])


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["bam", "vcf"])
@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_random_damage_is_a_format_error_or_harmless(
    samples: SimpleNamespace, kind: str, data: st.DataObject
) -> None:
    content = damaged(samples.bam_bytes if kind == "bam" else samples.vcf_bytes, data)
    reply = checked_by_worker(content, kind)
    if "error" in reply:
        error = reply["error"]
        assert isinstance(error, dict)
        assert error["details"]["rule"].startswith(("format.", "gzip.", kind + ".", "vcf."))
        assert error["message_zh"]
    else:
        assert reply["records"] <= 400


# -- the checker process and indexes -------------------------------------------------------


def test_checker_process_prints_the_error_and_exits_3() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "genecommons.archive.formats", "--format", "fastq", "--name", "r"],
        input=fastq(1) + b"@r9\nACGT\n-\nIIII\n",
        capture_output=True,
        check=False,
        timeout=120,
    )
    assert run.returncode == 3
    reply = json.loads(run.stdout)
    assert reply["error"]["details"]["rule"] == "fastq.separator"


def test_checker_process_prints_the_summary(samples: SimpleNamespace) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "genecommons.archive.formats", "--format", "bam"],
        input=samples.bam_bytes,
        capture_output=True,
        check=True,
        timeout=120,
    )
    assert json.loads(run.stdout)["records"] == 400


def test_indexes_are_made_beside_not_on_the_file(samples: SimpleNamespace, tmp_path: Path) -> None:
    before = sorted(p.name for p in samples.bam.parent.iterdir())
    bai = make_index(samples.bam, fmt="bam", out_dir=tmp_path)
    tbi = make_index(samples.vcf, fmt="vcf", out_dir=tmp_path)
    assert sorted(p.name for p in samples.bam.parent.iterdir()) == before
    with pysam.AlignmentFile(str(samples.bam), index_filename=str(bai)) as bam:
        assert bam.count("chr21") == 200
    with pysam.VariantFile(str(samples.vcf), index_filename=str(tbi)) as vcf:
        assert sum(1 for _ in vcf.fetch("chr22")) == 200


def test_no_index_for_fastq(tmp_path: Path) -> None:
    path = tmp_path / "r.fastq"
    path.write_bytes(fastq(1))
    with pytest.raises(formats.InvalidInputError):
        make_index(path, fmt="fastq", out_dir=tmp_path)
