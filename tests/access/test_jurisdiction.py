"""Jurisdiction and HGR rules: each rule both ways, the cumulative 500, effective dates."""

from __future__ import annotations

import dataclasses
import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from genecommons.access.jurisdiction.countries import country_code
from genecommons.access.jurisdiction.rule_data import (
    RuleId,
    RuleSet,
    check_sequence,
    load_rule_sets,
    parse_rule_set,
    rules_in_force,
)
from genecommons.access.jurisdiction.rules import (
    CountryPolicy,
    DatasetFacts,
    JurisdictionDecision,
    PolicyMode,
    Requester,
    evaluate,
)
from genecommons.errors import InvalidInputError

DOCS = Path(__file__).resolve().parents[2] / "docs" / "jurisdiction.md"
ON = date(2025, 6, 1)
FOREIGN = Requester(institution_country="GB", foreign_controlled=False)
CHINESE = Requester(institution_country="CN", foreign_controlled=False)


def facts(**changes: Any) -> DatasetFacts:
    """A dataset of Chinese HGR information that a foreign party may receive; change one fact."""
    base: dict[str, Any] = {
        "hgr_information": True,
        "sequence_individuals": 100,
        "consent_abroad_allowed": True,
        "archived_here": True,
        "provision_abroad_filing": "2025BA0001",
        "security_review": None,
    }
    return DatasetFacts(**{**base, **changes})


def decide(
    dataset: DatasetFacts,
    requester: Requester = FOREIGN,
    *,
    cumulative: int | None = None,
    on: date = ON,
) -> JurisdictionDecision:
    return evaluate(
        requester=requester,
        dataset=dataset,
        cumulative_individuals=dataset.sequence_individuals if cumulative is None else cumulative,
        on=on,
    )


def outcome(decision: JurisdictionDecision, rule: str) -> bool:
    (found,) = [o for o in decision.outcomes if o.rule == rule]
    return found.passed


def test_a_foreign_party_with_filing_and_backup_is_allowed_with_obligations() -> None:
    decision = decide(facts())
    assert decision.allowed and decision.foreign_party
    assert decision.rule == "hgr-foreign-party"
    assert decision.rules == (
        "consent-no-abroad",
        "hgr-foreign-party",
        "hgr-filing-required",
        "hgr-backup-copy",
        "hgr-security-review",
    )
    assert [o.id for o in decision.obligations] == [
        "report-provision-abroad",
        "count-sequence-individuals",
    ]
    assert "2025BA0001" in decision.obligations[0].text
    assert decision.rule_set == "hgr-2024" and decision.rule_set_version == "2024.1"


def test_every_reason_is_given_in_english_and_chinese() -> None:
    for decision in (
        decide(facts()),
        decide(facts(provision_abroad_filing=None, archived_here=False, important_pedigree=True)),
        decide(facts(), CHINESE),
    ):
        assert decision.reasons and len(decision.reasons) == len(decision.reasons_zh)
        for zh in decision.reasons_zh:
            assert any("\u4e00" <= ch <= "\u9fff" for ch in zh)
        for ob in decision.obligations:
            assert ob.text and any("\u4e00" <= ch <= "\u9fff" for ch in ob.text_zh)


# --- foreign party -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("country", "controlled", "foreign"),
    [
        ("CN", False, False),
        ("CN", True, True),  # in mainland, but 50% or more foreign-owned or -controlled
        ("US", False, True),
        ("HK", False, True),
        ("MO", False, True),
        ("TW", False, True),
    ],
)
def test_foreign_party_by_location_or_control(
    country: str, controlled: bool, foreign: bool
) -> None:
    requester = Requester(institution_country=country, foreign_controlled=controlled)
    decision = decide(facts(provision_abroad_filing=None), requester)
    assert decision.foreign_party is foreign
    if foreign:
        assert not decision.allowed and decision.rule == "hgr-filing-required"
        assert "hgr-foreign-party" in decision.rules
    else:
        assert decision.allowed and decision.rule == "hgr-chinese-party"
        assert decision.rules == ("hgr-chinese-party",)


