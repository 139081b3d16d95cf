"""The defended Beacon: keyed thresholds (against a slow reference), what answers reveal, and
the count granularity's ledger, budget and early warning (on SQLite and PostgreSQL)."""

from __future__ import annotations

import collections
import math
import random
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from pydantic import ValidationError
from sqlalchemy import Column, Integer, MetaData, Table, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from genecommons.config import Settings
from genecommons.db import Base, make_session_factory, node_engine
from genecommons.errors import ConfigurationError
from genecommons.ledger.events import EventTag
from genecommons.ledger.tables import audit_events
from genecommons.policy.models import Subject
from genecommons.privacy.beacon_guard import PublicCounts, ThresholdRule, rule_answer, window_start
from genecommons.privacy.beacon_rules import beacon_key, threshold_rule
from genecommons.privacy.guards import DefendedGuard, budget_spent
from genecommons.privacy.tables import privacy_charges
from genecommons.variants.answers import Granularity
from genecommons.variants.normalize import Variant, parse_key
from genecommons.variants.store import SiteCounts

KEY = bytes(range(32))
Tables = Callable[[int, dict[str, tuple[int, int]]], PublicCounts]  # conftest's public_table
InThreads = Callable[[int, Callable[[int], object]], list[BaseException | None]]  # conftest's
RULE = ThresholdRule(key=KEY, low=10, high=40)
SHAPED = ThresholdRule(key=KEY, low=10, high=40, alpha=0.5, beta=3.0)  # heavy near 10
shapes = st.floats(min_value=0.2, max_value=5.0)
USER = Subject.user("r@example.org", roles=frozenset({"researcher"}), institution=None)


def site(ac: int, pos: int = 100, an: int = 4000) -> SiteCounts:
    return SiteCounts(
        Variant("chr22", pos, "A", "G"), {"all": {"ac": ac, "an": an, "hom": 0, "hemi": 0}}
    )


def slow_pmf(rule: ThresholdRule) -> list[float]:
    """The Beta(alpha, beta) density at the middle of each threshold's cell, normalised."""
    u = [(t - rule.low + 0.5) / rule.width for t in range(rule.low, rule.high + 1)]
    w = [x ** (rule.alpha - 1) * (1 - x) ** (rule.beta - 1) for x in u]
    return [x / sum(w) for x in w]


def slow_exposure(rule: ThresholdRule, ac: int) -> float:
    """The chance of the thresholds at which removing a member (1 or 2 copies) changes the
    answer."""
    changed = 0.0
    for t, chance in zip(range(rule.low, rule.high + 1), slow_pmf(rule), strict=True):
        said = ac > 0 and ac >= t
        without = [max(ac - g, 0) for g in (1, 2)]
        if any(said != (w > 0 and w >= t) for w in without):
            changed += chance
    return changed


@given(
    ac=st.integers(min_value=0, max_value=200),
    pos=st.integers(min_value=1, max_value=10**8),
    dataset=st.sampled_from(["GCD1", "GCD00000002"]),
    low=st.integers(1, 40),
    extra=st.integers(0, 40),
    alpha=shapes,
    beta=shapes,
)
def test_answers_follow_the_keyed_threshold(
    ac: int, pos: int, dataset: str, low: int, extra: int, alpha: float, beta: float
) -> None:
    rule = ThresholdRule(key=KEY, low=low, high=low + extra, alpha=alpha, beta=beta)
    answer = rule.disclosed(dataset, site(ac, pos))
    threshold = rule.threshold(dataset, site(ac, pos).variant.key)
    assert rule.low <= threshold <= rule.high
    assert threshold == rule.threshold(dataset, site(ac, pos).variant.key)  # deterministic
    assert answer == (ac >= threshold and ac > 0)
    if ac == 0:
        assert not answer  # an absent allele is never said to exist
    if ac >= rule.high:
        assert answer  # frequency >= high / AN is always answered


@given(low=st.integers(1, 40), extra=st.integers(0, 60), alpha=shapes, beta=shapes)
def test_the_chances_are_the_discretised_beta_and_sum_to_one(
    low: int, extra: int, alpha: float, beta: float
) -> None:
    rule = ThresholdRule(key=KEY, low=low, high=low + extra, alpha=alpha, beta=beta)
    assert len(rule.pmf) == rule.width
    assert sum(rule.pmf) == pytest.approx(1.0, abs=1e-12)
    assert min(rule.pmf) >= 0
    assert rule.pmf == pytest.approx(slow_pmf(rule), abs=1e-12)


