"""Tests of DUO matching: one pair of cases per rule, precedence, the DS hierarchy, properties."""

from __future__ import annotations

import csv
import re
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genecommons.access.duo_matching import match_purpose
from genecommons.access.duo_models import (
    MatchResult,
    ResearchPurpose,
    RuleStatus,
    TermKind,
    Verdict,
)
from genecommons.access.duo_rules import RULES, RULES_BY_ID

REPO = Path(__file__).resolve().parents[2]
DUO_CSV = REPO.parent / "shared" / "specs" / "duo" / "duo.csv"
DOC = REPO / "docs" / "duo-matching.md"
TODAY = date(2025, 6, 1)


def purpose(**changes: Any) -> ResearchPurpose:
    """A plain non-commercial genetic study of type 2 diabetes from a Chinese university."""
    base = ResearchPurpose(
        title="Genetics of type 2 diabetes",
        summary="GWAS of type 2 diabetes in Han Chinese",
        institution="Fudan University",
        country="CN",
        diseases=("ICD10:E11",),
        biomedical=True,
        genetic_research=True,
        ethics_approval=True,
    )
    return replace(base, **changes)


def match(codes: list[str], who: ResearchPurpose | None = None, **kwargs: Any) -> MatchResult:
    return match_purpose(who or purpose(), codes, today=TODAY, **kwargs)


def _status(result: MatchResult, shorthand: str) -> RuleStatus:
    (reason,) = [r for r in result.reasons if r.shorthand == shorthand]
    return reason.status


# --- one compatible and one incompatible (or needs-DAC) case per rule -----------------------

# shorthand, extra codes, compatible purpose changes, kwargs, failing purpose changes, kwargs, verdict
CASES: list[tuple[str, dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any], Verdict]] = [
    ("NRES", {"clinical_care": True, "commercial": True}, {}, {}, {}, Verdict.COMPATIBLE),
    ("GRU", {"population_ancestry": True}, {}, {"clinical_care": True}, {}, Verdict.INCOMPATIBLE),
    ("HMB", {}, {}, {"diseases": (), "biomedical": False}, {}, Verdict.INCOMPATIBLE),
    (
        "DS",
        {"diseases": ("ICD10:E11.9",)},
        {"dataset_diseases": ("ICD10:E11",)},
        {"diseases": ("ICD10:I10",)},
        {"dataset_diseases": ("ICD10:E11",)},
        Verdict.INCOMPATIBLE,
    ),
    (
        "POA",
        {"population_ancestry": True},
        {},
        {"population_ancestry": False},
        {},
        Verdict.INCOMPATIBLE,
    ),
    ("RS", {}, {}, {}, {}, Verdict.NEEDS_DAC),
    ("NMDS", {}, {}, {"methods_development": True}, {}, Verdict.INCOMPATIBLE),
    ("GSO", {}, {}, {"genetic_research": False}, {}, Verdict.INCOMPATIBLE),
    ("NPUNCU", {}, {}, {"for_profit_institution": True}, {}, Verdict.INCOMPATIBLE),
    ("PUB", {}, {}, {}, {}, Verdict.COMPATIBLE),
    ("COL", {}, {}, {}, {}, Verdict.COMPATIBLE),
    ("IRB", {}, {}, {"ethics_approval": False}, {}, Verdict.INCOMPATIBLE),
    (
        "GS",
        {},
        {"geographic_countries": ("CN", "SG")},
        {"country": "US"},
        {"geographic_countries": ("CN",)},
        Verdict.INCOMPATIBLE,
    ),
    ("MOR", {}, {"moratorium_until": date(2026, 1, 1)}, {}, {}, Verdict.NEEDS_DAC),
    (
        "TS",
        {},
        {"time_limit": date(2025, 6, 1)},
        {},
        {"time_limit": date(2025, 5, 31)},
        Verdict.INCOMPATIBLE,
    ),
    ("US", {}, {}, {}, {}, Verdict.NEEDS_DAC),
    ("PS", {}, {}, {}, {}, Verdict.NEEDS_DAC),
    ("IS", {}, {}, {}, {}, Verdict.NEEDS_DAC),
    ("RTN", {}, {}, {}, {}, Verdict.COMPATIBLE),
    ("CC", {"clinical_care": True}, {}, {}, {}, Verdict.COMPATIBLE),
    ("NPOA", {}, {}, {"population_ancestry": True}, {}, Verdict.INCOMPATIBLE),
    ("NPU", {"commercial": True}, {}, {"for_profit_institution": True}, {}, Verdict.INCOMPATIBLE),
    ("NCU", {"for_profit_institution": True}, {}, {"commercial": True}, {}, Verdict.INCOMPATIBLE),
]


#: Rules whose parameter is not machine readable: a DAC judges every purpose.
ALWAYS_DAC = frozenset({"RS", "US", "PS", "IS"})


