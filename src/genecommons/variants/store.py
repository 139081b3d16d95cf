"""The variant store of one dataset: its joint-called VCF as VCF Zarr (bio2zarr), the genotype
store for analysis, and a sites index of normalised variants with allele counts by group
(all samples, each population, each sex, each population and sex) for fast lookup.

The sites index is an SQLite file in the store (`sites.sqlite`): one row per normalised
variant, found through a B-tree on (chrom, pos), its counts a packed int32 array (AC, AN,
homozygotes, hemizygotes by group) read in one step. (Why SQLite and not DuckDB over Parquet:
a point lookup is a B-tree descent here, while a columnar scan reads a whole row group;
`benchmarks/variant_sites.py` measures the two side by side.)

A store is built in a hidden directory beside its destination and renamed into place only when
complete: a VCF that fails half way leaves nothing behind.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from genecommons.errors import ConflictError, InvalidInputError
from genecommons.variants.counts import count_block, membership
from genecommons.variants.normalize import Variant, normalize

logger = logging.getLogger(__name__)

ZARR = "calls.vcz"
SITES = "sites.sqlite"
ALL = "all"
COUNT_FIELDS = ("ac", "an", "hom", "hemi")
Progress = Callable[[int], None]
# the sites index: one row per normalised variant, its counts packed as int32 (field, group)
SITES_SCHEMA = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE sites (chrom TEXT NOT NULL, pos INTEGER NOT NULL, end INTEGER NOT "
    "NULL, ref TEXT NOT NULL, alt TEXT NOT NULL, record INTEGER NOT NULL, allele "
    "INTEGER NOT NULL, counts BLOB NOT NULL);"
)
SITES_INDEX = "CREATE INDEX sites_locus ON sites (chrom, pos)"


@dataclass(frozen=True, slots=True)
class SampleInfo:
    """What the catalog says of a sample for grouping: its population and sex (either may be
    unknown)."""

    population: str | None = None
    sex: str | None = None


@dataclass(frozen=True, slots=True)
class SiteCounts:
    """A normalised variant and its counts by group."""

    variant: Variant
    counts: dict[str, dict[str, int]]  # group -> {"ac", "an", "hom", "hemi"}

    def frequency(self, group: str = ALL) -> float | None:
        """AF in `group` (None where no allele was called)."""
        cell = self.counts.get(group)
        if not cell or not cell["an"]:
            return None
        return cell["ac"] / cell["an"]


@dataclass(frozen=True, slots=True)
class StoreSummary:
    """What a build produced."""

    path: Path
    samples: int
    records: int
    sites: int
    groups: tuple[str, ...]


def group_names(samples: Mapping[str, SampleInfo]) -> tuple[str, ...]:
    """The groups a store tabulates: all, each population, each sex, each population x sex."""
    populations = sorted({s.population for s in samples.values() if s.population})
    sexes = sorted({s.sex for s in samples.values() if s.sex})
    crossed = [f"{p}:{s}" for p in populations for s in sexes]
    return (ALL, *populations, *sexes, *crossed)


def _members(
    sample_ids: Sequence[str], samples: Mapping[str, SampleInfo], groups: Sequence[str]
) -> npt.NDArray[np.int32]:
    infos = [samples.get(s, SampleInfo()) for s in sample_ids]
    matrix = membership([i.population for i in infos], groups)
    matrix |= membership([i.sex for i in infos], groups)
    matrix |= membership(
        [f"{i.population}:{i.sex}" if i.population and i.sex else None for i in infos], groups
    )
    matrix[:, groups.index(ALL)] = 1
    return matrix


def build_store(
    vcf: Path,
    destination: Path,
    *,
    samples: Mapping[str, SampleInfo],
    progress: Progress | None = None,
) -> StoreSummary:
    """Build the store of `vcf` (bgzipped and indexed, with genotypes) at `destination`, which
    must not exist yet; nothing is left behind on failure."""
    if destination.exists():
        raise ConflictError(
            f"A variant store already exists at {destination}; remove it to rebuild.",
            message_zh=f"{destination} 已有变异库；如需重建请先删除。",
        )
    destination.parent.mkdir(parents=True, exist_ok=True)
    building = destination.parent / f".{destination.name}.building-{uuid.uuid4().hex}"
    building.mkdir()
    try:
        _convert(vcf, building / ZARR)
        summary = _index(building, samples, progress)
        os.rename(building, destination)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return StoreSummary(destination, *summary)


def _convert(vcf: Path, target: Path) -> None:
    from bio2zarr import vcf as vcf2zarr

    try:
        vcf2zarr.convert([str(vcf)], str(target), worker_processes=0)
    except Exception as error:  # cyvcf2 raises a bare Exception on a damaged record
        raise InvalidInputError(
            f"{vcf.name}: the VCF cannot be converted to VCF Zarr ({error}). Check that it is "
            "bgzipped, indexed and complete (bcftools view should read it to the end).",
            message_zh=f"{vcf.name}：无法转换为 VCF Zarr。请确认文件经 bgzip 压缩、已建索引且完整。",
            details={"file": vcf.name},
        ) from error


def _index(
    root_dir: Path, samples: Mapping[str, SampleInfo], progress: Progress | None
) -> tuple[int, int, int, tuple[str, ...]]:
    import zarr

    root: Any = zarr.open_group(str(root_dir / ZARR), mode="r")  # zarr's types are loose
    if "call_genotype" not in root:
        raise InvalidInputError(
            "The VCF has no genotypes (GT): a variant store needs joint-called genotypes.",
            message_zh="该 VCF 没有基因型（GT）：变异库需要联合分型的基因型。",
        )
    sample_ids = [str(s) for s in root["sample_id"][:]]
    groups = group_names({s: samples[s] for s in sample_ids if s in samples})
    members = _members(sample_ids, samples, groups)
    contigs = [str(c) for c in root["contig_id"][:]]
    genotypes = root["call_genotype"]
    alleles = root["variant_allele"]
    step = genotypes.chunks[0]
    records = genotypes.shape[0]
    connection = sqlite3.connect(root_dir / SITES)
    sites = 0
    longest = 0
    try:
        connection.executescript(SITES_SCHEMA)
        for start in range(0, records, step):
            block = slice(start, min(start + step, records))
            block_alleles = alleles[block]
            counts = count_block(
                genotypes[block],
                n_alleles=block_alleles.shape[1],
                members=members,
                groups=groups,
            )
            rows = []
            contig_ids = root["variant_contig"][block]
            positions = root["variant_position"][block]
            for v in range(len(positions)):
                ref, *alts = (str(a) for a in block_alleles[v])
                chrom = contigs[int(contig_ids[v])]
                for allele, variant in normalize(chrom, int(positions[v]), ref, alts):
                    packed = np.stack(
                        [
                            counts.ac[v, allele],
                            counts.an[v],
                            counts.hom[v, allele],
                            counts.hemi[v, allele],
                        ]
                    ).astype("<i4")
                    rows.append(
                        (
                            variant.chrom,
                            variant.pos,
                            variant.end,
                            variant.ref,
                            variant.alt,
                            start + v,
                            allele,
                            packed.tobytes(),
                        )
                    )
                    longest = max(longest, variant.end - variant.pos)
            connection.executemany("INSERT INTO sites VALUES (?,?,?,?,?,?,?,?)", rows)
            sites += len(rows)
            if progress:
                progress(len(positions))
        connection.execute(SITES_INDEX)
        meta = {
            "groups": json.dumps(list(groups)),
            "samples": str(len(sample_ids)),
            "records": str(records),
            "longest": str(longest),
        }
        connection.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
        connection.commit()
    finally:
        connection.close()
    return len(sample_ids), records, sites, groups


class VariantStore:
    """Lookups in a built store (read only; safe to share between threads)."""

    def __init__(self, path: Path) -> None:
        sites = path / SITES
        if not sites.exists():
            raise InvalidInputError(
                f"No variant store at {path}.", message_zh=f"{path} 处没有变异库。"
            )
        self.path = path
        self._uri = f"file:{sites}?mode=ro&immutable=1"
        self._local = threading.local()
        with self._connect() as connection:
            meta = dict(connection.execute("SELECT key, value FROM meta").fetchall())
        self.groups: tuple[str, ...] = tuple(json.loads(meta["groups"]))
        self.samples = int(meta["samples"])
        self._longest = int(meta["longest"])

    @functools.cached_property
    def _zarr(self) -> Any:
        import zarr

        return zarr.open_group(str(self.path / ZARR), mode="r")  # zarr's types are loose

    @functools.cached_property
    def sample_ids(self) -> tuple[str, ...]:
        """The samples of the genotype store, in its order (as the VCF named them)."""
        return tuple(str(s) for s in self._zarr["sample_id"][:])

    @functools.cached_property
    def contigs(self) -> tuple[str, ...]:
        """The contig names of the store, as the VCF wrote them."""
        return tuple(str(c) for c in self._zarr["contig_id"][:])

    def alleles(self, variants: Sequence[Variant]) -> list[tuple[int, int]]:
        """For each stored variant, its record in the genotype store and its allele index."""
        found: list[tuple[int, int]] = []
        with self._connect() as connection:
            for variant in variants:
                row = connection.execute(
                    "SELECT record, allele FROM sites WHERE chrom = ? AND pos = ? AND ref = ? "
                    "AND alt = ?",
                    (variant.chrom, variant.pos, variant.ref, variant.alt),
                ).fetchone()
                if row is None:
                    raise KeyError(variant.key)
                found.append((int(row[0]), int(row[1])))
        return found

    def genotypes(self, records: Sequence[int]) -> npt.NDArray[np.integer]:
        """The calls of `records`: an array (len(records), samples, ploidy), read as one slice
        of the genotype store from the first to the last record asked for."""
        if not records:
            return np.zeros((0, len(self.sample_ids), 2), dtype=np.int8)
        low, high = min(records), max(records)
        block = np.asarray(self._zarr["call_genotype"][low : high + 1])
        return block[[r - low for r in records]]

    def _connect(self) -> sqlite3.Connection:
        # one connection per thread, kept: opening one (and reading the schema again) cost a
        # point lookup ~50 times the query itself; the file is immutable, so a kept connection
        # never reads stale data (a rebuilt store is a new file, opened as a new VariantStore)
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(self._uri, uri=True, check_same_thread=False)
            self._local.connection = connection
        return connection

    def _counts(self, row: Any) -> SiteCounts:
        chrom, pos, _end, ref, alt, packed = row
        table = np.frombuffer(packed, dtype="<i4").reshape(len(COUNT_FIELDS), len(self.groups))
        counts = {
            group: {field: int(table[i, g]) for i, field in enumerate(COUNT_FIELDS)}
            for g, group in enumerate(self.groups)
        }
        return SiteCounts(Variant(chrom, pos, ref, alt), counts)

    def lookup(self, variant: Variant) -> SiteCounts | None:
        """The counts of a normalised variant, or None when the dataset does not hold it."""
        with self._connect() as connection:
            row = connection.execute(
                "SELECT chrom, pos, end, ref, alt, counts FROM sites "
                "WHERE chrom = ? AND pos = ? AND ref = ? AND alt = ?",
                (variant.chrom, variant.pos, variant.ref, variant.alt),
            ).fetchone()
        return self._counts(row) if row else None

    def all_sites(self, *, batch: int = 10_000) -> Iterator[SiteCounts]:
        """Every variant of the store with its counts, in the order they were indexed."""
        connection = sqlite3.connect(self._uri, uri=True, check_same_thread=False)
        try:
            rows = connection.execute(
                "SELECT chrom, pos, end, ref, alt, counts FROM sites ORDER BY rowid"
            )
            while chunk := rows.fetchmany(batch):
                for row in chunk:
                    yield self._counts(row)
        finally:
            connection.close()

    def overlapping(
        self, chrom: str, start: int, end: int, *, limit: int = 1000
    ) -> Iterator[SiteCounts]:
        """Variants overlapping the 1-based closed interval [start, end], by position."""
        with self._connect() as connection:
            rows = connection.execute(
                "SELECT chrom, pos, end, ref, alt, counts FROM sites "
                "WHERE chrom = ? AND pos BETWEEN ? AND ? AND end >= ? ORDER BY pos, ref, alt "
                "LIMIT ?",
                (chrom, start - self._longest, end, start, limit),
            ).fetchall()
        for row in rows:
            yield self._counts(row)
