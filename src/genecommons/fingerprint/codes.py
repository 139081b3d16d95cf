"""Recipient fingerprints in genotype matrices: a keyed cell set, plausible changes, Tardos bits.

After Ji, Ayday, Yilmaz and Li 2022 ("Robust fingerprinting of genomic databases", ISMB), with
one change that their collusion analysis calls for. Their scheme gives each recipient its own
cells; five recipients who take the majority of their copies then erase every mark (a cell marked
in one copy out of five is outvoted). Here every recipient of a dataset is marked on the *same*
keyed set of cells, and what differs between recipients is which of the cells carry the change:
recipient r's bit at position j is 1 with probability p_j, where p_j is drawn from Tardos's
arcsine density, and the bits are the recipient's Tardos code (Tardos 2003; the symmetric
accusation of Skoric, Katzenbeisser and Celik 2008 scores them, in `trace.py`). Whatever
colluders do with positions where their bits agree, they cannot remove the mark there (the
marking assumption), and the Tardos score names at least one of them however they combine the
rest: majority, average, random choice.

The cells and the changes:

* **Plausible given linkage.** A cell (site j, sample i) may carry a mark only if its changed
  value v1 (one allele more or less) is likely given the sample's genotypes at the adjacent sites
  j-1 and j+1: q(v1 | g[j-1], g[j+1]) >= `plausibility`, with q estimated from the dataset itself
  (the best model an attacker can have). The correlation attack of Ji et al. looks for cells
  whose value is unlikely given the correlated sites and the allele frequency; a mark is, by
  construction, not one of those.
* **Allele frequencies exactly kept.** Marked cells come in pairs at the same site, one gaining
  an allele and one losing one, both carrying the same bit: every copy has the very allele
  frequencies of the original at every site.
* **GWAS kept in order.** A change moves a site's association statistic by about
  1 / sqrt(n p (1 - p)) (p the ALT frequency), so each eligible cell is drawn with a keyed
  probability that selects about `site_rate` * 4 p (1 - p) of a site's cells: common sites carry
  most marks, rare ones few. No more than `rate` (1 %) of all cells are ever selected (pairs are
  thinned, keyed, beyond that). A copy changes half the selected cells on average (the mean of
  the arcsine density is 1/2). On the demo cohort this selects about 0.2 % of cells and changes
  about 0.1 %: selecting 1 % keeps the GWAS order only to a Spearman correlation of about 0.975
  (`genecommons fingerprint simulate` measures both).

Everything is a function of the node's fingerprint secret, the dataset and the recipient, through
HMAC-SHA-256: the same recipient always receives the same copy, and the node can recompute any
recipient's marks at tracing time without storing them. Sites are handled in fixed blocks of
`BLOCK_SITES`, each with its own keyed generators, so results never depend on how a caller chunks
its work.

Genotypes here are dosages (ALT allele counts, int8, -1 for a missing or non-biallelic call) in a
(sites x samples) matrix. This module is pure: numpy, no web framework, no database.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from genecommons.errors import InvalidInputError

SCHEME = "genecommons-tardos-ld/1"
BLOCK_SITES = 4096
SEGMENT_CELLS = 1 << 20  # cells planned at a time: what a plan's working memory scales with
DEFAULT_RATE = 0.01
DEFAULT_PLAUSIBILITY = 0.2
DEFAULT_CUTOFF = 0.02
DEFAULT_SITE_RATE = 0.04
MIN_CONTEXT = 8  # samples in a neighbour context before its frequencies are trusted
SECRET_BYTES = 32
_MISSING = 3  # the context code of a missing neighbour

Dosages = npt.NDArray[np.int8]


@dataclass(frozen=True, slots=True)
class Scheme:
    """The parameters of a fingerprint; recorded with every delivery."""

    rate: float = DEFAULT_RATE  # most cells ever selected, as a share of called cells
    plausibility: float = DEFAULT_PLAUSIBILITY  # least q(v1 | neighbours) of a changed value
    cutoff: float = DEFAULT_CUTOFF  # Tardos: p_k in [cutoff, 1 - cutoff]
    site_rate: float = DEFAULT_SITE_RATE  # share selected at a site with p = 1/2

    def __post_init__(self) -> None:
        if not 0 < self.rate <= 0.5 or not 0 < self.site_rate <= 0.5:
            raise InvalidInputError(
                f"The fingerprint rates must be in (0, 0.5], not {self.rate} and {self.site_rate}.",
                message_zh=f"指纹比例须在 (0, 0.5] 之间，而不是 {self.rate} 和 {self.site_rate}。",
            )
        if not 0 < self.plausibility < 1 or not 0 < self.cutoff < 0.5:
            raise InvalidInputError(
                "The plausibility must be in (0, 1) and the Tardos cutoff in (0, 0.5).",
                message_zh="合理性阈值须在 (0, 1) 之间，Tardos 截断值须在 (0, 0.5) 之间。",
                details={"plausibility": self.plausibility, "cutoff": self.cutoff},
            )

    def as_json(self) -> dict[str, object]:
        """The parameters as a delivery records them."""
        return {
            "scheme": SCHEME,
            "rate": self.rate,
            "plausibility": self.plausibility,
            "cutoff": self.cutoff,
            "site_rate": self.site_rate,
        }


@dataclass(frozen=True, slots=True)
class Plan:
    """The marked positions of one dataset, shared by all its recipients.

    Position k is a pair of cells at site `site[k]`: sample `up[k]` goes from `up_from[k]` to
    `up_from[k] + 1` ALT alleles and sample `down[k]` from `down_from[k]` to `down_from[k] - 1`
    when a recipient's bit k is 1. `bias[k]` is the Tardos probability p_k of a 1. Indices refer
    to the rows (sites) and columns (samples) of the matrix the plan was made from.
    """

    site: npt.NDArray[np.int64]
    up: npt.NDArray[np.int64]
    down: npt.NDArray[np.int64]
    up_from: npt.NDArray[np.int8]
    down_from: npt.NDArray[np.int8]
    bias: npt.NDArray[np.float64]
    block_starts: npt.NDArray[np.int64]  # first position of each block of BLOCK_SITES sites
    shape: tuple[int, int]

    def __len__(self) -> int:
        return len(self.site)

    @property
    def cells(self) -> int:
        """Genotype cells selected (two per position)."""
        return 2 * len(self.site)


@dataclass(frozen=True, slots=True)
class Utility:
    """What a fingerprint costs a copy."""

    cells: int  # called cells in the original
    changed: int  # cells whose value differs
    max_af_deviation: float  # largest |AF(copy) - AF(original)| over sites

    @property
    def changed_share(self) -> float:
        """Share of called cells changed."""
        return self.changed / self.cells if self.cells else 0.0

    def as_json(self) -> dict[str, float | int]:
        """The figures as a delivery records them."""
        return {
            "cells": self.cells,
            "changed": self.changed,
            "changed_share": round(self.changed_share, 6),
            "max_af_deviation": self.max_af_deviation,
        }


def new_secret() -> bytes:
    """A fresh node fingerprint secret."""
    import secrets

    return secrets.token_bytes(SECRET_BYTES)


def key_id(secret: bytes) -> str:
    """A public name of a secret (what deliveries record): 16 hex digits of its SHA-256."""
    return hashlib.sha256(b"genecommons-fingerprint-key-id\x00" + secret).hexdigest()[:16]


def _generator(secret: bytes, *parts: str | int) -> np.random.Generator:
    """A keyed random generator: HMAC-SHA-256 of the parts seeds a PCG64."""
    message = b"\x00".join(str(part).encode("utf-8") for part in (SCHEME, *parts))
    digest = hmac.new(secret, message, hashlib.sha256).digest()
    return np.random.Generator(np.random.PCG64(int.from_bytes(digest, "big")))


def conditional_counts(genotypes: Dosages) -> npt.NDArray[np.int64]:
    """Counts (sites x 16 contexts x 3 values): how often a site's dosage v follows the context
    (g[j-1], g[j+1]) of adjacent sites, 4 * left + right with 3 for missing (or the matrix's
    edge). The linkage model of both the scheme and the correlation attack."""
    sites = genotypes.shape[0]
    counts = np.zeros((sites, 16, 3), dtype=np.int64)
    for start in range(0, sites, BLOCK_SITES):
        stop = min(sites, start + BLOCK_SITES)
        context = neighbour_context(genotypes, start, stop)
        value = genotypes[start:stop]
        called = value >= 0
        rows = np.arange(stop - start, dtype=np.int64)[:, None] * 48
        flat = (rows + context * 3 + value)[called]
        counts[start:stop] = np.bincount(flat, minlength=(stop - start) * 48).reshape(-1, 16, 3)
    return counts


def neighbour_context(
    genotypes: Dosages, start: int = 0, stop: int | None = None
) -> npt.NDArray[np.int8]:
    """The context code 4 * g[j-1] + g[j+1] of every cell of rows [start, stop) (3 for a
    missing neighbour or one beyond the matrix's edge)."""
    sites, samples = genotypes.shape
    stop = sites if stop is None else stop
    rows = stop - start
    lo, hi = max(0, start - 1), min(sites, stop + 1)
    code = genotypes[lo:hi].astype(np.int8)
    code[code < 0] = _MISSING
    offset = start - lo  # 1 unless the block starts at the first site
    context = np.empty((rows, samples), dtype=np.int8)
    if offset == 0 and rows:
        context[0] = 4 * _MISSING
    np.multiply(code[: rows - 1 + offset], 4, out=context[1 - offset :])
    right_rows = min(rows, hi - start - 1)
    context[:right_rows] += code[offset + 1 : offset + 1 + right_rows]
    context[right_rows:] += _MISSING
    return context


def plausibility_of(
    counts: npt.NDArray[np.int64], context: npt.NDArray[np.int64], value: npt.NDArray[np.int64]
) -> npt.NDArray[np.float64]:
    """q(value | context) per cell of a block, from `conditional_counts` of the same rows;
    0 where the value is out of range or the context was seen fewer than MIN_CONTEXT times."""
    rows = np.arange(context.shape[0], dtype=np.int64)[:, None] * 16 + context
    totals = counts.sum(axis=2).reshape(-1)[rows]
    inside = (value >= 0) & (value <= 2)
    found = counts.reshape(-1)[rows * 3 + np.clip(value, 0, 2)]
    q = found / np.maximum(totals, 1)
    return np.where(inside & (totals >= MIN_CONTEXT), q, 0.0)


def _check_matrix(genotypes: npt.NDArray[np.generic]) -> None:
    if genotypes.ndim != 2 or genotypes.dtype != np.int8:
        raise InvalidInputError(
            "Genotypes must be a (sites x samples) int8 matrix of dosages.",
            message_zh="基因型须为 (位点 x 样本) 的 int8 剂量矩阵。",
            details={"shape": list(genotypes.shape), "dtype": str(genotypes.dtype)},
        )


_UP, _DOWN = 1, 2


def _eligibility(counts: npt.NDArray[np.int64], plausibility: float) -> npt.NDArray[np.int8]:
    """For each (site, context, value 0..3): _UP when one ALT allele more is plausible (and at
    least as likely as one fewer), _DOWN when one fewer is, else 0 (value 3: missing, never)."""
    called = counts[:, :, :3]
    totals = called.sum(axis=2, keepdims=True)
    q = called / np.maximum(totals, 1)
    trusted = totals >= MIN_CONTEXT
    q_up = np.zeros_like(q)
    q_down = np.zeros_like(q)
    q_up[:, :, :2] = q[:, :, 1:]  # value v -> v + 1
    q_down[:, :, 1:] = q[:, :, :2]  # value v -> v - 1
    up = trusted & (q_up >= plausibility) & (q_up >= q_down)
    down = trusted & (q_down >= plausibility) & ~up
    table = np.zeros(counts.shape, dtype=np.int8)
    table[:, :, :3] = np.where(up, _UP, np.where(down, _DOWN, 0))
    return table


def _rank_in_row(rows: npt.NDArray[np.intp], per_row: npt.NDArray[np.intp]) -> npt.NDArray[np.intp]:
    """Rank of each entry among its row's entries, for `rows` sorted ascending."""
    starts = np.cumsum(per_row) - per_row
    ranks: npt.NDArray[np.intp] = np.arange(len(rows)) - starts[rows]
    return ranks


def make_plan(
    genotypes: Dosages, *, secret: bytes, dataset: str, scheme: Scheme | None = None
) -> Plan:
    """The marked positions of `dataset` (whose dosages are `genotypes`), keyed by `secret`."""
    _check_matrix(genotypes)
    builder = PlanBuilder(samples=genotypes.shape[1], secret=secret, dataset=dataset, scheme=scheme)
    builder.add(genotypes)
    return builder.finish()


class PlanBuilder:
    """`make_plan` fed the sites in order, any number at a time: the same plan, in memory
    bounded by a segment of about SEGMENT_CELLS cells (and the positions found), for a file
    read as a stream.

    A site is planned once the next one has arrived (its neighbours are its context). Each
    block of BLOCK_SITES sites has its own keyed generator, drawn from in the order of the
    whole-matrix definition: a uniform per cell, row by row (the same numbers whether drawn
    for the block at once or for consecutive segments of it), then the block's pairs' Tardos
    probabilities and thinning draws."""

    def __init__(
        self, *, samples: int, secret: bytes, dataset: str, scheme: Scheme | None = None
    ) -> None:
        self.scheme = scheme or Scheme()
        self.samples = samples
        self.secret = secret
        self.dataset = dataset
        self.sites = 0  # sites planned
        self.called_cells = 0
        self._held: Dosages | None = None  # the last site received, waiting for its successor
        self._before: Dosages | None = None  # the site before the held one
        self._rng: np.random.Generator | None = None  # of the block being planned
        self._block_pairs = 0
        self._finished = False
        self._parts: dict[str, list[npt.NDArray[np.generic]]] = {
            k: [] for k in ("site", "up", "down", "up_from", "down_from", "bias", "thin")
        }

    def add(self, rows: Dosages) -> None:
        """The next sites' dosages (sites x samples)."""
        _check_matrix(rows)
        if rows.shape[1] != self.samples or self._finished:
            raise InvalidInputError(
                f"A fingerprint plan of {self.samples} samples takes sites of as many samples, "
                "until it is finished.",
                message_zh=f"该指纹方案针对 {self.samples} 个样本，位点须有相同的样本数。",
                details={"shape": list(rows.shape)},
            )
        if not rows.shape[0]:
            return
        if self._held is not None:
            self._plan(self._held, before=self._before, after=rows[0])
            self._before = self._held[0]
        ready = rows.shape[0] - 1  # the last one waits for its successor
        segment = max(1, SEGMENT_CELLS // max(self.samples, 1))
        done = 0
        while done < ready:
            step = min(ready - done, segment, BLOCK_SITES - self.sites % BLOCK_SITES)
            self._plan(
                rows[done : done + step],
                before=self._before if done == 0 else rows[done - 1],
                after=rows[done + step],
            )
            done += step
        if ready:
            self._before = np.array(rows[ready - 1])
        self._held = np.array(rows[ready:])

    def _plan(self, g: Dosages, *, before: Dosages | None, after: Dosages | None) -> None:
        """Plan consecutive sites of one block, given the sites around them."""
        scheme, parts = self.scheme, self._parts
        start, rows = self.sites, g.shape[0]
        if start % BLOCK_SITES == 0:
            self._rng = _generator(self.secret, "cells", self.dataset, start // BLOCK_SITES)
        rng = self._rng
        assert rng is not None
        window = [g] if before is None else [before[None, :], g]
        if after is not None:
            window.append(after[None, :])
        offset = 0 if before is None else 1
        matrix = np.concatenate(window) if len(window) > 1 else g
        context = neighbour_context(matrix, offset, offset + rows)
        # one index per cell: (row, context, value) with value 3 for a missing call
        value = np.where(g >= 0, g, _MISSING).astype(np.int32)
        cell = np.arange(rows, dtype=np.int32)[:, None] * 64 + context * np.int32(4) + value
        counts = np.bincount(cell.ravel(), minlength=rows * 64).reshape(rows, 16, 4)
        kind = _eligibility(counts, scheme.plausibility).reshape(-1)[cell]  # 0, UP or DOWN
        draw = rng.random(g.shape, dtype=np.float32)
        n_called = counts[:, :, :3].sum(axis=(1, 2))
        self.called_cells += int(n_called.sum())
        alt = (counts[:, :, 1].sum(axis=1) + 2 * counts[:, :, 2].sum(axis=1)) / np.maximum(
            2 * n_called, 1
        )
        # select each eligible cell with the probability that fills site_rate * 4 p (1 - p) / 2
        # of a site's cells on each side (p its ALT frequency: a change moves an association
        # statistic by about 1 / sqrt(n p (1 - p)), so rarer sites get proportionally fewer),
        # then pair the i-th selected "up" cell with the i-th "down" cell of the same site
        want = scheme.site_rate * n_called * 4 * alt * (1 - alt) / 2
        picked = []
        for side in (_UP, _DOWN):
            eligible = kind == side
            n_side = eligible.sum(axis=1)
            take = np.where(n_side > 0, np.minimum(1.0, want / np.maximum(n_side, 1)), 0.0)
            # np.nonzero walks row by row, columns ascending
            picked.append(np.nonzero(eligible & (draw < take[:, None])))
        (up_rows, up_cols), (down_rows, down_cols) = picked
        up_count = np.bincount(up_rows, minlength=rows)
        down_count = np.bincount(down_rows, minlength=rows)
        pairs = np.minimum(up_count, down_count)
        keep_up = _rank_in_row(up_rows, up_count) < pairs[up_rows]
        keep_down = _rank_in_row(down_rows, down_count) < pairs[down_rows]
        up_rows, up_cols, down_cols = up_rows[keep_up], up_cols[keep_up], down_cols[keep_down]
        parts["site"].append(up_rows.astype(np.int64) + start)
        parts["up"].append(up_cols.astype(np.int32))  # samples: 4 bytes until the plan is made
        parts["down"].append(down_cols.astype(np.int32))
        parts["up_from"].append(g[up_rows, up_cols].astype(np.int8))
        parts["down_from"].append(g[up_rows, down_cols].astype(np.int8))
        self._block_pairs += len(up_rows)
        self.sites += rows
        if self.sites % BLOCK_SITES == 0:
            self._end_block()

    def _end_block(self) -> None:
        """The block's pairs' Tardos probabilities and thinning draws, after its cells'."""
        rng, n = self._rng, self._block_pairs
        assert rng is not None
        t_angle = math.asin(math.sqrt(self.scheme.cutoff))
        self._parts["bias"].append(np.sin(rng.uniform(t_angle, math.pi / 2 - t_angle, size=n)) ** 2)
        self._parts["thin"].append(rng.random(n))
        self._rng, self._block_pairs = None, 0

    def finish(self) -> Plan:
        """The plan of all the sites added (the builder takes no more)."""
        if self._finished:
            raise InvalidInputError(
                "This fingerprint plan was finished already.", message_zh="该指纹方案已完成。"
            )
        if self._held is not None:
            self._plan(self._held, before=self._before, after=None)
            self._held = None
        if self._rng is not None:
            self._end_block()
        self._finished = True
        scheme, sites, parts = self.scheme, self.sites, self._parts
        # thin the pairs uniformly (keyed) so that no more than `rate` of all cells are selected
        thin = _joined(parts["thin"], np.float64)
        cap = scheme.rate * self.called_cells
        chosen = 2 * len(thin)
        keep = thin < (cap / chosen if chosen > cap else 1.0)
        del thin
        site = _kept(parts["site"], keep, np.int64)
        blocks = np.arange(0, max(sites, 1), BLOCK_SITES)
        return Plan(
            site=site,
            up=_kept(parts["up"], keep, np.int64),
            down=_kept(parts["down"], keep, np.int64),
            up_from=_kept(parts["up_from"], keep, np.int8),
            down_from=_kept(parts["down_from"], keep, np.int8),
            bias=_kept(parts["bias"], keep, np.float64),
            block_starts=np.searchsorted(site, blocks).astype(np.int64),
            shape=(sites, self.samples),
        )


def _joined(parts: list[npt.NDArray[np.generic]], dtype: type[np.generic]) -> npt.NDArray[Any]:
    """The parts as one array, the parts list emptied (one field at a time keeps the peak
    low)."""
    joined = np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)
    parts.clear()
    return joined


def _kept(
    parts: list[npt.NDArray[np.generic]], keep: npt.NDArray[np.bool_], dtype: type[np.generic]
) -> npt.NDArray[Any]:
    return _joined(parts, dtype)[keep].astype(dtype, copy=False)


def recipient_bits(
    plan: Plan, *, secret: bytes, dataset: str, recipient: str
) -> npt.NDArray[np.bool_]:
    """Recipient's Tardos code over the plan's positions (block by block, keyed)."""
    bits = np.zeros(len(plan), dtype=np.bool_)
    ends = [*plan.block_starts[1:].tolist(), len(plan)]
    for block, (start, stop) in enumerate(zip(plan.block_starts.tolist(), ends, strict=True)):
        if stop > start:
            rng = _generator(secret, "code", dataset, recipient, block)
            bits[start:stop] = rng.random(stop - start) < plan.bias[start:stop]
    return bits


def code_matrix(
    plan: Plan, *, secret: bytes, dataset: str, recipients: Sequence[str]
) -> npt.NDArray[np.bool_]:
    """The codes of several recipients, one row each."""
    if not recipients:
        return np.zeros((0, len(plan)), dtype=np.bool_)
    return np.stack(
        [recipient_bits(plan, secret=secret, dataset=dataset, recipient=r) for r in recipients]
    )


def apply(genotypes: Dosages, plan: Plan, bits: npt.NDArray[np.bool_]) -> Dosages:
    """A fingerprinted copy: each position whose bit is 1 moves its two cells."""
    _check_matrix(genotypes)
    if genotypes.shape != plan.shape or bits.shape != (len(plan),):
        raise InvalidInputError(
            "The genotypes or the code do not match the fingerprint plan.",
            message_zh="基因型或编码与指纹方案不匹配。",
            details={"genotypes": list(genotypes.shape), "plan": list(plan.shape)},
        )
    copy = genotypes.copy()
    on = np.flatnonzero(bits)
    copy[plan.site[on], plan.up[on]] = plan.up_from[on] + 1
    copy[plan.site[on], plan.down[on]] = plan.down_from[on] - 1
    return copy


def allele_frequencies(genotypes: npt.NDArray[np.generic]) -> npt.NDArray[np.float64]:
    """ALT allele frequency per site over called cells (NaN where none is called)."""
    values = genotypes.astype(np.float64)
    called = values >= 0
    alleles = np.where(called, values, 0.0).sum(axis=1)
    n = called.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(n > 0, alleles / (2 * np.maximum(n, 1)), np.nan)


def utility(original: Dosages, copy: Dosages) -> Utility:
    """Share of cells changed and the largest allele-frequency deviation of a copy."""
    called = original >= 0
    changed = int(np.count_nonzero((original != copy) & called))
    deviation = np.abs(allele_frequencies(copy) - allele_frequencies(original))
    finite = deviation[np.isfinite(deviation)]
    return Utility(
        cells=int(called.sum()),
        changed=changed,
        max_af_deviation=float(finite.max()) if finite.size else 0.0,
    )
