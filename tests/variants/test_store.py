"""The variant store: built from the 1000 Genomes slice, its frequencies by population equal
bcftools'; range lookups; a VCF that fails half way leaves no store."""

from __future__ import annotations

import csv
from pathlib import Path
from types import SimpleNamespace

import pysam
import pytest

from genecommons.errors import ConflictError, InvalidInputError
from genecommons.secrets import LocalNodeKeys
from genecommons.variants.manifest import new_binding
from genecommons.variants.normalize import Variant, parse_key
from genecommons.variants.store import SampleInfo, StoreSummary, VariantStore
from genecommons.variants.store import build_store as build_sealed_store

SHARED = Path("../shared/data/1000g")
VCF = SHARED / "chr1_11697036-11836540.vcf.gz"
PANEL = SHARED / "integrated_call_samples_v3.20130502.ALL.panel"
KEYS = LocalNodeKeys(bytes(range(32)))  # a node key store of its own for these tests


def build_store(vcf: Path, destination: Path, *, samples: dict[str, SampleInfo]) -> StoreSummary:
    """A store of `vcf` at `destination`, bound to a dataset named as the directory."""
    binding = new_binding(dataset=destination.name, source_sha256="0" * 64, source_name=vcf.name)
    summary = build_sealed_store(vcf, destination, samples=samples, keys=KEYS, binding=binding)
    summary.lease.release()
    return summary


def panel() -> dict[str, SampleInfo]:
    with PANEL.open() as handle:
        return {
            row["sample"]: SampleInfo(population=row["pop"], sex=row["gender"])
            for row in csv.DictReader(handle, delimiter="\t")
        }


