"""A joint-called VCF as VCF Zarr, streamed: records are read with cyvcf2 a chunk of variants at
a time and written straight into a Zarr group (the variant store's sealed group), in bio2zarr's
layout (array names, dtypes, chunking, compressors and dimension names of `vcf2zarr convert`),
so that what reads bio2zarr's stores reads these.

Why not `bio2zarr.vcf.convert`: it first "explodes" the VCF into an intermediate columnar
format, a directory of plaintext genotypes (in the system's temporary directory by default),
then encodes it through path-based moves of chunk files; neither step can write through an
encrypting store, and plaintext genotypes must never reach the disk. Here memory stays one
chunk of variants (1,000 records x samples x ploidy), and nothing but sealed values is written.

The store holds what the node reads from it: samples, contigs, filters, each record's contig,
position, length, ID, alleles, quality and filters, and the genotype calls (GT) with their
phasing and mask. Other INFO and FORMAT fields stay in the archived VCF.
"""

from __future__ import annotations

import errno
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from genecommons import __version__
from genecommons.errors import InvalidInputError

VARIANTS_CHUNK = 1000  # bio2zarr's default variants chunk
SAMPLES_CHUNK = 10_000  # and samples chunk
PLOIDY = 2
MISSING, FILL = -1, -2
STR_MISSING, STR_FILL = ".", ""
FLOAT32_MISSING = np.array([0x7F800001], dtype=np.int32).view(np.float32)[0]
FULL = (errno.ENOSPC, errno.EDQUOT)
_META = re.compile("##([^=]+)=(.*)")


@dataclass(frozen=True, slots=True)
class Block:
    """A chunk of records as written: where it starts, the samples, each record's contig (an
    index into `contigs`), position, alleles (REF then ALTs) and calls (records, samples,
    ploidy)."""

    start: int
    samples: Sequence[str]
    contigs: Sequence[str]
    contig: npt.NDArray[np.int32]
    position: npt.NDArray[np.int32]
    alleles: list[tuple[str, ...]]
    genotypes: npt.NDArray[np.int8]


@dataclass(frozen=True, slots=True)
class Encoded:
    """What the encoding wrote."""

    samples: tuple[str, ...]
    records: int


@dataclass(slots=True)
class _Buffer:
    """The records of one chunk, gathered before they are written."""

    samples: int
    filters: int
    contig: list[int] = field(default_factory=list)
    position: list[int] = field(default_factory=list)
    length: list[int] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    quality: list[float] = field(default_factory=list)
    alleles: list[tuple[str, ...]] = field(default_factory=list)
    filter_rows: list[list[int]] = field(default_factory=list)
    genotypes: npt.NDArray[np.int8] = field(init=False)
    phased: npt.NDArray[np.bool_] = field(init=False)

    def __post_init__(self) -> None:
        self.genotypes = np.empty((VARIANTS_CHUNK, self.samples, PLOIDY), dtype=np.int8)
        self.phased = np.empty((VARIANTS_CHUNK, self.samples), dtype=np.bool_)

    def __len__(self) -> int:
        return len(self.position)


def _array(root: Any, name: str, *, shape: tuple[int, ...], dtype: Any, dims: list[str]) -> Any:
    from bio2zarr import zarr_utils

    compressor = (
        zarr_utils.DEFAULT_COMPRESSOR_BOOL_CONFIG
        if np.dtype(dtype) == np.bool_ or name == "call_genotype"
        else zarr_utils.DEFAULT_COMPRESSOR_CONFIG
    )
    # variants by the thousand, samples by ten thousand, other dimensions whole
    chunks = [VARIANTS_CHUNK]
    for dim, size in zip(dims[1:], shape[1:], strict=True):
        chunks.append(max(1, min(SAMPLES_CHUNK, size) if dim == "samples" else size))
    return zarr_utils.create_empty_group_array(
        root,
        name,
        shape=shape,
        dtype=dtype,
        chunks=tuple(chunks),
        compressor=compressor,
        dimension_names=dims,
        fill_value=None,
    )