@pytest.mark.parametrize(
    ("code", "en", "zh"),
    [("HK", "Hong Kong", "香港"), ("MO", "Macao", "澳门"), ("TW", "Taiwan", "台湾")],
)
def test_hong_kong_macao_and_taiwan_are_outside_mainland(code: str, en: str, zh: str) -> None:
    rules = rules_in_force(on=ON)
    assert code not in rules.mainland
    decision = decide(facts(), Requester(institution_country=code, foreign_controlled=False))
    basis = next(o for o in decision.outcomes if o.rule == "hgr-foreign-party")
    assert en in basis.reason and "outside mainland China" in basis.reason
    assert zh in basis.reason_zh


def test_foreign_control_is_named_in_the_reason() -> None:
    decision = decide(facts(), Requester(institution_country="CN", foreign_controlled=True))
    basis = next(o for o in decision.outcomes if o.rule == "hgr-foreign-party")
    assert "50% or more foreign-owned" in basis.reason and "50%以上" in basis.reason_zh


def test_no_hgr_information_means_the_hgr_rules_do_not_apply() -> None:
    decision = decide(
        facts(hgr_information=False, provision_abroad_filing=None, archived_here=False)
    )
    assert decision.allowed and decision.rule == "hgr-not-applicable"
    assert "hgr-filing-required" not in decision.rules
    assert decision.obligations == ()


# --- filing, backup, security review ----------------------------------------------------------


def test_filing_both_ways() -> None:
    assert outcome(decide(facts()), "hgr-filing-required")
    for missing in (None, "", "   "):
        decision = decide(facts(provision_abroad_filing=missing))
        assert not decision.allowed and decision.rule == "hgr-filing-required"
        assert "National Health Commission" in decision.reasons[0]
        assert "国家卫生健康委员会" in decision.reasons_zh[0]


def test_backup_copy_both_ways() -> None:
    assert outcome(decide(facts()), "hgr-backup-copy")
    decision = decide(facts(archived_here=False))
    assert not decision.allowed and decision.rule == "hgr-backup-copy"


@pytest.mark.parametrize("flag", ["important_pedigree", "specific_region_population"])
def test_flagged_datasets_need_a_security_review(flag: str) -> None:
    refused = decide(facts(**{flag: True}))
    assert not refused.allowed and refused.rule == "hgr-security-review"
    granted = decide(facts(**{flag: True}, security_review="SR-2025-007"))
    assert granted.allowed and outcome(granted, "hgr-security-review")
    assert any("SR-2025-007" in r for r in granted.reasons)


def test_more_than_500_sequenced_individuals_need_a_review() -> None:
    assert decide(facts(sequence_individuals=500)).allowed
    refused = decide(facts(sequence_individuals=501))
    assert not refused.allowed and refused.rule == "hgr-security-review"
    assert "501" in refused.reasons[0] and "500" in refused.reasons_zh[0]
    assert decide(facts(sequence_individuals=501, security_review="SR-1")).allowed


def test_the_500_is_counted_cumulatively_so_a_split_request_still_needs_review() -> None:
    first = facts(sequence_individuals=300)
    assert decide(first, cumulative=300).allowed
    # the same institution asks for the other 300: 600 in all, more than 500
    second = decide(facts(sequence_individuals=300), cumulative=600)
    assert not second.allowed and second.rule == "hgr-security-review"
    assert "600" in second.reasons[0]
    assert decide(facts(sequence_individuals=300, security_review="SR-2"), cumulative=600).allowed


def test_a_dataset_without_sequence_data_does_not_trigger_the_count() -> None:
    assert decide(facts(sequence_individuals=0), cumulative=900).allowed


def test_the_cumulative_count_must_include_this_request() -> None:
    with pytest.raises(InvalidInputError) as excinfo:
        decide(facts(sequence_individuals=300), cumulative=299)
    assert "cumulative_individuals" in excinfo.value.message and excinfo.value.message_zh
    with pytest.raises(InvalidInputError):
        DatasetFacts(
            hgr_information=True,
            sequence_individuals=-1,
            consent_abroad_allowed=True,
            archived_here=True,
        )


def test_every_missing_requirement_is_reported() -> None:
    decision = decide(
        facts(provision_abroad_filing=None, archived_here=False, specific_region_population=True)
    )
    assert not decision.allowed and decision.rule == "hgr-filing-required"
    assert len(decision.reasons) == 3 == len(decision.reasons_zh)
    assert decision.obligations == ()


