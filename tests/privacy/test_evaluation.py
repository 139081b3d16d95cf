"""Drawing the attack's victims: non-members never come from the node's public reference."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from genecommons.demo.cohort import write_demo
from genecommons.errors import InvalidInputError
from genecommons.privacy import evaluation
from genecommons.privacy.oracles import read_dosages


@pytest.fixture(scope="module")
def small_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    demo = tmp_path_factory.mktemp("demo")
    write_demo(demo, individuals=60, reference_individuals=80, sequence_length=300_000, seed=3)
    return demo


def test_non_members_are_drawn_outside_the_public_reference(small_demo: Path) -> None:
    cohort, panel = small_demo / "cohort.vcf.gz", small_demo / "reference_panel.vcf.gz"
    people = read_dosages(panel, sites=read_dosages(cohort).variants)
    public = people.people[:40]
    drawn = evaluation.draw_victims(cohort, panel, victims=20, outsiders=30, seed=2, public=public)
    assert drawn.members.shape[1] == 20 and drawn.outsiders.shape[1] == 30
    columns = {people.dosages[:, i].tobytes(): name for i, name in enumerate(people.people)}
    outsiders = {columns[drawn.outsiders[:, j].tobytes()] for j in range(30)}
    assert len(outsiders) == 30 and not outsiders & set(public)
    # the attacker holds the rest of the panel, the public people with it
    assert drawn.reference.shape[1] == 80 - 30
    truth = json.loads((small_demo / "truth.json").read_text())
    named = truth.get("public_frequencies", {}).get("samples", ())
    assert len(named) == 40  # the first half of the 80-person panel
    assert evaluation.demo_public_people(small_demo) == tuple(named)


def test_a_public_reference_that_leaves_too_few_non_members_is_refused(small_demo: Path) -> None:
    cohort, panel = small_demo / "cohort.vcf.gz", small_demo / "reference_panel.vcf.gz"
    names = read_dosages(panel).people
    with pytest.raises(InvalidInputError, match="outside the public reference"):
        evaluation.draw_victims(cohort, panel, victims=10, outsiders=30, seed=1, public=names[:60])
    with pytest.raises(InvalidInputError, match="not in the panel"):
        evaluation.draw_victims(cohort, panel, victims=10, outsiders=5, seed=1, public=("NOBODY",))


def test_without_a_public_reference_the_draw_is_unchanged(small_demo: Path) -> None:
    cohort, panel = small_demo / "cohort.vcf.gz", small_demo / "reference_panel.vcf.gz"
    before = evaluation.draw_victims(cohort, panel, victims=10, outsiders=10, seed=4)
    again = evaluation.draw_victims(cohort, panel, victims=10, outsiders=10, seed=4, public=())
    assert np.array_equal(before.outsiders, again.outsiders)
    assert np.array_equal(before.reference, again.reference)
