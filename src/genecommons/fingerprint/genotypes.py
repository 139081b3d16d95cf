"""Genotype matrices in and out of files, for fingerprinted deliveries and leak tracing.

In: a dataset's VCF Zarr store (bio2zarr), and a leaked file in any of the forms a leaker might
use: VCF (plain or gzip/BGZF) or a TSV of genotypes (one row per site: chrom, pos, ref, alt,
then one column per sample holding a dosage, a VCF-style call such as 0|1, or a fraction when
copies were averaged). Out: a VCF written straight from the (marked) call arrays with numpy, a
block of sites at a time.

No web framework, no database: file formats only.
"""

from __future__ import annotations

import gzip
import io
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO

import numpy as np
import numpy.typing as npt

from genecommons.archive.bgzf import BgzfWriter
from genecommons.errors import InvalidInputError
from genecommons.fingerprint.codes import Dosages, Plan
from genecommons.fingerprint.vcf_blocks import bad_vcf, dosages_of, read_vcf

logger = logging.getLogger(__name__)

BLOCK_SITES = 4096
# deflate level of bgzipped copies (libdeflate): zlib's default (6), as htslib writes it, costs
# about half an export's CPU; libdeflate's 1 is some 5 times as fast for about 1.2 times the
# bytes, still about 40 times smaller than the text (benchmarks/fingerprint.py)
BGZF_LEVEL = 1
_ZERO = ord("0")
_DOT = ord(".")
_NA = frozenset({"", ".", "./.", ".|.", "NA", "na", "nan", "NaN"})
Calls = npt.NDArray[np.int8]


@dataclass(frozen=True, slots=True)
class Genotypes:
    """Calls of a dataset: `calls[site, sample, ploidy]` allele indices (-1 missing, -2 the
    padding of a haploid call), `phased[site, sample]`, and what the sites and samples are."""

    calls: Calls
    phased: npt.NDArray[np.bool_]
    samples: tuple[str, ...]
    chroms: tuple[str, ...]
    positions: npt.NDArray[np.int64]
    alleles: tuple[tuple[str, ...], ...]  # REF then ALTs per site
    contigs: tuple[tuple[str, int | None], ...] = ()

    @property
    def site_keys(self) -> list[str]:
        """`chrom:pos:ref:alt` of every site (ALTs joined by commas)."""
        return [
            site_key(c, int(p), a[0], a[1:])
            for c, p, a in zip(self.chroms, self.positions, self.alleles, strict=True)
        ]

    def dosages(self) -> Dosages:
        """ALT dosage of biallelic diploid calls; -1 for anything else (never marked)."""
        return dosages_of(self.calls, self.alleles)


def site_key(chrom: str, pos: int, ref: str, alts: Sequence[str]) -> str:
    """The identity of a site across files: chrom:pos:ref:alt."""
    return f"{chrom}:{pos}:{ref}:{','.join(alts)}"


def from_zarr(root: Any) -> Genotypes:
    """The calls of a VCF Zarr group (bio2zarr's layout), as the variant store opens it."""
    if "call_genotype" not in root:
        raise InvalidInputError(
            "The variant store has no genotypes (call_genotype).",
            message_zh="该变异库没有基因型（call_genotype）。",
        )
    calls = np.asarray(root["call_genotype"][:], dtype=np.int8)
    phased = (
        np.asarray(root["call_genotype_phased"][:], dtype=np.bool_)
        if "call_genotype_phased" in root
        else np.zeros(calls.shape[:2], dtype=np.bool_)
    )
    contig_ids = [str(c) for c in root["contig_id"][:]]
    lengths = (
        [int(x) for x in root["contig_length"][:]]
        if "contig_length" in root
        else [None] * len(contig_ids)
    )
    raw = root["variant_allele"][:]
    alleles = tuple(tuple(str(a) for a in row if str(a) != "") for row in raw)
    return Genotypes(
        calls=calls,
        phased=phased,
        samples=tuple(str(s) for s in root["sample_id"][:]),
        chroms=tuple(contig_ids[int(i)] for i in root["variant_contig"][:]),
        positions=np.asarray(root["variant_position"][:], dtype=np.int64),
        alleles=alleles,
        contigs=tuple(zip(contig_ids, lengths, strict=True)),
    )