def test_thresholds_are_drawn_with_the_chances_the_rule_states() -> None:
    drawn = [SHAPED.threshold("GCD1", f"chr22-{p}-A-G") for p in range(1, 40_001)]
    for t, chance in zip(range(SHAPED.low, SHAPED.high + 1), SHAPED.pmf, strict=True):
        seen = drawn.count(t) / len(drawn)
        # binomial sampling error over 40,000 variants: within 5 standard deviations
        assert abs(seen - chance) <= 5 * (chance * (1 - chance) / len(drawn)) ** 0.5 + 1e-9
    assert SHAPED.pmf[0] > 3 * SHAPED.pmf[-1]  # heavy near low, light near high


@given(
    pos=st.integers(min_value=2, max_value=10**8),
    chrom=st.sampled_from(["22", "chr22", "X"]),
    case=st.booleans(),
)
def test_respellings_of_a_variant_get_one_threshold(pos: int, chrom: str, case: bool) -> None:
    plain = parse_key(f"{chrom}-{pos}-A-G")
    # lower case, and a shared trailing base: normalised to the same variant
    respelt = parse_key(f"{chrom}-{pos}-{'ac' if case else 'AC'}-{'gc' if case else 'GC'}")
    assert respelt == plain
    assert SHAPED.threshold("GCD1", respelt.key) == SHAPED.threshold("GCD1", plain.key)


@given(
    ac=st.integers(min_value=0, max_value=60),
    low=st.integers(1, 30),
    extra=st.integers(0, 30),
    alpha=shapes,
    beta=shapes,
)
def test_exposure_equals_the_slow_reference(
    ac: int, low: int, extra: int, alpha: float, beta: float
) -> None:
    rule = ThresholdRule(key=KEY, low=low, high=low + extra, alpha=alpha, beta=beta)
    assert rule.exposure(site(ac)) == pytest.approx(slow_exposure(rule, ac), abs=1e-12)


def test_the_threshold_is_a_keyed_function_of_dataset_and_variant() -> None:
    key = site(1).variant.key
    assert RULE.threshold("GCD1", key) == RULE.threshold("GCD1", key)  # no fresh noise
    other = ThresholdRule(key=bytes(32), low=10, high=40)
    thresholds = {RULE.threshold("GCD1", f"chr22-{p}-A-G") for p in range(2000)}
    assert thresholds == set(range(10, 41))  # spread over the whole range
    differ = sum(
        RULE.threshold("GCD1", f"chr22-{p}-A-G") != other.threshold("GCD1", f"chr22-{p}-A-G")
        for p in range(200)
    )
    assert differ > 150  # another key, other thresholds


def test_settings_refuse_a_threshold_range_upside_down() -> None:
    with pytest.raises(ValidationError, match="BEACON_THRESHOLD_MIN"):
        Settings(beacon_threshold_min=50, beacon_threshold_max=40)
    with pytest.raises(ValueError, match="low <= high"):
        ThresholdRule(key=KEY, low=5, high=4)
    with pytest.raises(ValueError, match="Beta shapes"):
        ThresholdRule(key=KEY, low=5, high=9, alpha=0.0)
    with pytest.raises(ValidationError, match="beacon_threshold_alpha"):
        Settings(beacon_threshold_alpha=-1)


def slow_window(count: int, public: int, cohort: int, size: int, high: int) -> int:
    """The window's first threshold by brute force: the closed-form negative binomial belief
    about the others' count, each window weighed by its chance, the lightest (lowest on ties)."""
    r, theta = count + 0.5, cohort / public
    q = theta / (1 + theta)

    def chance(x: int) -> float:
        if q == 0:
            return 1.0 if x == 0 else 0.0
        log = math.lgamma(x + r) - math.lgamma(x + 1) - math.lgamma(r)
        return math.exp(log + r * math.log1p(-q) + (x * math.log(q) if x else 0.0))

    weights = [
        (sum(chance(t - 1) for t in range(a, a + size)), a) for a in range(1, high - size + 2)
    ]
    lightest = min(w for w, _ in weights)
    # the rule sums numpy floats: windows within rounding of the lightest are as good
    return min(a for w, a in weights if w <= lightest * (1 + 1e-9) + 1e-300)