def _whole(root: Any, name: str, data: Sequence[Any], *, dtype: Any, dims: list[str]) -> None:
    from bio2zarr import zarr_utils

    extra = {"chunks": (max(1, min(SAMPLES_CHUNK, len(data))),)} if dims == ["samples"] else {}
    zarr_utils.create_group_array(
        root,
        name,
        data=data,
        shape=len(data),
        dtype=dtype,
        compressor=zarr_utils.DEFAULT_COMPRESSOR_CONFIG,
        dimension_names=dims,
        **extra,
    )


def _filters(reader: Any) -> list[tuple[str, str]]:
    found = [
        (str(h["ID"]), str(h.get("Description", "")).strip('"'))
        for h in (entry.info() for entry in reader.header_iter())
        if h.get("HeaderType") == "FILTER"
    ]
    found.sort(key=lambda f: f[0] != "PASS")  # PASS first, as bio2zarr puts it
    return found or [("PASS", "All filters passed")]


def _contigs(reader: Any) -> tuple[list[str], list[int] | None]:
    names = [str(n) for n in reader.seqnames]
    try:
        lengths: list[int] | None = [int(n) for n in reader.seqlens]
    except Exception:  # cyvcf2 raises a bare Exception when the header gives no lengths
        lengths = None
    return names, lengths if lengths and len(lengths) == len(names) else None


def meta_information(raw_header: str) -> list[tuple[str, str]]:
    """The header's meta-information lines other than contig, FILTER, INFO and FORMAT (which
    the arrays hold), as bio2zarr keeps them in the root attributes."""
    found = []
    for line in raw_header.split("\n"):
        match = _META.fullmatch(line)
        if match and match.group(1) not in ("contig", "FILTER", "INFO", "FORMAT"):
            found.append((match.group(1), match.group(2)))
    return found


class _Writer:
    """Appends chunks of records to the arrays of a group."""

    def __init__(self, root: Any, samples: int, filters: int) -> None:
        self.arrays = {
            "variant_contig": _array(
                root, "variant_contig", shape=(0,), dtype=np.int32, dims=["variants"]
            ),
            "variant_position": _array(
                root, "variant_position", shape=(0,), dtype=np.int32, dims=["variants"]
            ),
            "variant_length": _array(
                root, "variant_length", shape=(0,), dtype=np.int32, dims=["variants"]
            ),
            "variant_id": _array(root, "variant_id", shape=(0,), dtype="T", dims=["variants"]),
            "variant_id_mask": _array(
                root, "variant_id_mask", shape=(0,), dtype=np.bool_, dims=["variants"]
            ),
            "variant_quality": _array(
                root, "variant_quality", shape=(0,), dtype=np.float32, dims=["variants"]
            ),
            "variant_filter": _array(
                root,
                "variant_filter",
                shape=(0, filters),
                dtype=np.bool_,
                dims=["variants", "filters"],
            ),
            "call_genotype": _array(
                root,
                "call_genotype",
                shape=(0, samples, PLOIDY),
                dtype=np.int8,
                dims=["variants", "samples", "ploidy"],
            ),
            "call_genotype_phased": _array(
                root,
                "call_genotype_phased",
                shape=(0, samples),
                dtype=np.bool_,
                dims=["variants", "samples"],
            ),
            "call_genotype_mask": _array(
                root,
                "call_genotype_mask",
                shape=(0, samples, PLOIDY),
                dtype=np.bool_,
                dims=["variants", "samples", "ploidy"],
            ),
        }
        self.root = root
        self.width = 2  # alleles per record so far (REF and one ALT at least)
        self.alleles = _array(
            root, "variant_allele", shape=(0, self.width), dtype="T", dims=["variants", "alleles"]
        )

    def append(self, buffer: _Buffer) -> None:
        n = len(buffer)
        widest = max(len(a) for a in buffer.alleles)
        if widest > self.width:
            self.alleles.resize((self.alleles.shape[0], widest))
            self.width = widest
        alleles = np.full((n, self.width), STR_FILL, dtype="T")
        for i, row in enumerate(buffer.alleles):
            alleles[i, : len(row)] = row
        genotypes = buffer.genotypes[:n]
        values = {
            "variant_contig": np.asarray(buffer.contig, dtype=np.int32),
            "variant_position": np.asarray(buffer.position, dtype=np.int32),
            "variant_length": np.asarray(buffer.length, dtype=np.int32),
            "variant_id": np.asarray(buffer.ids, dtype="T"),
            "variant_id_mask": np.asarray([i == STR_MISSING for i in buffer.ids], dtype=bool),
            "variant_quality": np.asarray(buffer.quality, dtype=np.float32),
            "variant_filter": self._filter_matrix(buffer, n),
            "call_genotype": genotypes,
            "call_genotype_phased": buffer.phased[:n],
            "call_genotype_mask": genotypes < 0,
        }
        for name, value in values.items():
            self.arrays[name].append(value, axis=0)
        self.alleles.append(alleles, axis=0)

    def _filter_matrix(self, buffer: _Buffer, n: int) -> npt.NDArray[np.bool_]:
        matrix = np.zeros((n, buffer.filters), dtype=np.bool_)
        for i, row in enumerate(buffer.filter_rows):
            matrix[i, row] = True
        return matrix


