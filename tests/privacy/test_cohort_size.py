"""The scope a small dataset's Beacon answers in (privacy/cohort_size.py): its decisions as a
pure function, the served answer of a small dataset, and a seeded attack on a 65-member one."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError
from sqlalchemy import insert
from sqlalchemy.orm import Session, sessionmaker

from genecommons.clock import now
from genecommons.config import Settings
from genecommons.policy.models import Subject
from genecommons.privacy import attack, evaluation
from genecommons.privacy.beacon_guard import WITHHELD_NOTE, PublicCounts, ThresholdRule
from genecommons.privacy.cohort_size import (
    Scope,
    SizeRule,
    common_disclosed,
    sized_answer,
    useful_floor,
)
from genecommons.privacy.guards import DefendedGuard
from genecommons.variants.answers import Granularity
from genecommons.variants.normalize import Variant
from genecommons.variants.store import SiteCounts
from genecommons.variants.tables import variant_stores

from .conftest import Simulated

KEY = bytes(range(32))
Tables = Callable[[int, dict[str, tuple[int, int]]], PublicCounts]  # conftest's public_table
sizes = st.builds(
    lambda a, b, miss: SizeRule(none_below=min(a, b), common_below=max(a, b), miss=miss),
    st.integers(1, 3000),
    st.integers(1, 3000),
    st.floats(1e-8, 0.5),
)


def site(ac: int, an: int, pos: int = 100) -> SiteCounts:
    return SiteCounts(
        Variant("chr22", pos, "A", "G"), {"all": {"ac": ac, "an": an, "hom": 0, "hemi": 0}}
    )


@given(rule=sizes, members=st.integers(0, 5000), more=st.integers(0, 5000), placed=st.booleans())
def test_the_scope_widens_with_the_members_and_never_without_a_reference(
    rule: SizeRule, members: int, more: int, placed: bool
) -> None:
    order = [Scope.NONE, Scope.COMMON, Scope.FULL]
    small, large = rule.scope(members, placed=placed), rule.scope(members + more, placed=placed)
    assert order.index(small) <= order.index(large)
    assert (small is Scope.FULL) == (members >= rule.common_below)
    if members < rule.none_below:
        assert small is Scope.NONE
    if not placed:
        assert small is not Scope.COMMON
    if placed and rule.none_below <= members < rule.common_below:
        assert small is Scope.COMMON


@given(
    rule=sizes,
    count=st.integers(0, 2000),
    extra=st.integers(0, 2000),
    alleles=st.integers(1, 4000),
    others=st.integers(0, 10_000),
    more=st.integers(0, 10_000),
)
def test_near_certainty_grows_with_the_public_count_and_the_other_members(
    rule: SizeRule, count: int, extra: int, alleles: int, others: int, more: int
) -> None:
    if rule.certain(count, alleles, others):
        assert rule.certain(count + extra, alleles, others)
        assert rule.certain(count, alleles, others + more)
    assert not rule.certain(count, alleles, 0)  # no other member: nothing is certain


@given(
    rule=sizes,
    members=st.integers(1, 3000),
    ac=st.integers(0, 40),
    public=st.integers(0, 1000),
    granularity=st.sampled_from([Granularity.BOOLEAN, Granularity.COUNT]),
)
def test_small_datasets_never_say_an_absent_allele_exists_and_say_why_they_withhold(
    rule: SizeRule,
    members: int,
    ac: int,
    public: int,
    granularity: Granularity,
    public_table: Tables,
) -> None:
    matched = site(ac, 2 * members)
    table = public_table(1000, {matched.variant.key: (public, 1000)})
    threshold = ThresholdRule(key=KEY, low=10, high=40, reference=table)
    answer = sized_answer(
        threshold,
        rule,
        dataset="GCD1",
        members=members,
        granularity=granularity,
        matches=[matched],
    )
    if ac == 0:
        assert not answer.exists
    scope = rule.scope(members, placed=True)
    if scope is Scope.NONE:
        assert not answer.exists
    if scope is Scope.COMMON:
        assert answer.exists == (ac > 0 and rule.certain(public, 1000, 2 * members - 2))
    if scope is not Scope.FULL and not answer.exists:
        # the note gives the dataset's reason, the same whatever the allele asked about
        empty = sized_answer(
            threshold, rule, dataset="GCD1", members=members, granularity=granularity, matches=[]
        )
        assert answer == empty
        assert answer.withheld and answer.note and answer.note_zh
        assert str(rule.common_below) in answer.note and str(rule.common_below) in answer.note_zh


def test_the_floor_is_where_an_allele_of_ten_percent_becomes_near_certain() -> None:
    n = useful_floor(1e-4, 0.10)
    assert n == 45  # the default GENECOMMONS_BEACON_NO_ANSWER_BELOW
    assert 0.9 ** (2 * (n - 1)) <= 1e-4 < 0.9 ** (2 * (n - 2))
    assert Settings().beacon_no_answer_below == n


def test_settings_refuse_cut_points_upside_down() -> None:
    with pytest.raises(ValidationError, match="NO_ANSWER_BELOW"):
        Settings(beacon_no_answer_below=600, beacon_common_only_below=500)


def _bind_store(
    factory: sessionmaker[Session], dataset_id: int, dataset: str, samples: int
) -> None:
    """A variant store's binding row of `samples` samples for the catalog's `dataset`."""
    with factory.begin() as session:
        session.execute(
            insert(variant_stores).values(
                dataset_id=dataset_id,
                dataset=dataset,
                store=dataset,
                store_id=f"s{dataset_id}",
                source_sha256="0" * 64,
                source_name="cohort.vcf.gz",
                samples=samples,
                records=1,
                sites=1,
                built_at=now(),
                built_by="operator@example.org",
            )
        )


def test_the_served_guard_withholds_a_small_datasets_answers_with_the_reason(
    factory: sessionmaker[Session],
    settings: Settings,
    public_table: Tables,
    catalog_dataset: Callable[[str], int],
) -> None:
    common = site(60, 60)  # every member carries it: common in the reference too
    table = public_table(1000, {common.variant.key: (900, 1000)})
    rule = ThresholdRule(key=KEY, low=10, high=40, reference=table)
    for accession, samples in (("GCD00000030", 30), ("GCD00000065", 65)):
        _bind_store(factory, catalog_dataset(accession), accession, samples)
    guard = DefendedGuard(factory, settings, rule=rule)
    anonymous = Subject.anonymous()
    for granularity in (Granularity.BOOLEAN, Granularity.COUNT):
        tiny = guard(
            subject=anonymous,
            address="10.0.0.1",
            dataset="GCD00000030",
            granularity=granularity,
            matches=[common],
        )
        assert not tiny.exists and tiny.withheld
        assert tiny.note and "fewer than 45" in tiny.note
        assert tiny.note_zh and "少于 45" in tiny.note_zh
        small = guard(
            subject=anonymous,
            address="10.0.0.1",
            dataset="GCD00000065",
            granularity=granularity,
            matches=[common],
        )
        assert small.exists  # near certain whoever takes part
        rare = guard(
            subject=anonymous,
            address="10.0.0.1",
            dataset="GCD00000065",
            granularity=granularity,
            matches=[site(1, 130, pos=7)],
        )
        assert not rare.exists and rare.note != WITHHELD_NOTE
        assert rare.note and "fewer than 500" in rare.note


@pytest.mark.slow
def test_a_65_member_beacon_answering_common_alleles_holds_the_rule_aware_attacker(
    simulated_region: Simulated, public_table: Tables
) -> None:
    # 65 members and 65 non-members of the simulated region; the attacker's panel is the rest
    # (470), the node's public reference half of it
    rng = np.random.default_rng(3)
    order = rng.permutation(simulated_region.haplotypes.shape[1] // 2)
    members = simulated_region.dosages(order[:65])
    outsiders = simulated_region.dosages(order[65:130])
    reference = simulated_region.dosages(order[130:])
    counts = members.sum(axis=1, dtype=np.int64)
    public = reference[:, :235].sum(axis=1, dtype=np.int64)
    variants = [Variant("chr22", int(p), "A", "G") for p in simulated_region.positions]
    table = public_table(470, {v.key: (int(c), 470) for v, c in zip(variants, public, strict=True)})
    rule = SizeRule()
    said = np.array(
        [
            common_disclosed(rule, table, site(int(c), 130, pos=v.pos))
            for v, c in zip(variants, counts, strict=True)
        ],
        dtype=np.int8,
    )
    assert not said[counts == 0].any()
    known = attack.SiteThresholds(
        (attack.Thresholds((131,), (1.0,)), attack.Thresholds((1,), (1.0,))),
        np.array([rule.certain(int(c), 470, 128) for c in public], dtype=np.int64),
    )

    def run(answers: npt.NDArray[np.int8], thresholds: attack.Rule) -> attack.Curve:
        return attack.run_rule_aware_attack(
            "knows the rule",
            members=members,
            outsiders=outsiders,
            reference=reference,
            beacon_size=65,
            ask=lambda _v, sites: answers[sites],
            thresholds=thresholds,
            queries=(1, 10, 100, 1000, 5000),
        )

    assert max(run((counts > 0).astype(np.int8), attack.EXACT).power) >= 0.9
    guarded = run(said, known)
    assert max(guarded.power) <= 0.12, guarded.power
    assert said.sum() >= 0.2 * (counts >= 13).sum()  # it still answers the common alleles


def test_the_attacker_who_knows_the_rule_knows_a_small_datasets_scope(
    public_table: Tables,
) -> None:
    variants = [Variant("chr22", p, "A", "G") for p in (10, 20, 30)]
    table = public_table(1000, {variants[0].key: (900, 1000), variants[1].key: (1, 1000)})
    rule = ThresholdRule(key=KEY, low=10, high=40, reference=table)
    sizes = SizeRule(none_below=45, common_below=500)
    common = evaluation.known_rule(rule, variants, alleles=130, dataset="GCD1", sizes=sizes)
    assert isinstance(common, attack.SiteThresholds)
    assert [common.rules[r].values for r in common.of_site] == [(1,), (131,), (131,)]
    none = evaluation.known_rule(rule, variants, alleles=60, dataset="GCD1", sizes=sizes)
    assert isinstance(none, attack.Thresholds) and none.values == (61,)
    full = evaluation.known_rule(rule, variants, alleles=1000, dataset="GCD1", sizes=sizes)
    windows = evaluation.known_rule(rule, variants, alleles=1000, dataset="GCD1")
    assert isinstance(full, attack.SiteThresholds) and isinstance(windows, attack.SiteThresholds)
    assert full.rules == windows.rules and list(full.of_site) == list(windows.of_site)