@given(
    count=st.integers(0, 400),
    public=st.integers(2, 3000),
    cohort=st.integers(0, 8000),
    size=st.integers(1, 10),
    extra=st.integers(0, 40),
)
def test_windows_sit_where_the_public_count_says_the_count_is_least_likely(
    count: int, public: int, cohort: int, size: int, extra: int
) -> None:
    high = size + extra
    first = window_start(count, public, cohort, width=size, high=high)
    assert 1 <= first <= high - size + 1
    assert first == slow_window(count, public, cohort, size, high)


def test_common_public_alleles_get_low_windows_and_unseen_ones_high(
    public_table: Tables,
) -> None:
    table = public_table(2000, {site(0, pos=1).variant.key: (300, 2000)})
    rule = ThresholdRule(key=KEY, low=10, high=40, reference=table, window_size=4)
    common, unseen = site(0, pos=1).variant.key, site(0, pos=2).variant.key
    assert rule.window(common, 4000) == (1, 4)  # about 600 copies expected: never near 1-4
    assert rule.window(unseen, 4000) == (37, 40)  # most likely absent: never near 37-40
    assert rule.thresholds(unseen, 4000) == ((37, 38, 39, 40), (0.25, 0.25, 0.25, 0.25))
    # a member decides an answer only where the count meets the window
    assert rule.exposure(site(3, pos=1)) == pytest.approx(0.5)  # thresholds 2, 3
    assert rule.exposure(site(20, pos=1)) == 0.0
    assert rule.exposure(site(38, pos=2)) == pytest.approx(0.5)  # thresholds 37, 38
    assert rule.exposure(site(20, pos=2)) == 0.0
    assert RULE.window(common, 4000) == (10, 40)  # without a reference: [low, high]
    with pytest.raises(ValueError, match="window size"):
        ThresholdRule(key=KEY, low=10, high=40, reference=table, window_size=41)
    with pytest.raises(ValidationError, match="BEACON_THRESHOLD_WINDOW"):
        Settings(beacon_threshold_window=41)


@given(
    ac=st.integers(0, 200),
    public=st.none() | st.integers(0, 2000),
    pos=st.integers(1, 10**8),
    size=st.integers(1, 8),
    alpha=shapes,
    beta=shapes,
)
def test_windowed_answers_keep_the_correctness_guarantees(
    public_table: Tables,
    ac: int,
    public: int | None,
    pos: int,
    size: int,
    alpha: float,
    beta: float,
) -> None:
    key = site(ac, pos).variant.key
    table = public_table(2000, {} if public is None else {key: (public, 2000)})
    rule = ThresholdRule(
        key=KEY, low=10, high=40, alpha=alpha, beta=beta, reference=table, window_size=size
    )
    first, last = rule.window(key, 4000)
    assert first >= 1 and last == first + size - 1 <= 40
    threshold = rule.threshold("GCD1", key, 4000)
    assert first <= threshold <= last
    answer = rule.disclosed("GCD1", site(ac, pos))
    assert answer == (ac > 0 and ac >= threshold)
    if ac == 0:
        assert not answer  # an absent allele is never said to exist
    if ac >= 40:
        assert answer  # frequency >= 1% of 4,000 alleles is always answered
    values, chances = rule.thresholds(key, 4000)
    expected = sum(c for t, c in zip(values, chances, strict=True) if ac - 2 < t <= ac)
    assert rule.exposure(site(ac, pos)) == pytest.approx(expected if ac > 0 else 0.0)


def test_not_disclosed_looks_the_same_for_absent_and_rare_alleles() -> None:
    absent = rule_answer(RULE, dataset="GCD1", granularity=Granularity.BOOLEAN, matches=[])
    rare = rule_answer(RULE, dataset="GCD1", granularity=Granularity.BOOLEAN, matches=[site(3)])
    assert absent == rare
    assert absent.withheld and not absent.exists and absent.note and absent.note_zh
    common = rule_answer(RULE, dataset="GCD1", granularity=Granularity.COUNT, matches=[site(400)])
    assert common.exists and common.count == 1 and not common.withheld


@hypothesis_settings(max_examples=50, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ac=st.integers(min_value=0, max_value=100))
def test_boolean_answers_ignore_who_asks(ac: int, factory: sessionmaker[Session]) -> None:
    guard = DefendedGuard(factory, Settings(), rule=RULE)  # the ledger is not read
    answers = {
        guard(
            subject=Subject.user(f"u{i}@example.org", roles=frozenset(), institution=None),
            address=f"10.0.0.{i}",
            dataset="GCD1",
            granularity=Granularity.BOOLEAN,
            matches=[site(ac)],
        )
        for i in range(3)
    }
    assert len(answers) == 1


