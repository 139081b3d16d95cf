"""Streaming, deterministic VCF writing for the demo: bgzipped, tabix-indexed, chunk by chunk.

Genotypes are decoded site by site from the tree sequence and formatted a block of sites at a
time with numpy, so memory stays bounded however many samples there are.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from genecommons.demo.simulate import ASSEMBLY, CHROM_LENGTH, Simulation

logger = logging.getLogger(__name__)

NUCLEOTIDES = frozenset("ACGT")
_CELLS_PER_BLOCK = 1 << 24  # genotype cells (sites x haplotypes) held at once
_ZERO = ord("0")


@dataclass(frozen=True, slots=True)
class Sites:
    """The sites written to every VCF of one simulation, in order."""

    site_ids: np.ndarray  # tskit site ids
    positions: np.ndarray  # VCF POS (1-based, GRCh38)
    refs: tuple[str, ...]
    alts: tuple[str, ...]
    cohort_alt_counts: np.ndarray  # ALT alleles among the cohort's haplotypes

    def __len__(self) -> int:
        return len(self.site_ids)


def header(samples: Sequence[str] | None, *, chrom: str, source: str) -> bytes:
    """The VCF header: meta lines and the column line naming `samples` (None: a sites-only
    VCF, no FORMAT and no sample columns)."""
    lines = [
        "##fileformat=VCFv4.3",
        '##FILTER=<ID=PASS,Description="All filters passed">',
        f"##source={source}",
        f"##reference={ASSEMBLY}",
        f'##contig=<ID={chrom},length={CHROM_LENGTH},assembly={ASSEMBLY},species="Homo sapiens">',
        '##INFO=<ID=AC,Number=A,Type=Integer,Description="Allele count in genotypes">',
        '##INFO=<ID=AN,Number=1,Type=Integer,Description="Total number of alleles in called '
        'genotypes">',
        '##INFO=<ID=AF,Number=A,Type=Float,Description="Allele frequency">',
    ]
    columns = ["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO"]
    if samples is not None:
        lines.append('##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">')
        columns += ["FORMAT", *samples]
    lines.append("\t".join(columns))
    return ("\n".join(lines) + "\n").encode()


def format_sites(
    genotypes: np.ndarray,
    chrom: str,
    positions: Sequence[int],
    refs: Sequence[str],
    alts: Sequence[str],
) -> bytes:
    """Sites-only VCF lines (INFO AC, AN, AF) for the sites of a block that these haplotypes
    carry; `genotypes` is (sites, haplotypes) of 0/1."""
    haplotypes = genotypes.shape[1]
    counts = genotypes.sum(axis=1, dtype=np.int64)
    out = []
    for j in (int(j) for j in np.flatnonzero(counts)):
        count = int(counts[j])
        info = f"AC={count};AN={haplotypes};AF={count / haplotypes:.6g}"
        out.append(f"{chrom}\t{positions[j]}\t.\t{refs[j]}\t{alts[j]}\t.\tPASS\t{info}\n")
    return "".join(out).encode()


def format_block(
    genotypes: np.ndarray,
    chrom: str,
    positions: Sequence[int],
    refs: Sequence[str],
    alts: Sequence[str],
) -> bytes:
    """VCF lines for a block of biallelic sites; `genotypes` is (sites, 2 * samples) of 0/1."""
    sites, haplotypes = genotypes.shape
    calls = genotypes.reshape(sites, haplotypes // 2, 2)
    cells = np.empty((sites, haplotypes // 2, 4), dtype=np.uint8)
    cells[:, :, 0] = calls[:, :, 0] + _ZERO
    cells[:, :, 1] = ord("|")
    cells[:, :, 2] = calls[:, :, 1] + _ZERO
    cells[:, :, 3] = ord("\t")
    cells[:, -1, 3] = ord("\n")
    counts = genotypes.sum(axis=1, dtype=np.int64)
    out = []
    for j in range(sites):
        count = int(counts[j])
        info = f"AC={count};AN={haplotypes};AF={count / haplotypes:.6g}"
        out.append(
            f"{chrom}\t{positions[j]}\t.\t{refs[j]}\t{alts[j]}\t.\tPASS\t{info}\tGT\t".encode()
        )
        out.append(cells[j].tobytes())
    return b"".join(out)


def write_vcfs(
    simulation: Simulation,
    outputs: Sequence[tuple[Path, Sequence[str], np.ndarray]],
    *,
    source: str,
    sites_only: Sequence[tuple[Path, np.ndarray]] = (),
    progress: Callable[[float], None] | None = None,
) -> Sites:
    """Write one bgzipped, indexed VCF per (path, sample names, sample nodes) over the same sites.

    The first output is the cohort: its ALT counts are returned with the sites. A site is written
    if it is biallelic with nucleotide alleles and polymorphic among all the samples written.
    Each of `sites_only` (path, sample nodes among those of `outputs`) is a bgzipped, indexed
    sites-only VCF of the AC and AN of those nodes, at the written sites they carry (as a public
    frequency file such as gnomAD's lists the variants seen in its people).
    """
    ts = simulation.ts
    region = simulation.region
    nodes = np.concatenate([group for _, _, group in outputs]).astype(np.int32)
    bounds = np.cumsum([0, *(len(group) for _, _, group in outputs)])
    total = int(bounds[-1])
    block = max(1, min(4096, _CELLS_PER_BLOCK // max(total, 1)))
    buffer = np.empty((block, total), dtype=np.uint8)
    column = {int(node): j for j, node in enumerate(nodes)}
    summary_columns = [np.asarray([column[int(n)] for n in group]) for _, group in sites_only]
    kept_ids: list[int] = []
    kept_positions: list[int] = []
    refs: list[str] = []
    alts: list[str] = []
    cohort_counts: list[int] = []
    files: list[Any] = []
    import pysam  # htslib: only when the demo writes its files

    try:
        for path, samples, _ in outputs:
            handle = pysam.BGZFile(str(path), "wb", index=None)
            files.append(handle)
            handle.write(header(samples, chrom=region.chrom, source=source))
        summaries = []
        for path, _ in sites_only:
            handle = pysam.BGZFile(str(path), "wb", index=None)
            files.append(handle)
            summaries.append(handle)
            handle.write(header(None, chrom=region.chrom, source=source))
        filled = 0
        block_positions: list[int] = []
        block_refs: list[str] = []
        block_alts: list[str] = []

        def flush() -> None:
            for handle, columns in zip(summaries, summary_columns, strict=True):
                handle.write(
                    format_sites(
                        buffer[:filled, columns],
                        region.chrom,
                        block_positions,
                        block_refs,
                        block_alts,
                    )
                )
            for k, handle in enumerate(files[: len(outputs)]):
                lo, hi = int(bounds[k]), int(bounds[k + 1])
                handle.write(
                    format_block(
                        buffer[:filled, lo:hi],
                        region.chrom,
                        block_positions,
                        block_refs,
                        block_alts,
                    )
                )
            cohort_counts.extend(
                int(c) for c in buffer[:filled, bounds[0] : bounds[1]].sum(axis=1, dtype=np.int64)
            )
            block_positions.clear()
            block_refs.clear()
            block_alts.clear()

        step = max(1, ts.num_sites // 200)
        for variant in ts.variants(samples=nodes):
            site = variant.site
            if progress is not None and site.id % step == 0:
                progress(site.id / max(ts.num_sites, 1))
            alleles = variant.alleles
            if len(alleles) != 2 or alleles[0] not in NUCLEOTIDES or alleles[1] not in NUCLEOTIDES:
                continue
            genotypes = variant.genotypes
            count = int(np.count_nonzero(genotypes))
            if count == 0 or count == total:
                continue
            buffer[filled] = genotypes
            position = region.start + int(site.position) + 1
            kept_ids.append(site.id)
            kept_positions.append(position)
            refs.append(alleles[0])
            alts.append(alleles[1])
            block_positions.append(position)
            block_refs.append(alleles[0])
            block_alts.append(alleles[1])
            filled += 1
            if filled == block:
                flush()
                filled = 0
        if filled:
            flush()
    finally:
        for handle in files:
            handle.close()
    for path in [path for path, _, _ in outputs] + [path for path, _ in sites_only]:
        pysam.tabix_index(str(path), preset="vcf", force=True)
    if progress is not None:
        progress(1.0)
    logger.info("wrote %d sites to %d VCFs", len(kept_ids), len(outputs) + len(sites_only))
    return Sites(
        site_ids=np.asarray(kept_ids, dtype=np.int64),
        positions=np.asarray(kept_positions, dtype=np.int64),
        refs=tuple(refs),
        alts=tuple(alts),
        cohort_alt_counts=np.asarray(cohort_counts, dtype=np.int64),
    )
