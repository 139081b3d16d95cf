"""Membership attacks on released allele frequencies, and the releases they attack (numpy).

- Homer et al. 2008: per person, D = sum_j |Y_j - R_j| - |Y_j - M_j|, with Y_j the person's
  allele fraction (dosage / 2), R_j the attacker's reference frequency and M_j the released
  (pool) frequency; a member sits nearer the pool.
- Sankararaman et al. 2009: the log-likelihood ratio of the person's genotypes under the pool's
  frequencies against the reference's, sum_j x_j log(M_j / R_j) + (2 - x_j) log((1 - M_j) /
  (1 - R_j)); a variant whose frequency is not released (withheld, or shown as "< k") adds 0.

Dwork et al. 2015's robust traceability is a linear statistic of the same kind as Homer's.

Releases (`release`): the exact frequencies, the open route's noisy tables (privacy/dp.py's
draw and display, as served) and the same with the dataset's detection budget
(privacy/detection.py), charged as the route charges it. Power is attack.power_at: members
flagged when 5% of non-members are, over the first k released-or-asked variants.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from genecommons.privacy import attack, detection
from genecommons.privacy.dp import noisy_counts, shown_rows

Floats = npt.NDArray[np.float64]
Dosages = npt.NDArray[np.int8]
VARIANT_COUNTS = (1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000)
Table = dict[str, dict[str, int]]  # group -> AC, AN, hom, hemi
CLIP = 1e-3  # frequencies are kept in [CLIP, 1 - CLIP] in the likelihood ratio


class Release(StrEnum):
    """What the attacker is given."""

    EXACT = "exact"
    NOISY = "noisy"  # the open route without a genome-wide budget
    BUDGETED = "budgeted"  # the open route with the dataset's detection budget


@dataclass(frozen=True, slots=True)
class Released:
    """Per group, the AF released of each variant in the order asked (NaN: not released, or
    shown as "< k"), and the cost charged up to each variant (the budget's running total)."""

    frequencies: dict[str, Floats]
    charged: Floats
    released: npt.NDArray[np.bool_]  # which variants' tables were released


def tables(
    pool: Dosages, groups: Sequence[npt.NDArray[np.bool_]], names: Sequence[str]
) -> list[Table]:
    """The counts table (group -> AC, AN, hom, hemi) of each variant of `pool` (sites x people),
    `groups[i]` the people of group `names[i]` (autosomal: no hemizygotes)."""
    columns = [
        (
            pool[:, g].sum(axis=1, dtype=np.int64),
            2 * int(g.sum()),
            (pool[:, g] == 2).sum(axis=1),
        )
        for g in groups
    ]
    return [
        {
            name: {"ac": int(ac[j]), "an": an, "hom": int(hom[j]), "hemi": 0}
            for name, (ac, an, hom) in zip(names, columns, strict=True)
        }
        for j in range(pool.shape[0])
    ]


def release(
    kind: Release,
    counts: Sequence[Table],
    *,
    epsilon: float,
    min_cell: int,
    limit: float,
) -> Released:
    """Each group's AF of each table as the open route would serve it, asked in order."""
    n = len(counts)
    names = list(counts[0]) if counts else [detection.ALL]
    out = {g: np.full(n, np.nan) for g in names}
    released = np.zeros(n, dtype=bool)
    charged = np.zeros(n)
    spent = 0.0
    for j, table in enumerate(counts):
        if kind is Release.EXACT:
            for g, cell in table.items():
                out[g][j] = cell["ac"] / cell["an"] if cell["an"] else np.nan
            cost = max(
                detection.cost(c["ac"] / c["an"], c["an"] // 2, 0.0) if c["an"] else 0.0
                for c in table.values()
            )
        else:
            noisy = noisy_counts(table, epsilon=epsilon)
            cost = detection.table_cost(noisy, epsilon=epsilon)
            if kind is Release.BUDGETED and spent + cost > limit:
                charged[j:] = spent
                break  # the dataset closes: no new table from here on
            for row in shown_rows(noisy, min_cell=min_cell):
                out[row.group][j] = np.nan if row.af is None else row.af
        spent += cost
        charged[j] = spent
        released[j] = True
    return Released(out, charged, released)


def _checkpoints(sites: int, counts: Sequence[int]) -> list[int]:
    return [k for k in counts if k <= sites] or [sites]


def homer(people: Dosages, pool: Floats, reference: Floats, counts: Sequence[int]) -> Floats:
    """Homer's D of each person (columns of `people`, sites x people) over the first k sites,
    k in `counts` (rows: people, columns: counts); unreleased sites add 0."""
    y = people.astype(np.float64) / 2
    released = ~np.isnan(pool)
    m = np.where(released, pool, reference)
    return _cumulative(np.abs(y - reference[:, None]) - np.abs(y - m[:, None]), counts)


def likelihood_ratio(
    people: Dosages, pool: Floats, reference: Floats, counts: Sequence[int]
) -> Floats:
    """Sankararaman's log-likelihood ratio of each person over the first k sites."""
    r = np.clip(reference, CLIP, 1 - CLIP)
    m = np.clip(np.where(np.isnan(pool), reference, pool), CLIP, 1 - CLIP)
    x = people.astype(np.float64)
    per_site = x * np.log(m / r)[:, None] + (2 - x) * np.log((1 - m) / (1 - r))[:, None]
    return _cumulative(per_site, counts)


def _cumulative(per_site: Floats, counts: Sequence[int]) -> Floats:
    """Sums of rows 0..k of `per_site` (sites x people), per k: people x counts."""
    ks = _checkpoints(per_site.shape[0], counts)
    out = np.zeros((per_site.shape[1], len(ks)))
    total = np.zeros(per_site.shape[1])
    start = 0
    for i, k in enumerate(ks):
        total = total + per_site[start:k].sum(axis=0)
        out[:, i] = total
        start = k
    return out


@dataclass(frozen=True, slots=True)
class Power:
    """Power at 5% false positives of both tests, after each number of variants asked."""

    release: str
    variants: tuple[int, ...]
    homer: tuple[float, ...]
    likelihood_ratio: tuple[float, ...]
    released: tuple[int, ...]  # variants released among those asked
    charged: tuple[float, ...]  # detection cost charged (privacy/detection.py)


def measure(
    released: Released,
    *,
    members: Dosages,
    outsiders: Dosages,
    references: Mapping[str, Floats],
    member_groups: Sequence[str] | None = None,
    outsider_groups: Sequence[str] | None = None,
    counts: Sequence[int] = VARIANT_COUNTS,
    name: str = "",
) -> Power:
    """Both tests against `released`, members (of the pool) against non-members. Each person
    is tested against the released AF of their group (`*_groups`, "all" unless given: the
    attacker who knows a victim's ancestry reads that population's row) and the attacker's
    reference AF of that group (`references`)."""
    ks = _checkpoints(len(released.charged), counts)
    member_groups = member_groups or [detection.ALL] * members.shape[1]
    outsider_groups = outsider_groups or [detection.ALL] * outsiders.shape[1]
    powers = {}
    for test in (homer, likelihood_ratio):
        scores = []
        for people, groups in ((members, member_groups), (outsiders, outsider_groups)):
            labels = np.asarray(groups)
            parts = []
            for group in sorted(set(groups)):
                chosen = labels == group
                parts.append(
                    (
                        np.flatnonzero(chosen),
                        test(people[:, chosen], released.frequencies[group], references[group], ks),
                    )
                )
            out = np.zeros((people.shape[1], len(ks)))
            for where, part in parts:
                out[where] = part
            scores.append(out)
        powers[test.__name__] = tuple(float(p) for p in attack.power_at(scores[0], scores[1]))
    shown = np.cumsum(released.released)
    return Power(
        release=name,
        variants=tuple(ks),
        homer=powers["homer"],
        likelihood_ratio=powers["likelihood_ratio"],
        released=tuple(int(shown[k - 1]) for k in ks),
        charged=tuple(float(released.charged[k - 1]) for k in ks),
    )


def absolute_error(released: Floats, truth: Floats, *, at_least: float) -> tuple[float, int]:
    """The mean absolute error of the released AF over variants whose true AF (minor allele)
    is at least `at_least`, and how many of them were released."""
    minor = np.minimum(truth, 1 - truth)
    chosen = (minor >= at_least) & ~np.isnan(released)
    if not chosen.any():
        return float("nan"), 0
    return float(np.mean(np.abs(released[chosen] - truth[chosen]))), int(chosen.sum())
