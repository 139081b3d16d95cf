"""Allele counts by group: against a plain loop on random calls, and against bcftools (which
recomputes AC and AN for a sample subset) by population on the 1000 Genomes slice."""

from __future__ import annotations

import csv
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from genecommons.variants.counts import count_block, membership

SHARED = Path("../shared/data/1000g")
VCF = SHARED / "chr1_11697036-11836540.vcf.gz"
PANEL = SHARED / "integrated_call_samples_v3.20130502.ALL.panel"
EAST_ASIAN = ("CHB", "CHS", "CDX", "JPT", "KHV")


@settings(max_examples=60, deadline=None)
@given(
    calls=hnp.arrays(
        np.int8,
        st.tuples(st.integers(1, 6), st.integers(1, 9), st.integers(1, 2)),
        elements=st.integers(-2, 3),
    ),
    labels=st.data(),
)
def test_counts_equal_a_plain_loop(calls: np.ndarray, labels: st.DataObject) -> None:
    groups = ("a", "b")
    names = labels.draw(
        st.lists(
            st.sampled_from(["a", "b", None]), min_size=calls.shape[1], max_size=calls.shape[1]
        )
    )
    counts = count_block(calls, n_alleles=4, members=membership(names, groups), groups=groups)
    for v in range(calls.shape[0]):
        for g, group in enumerate(groups):
            mine = [s for s, name in enumerate(names) if name == group]
            alleles = [int(x) for s in mine for x in calls[v, s] if x >= 0]
            assert counts.an[v, g] == len(alleles)
            for allele in range(4):
                assert counts.ac[v, allele, g] == alleles.count(allele)
                homs = hemis = 0
                for s in mine:
                    present = [int(x) for x in calls[v, s] if x != -2]
                    if len(present) == 2 and present == [allele, allele]:
                        homs += 1
                    if present == [allele]:
                        hemis += 1
                assert counts.hom[v, allele, g] == homs
                assert counts.hemi[v, allele, g] == hemis


def test_ungrouped_samples_are_not_counted() -> None:
    calls = np.array([[[0, 1], [1, 1], [1, -1]]], dtype=np.int8)
    counts = count_block(
        calls, n_alleles=2, members=membership(["x", None, "x"], ["x"]), groups=["x"]
    )
    assert counts.ac[0, :, 0].tolist() == [1, 2] and counts.an[0, 0] == 3
    assert counts.hom[0, 1, 0] == 0
    assert np.isclose(counts.af()[0, 1, 0], 2 / 3)


@pytest.mark.slow
def test_population_counts_equal_bcftools_on_1000_genomes(tmp_path: Path) -> None:
    if not VCF.exists() or not PANEL.exists():
        pytest.skip(f"{SHARED} is absent (shared test data not mounted)")
    import pysam.bcftools
    import zarr
    from bio2zarr import vcf as vcf2zarr

    store = tmp_path / "kg.vcz"
    vcf2zarr.convert([str(VCF)], str(store), worker_processes=0)
    root = zarr.open(str(store), mode="r")
    samples = [str(s) for s in root["sample_id"][:]]
    with PANEL.open() as handle:
        population = {row["sample"]: row["pop"] for row in csv.DictReader(handle, delimiter="\t")}
    groups = (*EAST_ASIAN, "ALL")
    labels = [population.get(s) for s in samples]
    members = membership(labels, groups)
    members[:, -1] = 1  # ALL
    counts = count_block(root["call_genotype"][:], n_alleles=2, members=members, groups=groups)
    for g, group in enumerate(groups):
        chosen = [s for s in samples if group == "ALL" or population.get(s) == group]
        names = tmp_path / f"{group}.txt"
        names.write_text("\n".join(chosen) + "\n")
        subset = pysam.bcftools.view("-S", str(names), "--no-version", str(VCF))
        bcf = tmp_path / f"{group}.vcf"
        bcf.write_text(subset)
        table = pysam.bcftools.query("-f", "%AC\t%AN\n", str(bcf))
        theirs = [tuple(int(x) for x in line.split("\t")) for line in table.splitlines()]
        ours = list(zip(counts.ac[:, 1, g].tolist(), counts.an[:, g].tolist(), strict=True))
        assert ours == theirs, group
    assert counts.an[0, groups.index("CHB")] == 2 * 103  # 103 CHB samples, all diploid here


@pytest.mark.slow
def test_population_counts_equal_bcftools_fill_tags_on_1000_genomes(tmp_path: Path) -> None:
    if not VCF.exists() or not PANEL.exists():
        pytest.skip(f"{SHARED} is absent (shared test data not mounted)")
    bcftools = shutil.which("bcftools")
    if bcftools is None:
        pytest.skip(
            "bcftools with its fill-tags plugin is not installed (apt-get install bcftools)"
        )
    import pysam
    import zarr
    from bio2zarr import vcf as vcf2zarr

    store = tmp_path / "kg.vcz"
    vcf2zarr.convert([str(VCF)], str(store), worker_processes=0)
    root = zarr.open(str(store), mode="r")
    samples = [str(s) for s in root["sample_id"][:]]
    with PANEL.open() as handle:
        population = {row["sample"]: row["pop"] for row in csv.DictReader(handle, delimiter="\t")}
    groups = sorted({population[s] for s in samples})
    groups_file = tmp_path / "groups.txt"
    groups_file.write_text("".join(f"{s}\t{population[s]}\n" for s in samples))
    tagged = tmp_path / "tagged.vcf"
    subprocess.run(
        [
            bcftools,
            "+fill-tags",
            str(VCF),
            "-Ov",
            "-o",
            str(tagged),
            "--",
            "-S",
            str(groups_file),
            "-t",
            "AC,AN,AC_Hom,AC_Hemi",
        ],
        check=True,
        capture_output=True,
    )
    members = membership([population[s] for s in samples], groups)
    counts = count_block(root["call_genotype"][:], n_alleles=2, members=members, groups=groups)
    with pysam.VariantFile(str(tagged)) as vcf:
        records = list(vcf)
    assert len(records) == counts.ac.shape[0] > 4000
    for v, record in enumerate(records):
        for g, group in enumerate(groups):
            info = record.info
            assert info[f"AC_{group}"] == (counts.ac[v, 1, g],), (v, group)
            assert info[f"AN_{group}"] == counts.an[v, g], (v, group)
            assert info[f"AC_Hom_{group}"] == (2 * counts.hom[v, 1, g],), (v, group)
            assert info[f"AC_Hemi_{group}"] == (counts.hemi[v, 1, g],), (v, group)
