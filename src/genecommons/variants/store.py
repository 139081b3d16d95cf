"""The variant store of one dataset: its joint-called VCF as VCF Zarr (bio2zarr's layout), the
genotype store for analysis, and a sites index of normalised variants with allele counts by group
(all samples, each population, each sex, each population and sex) for fast lookup.

Both are encrypted at rest under the store's own data key, which the node key store seals to the
store's identity (dataset and store id) in the store's manifest (`store.json`): the genotype
store through `sealed_store.SealedStore` (every chunk and every metadata document sealed with its key
path), the sites index as an SQLCipher database (every page encrypted and authenticated).
Removing a store's manifest shreds it. The sites index is encrypted too because its groups can
be small (a population and sex with one person holds that person's genotypes) and its list of
rare variants is what the Beacon's defence withholds.

A store is bound to its dataset and source: the binding (store id, dataset accession, SHA-256 of
the VCF) is recorded with the catalog by the service and sealed inside the store (the Zarr root
attributes and the sites index's meta); opening a store with the binding the catalog holds
checks that all agree, so a leftover or a foreign store is refused rather than served.

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
import struct
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from genecommons.errors import ConflictError, StorageFullError
from genecommons.secrets import NodeKeys, private_directory
from genecommons.variants.counts import count_block, membership
from genecommons.variants.manifest import (
    StoreBinding,
    connect_sites,
    read_manifest,
    write_manifest,
)
from genecommons.variants.normalize import Variant, normalize
from genecommons.variants.sealed import KEY_BYTES, StoreIntegrityError, ValueSealer, derive_key
from genecommons.variants.upkeep import BUILDING, Lease
from genecommons.variants.vcz import FULL, Block, encode_vcf

logger = logging.getLogger(__name__)

ZARR = "calls.vcz"
SITES = "sites.sqlite"
ALL = "all"
# a store takes about as much space as its bgzipped VCF (genotypes compress alike, the sites
# index adds a fraction); twice that is asked for when the disk turns out to be full
SPACE_PER_VCF_BYTE = 2
COUNT_FIELDS = ("ac", "an", "hom", "hemi")  # (VariantStore._counts writes them out in this order)
Progress = Callable[[int], None]
# the sites index: one row per normalised variant, its counts packed as int32 (field, group)
SITES_SCHEMA = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE sites (chrom TEXT NOT NULL, pos INTEGER NOT NULL, end INTEGER NOT "
    "NULL, ref TEXT NOT NULL, alt TEXT NOT NULL, record INTEGER NOT NULL, allele "
    "INTEGER NOT NULL, counts BLOB NOT NULL);"
)
SITES_INDEX = "CREATE INDEX sites_locus ON sites (chrom, pos)"


def open_sealed_group(
    path: Path, *, sealer: ValueSealer, mode: Literal["r", "w-", "r+"] = "r"
) -> Any:  # zarr's group type is loose
    """The Zarr group at `path` through its sealed store (`sealed_store.open_group`); zarr is
    imported here, on first use, not with the app (every worker imports the app before it
    answers)."""
    from genecommons.variants import sealed_store

    return sealed_store.open_group(path, sealer=sealer, mode=mode)


@dataclass(frozen=True, slots=True)
class SampleInfo:
    """What the catalog says of a sample for grouping: its population and sex (either may be
    unknown)."""

    population: str | None = None
    sex: str | None = None


class GroupCounts(Mapping[str, dict[str, int]]):
    """A site's counts by group as the sites index packs them (int32, field by field, each for
    every group, in the order of `columns`), each group's cell made when it is first read: a
    range query reaches hundreds of sites, and most answers read one group of each."""

    __slots__ = ("_cells", "_columns", "_values")

    def __init__(self, values: Sequence[int], columns: Mapping[str, int]) -> None:
        self._values = values
        self._columns = columns  # group -> its column, shared by the sites of a store
        self._cells: dict[str, dict[str, int]] = {}

    def __getitem__(self, group: str) -> dict[str, int]:
        cell = self._cells.get(group)
        if cell is None:
            i, n, values = self._columns[group], len(self._columns), self._values
            cell = {  # COUNT_FIELDS
                "ac": values[i],
                "an": values[n + i],
                "hom": values[2 * n + i],
                "hemi": values[3 * n + i],
            }
            self._cells[group] = cell
        return cell

    def get(self, group: str, default: Any = None) -> Any:  # without Mapping's KeyError
        """The cell of `group`, or `default` when the store does not tabulate it."""
        return self[group] if group in self._columns else default

    def __contains__(self, group: object) -> bool:
        return group in self._columns

    def __iter__(self) -> Iterator[str]:
        return iter(self._columns)

    def __len__(self) -> int:
        return len(self._columns)

    def __repr__(self) -> str:
        return repr(dict(self))


@dataclass(frozen=True, slots=True)
class SiteCounts:
    """A normalised variant and its counts by group."""

    variant: Variant
    counts: Mapping[str, dict[str, int]]  # group -> {"ac", "an", "hom", "hemi"}

    def frequency(self, group: str = ALL) -> float | None:
        """AF in `group` (None where no allele was called)."""
        cell = self.counts.get(group)
        if not cell or not cell["an"]:
            return None
        return cell["ac"] / cell["an"]


@dataclass(frozen=True, slots=True)
class StoreSummary:
    """What a build produced; `lease` is held until the caller releases it."""

    path: Path
    samples: int
    records: int
    sites: int
    groups: tuple[str, ...]
    binding: StoreBinding
    lease: Lease = field(compare=False, repr=False)


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


def building_path(destination: Path) -> Path:
    """A new hidden directory beside `destination` where its store is built."""
    return destination.parent / f".{destination.name}{BUILDING}{uuid.uuid4().hex}"


def calls_sealer(data_key: bytes, binding: StoreBinding) -> ValueSealer:
    return ValueSealer(derive_key(data_key, "calls"), context=binding.context)


def build_store(
    vcf: Path,
    destination: Path,
    *,
    samples: Mapping[str, SampleInfo],
    keys: NodeKeys,
    binding: StoreBinding,
    progress: Progress | None = None,
    into_place: bool = True,
) -> StoreSummary:
    """Build the store of `vcf` (bgzipped, with genotypes; a path or /dev/fd/N) at
    `destination`, which must not exist yet, bound to `binding` and sealed under a new data key
    that `keys` seals in turn; nothing is left behind on failure. Unless `into_place`, the store
    is left in its hidden directory beside `destination` (`summary.path`) for the caller to
    move. The store stays leased (see `upkeep.Lease`) until the caller releases
    `summary.lease`, once its binding is committed."""
    if into_place and destination.exists():
        raise ConflictError(
            f"A variant store already exists at {destination}; remove it to rebuild.",
            message_zh=f"{destination} 已有变异库；如需重建请先删除。",
        )
    building = building_path(destination)
    try:
        private_directory(destination.parent)
        building.mkdir(mode=0o700)
    except OSError as error:
        if error.errno in FULL:
            raise _full(vcf, destination) from error
        raise
    lease = Lease.take(building)
    assert lease is not None  # a directory this process has just made
    try:
        data_key = os.urandom(KEY_BYTES)
        write_manifest(building, binding=binding, data_key=data_key, keys=keys)
        root = open_sealed_group(building / ZARR, sealer=calls_sealer(data_key, binding), mode="w-")
        with SitesWriter(
            building / SITES,
            key=derive_key(data_key, "sites"),
            samples=samples,
            binding=binding,
            progress=progress,
        ) as sites:
            encoded = encode_vcf(
                str(vcf),
                root,
                name=binding.source_name or Path(vcf).name,
                attrs={"genecommons": binding.attrs()},
                on_block=sites.add,
            )
            counted = sites.finish(encoded.samples, encoded.records)
        if into_place:
            os.rename(building, destination)
    except BaseException as error:
        shutil.rmtree(building, ignore_errors=True)
        lease.release()
        if _is_full(error):
            raise _full(vcf, destination) from error
        raise
    path = destination if into_place else building
    return StoreSummary(path, *counted, binding=binding, lease=lease)


def _is_full(error: BaseException) -> bool:
    if isinstance(error, OSError):
        return error.errno in FULL
    return getattr(error, "sqlite_errorname", None) == "SQLITE_FULL"  # SQLCipher's disk full


def _full(vcf: Path, destination: Path) -> StorageFullError:
    """The disk holding the stores is full: say so, with the space it has and the space a
    store of `vcf` needs (rather than blame the VCF)."""
    try:
        free = shutil.disk_usage(destination.parent).free
    except OSError:
        free = 0
    try:
        needed = Path(vcf).stat().st_size * SPACE_PER_VCF_BYTE
    except OSError:
        needed = 0
    return StorageFullError(
        f"The disk holding the variant stores ({destination.parent}) is full: it has "
        f"{_size(free)} free, while the store of {destination.name} from {Path(vcf).name} "
        "needs about "
        f"{_size(needed)}. Free or add space there, then build it again (submit again, or "
        "`genecommons variants build`); nothing of this store was kept.",
        message_zh=f"变异库所在磁盘（{destination.parent}）已满：剩余 {_size(free)}，而由 "
        f"{Path(vcf).name} 建立 {destination.name} 的变异库约需 {_size(needed)}。请释放或增加"
        "空间后重新建库（重新提交或运行 `genecommons variants build`）；本次未保留任何内容。",
        details={
            "store": destination.name,
            "directory": str(destination.parent),
            "free_bytes": free,
            "needed_bytes": needed,
        },
    )


def _size(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024:
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:,.1f} TB"


class SitesWriter:
    """Counts each block of calls by group as the genotype store is written, into the sites
    index (an SQLCipher file under the store's sites key)."""

    def __init__(
        self,
        path: Path,
        *,
        key: bytes,
        samples: Mapping[str, SampleInfo],
        binding: StoreBinding,
        progress: Progress | None,
    ) -> None:
        self.samples = samples
        self.binding = binding
        self.progress = progress
        self.connection = connect_sites(path, key=key, read_only=False)
        self.connection.executescript(SITES_SCHEMA)
        self.groups: tuple[str, ...] = ()
        self.members: npt.NDArray[np.int32] | None = None
        self.sites = 0
        self.longest = 0

    def __enter__(self) -> SitesWriter:
        return self

    def __exit__(self, *_: object) -> None:
        self.connection.close()

    def _start(self, sample_ids: Sequence[str]) -> npt.NDArray[np.int32]:
        if self.members is None:
            known = {s: self.samples[s] for s in sample_ids if s in self.samples}
            self.groups = group_names(known)
            self.members = _members(sample_ids, self.samples, self.groups)
        return self.members

    def add(self, block: Block) -> None:
        """Count and index one block of records."""
        members = self._start(block.samples)
        counts = count_block(
            block.genotypes,
            n_alleles=max(len(a) for a in block.alleles),
            members=members,
            groups=self.groups,
        )
        rows = []
        for v, alleles in enumerate(block.alleles):
            ref, *alts = alleles
            chrom = block.contigs[int(block.contig[v])]
            for allele, variant in normalize(chrom, int(block.position[v]), ref, alts):
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
                        block.start + v,
                        allele,
                        packed.tobytes(),
                    )
                )
                self.longest = max(self.longest, variant.end - variant.pos)
        self.connection.executemany("INSERT INTO sites VALUES (?,?,?,?,?,?,?,?)", rows)
        self.sites += len(rows)
        if self.progress:
            self.progress(len(block.alleles))

    def finish(
        self, sample_ids: Sequence[str], records: int
    ) -> tuple[int, int, int, tuple[str, ...]]:
        """Index the sites and write what the store is; (samples, records, sites, groups)."""
        self._start(sample_ids)
        self.connection.execute(SITES_INDEX)
        meta = {
            "groups": json.dumps(list(self.groups)),
            "samples": str(len(sample_ids)),
            "records": str(records),
            "longest": str(self.longest),
            "binding": json.dumps(self.binding.attrs(), sort_keys=True),
        }
        self.connection.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
        self.connection.commit()
        return len(sample_ids), records, self.sites, self.groups


