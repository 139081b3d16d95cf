"""`genecommons serve`'s re-measurement of outgrown datasets: which it measures again, with the
real `genecommons privacy reassess` in a process of its own, and that one that fails is not
tried again until measured anew."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from genecommons.catalog import service as catalog
from genecommons.config import Settings
from genecommons.policy.models import Subject
from genecommons.privacy import assessments
from genecommons.privacy.upkeep import Reassessor

OPERATOR = Subject.operator("tester")


def node_environment(settings: Settings) -> dict[str, str]:
    """The environment of a process of the node `settings` describe."""
    return {
        **os.environ,
        "GENECOMMONS_DATA_DIR": str(settings.data_dir),
        "GENECOMMONS_DATABASE_URL": str(settings.database_url),
        "GENECOMMONS_ENVIRONMENT": "test",
    }


def measured(factory: Any, settings: Settings, dataset: str, inputs: Path) -> None:
    """A measurement of `dataset` as the attack tool records it, on 200 members."""
    assessments.record_assessment(
        factory,
        dataset=dataset,
        members=200,
        parameters={
            "cohort": str(inputs / "cohort.vcf.gz"),
            "panel": str(inputs / "panel.vcf.gz"),
            "public": [],
            "victims": 30,
            "outsiders": None,
            "seed": 1,
            "queries": [1, 5],
            "correctness_sites": 100,
            "defence": assessments.defence_settings(settings, dataset, 200),
        },
        figures={"curves": {}, "correctness": {}},
        actor=OPERATOR,
    )


@pytest.mark.slow
def test_an_outgrown_dataset_is_measured_again_and_a_failure_not_retried(
    factory: Any,
    settings: Settings,
    make_bundle: Any,
    sheets: Any,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    result = catalog.submit(factory, make_bundle(sheets()), subject=OPERATOR)
    dataset = str(result.accessions["datasets"]["DS1"])
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for name in ("cohort.vcf.gz", "panel.vcf.gz"):
        (inputs / name).write_bytes(b"")
    reassessor = Reassessor(factory, settings, environment=node_environment(settings))
    assert reassessor.run_once() == {}  # nothing measured, nothing outgrown
    measured(factory, settings, dataset, inputs)
    # measured on 200 members, the dataset has no variant store now: outgrown; the real
    # command runs, and fails (there is no store to attack) with a nonzero status
    assert reassessor.due(assessments.stale_datasets(factory, settings)) == [dataset]
    done = reassessor.run_once()
    assert set(done) == {dataset} and done[dataset] != 0
    # not tried again on the same measurement...
    assert reassessor.run_once() == {}
    # ... until its dataset is measured anew, whose inputs are gone: reassess refuses them
    (inputs / "panel.vcf.gz").unlink()
    measured(factory, settings, dataset, inputs)
    caplog.clear()
    again = reassessor.run_once()
    assert set(again) == {dataset} and again[dataset] != 0
    assert "panel.vcf.gz" in caplog.text and "are gone" in caplog.text  # the command's error
    assert reassessor.run_once() == {}


def test_an_interval_of_zero_starts_nothing(factory: Any, settings: Settings) -> None:
    off = settings.model_copy(update={"privacy_reassess_interval_seconds": 0})
    reassessor = Reassessor(factory, off)
    reassessor.start()
    reassessor.stop()
    assert not reassessor._thread.is_alive()
