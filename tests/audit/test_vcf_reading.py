"""`genotypes.from_vcf` (the calls of an archived VCF, read in memory) against pysam reading the
same file, on generated call matrices (hypothesis): haploid and diploid, phased or not,
missing alleles, multiallelic sites; and a clear error for what is not a VCF."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pysam
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from genecommons.audit import genotypes
from genecommons.errors import InvalidInputError


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