def _codes(shorthand: str) -> list[str]:
    """The rule's code, with GRU as permission when the rule is a modifier."""
    rule = next(r for r in RULES if r.shorthand == shorthand)
    return [shorthand] if rule.kind is TermKind.PERMISSION else ["GRU", shorthand]


def test_every_rule_has_cases() -> None:
    assert sorted(c[0] for c in CASES) == sorted(r.shorthand for r in RULES)


@pytest.mark.parametrize(
    ("shorthand", "good", "good_kwargs", "bad", "bad_kwargs", "verdict"),
    CASES,
    ids=[c[0] for c in CASES],
)
def test_rule(
    shorthand: str,
    good: dict[str, Any],
    good_kwargs: dict[str, Any],
    bad: dict[str, Any],
    bad_kwargs: dict[str, Any],
    verdict: Verdict,
) -> None:
    ok = match(_codes(shorthand), purpose(**good), **good_kwargs)
    if shorthand in ALWAYS_DAC:
        assert ok.verdict is Verdict.NEEDS_DAC, ok.reasons
        assert _status(ok, shorthand) is RuleStatus.NEEDS_DAC
    else:
        assert ok.verdict is Verdict.COMPATIBLE, ok.reasons
        assert _status(ok, shorthand) is RuleStatus.SATISFIED
    other = match(_codes(shorthand), purpose(**bad), **bad_kwargs)
    assert other.verdict is verdict, other.reasons
    if verdict is Verdict.INCOMPATIBLE:
        term = RULES_BY_ID[next(r.id for r in RULES if r.shorthand == shorthand)]
        assert other.violated == (f"{term.id} ({shorthand})",)
        assert other.violated_ids == (term.id,)
    for reason in (*ok.reasons, *other.reasons):
        assert reason.en and reason.zh and reason.en != reason.zh


def test_unknown_code_needs_dac() -> None:
    result = match(["GRU", "XYZ"])
    assert result.verdict is Verdict.NEEDS_DAC
    assert result.reasons[-1].term == "XYZ" and "DUO" in result.reasons[-1].zh


def test_obsolete_and_non_modifier_codes_need_dac() -> None:
    for code in ("GRU-CC", "DUO:0000031", "DUO:0000017"):
        result = match(["GRU", code])
        assert result.verdict is Verdict.NEEDS_DAC, code
    assert "DUO:0000042" in match(["GRU", "GRU-CC"]).reasons[-1].en


def test_no_permission_needs_dac() -> None:
    result = match(["PUB"])
    assert result.verdict is Verdict.NEEDS_DAC
    assert result.reasons[0].term == "DUO:0000001"
    assert match([]).verdict is Verdict.NEEDS_DAC


def test_codes_accept_ids_and_any_case_and_deduplicate() -> None:
    result = match(["DUO:0000042", "gru", "duo_0000046", "NCU"])
    assert [r.shorthand for r in result.reasons] == ["GRU", "NCU"]


def test_conditions() -> None:
    result = match(
        ["GRU", "PUB", "COL", "RTN", "MOR", "TS"],
        moratorium_until=date(2026, 1, 1),
        time_limit=date(2027, 1, 1),
    )
    assert result.verdict is Verdict.COMPATIBLE
    assert [c.shorthand for c in result.conditions] == ["PUB", "COL", "MOR", "TS", "RTN"]
    mor = next(c for c in result.conditions if c.shorthand == "MOR")
    assert mor.until == date(2026, 1, 1) and "2026-01-01" in mor.zh


def test_lapsed_moratorium_adds_no_condition() -> None:
    result = match(["GRU", "MOR"], moratorium_until=TODAY)
    assert result.verdict is Verdict.COMPATIBLE and result.conditions == ()


def test_time_limit_missing_needs_dac() -> None:
    assert match(["GRU", "TS"]).verdict is Verdict.NEEDS_DAC


def test_geographic_restriction_without_countries_needs_dac() -> None:
    assert match(["GRU", "GS"]).verdict is Verdict.NEEDS_DAC
    assert match(["GRU", "GS"], geographic_countries=("China",)).verdict is Verdict.COMPATIBLE
    unknown = match(["GRU", "GS"], purpose(country="??"), geographic_countries=("CN",))
    assert unknown.verdict is Verdict.NEEDS_DAC


def test_hmb_health_related_ancestry_needs_dac() -> None:
    result = match(["HMB"], purpose(population_ancestry=True))
    assert result.verdict is Verdict.NEEDS_DAC
    result = match(["HMB"], purpose(population_ancestry=True, diseases=(), biomedical=False))
    assert result.verdict is Verdict.INCOMPATIBLE


