"""How private a dataset is, as its report says: the measured attacks, the utility, the budgets
spent, and whether the measurement still describes the dataset (pure: no web, no database).

A measurement describes the dataset it was made on, at its size, under the defence's settings
of the time. It stops describing it when the Beacon's members change by MATERIAL_CHANGE or
more (the attacks' power depends on the cohort's size: small cohorts leak most), or when the
defence is configured otherwise (another guard, budget, threshold rule, or the windows of the
public reference placed or not). Then the report says the measurement is stale and why, and
`genecommons privacy reassess` measures again with the inputs recorded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

MATERIAL_CHANGE = 0.10  # a change of the members by 10% or more calls for a new measurement
GOAL_POWER = 0.10  # the power at 5% false positives the defence is to stay under
# the Beacons the attack tool measures that are not what the node serves (baselines)
BASELINES = frozenset({"undefended", "hide-rare", "count, per-caller budgets"})

Freshness = Literal["current", "stale", "missing"]


@dataclass(frozen=True, slots=True)
class Judgement:
    """Whether a dataset's measurement still describes it, and why not (EN and ZH)."""

    freshness: Freshness
    reasons: tuple[str, ...] = ()
    reasons_zh: tuple[str, ...] = ()


def judge(
    *,
    members_now: int | None,
    members_then: int | None,
    defence_now: Mapping[str, Any],
    defence_then: Mapping[str, Any] | None,
) -> Judgement:
    """Whether a measurement made on `members_then` members under `defence_then` still
    describes the dataset of `members_now` members under `defence_now` (None: never measured)."""
    if members_then is None or defence_then is None:
        return Judgement(
            "missing",
            (
                "No attack has been measured on this dataset: run `genecommons privacy "
                "attack-beacon` on it.",
            ),
            ("尚未对该数据集测量攻击：请运行 `genecommons privacy attack-beacon`。",),
        )
    reasons: list[str] = []
    reasons_zh: list[str] = []
    if members_now is None:
        reasons.append("The dataset has no variant store any more.")
        reasons_zh.append("该数据集已无变异库。")
    elif members_then <= 0 or abs(members_now - members_then) / members_then >= MATERIAL_CHANGE:
        reasons.append(
            f"The Beacon's members changed from {members_then} to {members_now} (by "
            f"{MATERIAL_CHANGE:.0%} or more) since the measurement."
        )
        reasons_zh.append(
            f"测量以来 Beacon 成员数由 {members_then} 变为 {members_now}（变化达 "
            f"{MATERIAL_CHANGE:.0%} 或以上）。"
        )
    changed = sorted(
        key
        for key in set(defence_now) | set(defence_then)
        if defence_now.get(key) != defence_then.get(key)
    )
    if changed:
        reasons.append(
            "The defence is configured otherwise than when it was measured: "
            + ", ".join(f"{k} {defence_then.get(k)!r} -> {defence_now.get(k)!r}" for k in changed)
            + "."
        )
        reasons_zh.append("防护设置与测量时不同：" + "，".join(changed) + "。")
    if reasons:
        return Judgement("stale", tuple(reasons), tuple(reasons_zh))
    return Judgement("current")


@dataclass(frozen=True, slots=True)
class AttackPower:
    """One attacker's power at 5% false positives against one Beacon, by queries per victim."""

    beacon: str
    attacker: str
    queries: tuple[int, ...]
    power: tuple[float, ...]

    @property
    def worst(self) -> float:
        """The highest power over the query counts measured."""
        return max(self.power, default=0.0)


@dataclass(frozen=True, slots=True)
class Measurement:
    """A measurement of attacks on the dataset as recorded: when, on how many members, with
    which parameters, and what it found."""

    measured_at: datetime
    measured_by: str
    members: int
    parameters: Mapping[str, Any]
    powers: tuple[AttackPower, ...]
    utility: Mapping[str, Mapping[str, Any]]  # per Beacon: evaluation's correctness figures

    @property
    def served_worst(self) -> float | None:
        """The highest power any attacker reached against what the node serves (the defended
        Beacon, and any served one attacked over HTTP); None when none was measured."""
        served = [p.worst for p in self.powers if p.beacon not in BASELINES]
        return max(served) if served else None