@pytest.fixture(scope="module")
def kg(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """The 1000 Genomes slice built into a store once for the module."""
    if not VCF.exists() or not PANEL.exists():
        pytest.skip(f"{SHARED} is absent (shared test data not mounted)")
    folder = tmp_path_factory.mktemp("store")
    with pysam.VariantFile(str(VCF)) as vcf:
        in_vcf = set(vcf.header.samples)
    samples = {s: info for s, info in panel().items() if s in in_vcf}  # the panel has 2,535
    summary = build_store(VCF, folder / "kg", samples=samples)
    return SimpleNamespace(
        summary=summary, store=VariantStore(folder / "kg", keys=KEYS), samples=samples
    )


@pytest.mark.slow
def test_store_holds_every_site_with_its_groups(kg: SimpleNamespace) -> None:
    # two records are structural variants with symbolic ALTs (<CN0>, <INS:ME:SVA>): not sites
    assert (kg.summary.samples, kg.summary.records, kg.summary.sites) == (2504, 4296, 4294)
    assert {"all", "CHB", "JPT", "female", "male", "CHB:female"} <= set(kg.store.groups)


@pytest.mark.slow
def test_frequencies_by_population_equal_bcftools(kg: SimpleNamespace, tmp_path: Path) -> None:
    import pysam.bcftools

    for population in ("CHB", "CHS", "CDX", "JPT", "KHV"):
        chosen = [s for s, info in kg.samples.items() if info.population == population]
        names = tmp_path / f"{population}.txt"
        names.write_text("\n".join(chosen) + "\n")
        subset = tmp_path / f"{population}.vcf"
        subset.write_text(pysam.bcftools.view("-S", str(names), "--no-version", str(VCF)))
        table = pysam.bcftools.query("-f", "%CHROM-%POS-%REF-%ALT\t%AC\t%AN\n", str(subset))
        for line in table.splitlines()[::37]:
            key, ac, an = line.split("\t")
            if "<" in key:
                continue  # a symbolic allele: not a sequence variant
            found = kg.store.lookup(parse_key(key))
            assert found is not None, key
            assert (found.counts[population]["ac"], found.counts[population]["an"]) == (
                int(ac),
                int(an),
            ), (key, population)
            assert found.frequency(population) == pytest.approx(int(ac) / int(an))


@pytest.mark.slow
def test_sex_and_homozygote_counts_agree_with_the_genotypes(kg: SimpleNamespace) -> None:
    with pysam.VariantFile(str(VCF)) as vcf:
        record = next(iter(vcf.fetch("1", 11_700_000, 11_710_000)))
        found = kg.store.lookup(Variant("1", record.pos, record.ref, record.alts[0]))
        assert found is not None
        for sex in ("male", "female"):
            calls = [record.samples[s]["GT"] for s, info in kg.samples.items() if info.sex == sex]
            assert found.counts[sex]["ac"] == sum(c.count(1) for c in calls)
            assert found.counts[sex]["hom"] == sum(1 for c in calls if c == (1, 1))


@pytest.mark.slow
def test_lookups_of_absent_variants_and_ranges(kg: SimpleNamespace) -> None:
    assert kg.store.lookup(Variant("1", 11_697_036, "A", "C")) is None  # the site is A>T
    assert kg.store.lookup(Variant("2", 11_697_036, "A", "T")) is None
    window = list(kg.store.overlapping("1", 11_697_036, 11_697_100))
    assert [v.variant.pos for v in window] == sorted(v.variant.pos for v in window)
    assert all(11_697_036 <= v.variant.pos <= 11_697_100 for v in window) and window
    assert list(kg.store.overlapping("1", 1, 100)) == []


@pytest.mark.slow
def test_every_site_is_read_back_in_order(kg: SimpleNamespace) -> None:
    every = list(kg.store.all_sites(batch=1000))  # more than one batch
    assert len(every) == kg.summary.sites
    assert len({s.variant for s in every}) == len(every)
    for site in every[:: max(1, len(every) // 50)]:
        assert kg.store.lookup(site.variant) == site
    positions = [s.variant.pos for s in every]
    assert positions == sorted(positions)  # the VCF's order, one chromosome


def test_a_vcf_that_fails_half_way_leaves_no_store(
    tmp_path: Path, datafiles: SimpleNamespace
) -> None:
    vcf = datafiles.vcf(tmp_path / "calls.vcf.gz", records=2000)
    damaged = tmp_path / "damaged.vcf.gz"
    damaged.write_bytes(vcf.read_bytes()[: vcf.stat().st_size // 2])
    destination = tmp_path / "stores" / "DS1"
    with pytest.raises(InvalidInputError) as error:
        build_store(damaged, destination, samples={})
    assert "damaged.vcf.gz" in str(error.value) and error.value.message_zh
    assert list((tmp_path / "stores").iterdir()) == []


def test_a_store_is_not_overwritten(tmp_path: Path, datafiles: SimpleNamespace) -> None:
    vcf = datafiles.vcf(tmp_path / "calls.vcf.gz", records=50)
    pysam.tabix_index(str(vcf), preset="vcf", force=True, keep_original=True)
    samples = {"P1-S1": SampleInfo("CHB", "female"), "P2-S1": SampleInfo("CHB", "male")}
    summary = build_store(vcf, tmp_path / "DS1", samples=samples)
    assert summary.sites == 100 and summary.samples == 3
    store = VariantStore(tmp_path / "DS1", keys=KEYS, binding=summary.binding)
    assert store.groups == ("all", "CHB", "female", "male", "CHB:female", "CHB:male")
    with pytest.raises(ConflictError):
        build_store(vcf, tmp_path / "DS1", samples=samples)


@pytest.mark.slow
def test_counts_made_when_read_equal_the_packed_table(kg: SimpleNamespace) -> None:
    import numpy as np

    fields = ("ac", "an", "hom", "hemi")  # packed field by field, each for every group
    groups = kg.store.groups
    rows = kg.store._connect().execute(
        "SELECT chrom, pos, ref, alt, counts FROM sites ORDER BY rowid"
    )
    for chrom, pos, ref, alt, packed in rows.fetchall()[::41]:
        table = np.frombuffer(packed, dtype="<i4").reshape(len(fields), len(groups))
        expected = {
            group: {field: int(table[f, g]) for f, field in enumerate(fields)}
            for g, group in enumerate(groups)
        }
        found = kg.store.lookup(Variant(chrom, pos, ref, alt))
        assert found is not None
        assert found.counts["CHB"] == expected["CHB"]  # one group read before the others
        assert found.counts.get("all") == expected["all"]
        assert found.counts == expected and expected == found.counts
        assert list(found.counts) == list(groups) and len(found.counts) == len(groups)
        assert dict(found.counts.items()) == expected
        assert "nowhere" not in found.counts and found.counts.get("nowhere", 0) == 0
        with pytest.raises(KeyError):
            found.counts["nowhere"]
