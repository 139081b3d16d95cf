"""Normalisation without a reference: split, trim, and the same variant however it is written."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from genecommons.errors import InvalidInputError
from genecommons.variants.normalize import Variant, normalize, parse_key, trim

THOUSAND_GENOMES = Path("../shared/data/1000g/chr1_11697036-11836540.vcf.gz")
bases = st.text(alphabet="ACGT", min_size=1, max_size=8)


def variants(chrom: str, pos: int, ref: str, alts: list[str]) -> list[tuple[int, Variant]]:
    return list(normalize(chrom, pos, ref, alts))


@pytest.mark.parametrize(
    ("pos", "ref", "alt", "expected"),
    [
        (100, "A", "G", (100, "A", "G")),
        (100, "GCA", "GTA", (101, "C", "T")),  # padded substitution
        (100, "CAT", "CT", (100, "CA", "C")),  # deletion keeps its anchor base
        (100, "A", "AT", (100, "A", "AT")),  # insertion keeps its anchor base
        (100, "ACGTT", "ACGT", (102, "GT", "G")),  # right trim first, then left; anchor stays
        (100, "acg", "aTg", (101, "C", "T")),  # case
        (100, "TTTA", "TTTG", (103, "A", "G")),
    ],
)
def test_trim_gives_the_parsimonious_form(
    pos: int, ref: str, alt: str, expected: tuple[int, str, str]
) -> None:
    assert trim(pos, ref, alt) == expected


def test_multiallelic_records_are_split_with_their_allele_index() -> None:
    found = variants("22", 100, "GCA", ["GTA", "G", "<DEL>", "*", "GCATT", "gca"])
    assert found == [
        (1, Variant("22", 101, "C", "T")),
        (2, Variant("22", 100, "GCA", "G")),
        (5, Variant("22", 102, "A", "ATT")),
    ]


@given(
    prefix=st.text(alphabet="ACGT", max_size=6),
    core=st.tuples(bases, bases),
    suffix=st.text(alphabet="ACGT", max_size=6),
)
def test_a_substitution_is_found_however_it_is_padded(
    prefix: str, core: tuple[str, str], suffix: str
) -> None:
    ref, alt = core
    if len(ref) != len(alt) or ref[0] == alt[0] or ref[-1] == alt[-1]:
        return  # only substitutions whose ends differ have a padding-free form
    padded = variants("1", 1000, prefix + ref + suffix, [prefix + alt + suffix])
    assert padded == [(1, Variant("1", 1000 + len(prefix), ref, alt))]


@given(pos=st.integers(1, 10**9), ref=bases, alts=st.lists(bases, min_size=1, max_size=4))
def test_normalisation_is_idempotent_and_parsimonious(pos: int, ref: str, alts: list[str]) -> None:
    for _, variant in variants("X", pos, ref, alts):
        assert variants("X", variant.pos, variant.ref, [variant.alt]) == [(1, variant)]
        assert variant.ref != variant.alt
        short = min(len(variant.ref), len(variant.alt))
        assert short == 1 or (
            variant.ref[0] != variant.alt[0] and variant.ref[-1] != variant.alt[-1]
        )
        assert parse_key(variant.key) == variant


@pytest.mark.parametrize("key", ["22-abc-A-G", "22-100-A", "22-100-A-<DEL>", "22-100-A-A", ""])
def test_bad_identifiers_are_refused_with_the_expected_form(key: str) -> None:
    with pytest.raises(InvalidInputError) as error:
        parse_key(key)
    assert error.value.message_zh


def test_bad_ref_and_position_are_refused() -> None:
    with pytest.raises(InvalidInputError):
        variants("1", 100, "<DEL>", ["A"])
    with pytest.raises(InvalidInputError):
        variants("1", 0, "A", ["G"])


def test_splitting_matches_bcftools_norm_on_1000_genomes() -> None:
    if not THOUSAND_GENOMES.exists():
        pytest.skip(f"{THOUSAND_GENOMES} is absent (shared test data not mounted)")
    import pysam.bcftools

    ours = []
    with pysam.VariantFile(str(THOUSAND_GENOMES)) as vcf:
        for record in vcf:
            ours += [
                v for _, v in normalize(record.chrom, record.pos, record.ref, record.alts or ())
            ]
    split = pysam.bcftools.norm("-m", "-any", "--no-version", str(THOUSAND_GENOMES))
    theirs = []
    for line in split.splitlines():
        if line.startswith("#"):
            continue
        chrom, pos, _, ref, alt = line.split("\t", 5)[:5]
        theirs += [v for _, v in normalize(chrom, int(pos), ref, [alt])]
    assert len(ours) > 1000
    assert ours == theirs