# --- consent ------------------------------------------------------------------------------


def test_consent_forbidding_abroad_wins() -> None:
    everything = facts(
        consent_abroad_allowed=False, security_review="SR-3", important_pedigree=True
    )
    decision = decide(everything)
    assert not decision.allowed and decision.rule == "consent-no-abroad"
    assert decision.reasons == tuple(
        o.reason for o in decision.outcomes if o.rule == "consent-no-abroad"
    )
    allow_list = CountryPolicy(mode=PolicyMode.ALLOW, countries=frozenset({"GB"}))
    assert not decide(dataclasses.replace(everything, country_policy=allow_list)).allowed
    # it binds foreign parties for data that is not HGR information too
    assert decide(facts(consent_abroad_allowed=False, hgr_information=False)).rule == (
        "consent-no-abroad"
    )


def test_consent_forbidding_abroad_does_not_bind_a_chinese_party() -> None:
    assert decide(facts(consent_abroad_allowed=False), CHINESE).allowed


# --- country policy -----------------------------------------------------------------------


def test_country_allow_list_both_ways() -> None:
    policy = CountryPolicy(mode=PolicyMode.ALLOW, countries=frozenset({"gb", "DE"}))
    assert policy.countries == frozenset({"GB", "DE"})
    allowed = decide(facts(country_policy=policy))
    assert allowed.allowed and outcome(allowed, "country-allow")
    refused = decide(
        facts(country_policy=policy), Requester(institution_country="US", foreign_controlled=False)
    )
    assert not refused.allowed and refused.rule == "country-allow"
    assert "US" in refused.reasons[0] and "US" in refused.reasons_zh[0]


def test_country_deny_list_both_ways() -> None:
    policy = CountryPolicy(mode=PolicyMode.DENY, countries=frozenset({"US"}))
    assert decide(facts(country_policy=policy)).allowed
    refused = decide(
        facts(country_policy=policy), Requester(institution_country="us", foreign_controlled=False)
    )
    assert not refused.allowed and refused.rule == "country-deny"


def test_country_policy_binds_chinese_parties_too() -> None:
    policy = CountryPolicy(mode=PolicyMode.ALLOW, countries=frozenset({"HK"}))
    refused = decide(facts(country_policy=policy), CHINESE)
    assert not refused.allowed and refused.rule == "country-allow"
    hk_only = decide(
        facts(country_policy=policy), Requester(institution_country="HK", foreign_controlled=False)
    )
    assert hk_only.allowed and hk_only.rule == "hgr-foreign-party"


@pytest.mark.parametrize("bad", ["XX", "China", "CHN", "", "C", "156", "UK"])
def test_country_codes_are_validated(bad: str) -> None:
    with pytest.raises(InvalidInputError) as excinfo:
        Requester(institution_country=bad, foreign_controlled=False)
    assert "ISO 3166-1" in excinfo.value.message and "ISO 3166-1" in excinfo.value.message_zh
    with pytest.raises(InvalidInputError):
        CountryPolicy(mode=PolicyMode.DENY, countries=frozenset({"US", bad}))


def test_country_code_suggests_the_nearest() -> None:
    assert country_code(" tw ") == "TW"
    with pytest.raises(InvalidInputError) as excinfo:
        country_code("China")
    assert "CN" in excinfo.value.details["suggestions"]


def test_country_policy_mode_and_shape_are_checked() -> None:
    with pytest.raises(InvalidInputError):
        CountryPolicy(mode="block", countries=frozenset({"US"}))  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        CountryPolicy(mode=PolicyMode.DENY, countries="US")  # type: ignore[arg-type]
    assert CountryPolicy(mode="deny", countries=frozenset()).mode is PolicyMode.DENY  # type: ignore[arg-type]


# --- rule sets and effective dates ------------------------------------------------------------


def raw_rule_set(name: str = "hgr-2024.json") -> dict[str, Any]:
    folder = (
        Path(__file__).resolve().parents[2]
        / "src"
        / "genecommons"
        / "access"
        / "jurisdiction"
        / "rule_sets"
    )
    data: dict[str, Any] = json.loads((folder / name).read_text(encoding="utf-8"))
    return data