def test_count_answers_spend_the_budget_warn_then_withhold(
    factory: sessionmaker[Session], settings: Settings
) -> None:
    settings = Settings(**{**settings.model_dump(), "beacon_budget": 0.2})
    guard = DefendedGuard(factory, settings, rule=RULE)
    in_window = [site(ac=20, pos=p) for p in range(1, 200)]  # each costs 2/31
    answers = []
    for m in in_window[:6]:
        answers.append(
            guard(
                subject=USER,
                address="10.1.1.1",
                dataset="GCD1",
                granularity=Granularity.COUNT,
                matches=[m],
            )
        )
    # asked again: charged once
    guard(
        subject=USER,
        address="10.1.1.1",
        dataset="GCD1",
        granularity=Granularity.COUNT,
        matches=[in_window[0]],
    )
    spent = budget_spent(factory, party=f"account:{USER.id}", dataset="GCD1")
    assert spent == pytest.approx(4 * 2 / 31)  # the fourth answer passed the budget
    assert [a.note is not None and "budget" in a.note for a in answers] == [False] * 4 + [True] * 2
    assert all(a.withheld and not a.exists for a in answers[4:])
    with factory() as session:
        events = (
            session.execute(
                select(audit_events.c.details).where(
                    audit_events.c.tag == str(EventTag.PRIVACY_BUDGET_LOW)
                )
            )
            .scalars()
            .all()
        )
    assert sorted(events, key=str) == sorted(
        [
            {
                "account": USER.id,
                "dataset": "GCD1",
                "spent": pytest.approx(3 * 2 / 31),
                "limit": 0.2,
            },
            {
                "address": "10.1.1.1",
                "dataset": "GCD1",
                "spent": pytest.approx(3 * 2 / 31),
                "limit": 0.2,
            },
        ],
        key=str,
    )
    # the spent address stops another account too; a fresh address and account still get answers
    other = replace(USER, id="user:other@example.org")
    refused = guard(
        subject=other,
        address="10.1.1.1",
        dataset="GCD1",
        granularity=Granularity.COUNT,
        matches=[site(400)],
    )
    assert refused.withheld and not refused.exists
    fresh = guard(
        subject=other,
        address="10.2.2.2",
        dataset="GCD1",
        granularity=Granularity.COUNT,
        matches=[site(400)],
    )
    assert fresh.exists and fresh.count == 1
    # common and absent alleles cost nothing: no member decides them
    assert budget_spent(factory, party="address:10.2.2.2", dataset="GCD1") == 0.0


def test_the_key_is_made_by_init_once_and_kept(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, environment="test")
    with pytest.raises(ConfigurationError) as missing:  # a read makes no key
        threshold_rule(settings)
    assert "genecommons init" in missing.value.message and missing.value.message_zh
    assert not tmp_path.exists() or not any(tmp_path.iterdir())
    made = beacon_key(settings, create=True)  # as `genecommons init` makes it
    assert beacon_key(settings, create=True) == made
    first = threshold_rule(settings)
    assert (first.low, first.high, first.alpha, first.beta) == (10, 40, 1.0, 1.0)  # uniform
    assert threshold_rule(settings).key == first.key == beacon_key(settings)
    # beside it only the node key store it is sealed by; nothing left aside
    assert len(first.key) == 32 and sorted(settings.beacon_key_file.parent.iterdir()) == sorted(
        [settings.beacon_key_file, settings.node_key_file, settings.key_dir / "node-passphrase"]
    )
    assert first.key not in settings.beacon_key_file.read_bytes()  # sealed at rest
    production = Settings(data_dir=tmp_path / "prod", environment="production")
    with pytest.raises(ConfigurationError) as refused:
        threshold_rule(production)
    assert "genecommons init" in refused.value.message and refused.value.message_zh


def test_production_refuses_the_undefended_beacon(tmp_path: Path) -> None:
    assert Settings(data_dir=tmp_path, environment="test", beacon_guard="exact")
    with pytest.raises(ValidationError, match="GENECOMMONS_BEACON_GUARD"):
        Settings(data_dir=tmp_path, environment="production", beacon_guard="exact")