def encode_vcf(
    source: str,
    root: Any,
    *,
    name: str,
    attrs: Mapping[str, Any],
    on_block: Callable[[Block], None] | None = None,
) -> Encoded:
    """Write the VCF at `source` (a path, or /dev/fd/N of a stream) into the empty Zarr group
    `root` with root attributes `attrs`; `on_block` sees each chunk of records as written.
    InvalidInputError names the record of `name` that cannot be read; OSError of the storage
    (a full disk) is left to the caller."""
    import cyvcf2

    try:
        reader = cyvcf2.VCF(source, gts012=False, lazy=False)
    except Exception as error:  # cyvcf2 raises OSError or a bare Exception
        if isinstance(error, OSError) and error.errno in FULL:
            raise
        raise _unreadable(name, 0, error) from error
    try:
        if not reader.contains("GT"):
            raise InvalidInputError(
                f"{name} has no genotypes (GT): a variant store needs joint-called genotypes.",
                message_zh=f"{name} 没有基因型（GT）：变异库需要联合分型的基因型。",
                details={"file": name},
            )
        return _encode(reader, root, name=name, attrs=attrs, on_block=on_block)
    finally:
        reader.close()


def _unreadable(name: str, record: int, error: BaseException) -> InvalidInputError:
    where = f" at record {record:,}" if record else ""
    return InvalidInputError(
        f"{name}: the VCF cannot be read{where} ({error}). Check that it is bgzipped and "
        "complete (bcftools view should read it to the end).",
        message_zh=f"{name}：无法读取该 VCF{'（第 ' + format(record, ',') + ' 条记录）' if record else ''}。"
        "请确认文件经 bgzip 压缩且完整。",
        details={"file": name, "record": record or None},
    )