def test_the_shipped_rule_sets_load_in_order_without_gaps() -> None:
    sets = load_rule_sets()
    assert [r.id for r in sets] == ["hgr-2023", "hgr-2024"]
    assert sets[0].effective_until == date(2024, 4, 30)
    assert sets[1].effective_from == date(2024, 5, 1) and sets[1].effective_until is None
    for rule_set in sets:
        assert rule_set.security_review_threshold == 500
        assert rule_set.mainland == frozenset({"CN"})
        assert {code for code, _ in rule_set.outside_mainland} == {"HK", "MO", "TW"}
        for rule in RuleId:
            definition = rule_set.definition(rule)
            assert definition.basis.en and definition.basis.zh


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (date(2023, 7, 1), "hgr-2023"),
        (date(2024, 4, 30), "hgr-2023"),
        (date(2024, 5, 1), "hgr-2024"),
        (date(2030, 1, 1), "hgr-2024"),
    ],
)
def test_the_rule_set_is_chosen_by_the_decision_date(day: date, expected: str) -> None:
    assert rules_in_force(on=day).id == expected
    assert decide(facts(), on=day).rule_set == expected


def test_the_authority_follows_the_rule_set() -> None:
    before = decide(facts(provision_abroad_filing=None), on=date(2024, 4, 30))
    after = decide(facts(provision_abroad_filing=None), on=date(2024, 5, 1))
    assert "Ministry of Science and Technology" in before.reasons[0]
    assert "科学技术部" in before.reasons_zh[0]
    assert "National Health Commission" in after.reasons[0]


def test_no_rule_set_before_the_first_is_in_force() -> None:
    with pytest.raises(InvalidInputError) as excinfo:
        rules_in_force(on=date(2023, 6, 30))
    assert "2023-07-01" in excinfo.value.message and "2023-07-01" in excinfo.value.message_zh


def test_a_rule_set_given_must_be_in_force_on_the_day() -> None:
    old = rules_in_force(on=date(2023, 8, 1))
    with pytest.raises(InvalidInputError):
        evaluate(requester=FOREIGN, dataset=facts(), cumulative_individuals=100, on=ON, rules=old)


def test_a_rule_set_from_data_changes_the_threshold() -> None:
    data = raw_rule_set()
    data.update(
        id="test-2026", version="1", effective_from="2026-01-01", security_review_threshold=1000
    )
    custom = parse_rule_set(data)
    late = date(2026, 2, 1)
    assert rules_in_force(on=late, rule_sets=[custom]).id == "test-2026"
    decision = evaluate(
        requester=FOREIGN,
        dataset=facts(sequence_individuals=600),
        cumulative_individuals=600,
        on=late,
        rules=custom,
    )
    assert decision.allowed and decision.rule_set == "test-2026"


def test_overlapping_rule_sets_are_refused() -> None:
    current = rules_in_force(on=ON)
    data = raw_rule_set()
    data.update(id="overlap", effective_from="2025-01-01")
    with pytest.raises(InvalidInputError):
        check_sequence([current, parse_rule_set(data)])
    with pytest.raises(InvalidInputError):
        check_sequence([current, current])


@pytest.mark.parametrize(
    "change",
    [
        {"mainland": ["CN", "HK"]},
        {"mainland": ["ZZ"]},
        {"mainland": []},
        {"security_review_threshold": "500"},
        {"effective_from": "2024-13-01"},
        {"effective_until": "2020-01-01"},
        {"surprise": True},
        {"title": {"en": "only English"}},
    ],
)
def test_malformed_rule_sets_are_refused(change: dict[str, Any]) -> None:
    data = raw_rule_set()
    data.update(change)
    with pytest.raises(InvalidInputError) as excinfo:
        parse_rule_set(data, source="bad.json")
    assert "bad.json" in excinfo.value.message and "bad.json" in excinfo.value.message_zh


def test_a_rule_set_must_give_the_basis_of_every_rule() -> None:
    data = raw_rule_set()
    del data["rules"]["hgr-security-review"]
    with pytest.raises(InvalidInputError):
        parse_rule_set(data)
    data = raw_rule_set()
    data["rules"]["hgr-extra"] = data["rules"]["hgr-backup-copy"]
    with pytest.raises(InvalidInputError):
        parse_rule_set(data)