def _guards(database_url: str, settings: Settings, count: int) -> list[DefendedGuard]:
    """Guards of `count` apps on one database (as worker processes have: each its own engine,
    group commit and memory of charged variants)."""
    return [
        DefendedGuard(make_session_factory(node_engine(settings)), settings, rule=RULE)
        for _ in range(count)
    ]


def test_concurrent_count_answers_never_overspend_and_charge_each_variant_once(
    engine: Engine, database_url: str, settings: Settings, in_threads: InThreads
) -> None:
    # budget 0.5 at 2/31 a variant: asked one after the other, the address would be answered
    # about 8 new variants (the 8th passes the budget), warned once on the 7th (0.8 of it)
    settings = Settings(**{**settings.model_dump(), "beacon_budget": 0.5})
    guards = _guards(database_url, settings, 2)
    variants = [site(ac=20, pos=p) for p in range(1, 25)]
    same = USER
    given: list[tuple[str, str]] = []

    def ask(thread: int) -> None:
        subject = same if thread % 2 else replace(USER, id=f"user:t{thread}@example.org")
        order = random.Random(thread).sample(variants, len(variants))
        for m in order * 2:  # each asked twice: the second time costs nothing new
            answer = guards[thread % 2](
                subject=subject,
                address="10.3.3.3",
                dataset="GCD1",
                granularity=Granularity.COUNT,
                matches=[m],
            )
            if not (answer.note and "budget" in answer.note):
                given.append((subject.id, m.variant.key))

    failures = [e for e in in_threads(12, ask) if e is not None]
    assert failures == []
    with make_session_factory(engine)() as session:
        charges = session.execute(
            select(privacy_charges.c.party, privacy_charges.c.variant, privacy_charges.c.exposure)
        ).all()
        low = session.execute(
            select(audit_events.c.details).where(
                audit_events.c.tag == str(EventTag.PRIVACY_BUDGET_LOW)
            )
        ).scalars()
        warned = collections.Counter(next(iter(d.items())) for d in low)
    by_party = collections.defaultdict(list)
    for party, variant, _ in charges:
        by_party[party].append(variant)
    address = by_party.pop("address:10.3.3.3")
    assert len(address) == len(set(address)) == 8  # never past what one-at-a-time allows
    factory = make_session_factory(engine)
    assert budget_spent(factory, party="address:10.3.3.3", dataset="GCD1") == pytest.approx(
        8 * 2 / 31
    )
    for party, charged in by_party.items():  # each variant once per party, within the address's
        assert len(charged) == len(set(charged)) and set(charged) <= set(address)
        assert budget_spent(factory, party=party, dataset="GCD1") == pytest.approx(
            len(charged) * 2 / 31
        )
    assert {key for _, key in given} == set(address)  # an answer given is an answer charged
    assert all(key in by_party[f"account:{who}"] for who, key in given)
    assert warned[("address", "10.3.3.3")] == 1  # once, whichever worker passed it
    assert all(n == 1 for n in warned.values())
    for guard in guards:
        guard.factory.kw["bind"].dispose()


def test_a_failed_charge_commit_fails_every_answer_waiting_for_it(
    database_url: str, settings: Settings, in_threads: InThreads
) -> None:
    # a ledger whose charges cannot be written (a column the code does not fill): the reads
    # work, every group commit fails, and so must each answer that waited for one
    engine = node_engine(settings)
    tables = [t for t in Base.metadata.sorted_tables if t.name != "privacy_charges"]
    Base.metadata.create_all(engine, tables=tables)
    refusing = MetaData()
    Table(
        "privacy_charges",
        refusing,
        *(
            Column(c.name, c.type, primary_key=c.primary_key, nullable=c.nullable)
            for c in privacy_charges.columns
        ),
        Column("blocker", Integer, nullable=False),
    )
    refusing.create_all(engine)
    guard = DefendedGuard(make_session_factory(engine), settings, rule=RULE)
    returned: list[int] = []

    def ask(thread: int) -> None:
        guard(
            subject=USER,
            address="10.4.4.4",
            dataset="GCD1",
            granularity=Granularity.COUNT,
            matches=[site(ac=20, pos=1000 + thread)],
        )
        returned.append(thread)

    raised = [e for e in in_threads(8, ask) if isinstance(e, IntegrityError)]
    assert returned == []
    assert len(raised) == 8
    factory = make_session_factory(engine)
    assert budget_spent(factory, party=f"account:{USER.id}", dataset="GCD1") == 0.0
    engine.dispose()
