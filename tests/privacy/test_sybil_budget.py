"""The count tier's budget against sybils: one institution's accounts and addresses draw on one
budget, every registered caller on one budget per period (on SQLite and PostgreSQL, and from
many threads at once)."""

from __future__ import annotations

import collections
import random
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from genecommons.config import Settings
from genecommons.db import make_session_factory, node_engine
from genecommons.ledger.events import EventTag
from genecommons.ledger.tables import audit_events
from genecommons.policy.models import Subject
from genecommons.privacy import guards
from genecommons.privacy.beacon_guard import (
    INSTITUTION_SPENT_NOTE,
    INSTITUTION_SPENT_NOTE_ZH,
    PERIOD_SPENT_NOTE,
    PERIOD_SPENT_NOTE_ZH,
    ThresholdRule,
    is_spent,
)
from genecommons.privacy.guards import DefendedGuard, budget_spent, parties, period_start
from genecommons.privacy.tables import privacy_charges
from genecommons.variants.answers import DatasetAnswer, Granularity
from genecommons.variants.normalize import Variant
from genecommons.variants.store import SiteCounts

RULE = ThresholdRule(key=bytes(range(32)), low=10, high=40)
InThreads = Callable[[int, Callable[[int], object]], list[BaseException | None]]  # conftest's
COST = 2 / 31  # the exposure of an allele of count 40 (always said to exist) under [10, 40]


def site(pos: int, ac: int = 40) -> SiteCounts:
    return SiteCounts(
        Variant("chr22", pos, "A", "G"), {"all": {"ac": ac, "an": 4000, "hom": 0, "hemi": 0}}
    )


def member_of(institution: str, n: int) -> Subject:
    return Subject.user(
        f"u{n}@{institution.lower()}.example.org",
        roles=frozenset({"researcher"}),
        institution=institution,
        institution_verified=True,
    )


def ask(guard: DefendedGuard, subject: Subject, address: str, pos: int) -> DatasetAnswer:
    """A count query about one variant, as the Beacon's routes call the guard."""
    return guard(
        subject=subject,
        address=address,
        dataset="GCD1",
        granularity=Granularity.COUNT,
        matches=[site(pos)],
    )


def with_budgets(settings: Settings, **budgets: float) -> Settings:
    return Settings(**{**settings.model_dump(), **budgets})


def low_events(factory: sessionmaker[Session]) -> list[dict[str, Any]]:
    with factory() as session:
        return list(
            session.execute(
                select(audit_events.c.details).where(
                    audit_events.c.tag == str(EventTag.PRIVACY_BUDGET_LOW)
                )
            ).scalars()
        )


def test_an_institutions_accounts_and_addresses_share_one_budget(
    factory: sessionmaker[Session], settings: Settings
) -> None:
    # each account and address could be answered about 8 new variants (0.5 at 2/31 each); the
    # institution's accounts together about 5 (0.3: the 5th passes it)
    settings = with_budgets(settings, beacon_budget=0.5, beacon_institution_budget=0.3)
    guard = DefendedGuard(factory, settings, rule=RULE)
    sybils = [(member_of("GCI1", n), f"10.9.0.{n}") for n in range(6)]
    answers = [
        ask(guard, subject, address, pos=100 * n + i)
        for n, (subject, address) in enumerate(sybils)
        for i in range(2)
    ]
    given = [a for a in answers if not a.withheld]
    assert len(given) == 5 and all(a.exists and a.count == 1 for a in given)
    assert answers[:5] == given  # answered until the institution's budget was spent
    refused = answers[5:]
    assert all(a.note == INSTITUTION_SPENT_NOTE for a in refused)
    assert all(a.note_zh == INSTITUTION_SPENT_NOTE_ZH and is_spent(a) for a in refused)
    assert all(a.count == 0 and not a.exists for a in refused)
    assert budget_spent(factory, party="institution:GCI1", dataset="GCD1") == pytest.approx(
        5 * COST
    )
    # the early warning names the institution, once (at 0.8 of 0.3: the 4th answer)
    institution = [e for e in low_events(factory) if "institution" in e]
    assert institution == [
        {"institution": "GCI1", "dataset": "GCD1", "spent": pytest.approx(4 * COST), "limit": 0.3}
    ]
    # another institution's account, at an address of the first, is stopped by neither budget
    # it does not share; a common allele costs nothing and is answered to the spent institution
    other = ask(guard, member_of("GCI2", 0), "10.8.0.1", pos=5000)
    assert other.exists and not other.withheld
    common = guard(
        subject=sybils[5][0],
        address=sybils[5][1],
        dataset="GCD1",
        granularity=Granularity.COUNT,
        matches=[site(7000, ac=400)],
    )
    assert common.withheld and common.note == INSTITUTION_SPENT_NOTE  # spent: nothing more
    # the per-caller ledger alone (the undefended one) would have answered every sybil
    alone = DefendedGuard(factory, settings, rule=RULE, charged=parties)
    assert all(
        not ask(alone, subject, f"10.7.0.{n}", pos=20_000 + n).withheld
        for n, (subject, _) in enumerate(sybils)
    )