def from_vcf(data: bytes, *, name: str = "VCF") -> Genotypes:
    """The GT calls of a VCF (plain, gzip or BGZF bytes). Sites without GT are kept as missing
    calls."""
    return from_vcf_stream([data], name=name)


def from_vcf_stream(chunks: Iterable[bytes], *, name: str = "VCF") -> Genotypes:
    """The GT calls of a VCF given as chunks of its bytes (as decrypted from the archive): what
    tracing scores an archived VCF's deliveries on. The text is read a block at a time; only
    the call arrays (about 3 bytes a call) are held."""
    head, blocks = read_vcf(chunks, name=name)
    read = list(blocks)
    ploidy = max((block.ploidy for block in read), default=2)
    sites = sum(len(block) for block in read)
    calls = np.full((sites, len(head.samples), ploidy), -2, dtype=np.int8)
    phased = np.zeros((sites, len(head.samples)), dtype=np.bool_)
    positions = np.zeros(sites, dtype=np.int64)
    chroms: list[str] = []
    alleles: list[tuple[str, ...]] = []
    for block in read:
        rows = slice(block.first, block.first + len(block))
        width = min(ploidy, block.calls.shape[2])
        calls[rows, :, :width] = block.calls[:, :, :width]
        phased[rows] = block.phased
        positions[rows] = block.positions
        chroms.extend(block.chroms)
        alleles.extend(block.alleles)
    return Genotypes(
        calls=calls,
        phased=phased,
        samples=head.samples,
        chroms=tuple(chroms),
        positions=positions,
        alleles=tuple(alleles),
        contigs=head.contigs,
    )


def mark(genotypes: Genotypes, plan: Plan, bits: npt.NDArray[np.bool_]) -> Genotypes:
    """The recipient's copy: each position whose bit is 1 gains an ALT allele in its "up" cell
    and loses one in its "down" cell, on a haplotype chosen by the cell (so phasing is kept)."""
    calls = genotypes.calls.copy()
    on = np.flatnonzero(bits)
    mark_calls(calls, sites=plan.site[on], up=plan.up[on], down=plan.down[on], first=0)
    return Genotypes(
        calls=calls,
        phased=genotypes.phased,
        samples=genotypes.samples,
        chroms=genotypes.chroms,
        positions=genotypes.positions,
        alleles=genotypes.alleles,
        contigs=genotypes.contigs,
    )


def mark_calls(
    calls: Calls,
    *,
    sites: npt.NDArray[np.int64],
    up: npt.NDArray[np.int64],
    down: npt.NDArray[np.int64],
    first: int,
) -> None:
    """Apply, in place, the marks at `sites` (ascending, numbered in the whole file) that fall
    on the calls of sites `first`.. (as many as `calls` holds), as `mark` does."""
    lo, hi = np.searchsorted(sites, [first, first + calls.shape[0]])
    sites = sites[lo:hi]
    for cells, gain in ((up[lo:hi], True), (down[lo:hi], False)):
        current = calls[sites - first, cells, :2]
        target = 0 if gain else 1
        first_haplotype = current[:, 0] == target
        second_haplotype = current[:, 1] == target
        # both haplotypes could change: the parity of the cell picks one
        use_second = ~first_haplotype | (second_haplotype & ((sites + cells) % 2 == 1))
        haplotype = np.where(use_second, 1, 0)
        calls[sites - first, cells, haplotype] = 1 - target


def vcf_header(genotypes: Genotypes, *, source: str, extra: Sequence[str] = ()) -> bytes:
    """The header of an exported VCF."""
    return header_text(
        samples=genotypes.samples,
        contigs=genotypes.contigs or tuple((c, None) for c in dict.fromkeys(genotypes.chroms)),
        source=source,
        extra=extra,
    )


def header_text(
    *,
    samples: Sequence[str],
    contigs: Sequence[tuple[str, int | None]],
    source: str,
    extra: Sequence[str] = (),
) -> bytes:
    """The header of a VCF written here (GT only) naming `samples` and `contigs`."""
    lines = ["##fileformat=VCFv4.3", '##FILTER=<ID=PASS,Description="All filters passed">']
    lines.append(f"##source={source}")
    for name, length in contigs:
        lines.append(f"##contig=<ID={name}" + (f",length={length}>" if length else ">"))
    lines.append('##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">')
    lines.extend(extra)
    fixed = ("#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT")
    lines.append("\t".join((*fixed, *samples)))
    return ("\n".join(lines) + "\n").encode("utf-8")