def test_npuncu_names_both_reasons() -> None:
    result = match(["GRU", "NPUNCU"], purpose(commercial=True, for_profit_institution=True))
    (reason,) = [r for r in result.reasons if r.shorthand == "NPUNCU"]
    assert reason.en.endswith("the institution is for-profit and the use is commercial.")
    assert "营利" in reason.zh and "商业" in reason.zh


# --- precedence -----------------------------------------------------------------------------


def test_violation_beats_needs_dac() -> None:
    result = match(["GRU", "US", "NCU"], purpose(commercial=True))
    assert result.verdict is Verdict.INCOMPATIBLE
    assert result.violated == ("DUO:0000046 (NCU)",)


def test_needs_dac_beats_compatible() -> None:
    assert match(["GRU", "PUB", "PS"]).verdict is Verdict.NEEDS_DAC


def test_several_violations_are_all_named_in_table_order() -> None:
    who = purpose(commercial=True, ethics_approval=False, methods_development=True)
    result = match(["NCU", "IRB", "NMDS", "GRU"], who)
    assert result.violated_ids == ("DUO:0000015", "DUO:0000021", "DUO:0000046")


def test_several_permissions() -> None:
    who = purpose(population_ancestry=True, diseases=(), biomedical=False)
    both = match(["HMB", "POA"], who)
    assert both.verdict is Verdict.NEEDS_DAC and both.violated == ()
    neither = match(
        ["HMB", "POA"], purpose(population_ancestry=False, diseases=(), biomedical=False)
    )
    assert neither.verdict is Verdict.INCOMPATIBLE
    assert neither.violated_ids == ("DUO:0000006", "DUO:0000011")


# --- DS and the disease hierarchy -------------------------------------------------------------


@pytest.mark.parametrize(
    ("wanted", "consented", "verdict"),
    [
        (("ICD10:E11.9",), ("ICD10:E11",), Verdict.COMPATIBLE),
        (("E11.9",), ("ICD10:E11",), Verdict.COMPATIBLE),
        (("ICD10:E11.9",), ("ICD10:E10-E14",), Verdict.COMPATIBLE),
        (("ICD10:E11",), ("ICD10:E11",), Verdict.COMPATIBLE),
        (("ICD10:E11.9",), ("ICD10:I10",), Verdict.INCOMPATIBLE),
        (("ICD10:E11",), ("ICD10:E11.9",), Verdict.INCOMPATIBLE),
        (("ICD10:E11.9", "ICD10:I10"), ("ICD10:E11",), Verdict.NEEDS_DAC),
        (("MONDO:0005148",), ("MONDO:0005148",), Verdict.COMPATIBLE),
        (("MONDO:0005148",), ("MONDO:0005015",), Verdict.NEEDS_DAC),
        (("ICD10:E11",), ("MONDO:0005015",), Verdict.NEEDS_DAC),
        (("OMIM:125853",), ("OMIM:125853",), Verdict.COMPATIBLE),
        (("not-a-disease",), ("ICD10:E11",), Verdict.NEEDS_DAC),
        (("ICD10:E11",), ("not-a-disease",), Verdict.NEEDS_DAC),
        (("ICD10:E11",), (), Verdict.NEEDS_DAC),
        ((), ("ICD10:E11",), Verdict.INCOMPATIBLE),
    ],
)
def test_ds_hierarchy(
    wanted: tuple[str, ...], consented: tuple[str, ...], verdict: Verdict
) -> None:
    result = match(["DS"], purpose(diseases=wanted), dataset_diseases=consented)
    assert result.verdict is verdict, result.reasons
    if verdict is Verdict.INCOMPATIBLE:
        assert result.violated == ("DUO:0000007 (DS)",)


def test_ds_mondo_reason_says_hierarchy_unavailable_offline() -> None:
    result = match(
        ["DS"], purpose(diseases=("MONDO:0005148",)), dataset_diseases=("MONDO:0005015",)
    )
    (reason,) = result.reasons
    assert "offline" in reason.en and "离线" in reason.zh


def test_ds_controls_use_for_other_disease_is_incompatible() -> None:
    who = purpose(diseases=("ICD10:I10",), controls_use=True)
    result = match(["DS"], who, dataset_diseases=("ICD10:E11",))
    assert result.verdict is Verdict.INCOMPATIBLE and "controls" in result.reasons[0].en


# --- the rule table, duo.csv and the documentation ------------------------------------------


def test_every_duo_permission_and_modifier_has_a_rule() -> None:
    if not DUO_CSV.exists():
        pytest.skip(f"{DUO_CSV} is not present on this machine (the official DUO table)")
    with DUO_CSV.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    kinds = {"data use permission": TermKind.PERMISSION, "data use modifier": TermKind.MODIFIER}
    expected: dict[str, tuple[str, TermKind]] = {}
    for row in rows:
        match_kind = re.match(r"This data use (permission|modifier)", row["description"])
        if match_kind and row["shorthand"]:
            kind = kinds[f"data use {match_kind.group(1)}"]
            expected[row["id"]] = (row["shorthand"], kind)
    assert expected, "duo.csv lists no permission or modifier"
    actual = {rule.id: (rule.shorthand, rule.kind) for rule in RULES}
    assert actual == expected