def _encode(
    reader: Any,
    root: Any,
    *,
    name: str,
    attrs: Mapping[str, Any],
    on_block: Callable[[Block], None] | None,
) -> Encoded:
    samples = tuple(str(s) for s in reader.samples)
    contigs, lengths = _contigs(reader)
    contig_index = {c: i for i, c in enumerate(contigs)}
    filters = _filters(reader)
    filter_index = {f: i for i, (f, _) in enumerate(filters)}
    root.attrs.update(
        {
            "vcf_zarr_version": "0.5",
            "source": f"genecommons-{__version__}",
            "vcf_meta_information": meta_information(reader.raw_header),
            **attrs,
        }
    )
    writer = _Writer(root, len(samples), len(filters))
    buffer = _Buffer(len(samples), len(filters))
    records = 0
    iterator = iter(reader)
    while True:
        try:
            variant = next(iterator)
        except StopIteration:
            break
        except Exception as error:  # cyvcf2 raises a bare Exception on a damaged record
            if isinstance(error, OSError) and error.errno in FULL:
                raise
            raise _unreadable(name, records + 1, error) from error
        row = len(buffer)
        chrom = variant.CHROM
        if chrom not in contig_index:  # a contig the header does not declare
            contig_index[chrom] = len(contigs)
            contigs.append(chrom)
            lengths = None
        buffer.contig.append(contig_index[chrom])
        buffer.position.append(variant.POS)
        buffer.length.append(variant.end - variant.start)
        buffer.ids.append(variant.ID or STR_MISSING)
        quality = variant.QUAL
        buffer.quality.append(FLOAT32_MISSING if quality is None else quality)
        alleles = (variant.REF, *variant.ALT)
        if len(alleles) > 127:  # allele indexes are stored as int8
            raise InvalidInputError(
                f"{name}: record {records + 1:,} ({chrom}:{variant.POS}) has {len(alleles)} "
                "alleles; the variant store holds at most 127 per record.",
                message_zh=f"{name}：第 {records + 1:,} 条记录有 {len(alleles)} 个等位基因；"
                "变异库每条记录最多 127 个。",
                details={"file": name, "record": records + 1},
            )
        buffer.alleles.append(alleles)
        try:
            buffer.filter_rows.append([filter_index[f] for f in variant.FILTERS])
        except KeyError as error:
            raise InvalidInputError(
                f"{name}: record {records + 1:,} ({chrom}:{variant.POS}) has the filter "
                f"{error.args[0]!r}, which the header does not declare.",
                message_zh=f"{name}：第 {records + 1:,} 条记录使用了表头未声明的过滤器 "
                f"{error.args[0]!r}。",
                details={"file": name, "record": records + 1},
            ) from error
        _calls(variant, buffer, row, name=name, record=records + 1)
        records += 1
        if len(buffer) == VARIANTS_CHUNK:
            _flush(writer, buffer, records, samples, contigs, on_block)
            buffer = _Buffer(len(samples), len(filters))
    if len(buffer):
        _flush(writer, buffer, records, samples, contigs, on_block)
    _whole(root, "sample_id", samples, dtype="T", dims=["samples"])
    _whole(root, "contig_id", contigs, dtype="T", dims=["contigs"])
    if lengths is not None:
        _whole(root, "contig_length", lengths, dtype=np.int64, dims=["contigs"])
    _whole(root, "filter_id", [f for f, _ in filters], dtype="T", dims=["filters"])
    _whole(root, "filter_description", [d for _, d in filters], dtype="T", dims=["filters"])
    from bio2zarr.vcz import VcfZarrIndexer

    VcfZarrIndexer(root.store).create_index()
    return Encoded(samples, records)


def _calls(variant: Any, buffer: _Buffer, row: int, *, name: str, record: int) -> None:
    genotype = variant.genotype
    if genotype is None:
        buffer.genotypes[row] = MISSING
        buffer.phased[row] = False
        return
    array = genotype.array()  # (samples, ploidy + 1): alleles, then the phase flag
    ploidy = array.shape[1] - 1
    if ploidy > PLOIDY:
        raise InvalidInputError(
            f"{name}: record {record:,} ({variant.CHROM}:{variant.POS}) has calls of ploidy "
            f"{ploidy}; the variant store holds haploid and diploid calls only.",
            message_zh=f"{name}：第 {record:,} 条记录的倍性为 {ploidy}；变异库只支持单倍体与二倍体。",
            details={"file": name, "record": record},
        )
    buffer.genotypes[row, :, :ploidy] = array[:, :ploidy]
    buffer.genotypes[row, :, ploidy:] = FILL
    # haploid calls count as phased, as bio2zarr stores them
    buffer.phased[row] = (array[:, ploidy] == 1) | (ploidy == 1)


def _flush(
    writer: _Writer,
    buffer: _Buffer,
    records: int,
    samples: Sequence[str],
    contigs: Sequence[str],
    on_block: Callable[[Block], None] | None,
) -> None:
    writer.append(buffer)
    if on_block is not None:
        n = len(buffer)
        on_block(
            Block(
                start=records - n,
                samples=samples,
                contigs=tuple(contigs),
                contig=np.asarray(buffer.contig, dtype=np.int32),
                position=np.asarray(buffer.position, dtype=np.int32),
                alleles=buffer.alleles,
                genotypes=buffer.genotypes[:n],
            )
        )