def test_the_docs_name_every_rule_and_the_counting() -> None:
    text = DOCS.read_text(encoding="utf-8")
    for rule in RuleId:
        assert f"`{rule.value}`" in text
    assert "500" in text and "累计" in text and "cumulative" in text


# --- properties ---------------------------------------------------------------------------

ISO = sorted({"CN", "HK", "MO", "TW", "US", "GB", "DE", "JP", "SG", "FR", "KR"})
_policies = st.none() | st.builds(
    CountryPolicy,
    mode=st.sampled_from(PolicyMode),
    countries=st.frozensets(st.sampled_from(ISO), max_size=4),
)
_filings = st.none() | st.sampled_from(["", "2025BA0001", "  "])
_facts = st.builds(
    DatasetFacts,
    hgr_information=st.booleans(),
    sequence_individuals=st.integers(min_value=0, max_value=5000),
    consent_abroad_allowed=st.booleans(),
    archived_here=st.booleans(),
    important_pedigree=st.booleans(),
    specific_region_population=st.booleans(),
    country_policy=_policies,
    provision_abroad_filing=_filings,
    security_review=_filings,
)
_days = st.dates(min_value=date(2023, 7, 1), max_value=date(2035, 12, 31))


@given(dataset=_facts, extra=st.integers(min_value=0, max_value=10_000), day=_days)
def test_hgr_rules_never_deny_a_chinese_party_in_mainland(
    dataset: DatasetFacts, extra: int, day: date
) -> None:
    decision = evaluate(
        requester=CHINESE,
        dataset=dataset,
        cumulative_individuals=dataset.sequence_individuals + extra,
        on=day,
    )
    policy = dataset.country_policy
    assert decision.allowed is (policy is None or policy.permits("CN"))
    assert not decision.foreign_party
    assert decision.rule in {"hgr-chinese-party", "country-allow", "country-deny"}
    assert all(
        not rule.startswith("hgr-") or rule == "hgr-chinese-party" for rule in decision.rules
    )


@given(
    dataset=_facts,
    country=st.sampled_from(ISO),
    controlled=st.booleans(),
    extra=st.integers(min_value=0, max_value=10_000),
    day=_days,
)
def test_decisions_are_deterministic_and_explained(
    dataset: DatasetFacts, country: str, controlled: bool, extra: int, day: date
) -> None:
    requester = Requester(institution_country=country, foreign_controlled=controlled)
    args: dict[str, Any] = {
        "requester": requester,
        "dataset": dataset,
        "cumulative_individuals": dataset.sequence_individuals + extra,
        "on": day,
    }
    first, second = evaluate(**args), evaluate(**args)
    assert first == second
    assert first.rule in first.rules and first.rule_set == rules_in_force(on=day).id
    assert first.allowed is all(o.passed for o in first.outcomes)
    assert len(first.reasons) == len(first.reasons_zh) >= 1
    if not first.allowed:
        assert first.obligations == ()
    # more individuals never turns a refusal into a grant
    if not first.allowed:
        more = evaluate(**{**args, "cumulative_individuals": args["cumulative_individuals"] + 1})
        assert not more.allowed


@given(dataset=_facts, day=_days)
def test_a_foreign_party_gets_hgr_information_only_when_every_condition_holds(
    dataset: DatasetFacts, day: date
) -> None:
    decision = evaluate(
        requester=FOREIGN,
        dataset=dataset,
        cumulative_individuals=dataset.sequence_individuals,
        on=day,
    )
    rules: RuleSet = rules_in_force(on=day)
    needs_review = (
        dataset.important_pedigree
        or dataset.specific_region_population
        or dataset.sequence_individuals > rules.security_review_threshold
    )
    expected = (
        (dataset.country_policy is None or dataset.country_policy.permits("GB"))
        and dataset.consent_abroad_allowed
        and (
            not dataset.hgr_information
            or (
                dataset.provision_abroad_filing is not None
                and dataset.archived_here
                and (not needs_review or dataset.security_review is not None)
            )
        )
    )
    assert decision.allowed is expected