def _cell_table() -> npt.NDArray[np.uint32]:
    """The 4 bytes of every diploid call "a|b\t" / "a/b\t" (a, b in -1..9), as uint32."""
    table = np.empty((11, 11, 2, 4), dtype=np.uint8)
    digits = np.array([_DOT, *range(_ZERO, _ZERO + 10)], dtype=np.uint8)
    table[:, :, :, 0] = digits[:, None, None]
    table[:, :, :, 1] = np.array([ord("/"), ord("|")], dtype=np.uint8)[None, None, :]
    table[:, :, :, 2] = digits[None, :, None]
    table[:, :, :, 3] = ord("\t")
    return table.reshape(-1, 4).view(np.uint32).reshape(-1)


_CELLS = _cell_table()


def _format_cells(calls: Calls, phased: npt.NDArray[np.bool_]) -> bytes | None:
    """The sample columns of a block of diploid single-digit calls as bytes (None when a call is
    haploid or has an allele index above 9: the slow path formats those)."""
    if calls.shape[2] != 2 or (calls < -1).any() or (calls > 9).any():
        return None
    index = (calls[:, :, 0].astype(np.int32) + 1) * 22 + (calls[:, :, 1].astype(np.int32) + 1) * 2
    cells = _CELLS[index + phased].view(np.uint8).reshape(calls.shape[0], calls.shape[1], 4)
    cells[:, -1, 3] = ord("\n")
    text: bytes = cells.tobytes()
    return text


def _slow_line(calls: Calls, phased: npt.NDArray[np.bool_]) -> str:
    fields = []
    for call, is_phased in zip(calls, phased, strict=True):
        alleles = ["." if a == -1 else str(int(a)) for a in call if a != -2]
        fields.append(("|" if is_phased else "/").join(alleles))
    return "\t".join(fields) + "\n"


class BgzfFile:
    """A bgzipped file being written at `BGZF_LEVEL` (`close` ends it with the EOF block)."""

    def __init__(self, path: Path, *, level: int = BGZF_LEVEL) -> None:
        self._file = path.open("wb")
        self._writer = BgzfWriter(self._file, level=level)

    def write(self, data: bytes) -> int:
        """Compress and write `data`."""
        return self._writer.write(data)

    def close(self) -> None:
        """Write the last blocks and close the file."""
        try:
            self._writer.close()
        finally:
            self._file.close()


def write_vcf(
    genotypes: Genotypes, sink: IO[bytes], *, source: str, extra: Sequence[str] = ()
) -> int:
    """Write `genotypes` as VCF text (GT only) to `sink`; the bytes written."""
    written = sink.write(vcf_header(genotypes, source=source, extra=extra)) or 0
    sites = len(genotypes.positions)
    for start in range(0, sites, BLOCK_SITES):
        stop = min(sites, start + BLOCK_SITES)
        records = vcf_records(
            chroms=genotypes.chroms[start:stop],
            positions=genotypes.positions[start:stop],
            alleles=genotypes.alleles[start:stop],
            calls=genotypes.calls[start:stop],
            phased=genotypes.phased[start:stop],
        )
        written += sink.write(b"".join(records)) or 0
    return written


def vcf_records(
    *,
    chroms: Sequence[str],
    positions: npt.NDArray[np.int64],
    alleles: Sequence[tuple[str, ...]],
    calls: Calls,
    phased: npt.NDArray[np.bool_],
) -> list[bytes]:
    """The VCF lines (GT only, each ending in a newline) of a block of sites."""
    cells = _format_cells(calls, phased)
    row_bytes = calls.shape[1] * 4
    records = []
    for j in range(len(chroms)):
        site_alleles = alleles[j]
        alts = ",".join(site_alleles[1:]) or "."
        fixed = (
            f"{chroms[j]}\t{positions[j]}\t.\t{site_alleles[0]}\t{alts}\t.\tPASS\t.\tGT\t"
        ).encode()
        if cells is not None:
            records.append(fixed + cells[j * row_bytes : (j + 1) * row_bytes])
        else:
            records.append(fixed + _slow_line(calls[j], phased[j]).encode())
    return records


