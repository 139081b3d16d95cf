"""Differential privacy for the open tier's allele frequency tables (OpenDP), and small cells.

A variant's table holds, for each group (all, each population, each sex, each population x
sex), AC, AN, homozygotes and hemizygotes. One person is in at most four groups and changes, in
each, AC and AN by at most 2 and the homozygote and hemizygote counts by at most 1: the table,
as one vector, has L1 sensitivity 4 x 6 = 24 (fewer groups, less). OpenDP's discrete Laplace
mechanism on that vector at scale 24 / epsilon is epsilon-differentially private for the table;
OpenDP's own map gives the epsilon, which is checked against the setting.

Each table is drawn once and stored (privacy.tables.privacy_releases): asking again returns the
same numbers, so repeated queries cannot average the noise away and a variant costs epsilon once
however often it is asked. The accounting is per variant: a person's privacy loss over k released
variants composes to k x epsilon (basic composition), which is why the open tier also suppresses
small cells and bounds, per dataset, what all its tables tell a membership test
(privacy/detection.py). Suppression looks at the noisy count only (post-processing keeps the guarantee):
a cell under `min_cell` is shown as "< k", so a rare allele and an absent one look alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

FIELDS = ("ac", "an", "hom", "hemi")
# what one person can change in one group's cell
CHANGE = {"ac": 2, "an": 2, "hom": 1, "hemi": 1}
GROUPS_PER_PERSON = 4  # all, their population, their sex, their population x sex


def sensitivity(groups: Sequence[str]) -> int:
    """The L1 sensitivity of a table over `groups` (one person added or removed)."""
    return min(len(groups), GROUPS_PER_PERSON) * sum(CHANGE.values())


def _measurement(groups: Sequence[str], epsilon: float) -> Any:
    return _built(len(groups), epsilon)


@lru_cache(maxsize=64)
def _built(groups: int, epsilon: float) -> Any:
    """The measurement of a table over `groups` groups (built once per size and epsilon)."""
    import opendp.prelude as dp

    dp.enable_features("contrib")  # OpenDP keeps its discrete Laplace under "contrib"
    space = dp.vector_domain(dp.atom_domain(T=int)), dp.l1_distance(T=int)
    delta = sensitivity(["group"] * groups)
    measurement = dp.m.make_laplace(*space, scale=delta / epsilon)
    spent = measurement.map(delta)  # type: ignore[no-untyped-call]  # OpenDP's map is untyped
    if spent > epsilon * (1 + 1e-9):
        raise ValueError(f"OpenDP accounts {spent} for a release meant to cost {epsilon}")
    return measurement


def privacy_cost(groups: Sequence[str], epsilon: float) -> float:
    """The epsilon OpenDP accounts for one release of a table over `groups`."""
    return float(_measurement(groups, epsilon).map(sensitivity(groups)))


def noisy_counts(
    counts: Mapping[str, Mapping[str, int]], *, epsilon: float
) -> dict[str, dict[str, int]]:
    """One epsilon-DP draw of a table (group -> AC, AN, hom, hemi), as integers."""
    groups = list(counts)
    vector = [int(counts[g][f]) for g in groups for f in FIELDS]
    noisy = _measurement(groups, epsilon)(vector)
    return {
        g: {f: int(noisy[i * len(FIELDS) + j]) for j, f in enumerate(FIELDS)}
        for i, g in enumerate(groups)
    }


@dataclass(frozen=True, slots=True)
class FrequencyRow:
    """One group's line of a gnomAD-like table; a suppressed cell is the text "< k"."""

    group: str
    ac: int | str
    an: int
    af: float | None
    hom: int | str
    hemi: int | str


def exact_rows(counts: Mapping[str, Mapping[str, int]]) -> list[FrequencyRow]:
    """The true table (for holders of a grant in force)."""
    return [
        FrequencyRow(
            group=g,
            ac=c["ac"],
            an=c["an"],
            af=c["ac"] / c["an"] if c["an"] else None,
            hom=c["hom"],
            hemi=c["hemi"],
        )
        for g, c in counts.items()
    ]


def shown_rows(noisy: Mapping[str, Mapping[str, int]], *, min_cell: int) -> list[FrequencyRow]:
    """A noisy table as the open tier shows it: negative noise clipped to 0, cells under
    `min_cell` suppressed, AF from the noisy AC and AN (capped at 1) where AC is shown."""
    below = f"< {min_cell}"

    def cell(value: int) -> int | str:
        return below if value < min_cell else value

    rows = []
    for g, c in noisy.items():
        an = max(c["an"], 0)
        ac = max(c["ac"], 0)
        shown_ac = cell(ac)
        af = min(ac / an, 1.0) if isinstance(shown_ac, int) and an > 0 else None
        rows.append(
            FrequencyRow(
                group=g,
                ac=shown_ac,
                an=an,
                af=af,
                hom=cell(max(c["hom"], 0)),
                hemi=cell(max(c["hemi"], 0)),
            )
        )
    return rows