def measurement_of(
    *,
    measured_at: datetime,
    measured_by: str,
    members: int,
    parameters: Mapping[str, Any],
    figures: Mapping[str, Any],
) -> Measurement:
    """A recorded measurement from the attack tool's figures (evaluation.Figures as JSON)."""
    powers = tuple(
        AttackPower(
            beacon=str(beacon),
            attacker=str(curve["name"]),
            queries=tuple(int(q) for q in curve["queries"]),
            power=tuple(float(p) for p in curve["power"]),
        )
        for beacon, curves in sorted(figures.get("curves", {}).items())
        for curve in curves
    )
    return Measurement(
        measured_at=measured_at,
        measured_by=measured_by,
        members=members,
        parameters=parameters,
        powers=powers,
        utility={str(b): dict(c) for b, c in sorted(figures.get("correctness", {}).items())},
    )


@dataclass(frozen=True, slots=True)
class BudgetUse:
    """What the parties of one kind (accounts, addresses, ...) have spent of their Beacon
    budgets on the dataset."""

    kind: str
    parties: int
    spent: float  # in total
    most: float  # the most any one party spent
    exhausted: int  # parties at or over their budget
    warned: int  # parties past the warning share


@dataclass(frozen=True, slots=True)
class FrequencyReleases:
    """The open frequency route's noisy tables released for the dataset, and the detection
    budget they spent (privacy/detection.py): the pooled-frequency attack's power now, and
    whether the dataset has closed to new releases."""

    variants: int
    epsilon_spent: float  # basic composition over the released tables
    detection_spent: float = 0.0
    detection_limit: float = 0.0
    detection_power: float = 0.0  # the attack's power at the bound's false-positive rate
    closed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class PrivacyReport:
    """How private a dataset is now: its size, the defence's settings, the latest measurement
    and whether it still holds, and what callers have spent."""

    dataset: str
    made_at: datetime
    members: int | None  # the Beacon's members now (None: no variant store)
    defence: Mapping[str, Any]
    judgement: Judgement
    measurement: Measurement | None
    budgets: tuple[BudgetUse, ...] = ()
    releases: FrequencyReleases = field(default_factory=lambda: FrequencyReleases(0, 0.0))
    goal_power: float = GOAL_POWER


def report_document(report: PrivacyReport) -> dict[str, Any]:
    """The report as a JSON document (the API's answer and `privacy report --json`)."""
    measurement = report.measurement
    return {
        "dataset": report.dataset,
        "made_at": report.made_at.isoformat(),
        "members": report.members,
        "defence": dict(report.defence),
        "freshness": report.judgement.freshness,
        "reasons": list(report.judgement.reasons),
        "reasons_zh": list(report.judgement.reasons_zh),
        "goal_power": report.goal_power,
        "measurement": None
        if measurement is None
        else {
            "measured_at": measurement.measured_at.isoformat(),
            "measured_by": measurement.measured_by,
            "members": measurement.members,
            "parameters": dict(measurement.parameters),
            "served_worst_power": measurement.served_worst,
            "powers": [
                {
                    "beacon": p.beacon,
                    "attacker": p.attacker,
                    "queries": list(p.queries),
                    "power": list(p.power),
                    "worst": p.worst,
                }
                for p in measurement.powers
            ],
            "utility": {b: dict(u) for b, u in measurement.utility.items()},
        },
        "budgets": [
            {
                "kind": b.kind,
                "parties": b.parties,
                "spent": b.spent,
                "most": b.most,
                "exhausted": b.exhausted,
                "warned": b.warned,
            }
            for b in report.budgets
        ],
        "frequency_releases": {
            "variants": report.releases.variants,
            "epsilon_spent": report.releases.epsilon_spent,
            "detection_spent": report.releases.detection_spent,
            "detection_limit": report.releases.detection_limit,
            "detection_power": report.releases.detection_power,
            "closed_at": report.releases.closed_at.isoformat()
            if report.releases.closed_at
            else None,
        },
    }