# -- reading a leaked file -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LeakedMatrix:
    """What a leaked file holds: values[i, j] is the dosage (NaN: missing) of site `sites[i]`
    and sample `samples[j]`."""

    sites: list[str]
    samples: list[str]
    values: npt.NDArray[np.float64]
    format: str


def _open_text(path: Path) -> IO[str]:
    with path.open("rb") as probe:
        magic = probe.read(2)
    if magic == b"\x1f\x8b":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", errors="replace")
    return path.open("r", encoding="utf-8", errors="replace")


def _dosage_of(cell: str, cache: dict[str, float]) -> float:
    found = cache.get(cell)
    if found is not None:
        return found
    text = cell.split(":", 1)[0].strip()
    value: float
    if text in _NA:
        value = float("nan")
    elif "|" in text or "/" in text:
        alleles = text.replace("|", "/").split("/")
        if any(a in ("", ".") for a in alleles):
            value = float("nan")
        else:
            try:
                value = float(sum(1 for a in alleles if int(a) > 0))
            except ValueError:
                value = float("nan")
    else:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
    if len(cache) < 100_000:
        cache[cell] = value
    return value


def read_leak(path: Path) -> LeakedMatrix:
    """A leaked genotype file (VCF, VCF.gz, TSV, TSV.gz) as a matrix of dosages."""
    try:
        with _open_text(path) as handle:
            return _read(handle, path.name)
    except (OSError, EOFError, UnicodeError, gzip.BadGzipFile) as error:
        raise InvalidInputError(
            f"{path.name}: the file cannot be read ({error}).",
            message_zh=f"{path.name}：无法读取该文件。",
            details={"file": path.name},
        ) from error


def _read(handle: IO[str], name: str) -> LeakedMatrix:
    lines: Iterator[str] = iter(handle)
    header: list[str] | None = None
    kind = "tsv"
    for line in lines:
        if line.startswith("##"):
            kind = "vcf"
            continue
        if not line.strip():
            continue
        header = line.rstrip("\n").rstrip("\r").split("\t")
        break
    if header is None:
        raise _bad(name, "it holds no header line")
    if header[0] == "#CHROM":
        kind, first_sample = "vcf", 9
    else:
        lowered = [h.lower().lstrip("#") for h in header[:4]]
        if lowered[:4] != ["chrom", "pos", "ref", "alt"]:
            raise _bad(name, "the first columns must be CHROM POS REF ALT (TSV) or a VCF header")
        first_sample = 4
    samples = header[first_sample:]
    if not samples:
        raise _bad(name, "it has no sample columns")
    cache: dict[str, float] = {}
    sites: list[str] = []
    rows: list[list[float]] = []
    width = len(header)
    for number, line in enumerate(lines, start=2):
        fields = line.rstrip("\n").rstrip("\r").split("\t")
        if len(fields) < 2:
            continue
        if len(fields) != width:
            raise _bad(name, f"line {number} has {len(fields)} columns, not {width}")
        chrom, pos, ref, alt = (
            (fields[0], fields[1], fields[3], fields[4])
            if kind == "vcf"
            else (fields[0], fields[1], fields[2], fields[3])
        )
        sites.append(f"{chrom}:{pos}:{ref}:{alt}")
        rows.append([_dosage_of(cell, cache) for cell in fields[first_sample:]])
    values = np.asarray(rows, dtype=np.float64).reshape(len(rows), len(samples))
    return LeakedMatrix(sites=sites, samples=samples, values=values, format=kind)


_bad = bad_vcf


def write_tsv(matrix: LeakedMatrix, sink: BinaryIO) -> None:
    """A matrix as a TSV of dosages (what a leaker converting a VCF might write)."""
    sink.write(("\t".join(["CHROM", "POS", "REF", "ALT", *matrix.samples]) + "\n").encode())
    for key, row in zip(matrix.sites, matrix.values, strict=True):
        chrom, pos, ref, alt = key.split(":", 3)
        cells = ["NA" if not np.isfinite(v) else f"{v:g}" for v in row]
        sink.write(("\t".join([chrom, pos, ref, alt, *cells]) + "\n").encode())