def test_all_registered_callers_share_one_budget_per_period(
    factory: sessionmaker[Session], settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = with_budgets(
        settings,
        beacon_institution_budget=0.3,
        beacon_dataset_budget=0.4,  # 0.4 / (2/31): the 7th answer passes it
        beacon_budget_window=30,
    )
    moment = datetime(2026, 12, 7, 12, tzinfo=UTC)
    monkeypatch.setattr(guards, "now", lambda: moment)
    guard = DefendedGuard(factory, settings, rule=RULE)
    answers = [
        ask(guard, member_of(f"GCI{n}", 0), f"10.6.0.{n}", pos=100 * n + i)
        for n in range(4)
        for i in range(3)
    ]
    given = [a for a in answers if not a.withheld]
    assert len(given) == 7
    assert [a.note for a in answers[7:]] == [PERIOD_SPENT_NOTE] * 5
    assert answers[-1].note_zh == PERIOD_SPENT_NOTE_ZH
    period = period_start(moment, 30)
    assert period == "2026-12-03"  # periods of 30 days counted from 1970-01-01
    assert budget_spent(factory, party=f"period:{period}", dataset="GCD1") == pytest.approx(
        7 * COST
    )
    assert {
        "period": period,
        "dataset": "GCD1",
        "spent": pytest.approx(5 * COST),
        "limit": 0.4,
    } in (low_events(factory))
    # the next period starts afresh (institutions' budgets do not)
    moment = datetime(2027, 1, 2, tzinfo=UTC)  # the next period's first day
    fresh = ask(guard, member_of("GCI9", 0), "10.6.1.1", pos=9000)
    assert fresh.exists and not fresh.withheld
    spent_institution = ask(guard, member_of("GCI0", 1), "10.6.1.2", pos=9100)
    assert not spent_institution.withheld  # GCI0 spent 3 * 2/31 < 0.3 before the cap


def _guards(settings: Settings, count: int) -> list[DefendedGuard]:
    """Guards of `count` apps on one database (as worker processes have)."""
    return [
        DefendedGuard(make_session_factory(node_engine(settings)), settings, rule=RULE)
        for _ in range(count)
    ]


def test_concurrent_sybils_never_overspend_their_institutions_budget(
    engine: Engine, settings: Settings, in_threads: InThreads
) -> None:
    # 12 accounts of one institution, each from its own address, 2 apps: one after the other
    # the institution would be answered about 8 new variants (0.5 at 2/31; the 8th passes it)
    settings = with_budgets(settings, beacon_institution_budget=0.5)
    apps = _guards(settings, 2)
    variants = list(range(1, 40))
    given: list[tuple[str, int]] = []

    def sybil(thread: int) -> None:
        subject = member_of("GCI1", thread)
        for pos in random.Random(thread).sample(variants, len(variants)):
            answer = ask(apps[thread % 2], subject, f"10.5.0.{thread}", pos)
            if not is_spent(answer):
                given.append((subject.id, pos))

    assert [e for e in in_threads(12, sybil) if e is not None] == []
    factory = make_session_factory(engine)
    with factory() as session:
        charges = session.execute(select(privacy_charges.c.party, privacy_charges.c.variant)).all()
    by_party = collections.defaultdict(list)
    for party, variant in charges:
        by_party[party].append(variant)
    institution = by_party["institution:GCI1"]
    assert len(institution) == len(set(institution)) == 8  # never past one-at-a-time's
    assert budget_spent(factory, party="institution:GCI1", dataset="GCD1") == pytest.approx(
        8 * COST
    )
    # an answer given is an answer charged to the institution; each account only for its own
    assert {site(pos).variant.key for _, pos in given} == set(institution)
    for who, pos in given:
        assert site(pos).variant.key in by_party[f"account:{who}"]
    warned = collections.Counter(next(iter(d.items())) for d in low_events(factory))
    assert warned[("institution", "GCI1")] == 1
    for app in apps:
        app.factory.kw["bind"].dispose()