class VariantStore:
    """Lookups in a built store (read only; safe to share between threads). Opened with the
    binding the catalog holds, a store that does not carry that binding is refused."""

    def __init__(self, path: Path, *, keys: NodeKeys, binding: StoreBinding | None = None) -> None:
        store_id, dataset, data_key = read_manifest(path, keys=keys)
        if binding is not None and (store_id, dataset) != (binding.store_id, binding.dataset):
            raise _foreign(path, binding, f"store {store_id} of {dataset}")
        self.path = path
        self._data_key = data_key
        self._local = threading.local()
        self._uri_path = path / SITES
        self._sites_key = derive_key(data_key, "sites")
        with self._connect() as connection:
            meta = dict(connection.execute("SELECT key, value FROM meta").fetchall())
        try:
            self.binding = StoreBinding.from_attrs(json.loads(meta["binding"]))
        except (KeyError, ValueError, TypeError) as error:
            raise _foreign(path, binding, "no binding in its sites index") from error
        if (self.binding.store_id, self.binding.dataset) != (store_id, dataset) or (
            binding is not None and self.binding != binding
        ):
            raise _foreign(path, binding, f"sites index of {self.binding.context}")
        self.groups: tuple[str, ...] = tuple(json.loads(meta["groups"]))
        self.samples = int(meta["samples"])
        self._longest = int(meta["longest"])
        # a site's counts as packed: int32, little-endian, field by field, each for every group
        self._unpack = struct.Struct(f"<{len(COUNT_FIELDS) * len(self.groups)}i").unpack
        self._columns = {group: i for i, group in enumerate(self.groups)}

    def __repr__(self) -> str:
        return f"VariantStore({self.path}, {self.binding.context})"

    @functools.cached_property
    def _zarr(self) -> Any:
        return self.calls()

    def calls(self) -> Any:  # zarr's group type is loose
        """The genotype store as a Zarr group (bio2zarr's layout), opened through its sealed
        store; StoreIntegrityError when its sealed attributes name another binding."""
        root = open_sealed_group(
            self.path / ZARR, sealer=calls_sealer(self._data_key, self.binding)
        )
        try:
            inside = StoreBinding.from_attrs(dict(root.attrs)["genecommons"])
        except (KeyError, TypeError) as error:
            raise _foreign(self.path, self.binding, "no binding in its genotypes") from error
        if inside != self.binding:
            raise _foreign(self.path, self.binding, f"genotypes of {inside.context}")
        return root

    def authenticate(self) -> None:
        """Open every sealed value of the genotype store and check every page of the sites
        index; StoreIntegrityError at the first that fails."""
        sealer = calls_sealer(self._data_key, self.binding)
        calls = self.path / ZARR
        for folder, _, files in os.walk(calls):
            for name in sorted(files):
                value = Path(folder) / name
                sealer.open(value.relative_to(calls).as_posix(), value.read_bytes())
        connection = connect_sites(self.path / SITES, key=self._sites_key, read_only=True)
        try:
            problems = [
                str(row[0])
                for pragma in ("cipher_integrity_check", "quick_check")
                for row in connection.execute(f"PRAGMA {pragma}").fetchall()
                if str(row[0]) != "ok"
            ]
        finally:
            connection.close()
        if problems:
            raise StoreIntegrityError(
                f"The sites index of {self.path} fails its integrity check: {problems[0]}",
                message_zh=f"{self.path} 的位点索引未通过完整性检查。",
                details={"store": str(self.path), "problems": problems[:10]},
            )

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

    def _connect(self) -> Any:  # a DB-API connection (SQLCipher)
        # one connection per thread, kept: opening one (and reading the schema again) cost a
        # point lookup ~50 times the query itself; the file is immutable, so a kept connection
        # never reads stale data (a rebuilt store is a new file, opened as a new VariantStore)
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = connect_sites(self._uri_path, key=self._sites_key, read_only=True)
            self._local.connection = connection
        return connection

    def _counts(self, row: Any) -> SiteCounts:
        chrom, pos, _end, ref, alt, packed = row
        # run for every site a range query reaches: each group's cell is made when it is read
        counts = GroupCounts(self._unpack(packed), self._columns)
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
        connection = connect_sites(self._uri_path, key=self._sites_key, read_only=True)
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


def _foreign(path: Path, binding: StoreBinding | None, found: str) -> StoreIntegrityError:
    expected = binding.context if binding is not None else "its own manifest"
    return StoreIntegrityError(
        f"The variant store at {path} is not the one the catalog recorded ({expected}): it "
        f"holds the {found}. It is a leftover or was moved; run `genecommons variants verify "
        "--remove`, then rebuild the dataset's store.",
        message_zh=f"{path} 的变异库不是目录记录的那一个（{expected}）：可能是残留或被移动。"
        "请运行 `genecommons variants verify --remove`，然后重建该数据集的变异库。",
        details={"store": str(path), "expected": expected, "found": found},
    )