def test_rule_table_is_well_formed() -> None:
    assert len(RULES_BY_ID) == len(RULES)
    for rule in RULES:
        assert rule.en and rule.zh and rule.label_zh
        assert re.fullmatch(r"DUO:[0-9]{7}", rule.id)


def test_every_rule_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    headings = re.findall(r"^### (\S+) — (DUO:[0-9]{7})", text, flags=re.MULTILINE)
    assert sorted(headings) == sorted((rule.shorthand, rule.id) for rule in RULES)
    for rule in RULES:
        assert rule.en in text, rule.shorthand
        assert rule.zh in text, rule.shorthand


# --- properties ---------------------------------------------------------------------------------

_DUO_CODES = [rule.shorthand for rule in RULES] + [rule.id for rule in RULES]
_RESTRICTIONS = [
    rule.shorthand for rule in RULES if rule.kind is TermKind.MODIFIER and rule.shorthand != "CC"
]
_SEVERITY = {Verdict.COMPATIBLE: 0, Verdict.NEEDS_DAC: 1, Verdict.INCOMPATIBLE: 2}

purposes = st.builds(
    ResearchPurpose,
    title=st.text(max_size=10),
    summary=st.text(max_size=10),
    institution=st.text(max_size=10),
    country=st.sampled_from(["CN", "US", "DE", "xx", ""]),
    diseases=st.lists(
        st.sampled_from(["ICD10:E11", "ICD10:E11.9", "ICD10:I10", "MONDO:0005148", "junk"]),
        max_size=3,
    ).map(tuple),
    biomedical=st.booleans(),
    commercial=st.booleans(),
    for_profit_institution=st.booleans(),
    methods_development=st.booleans(),
    population_ancestry=st.booleans(),
    genetic_research=st.booleans(),
    clinical_care=st.booleans(),
    controls_use=st.booleans(),
    ethics_approval=st.booleans(),
)
code_lists = st.lists(st.one_of(st.sampled_from(_DUO_CODES), st.text(max_size=12)), max_size=6)
parameters = st.fixed_dictionaries(
    {
        "dataset_diseases": st.lists(
            st.sampled_from(["ICD10:E11", "ICD10:E10-E14", "MONDO:0005015", "??"]), max_size=2
        ),
        "time_limit": st.none() | st.dates(),
        "geographic_countries": st.lists(st.sampled_from(["CN", "US", "??"]), max_size=2),
        "moratorium_until": st.none() | st.dates(),
        "today": st.dates(),
    }
)


@settings(max_examples=200, deadline=None)
@given(who=purposes, codes=code_lists, extra=st.sampled_from(_RESTRICTIONS), kwargs=parameters)
def test_adding_a_restriction_never_relaxes(
    who: ResearchPurpose, codes: list[str], extra: str, kwargs: dict[str, Any]
) -> None:
    before = match_purpose(who, codes, **kwargs)
    after = match_purpose(who, [*codes, extra], **kwargs)
    assert _SEVERITY[after.verdict] >= _SEVERITY[before.verdict]
    assert set(before.violated) <= set(after.violated)


@settings(max_examples=200, deadline=None)
@given(who=purposes, kwargs=parameters)
def test_gru_alone_is_compatible_with_any_research_purpose(
    who: ResearchPurpose, kwargs: dict[str, Any]
) -> None:
    result = match_purpose(replace(who, clinical_care=False), ["GRU"], **kwargs)
    assert result.verdict is Verdict.COMPATIBLE
    assert result.conditions == ()


@settings(max_examples=200, deadline=None)
@given(who=purposes, codes=code_lists, kwargs=parameters)
def test_matching_is_deterministic_and_total(
    who: ResearchPurpose, codes: list[str], kwargs: dict[str, Any]
) -> None:
    first = match_purpose(who, codes, **kwargs)
    assert first == match_purpose(who, list(codes), **kwargs)
    assert (first.verdict is Verdict.INCOMPATIBLE) == bool(first.violated)
    assert first.verdict is not Verdict.COMPATIBLE or all(
        r.status is RuleStatus.SATISFIED for r in first.reasons
    )
    for reason in first.reasons:
        assert reason.en and reason.zh


@settings(max_examples=100, deadline=None)
@given(who=purposes, kwargs=parameters)
def test_nres_is_compatible_with_everything(who: ResearchPurpose, kwargs: dict[str, Any]) -> None:
    assert match_purpose(who, ["NRES"], **kwargs).verdict is Verdict.COMPATIBLE
