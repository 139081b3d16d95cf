"""The privacy report of a dataset, and the attack measurements it rests on (use cases).

`genecommons privacy attack-beacon` records each measurement here with its inputs and the
defence's settings; `privacy_report` puts the latest beside the dataset as it is now, and what
callers have spent of their budgets and of the open route's ε; `stale_datasets` names the
datasets whose measurement no longer describes them (report_model.judge), for `genecommons
privacy reassess` to measure again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session, sessionmaker

from genecommons import clock
from genecommons.catalog import reads as catalog
from genecommons.config import Settings
from genecommons.db import write_transaction
from genecommons.errors import NotFoundError
from genecommons.ledger.events import EventTag, record_event
from genecommons.policy.decision import require
from genecommons.policy.models import Action, Resource, Subject
from genecommons.privacy import detection, frequencies
from genecommons.privacy.beacon_rules import rule_settings, size_rule, suited_datasets
from genecommons.privacy.report_model import (
    BudgetUse,
    FrequencyReleases,
    Measurement,
    PrivacyReport,
    judge,
    measurement_of,
)
from genecommons.privacy.tables import (
    privacy_assessments,
    privacy_budgets,
    privacy_frequency_budgets,
    privacy_releases,
)
from genecommons.variants import store_service
from genecommons.variants.service import open_reference


def defence_settings(settings: Settings, dataset: str, members: int | None) -> dict[str, Any]:
    """The settings of the defence that decide what attacks on `dataset` can learn: the guard,
    the count tier's budgets (per account and address, per institution, for all callers per
    period), the threshold rule, whether the public reference places the rule's windows for
    this dataset, the size rule's cut points, and the scope they give the dataset of `members`
    Beacon members (privacy/cohort_size.py; None: no variant store)."""
    reference = open_reference(settings)
    placed = reference is not None and dataset in suited_datasets(settings, reference)
    sizes = size_rule(settings)
    return {
        "guard": settings.beacon_guard,
        "budget": settings.beacon_budget,
        "institution_budget": settings.beacon_institution_budget,
        "dataset_budget": settings.beacon_dataset_budget,
        "budget_window_days": settings.beacon_budget_window,
        "rule": rule_settings(settings),
        "reference_windows": placed,
        "sizes": {
            "no_answer_below": sizes.none_below,
            "common_only_below": sizes.common_below,
            "common_miss": sizes.miss,
        },
        "scope": None if members is None else str(sizes.scope(members, placed=placed)),
    }


def _missing(dataset: str) -> NotFoundError:
    return NotFoundError(f"No dataset {dataset}.", message_zh=f"不存在数据集 {dataset}。")


def record_assessment(
    factory: sessionmaker[Session],
    *,
    dataset: str,
    members: int,
    parameters: Mapping[str, Any],
    figures: Mapping[str, Any],
    actor: Subject,
) -> Measurement:
    """Keep a measurement of attacks on `dataset` (made on `members` members with
    `parameters`, which include the defence's settings), with its audit event."""
    now = clock.now()
    measurement = measurement_of(
        measured_at=now,
        measured_by=actor.id,
        members=members,
        parameters=parameters,
        figures=figures,
    )
    with write_transaction(factory) as session:
        if catalog.dataset_id(session, dataset) is None:
            raise _missing(dataset)
        session.execute(
            insert(privacy_assessments).values(
                dataset=dataset,
                members=members,
                parameters=dict(parameters),
                figures=dict(figures),
                measured_by=actor.id[:300],
                measured_at=now,
            )
        )
        record_event(
            session,
            tag=EventTag.PRIVACY_MEASURED,
            actor=actor.id,
            subject=dataset,
            details={"members": members, "served_worst_power": measurement.served_worst},
        )
    return measurement


def latest_assessment(session: Session, dataset: str) -> Measurement | None:
    """The latest measurement recorded for `dataset` (None: never measured)."""
    row = session.execute(
        select(privacy_assessments)
        .where(privacy_assessments.c.dataset == dataset)
        .order_by(privacy_assessments.c.measured_at.desc(), privacy_assessments.c.id.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    return measurement_of(
        measured_at=clock.as_utc(row.measured_at),
        measured_by=row.measured_by,
        members=int(row.members),
        parameters=row.parameters,
        figures=row.figures,
    )


def _budgets(session: Session, settings: Settings, dataset: str) -> tuple[BudgetUse, ...]:
    """What each kind of party (the prefix of its ledger key: account, address, ...) spent."""
    found: dict[str, list[float]] = {}  # kind -> parties, spent, most, exhausted, warned
    rows = session.execute(
        select(privacy_budgets.c.party, privacy_budgets.c.spent, privacy_budgets.c.warned).where(
            privacy_budgets.c.dataset == dataset
        )
    )
    for party, spent, warned in rows:
        use = found.setdefault(str(party).split(":", 1)[0], [0, 0.0, 0.0, 0, 0])
        use[0] += 1
        use[1] += float(spent)
        use[2] = max(use[2], float(spent))
        use[3] += float(spent) >= settings.beacon_budget
        use[4] += bool(warned)
    return tuple(
        BudgetUse(kind, int(n), spent, most, int(exhausted), int(warned))
        for kind, (n, spent, most, exhausted, warned) in sorted(found.items())
    )


def _releases(session: Session, settings: Settings, dataset: str) -> FrequencyReleases:
    count, spent = session.execute(
        select(func.count(), func.coalesce(func.sum(privacy_releases.c.epsilon), 0.0)).where(
            privacy_releases.c.dataset == dataset
        )
    ).one()
    budget = session.execute(
        select(privacy_frequency_budgets.c.spent, privacy_frequency_budgets.c.closed_at).where(
            privacy_frequency_budgets.c.dataset == dataset
        )
    ).first()
    detected = float(budget.spent) if budget is not None else 0.0
    return FrequencyReleases(
        variants=int(count),
        epsilon_spent=float(spent),
        detection_spent=detected,
        detection_limit=frequencies.limit(settings),
        detection_power=detection.power(detected, settings.frequency_detection_fpr),
        closed_at=clock.as_utc(budget.closed_at) if budget and budget.closed_at else None,
    )


def privacy_report(
    factory: sessionmaker[Session], settings: Settings, *, subject: Subject, dataset: str
) -> PrivacyReport:
    """How private `dataset` is now, for its stewards, auditors and administrators (the read
    is an audit event)."""
    require(subject, Action.READ_PRIVACY_REPORT, Resource("dataset", dataset))
    with write_transaction(factory) as session:
        if catalog.dataset_id(session, dataset) is None:
            raise _missing(dataset)
        members = store_service.store_samples(session, dataset)
        defence = defence_settings(settings, dataset, members)
        measurement = latest_assessment(session, dataset)
        judgement = judge(
            members_now=members,
            members_then=measurement.members if measurement else None,
            defence_now=defence,
            defence_then=measurement.parameters.get("defence") if measurement else None,
        )
        report = PrivacyReport(
            dataset=dataset,
            made_at=clock.now(),
            members=members,
            defence=defence,
            judgement=judgement,
            measurement=measurement,
            budgets=_budgets(session, settings, dataset),
            releases=_releases(session, settings, dataset),
        )
        record_event(
            session,
            tag=EventTag.PRIVACY_REPORT_READ,
            actor=subject.id,
            subject=dataset,
            details={"freshness": judgement.freshness},
        )
    return report


def stale_datasets(factory: sessionmaker[Session], settings: Settings) -> dict[str, Measurement]:
    """The datasets measured before whose latest measurement no longer describes them, each
    with that measurement (its parameters are what a new measurement repeats)."""
    with factory() as session:
        measured = session.execute(select(privacy_assessments.c.dataset).distinct()).scalars()
        stale = {}
        for dataset in sorted(measured):
            measurement = latest_assessment(session, dataset)
            assert measurement is not None
            members = store_service.store_samples(session, dataset)
            judgement = judge(
                members_now=members,
                members_then=measurement.members,
                defence_now=defence_settings(settings, dataset, members),
                defence_then=measurement.parameters.get("defence"),
            )
            if judgement.freshness == "stale":
                stale[dataset] = measurement
    return stale
