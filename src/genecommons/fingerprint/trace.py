"""Leak tracing: read the marks out of a leaked genotype matrix and score every recipient.

The leaked matrix is first aligned with the original by sample identifier and by site (so a
subset, a reordering, or another file format changes nothing); each marked position then gives
an observation y in [0, 1]: 1 where the copy shows the changed values, 0 where it shows the
original ones, a fraction where colluders averaged their copies, and 1/2 (no information) where
the cells are absent, missing or hold a third value (a random flip, an attacker's guess).

Every recipient r gets the symmetric Tardos score (Skoric, Katzenbeisser and Celik 2008)

    S_r = sum_k (2 y_k - 1) * g(x_rk, p_k),  g(1, p) = sqrt((1-p)/p),  g(0, p) = -sqrt(p/(1-p)).

For a recipient who did not contribute to the leak, y is independent of its bits, so each term
has mean 0 and variance (2 y_k - 1)^2 exactly, whatever the leakers did. Its p-value is the
Bernstein bound on that sum, P(S >= s) <= exp(-s^2 / (2 (V + M s / 3))), with V the sum of
variances and M the largest term: a guaranteed bound, not a normal approximation. It is
multiplied by the number of recipients scored (Bonferroni), so that `alpha` bounds the chance
of naming any innocent recipient in a trace. A recipient is named when its p-value <= alpha.

This module is pure: numpy, no web framework, no database.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from genecommons.fingerprint.codes import Plan

DEFAULT_ALPHA = 1e-3
_TOLERANCE = 1e-6


@dataclass(frozen=True, slots=True)
class Leak:
    """A leaked genotype matrix, aligned with the original: `values[i, j]` is the leaked dosage
    (float: averages allowed; NaN where absent or missing) of original site `sites[i]` and
    original sample `samples[j]`."""

    values: npt.NDArray[np.float64]
    sites: npt.NDArray[np.int64]
    samples: npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Score:
    """One recipient's evidence."""

    recipient: str
    score: float
    z: float  # score / sqrt(V): about N(0, 1) for an innocent
    p_value: float  # Bonferroni-corrected Bernstein bound
    named: bool


@dataclass(frozen=True, slots=True)
class Verdict:
    """The scores of every recipient, best first, and what the marks said."""

    scores: tuple[Score, ...]
    positions: int  # marked positions with at least one informative cell in the leak
    variance: float  # V
    alpha: float

    @property
    def named(self) -> tuple[Score, ...]:
        """The recipients named as likely sources."""
        return tuple(s for s in self.scores if s.named)


def dense_observations(plan: Plan, leak: Leak) -> npt.NDArray[np.float64]:
    """y per marked position (0.5 where the leak says nothing)."""
    site_row = np.full(plan.shape[0], -1, dtype=np.int64)
    site_row[leak.sites] = np.arange(len(leak.sites))
    sample_col = np.full(plan.shape[1], -1, dtype=np.int64)
    sample_col[leak.samples] = np.arange(len(leak.samples))
    rows = site_row[plan.site]
    total = np.zeros(len(plan))
    weight = np.zeros(len(plan))
    for cols, start, sign in (
        (sample_col[plan.up], plan.up_from, 1.0),
        (sample_col[plan.down], plan.down_from, -1.0),
    ):
        present = (rows >= 0) & (cols >= 0)
        seen = np.full(len(plan), np.nan)
        seen[present] = leak.values[rows[present], cols[present]]
        y = sign * (seen - start.astype(np.float64))
        ok = np.isfinite(y) & (y >= -_TOLERANCE) & (y <= 1 + _TOLERANCE)
        total += np.where(ok, np.clip(y, 0.0, 1.0), 0.0)
        weight += ok
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(weight > 0, total / np.maximum(weight, 1), 0.5)


def bernstein_tail(
    score: npt.NDArray[np.float64], variance: float, bound: float
) -> npt.NDArray[np.float64]:
    """P(S >= score) <= exp(-s^2 / (2 (V + M s / 3))) for s > 0 (1 otherwise)."""
    s = np.maximum(score, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        exponent = np.where(s > 0, -(s**2) / (2 * (variance + bound * s / 3)), 0.0)
    return np.exp(exponent)


def accuse(
    y: npt.NDArray[np.float64],
    bias: npt.NDArray[np.float64],
    codes: npt.NDArray[np.bool_],
    recipients: Sequence[str],
    *,
    alpha: float = DEFAULT_ALPHA,
) -> Verdict:
    """Score each recipient (a row of `codes`) against the observations `y`."""
    weight = 2.0 * y - 1.0
    informative = weight != 0
    w = weight[informative]
    p = bias[informative]
    yes = np.sqrt((1 - p) / p)
    no = np.sqrt(p / (1 - p))
    variance = float(np.sum(w**2))
    bound = float(np.max(np.abs(w) * np.maximum(yes, no))) if w.size else 0.0
    scores = codes[:, informative].astype(np.float64) @ (w * (yes + no)) - float(np.sum(w * no))
    tail = bernstein_tail(scores, variance, bound) if variance > 0 else np.ones(len(scores))
    p_values = np.minimum(1.0, tail * max(1, len(recipients)))
    z = scores / math.sqrt(variance) if variance > 0 else np.zeros(len(scores))
    order = np.argsort(-scores, kind="stable")
    return Verdict(
        scores=tuple(
            Score(
                recipient=recipients[i],
                score=float(scores[i]),
                z=float(z[i]),
                p_value=float(p_values[i]),
                named=bool(p_values[i] <= alpha),
            )
            for i in order
        ),
        positions=int(informative.sum()),
        variance=variance,
        alpha=alpha,
    )


def align(
    *,
    original_sites: Sequence[str],
    original_samples: Sequence[str],
    leaked_sites: Sequence[str],
    leaked_samples: Sequence[str],
    values: npt.NDArray[np.float64],
) -> Leak:
    """Match a leaked matrix's rows (site keys) and columns (sample identifiers) with the
    original's; unknown sites and samples are dropped."""
    site_index: Mapping[str, int] = {key: i for i, key in enumerate(original_sites)}
    sample_index: Mapping[str, int] = {name: i for i, name in enumerate(original_samples)}
    rows = [(i, site_index[k]) for i, k in enumerate(leaked_sites) if k in site_index]
    cols = [(j, sample_index[s]) for j, s in enumerate(leaked_samples) if s in sample_index]
    # a site or sample given twice keeps its first appearance
    rows = list({orig: (i, orig) for i, orig in reversed(rows)}.values())
    cols = list({orig: (j, orig) for j, orig in reversed(cols)}.values())
    row_take = np.asarray([i for i, _ in rows], dtype=np.int64)
    col_take = np.asarray([j for j, _ in cols], dtype=np.int64)
    return Leak(
        values=values[np.ix_(row_take, col_take)].astype(np.float64),
        sites=np.asarray([o for _, o in rows], dtype=np.int64),
        samples=np.asarray([o for _, o in cols], dtype=np.int64),
    )
