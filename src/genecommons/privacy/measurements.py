"""Measuring the attacks on a dataset and keeping the measurement, and measuring again those a
dataset has outgrown (use cases of `genecommons privacy attack-beacon` and `reassess`).

Kept apart from `assessments` (the report's reads), which the API imports: this module pulls
in the attack tool (numpy, the linkage model), which a serving process does not need.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from genecommons import __version__
from genecommons.config import Settings
from genecommons.errors import InvalidInputError
from genecommons.policy.models import Subject
from genecommons.privacy import attack, evaluation
from genecommons.privacy.assessments import defence_settings, record_assessment, stale_datasets
from genecommons.privacy.report_model import Measurement
from genecommons.progress import SILENT, Progress


@dataclass(frozen=True, slots=True)
class AttackInputs:
    """What a measurement attacks with: the members' VCF, the attacker's panel, the panel's
    people in the node's public reference, and the tool's parameters."""

    cohort: Path
    panel: Path
    public: tuple[str, ...] = ()
    victims: int = 100
    outsiders: int | None = None
    seed: int = 1
    queries: tuple[int, ...] = attack.QUERY_COUNTS
    correctness_sites: int = 20_000
    urls: Mapping[str, str] = field(default_factory=dict)  # served Beacons also attacked
    sybils: int = 0  # the count tier's sybil attacker's accounts (0: not run)

    def parameters(self) -> dict[str, Any]:
        """The inputs as recorded with a measurement (the served Beacons' names and URLs, not
        their tokens)."""
        found = asdict(self)
        found["cohort"], found["panel"] = str(self.cohort), str(self.panel)
        found["public"], found["queries"] = list(self.public), list(self.queries)
        found["urls"] = dict(self.urls)
        return found

    @classmethod
    def recorded(cls, parameters: Mapping[str, Any]) -> AttackInputs:
        """The inputs a recorded measurement was made with (its served Beacons left out: a
        new measurement attacks the store in process)."""
        return cls(
            cohort=Path(parameters["cohort"]),
            panel=Path(parameters["panel"]),
            public=tuple(parameters.get("public", ())),
            victims=int(parameters["victims"]),
            outsiders=parameters.get("outsiders"),
            seed=int(parameters["seed"]),
            queries=tuple(int(q) for q in parameters["queries"]),
            correctness_sites=int(parameters["correctness_sites"]),
            sybils=int(parameters.get("sybils", 0)),
        )


def measure(
    factory: sessionmaker[Session],
    settings: Settings,
    *,
    subject: Subject,
    dataset: str,
    inputs: AttackInputs,
    token: str | None = None,
    progress: Progress = SILENT,
) -> tuple[evaluation.Figures, Measurement]:
    """Attack `dataset` (evaluation.attack_beacon: undefended, defended, and the served
    Beacons of `inputs`), and keep the measurement for its privacy report."""
    figures = evaluation.attack_beacon(
        settings,
        factory,
        subject=subject,
        cohort=inputs.cohort,
        panel=inputs.panel,
        dataset=dataset,
        urls=inputs.urls,
        token=token,
        victims=inputs.victims,
        outsiders=inputs.outsiders,
        seed=inputs.seed,
        queries=inputs.queries,
        correctness_sites=inputs.correctness_sites,
        public=inputs.public,
        sybils=inputs.sybils,
        progress=progress,
    )
    # the settings are read once per process: the attack ran under these
    defence = defence_settings(settings, dataset, figures.beacon_size)
    measurement = record_assessment(
        factory,
        dataset=dataset,
        members=figures.beacon_size,
        parameters={**inputs.parameters(), "defence": defence, "version": __version__},
        figures=json.loads(figures.to_json()),
        actor=subject,
    )
    return figures, measurement


def reassess(
    factory: sessionmaker[Session],
    settings: Settings,
    *,
    subject: Subject,
    datasets: Sequence[str] = (),
    progress: Progress = SILENT,
) -> dict[str, Measurement]:
    """Measure again, with the inputs recorded, each dataset (of `datasets`, or every one)
    whose latest measurement it has outgrown; the new measurements by dataset.
    InvalidInputError, before anything is measured, when a recorded input is gone."""
    stale = stale_datasets(factory, settings)
    chosen = {d: m for d, m in stale.items() if not datasets or d in datasets}
    inputs = {d: AttackInputs.recorded(m.parameters) for d, m in chosen.items()}
    gone = [
        f"{dataset}: {path}"
        for dataset, found in inputs.items()
        for path in (found.cohort, found.panel)
        if not path.is_file()
    ]
    if gone:
        raise InvalidInputError(
            "The inputs recorded with these measurements are gone: "
            + "; ".join(gone)
            + ". Measure again with `genecommons privacy attack-beacon` and the new paths.",
            message_zh="这些测量记录的输入文件已不存在："
            + "；".join(gone)
            + "。请用 `genecommons privacy attack-beacon` 指定新路径重新测量。",
            details={"missing": gone},
        )
    measured = {}
    for dataset, found in inputs.items():
        with progress.stage(f"measuring {dataset} again"):
            _, measured[dataset] = measure(
                factory,
                settings,
                subject=subject,
                dataset=dataset,
                inputs=found,
                progress=progress,
            )
    return measured
