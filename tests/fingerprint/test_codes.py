"""The fingerprint scheme and its tracing: keyed and deterministic, exact allele frequencies,
plausible changes, recovery of a recipient from its own copy (subsets, reordering), and no
innocent named on unmarked data. The fast numpy code is compared with slow loops that are
obviously the definitions (neighbour contexts, the symmetric Tardos score).
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from genecommons.errors import InvalidInputError
from genecommons.fingerprint import codes
from genecommons.fingerprint.codes import (
    Scheme,
    allele_frequencies,
    apply,
    code_matrix,
    conditional_counts,
    make_plan,
    neighbour_context,
    plausibility_of,
    recipient_bits,
    utility,
)
from genecommons.fingerprint.trace import Leak, accuse, align, dense_observations

PROPERTY_SETTINGS = settings(deadline=None, derandomize=True, database=None, max_examples=40)
SECRET = b"k" * 32
DATASET = "GCD00000001"
RECIPIENTS = [f"r{k}@example.org" for k in range(8)]
# dense enough that small matrices carry hundreds of marks
DENSE = Scheme(rate=0.2, site_rate=0.2, plausibility=0.2)


def linked_dosages(seed: int, samples: int, sites: int, founders: int) -> npt.NDArray[np.int8]:
    """Dosages of diploids whose haplotypes copy a few founder haplotypes with 2 % noise: sites
    in linkage, as in a real cohort."""
    rng = np.random.default_rng(seed)
    frequencies = rng.uniform(0.05, 0.5, size=sites)
    panel = rng.random((founders, sites)) < frequencies
    haplotypes = panel[rng.integers(0, founders, size=2 * samples)]
    haplotypes ^= rng.random(haplotypes.shape) < 0.02
    dosages = haplotypes[0::2].astype(np.int8) + haplotypes[1::2].astype(np.int8)
    return np.ascontiguousarray(dosages.T)


matrices = st.builds(
    linked_dosages,
    seed=st.integers(0, 2**32 - 1),
    samples=st.integers(60, 200),
    sites=st.integers(40, 240),
    founders=st.integers(2, 6),
)


def test_neighbour_context_is_the_definition_in_every_block(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(codes, "BLOCK_SITES", 7)
    genotypes = np.random.default_rng(0).integers(-1, 3, size=(30, 5)).astype(np.int8)
    for start in range(0, 30, 7):
        stop = min(30, start + 7)
        got = neighbour_context(genotypes, start, stop)
        for j in range(start, stop):
            for i in range(5):
                left = genotypes[j - 1, i] if j > 0 else -1
                right = genotypes[j + 1, i] if j < 29 else -1
                expected = 4 * (3 if left < 0 else left) + (3 if right < 0 else right)
                assert got[j - start, i] == expected


def test_conditional_counts_count_every_called_cell() -> None:
    genotypes = linked_dosages(1, 50, 30, 3)
    genotypes[4, 7] = -1
    counts = conditional_counts(genotypes)
    context = neighbour_context(genotypes)
    for j in (0, 4, 13, 29):
        for i in range(50):
            if genotypes[j, i] >= 0:
                expected = np.sum((context[j] == context[j, i]) & (genotypes[j] == genotypes[j, i]))
                assert counts[j, context[j, i], genotypes[j, i]] == expected
        assert counts[j].sum() == np.sum(genotypes[j] >= 0)


def _plan_digest(plan: codes.Plan, bits: npt.NDArray[np.bool_]) -> str:
    digest = hashlib.sha256()
    for part in (plan.site, plan.up, plan.down, plan.up_from, plan.down_from, plan.bias):
        digest.update(np.ascontiguousarray(part).tobytes())
    digest.update(plan.block_starts.tobytes() + bits.tobytes())
    return digest.hexdigest()


def test_the_plan_is_the_one_past_deliveries_were_marked_with() -> None:
    # three blocks, missing calls: the digest of the plan and a recipient's code computed by
    # the scheme as it was when copies were first delivered (whole matrix, December 2026);
    # tracing those copies needs exactly this plan
    genotypes = linked_dosages(1, 150, 9000, 4)
    genotypes[5, 7] = -1
    genotypes[4100, :10] = -1
    plan = make_plan(genotypes, secret=SECRET, dataset=DATASET)
    bits = recipient_bits(plan, secret=SECRET, dataset=DATASET, recipient="r0@example.org")
    assert len(plan) == 6684
    assert _plan_digest(plan, bits) == (
        "4ff87d801d86fc376ba695bfeb63ada8933a2fb3f6fcf060d5b2004ddedc9d4c"
    )


@settings(deadline=None, derandomize=True, database=None, max_examples=25)
@given(
    matrix=st.builds(
        linked_dosages,
        seed=st.integers(0, 2**32 - 1),
        samples=st.integers(20, 60),
        sites=st.integers(1, 60),
        founders=st.integers(2, 4),
    ),
    block=st.integers(1, 9),
    segment_rows=st.integers(1, 5),
    pieces=st.lists(st.integers(1, 12), max_size=12),
)
def test_a_plan_fed_in_pieces_is_the_whole_matrix_plan(
    matrix: npt.NDArray[np.int8], block: int, segment_rows: int, pieces: list[int]
) -> None:
    # what a copy streamed from an archived VCF does: sites arrive a few at a time and are
    # planned a segment at a time, never the whole matrix at once
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(codes, "BLOCK_SITES", block)
        patch.setattr(codes, "SEGMENT_CELLS", 1 << 40)  # one segment per block
        whole = make_plan(matrix, secret=SECRET, dataset=DATASET, scheme=DENSE)
        patch.setattr(codes, "SEGMENT_CELLS", segment_rows * matrix.shape[1])
        builder = codes.PlanBuilder(
            samples=matrix.shape[1], secret=SECRET, dataset=DATASET, scheme=DENSE
        )
        start = 0
        for size in [*pieces, len(matrix)]:
            builder.add(np.array(matrix[start : start + size]))
            start += size
        streamed = builder.finish()
        with pytest.raises(InvalidInputError):
            builder.add(matrix[:1])  # a finished plan takes no more sites
    bits = recipient_bits(whole, secret=SECRET, dataset=DATASET, recipient=RECIPIENTS[0])
    assert _plan_digest(streamed, bits) == _plan_digest(whole, bits)
    assert streamed.shape == whole.shape


@PROPERTY_SETTINGS
@given(matrices)
def test_deterministic_per_key_and_recipient(genotypes: npt.NDArray[np.int8]) -> None:
    plan = make_plan(genotypes, secret=SECRET, dataset=DATASET, scheme=DENSE)
    again = make_plan(genotypes, secret=SECRET, dataset=DATASET, scheme=DENSE)
    assert np.array_equal(plan.site, again.site) and np.array_equal(plan.up, again.up)
    assert np.array_equal(plan.bias, again.bias)
    one = recipient_bits(plan, secret=SECRET, dataset=DATASET, recipient=RECIPIENTS[0])
    assert np.array_equal(
        one, recipient_bits(plan, secret=SECRET, dataset=DATASET, recipient=RECIPIENTS[0])
    )
    if len(plan) >= 64:
        other = recipient_bits(plan, secret=SECRET, dataset=DATASET, recipient=RECIPIENTS[1])
        assert not np.array_equal(one, other)
        other_key = make_plan(genotypes, secret=b"x" * 32, dataset=DATASET, scheme=DENSE)
        assert not (
            len(other_key) == len(plan)
            and np.array_equal(other_key.site, plan.site)
            and np.array_equal(other_key.up, plan.up)
        )


@PROPERTY_SETTINGS
@given(matrices)
def test_copies_keep_allele_frequencies_and_change_only_plausible_cells(
    genotypes: npt.NDArray[np.int8],
) -> None:
    plan = make_plan(genotypes, secret=SECRET, dataset=DATASET, scheme=DENSE)
    bits = recipient_bits(plan, secret=SECRET, dataset=DATASET, recipient=RECIPIENTS[2])
    copy = apply(genotypes, plan, bits)
    assert np.array_equal(allele_frequencies(copy), allele_frequencies(genotypes))
    cost = utility(genotypes, copy)
    assert cost.max_af_deviation == 0.0
    assert cost.changed == 2 * int(bits.sum()) <= DENSE.rate * cost.cells + 2
    assert ((copy >= 0) & (copy <= 2)).all()
    # every changed value is one the adjacent sites make likely
    counts = conditional_counts(genotypes)
    context = neighbour_context(genotypes)
    sites, cells = np.nonzero(copy != genotypes)
    q = plausibility_of(
        counts[sites], context[sites, cells][:, None], copy[sites, cells][:, None].astype(np.int64)
    )
    assert (q >= DENSE.plausibility).all()
    assert (np.abs(copy.astype(int) - genotypes) <= 1).all()


@PROPERTY_SETTINGS
@given(matrices, st.data())
def test_a_recipient_is_found_from_its_own_copy_after_subsetting_and_reordering(
    genotypes: npt.NDArray[np.int8], data: st.DataObject
) -> None:
    plan = make_plan(genotypes, secret=SECRET, dataset=DATASET, scheme=DENSE)
    codes = code_matrix(plan, secret=SECRET, dataset=DATASET, recipients=RECIPIENTS)
    source = data.draw(st.integers(0, len(RECIPIENTS) - 1))
    copy = apply(genotypes, plan, codes[source])
    sites, samples = genotypes.shape
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    keep_samples = rng.permutation(samples)[: max(1, int(samples * data.draw(st.floats(0.5, 1))))]
    keep_sites = rng.permutation(sites)[: max(1, int(sites * data.draw(st.floats(0.5, 1))))]
    site_names = [f"chr1:{100 + j}:A:G" for j in range(sites)]
    sample_names = [f"S{i}" for i in range(samples)]
    leak = align(
        original_sites=site_names,
        original_samples=sample_names,
        leaked_sites=[site_names[j] for j in keep_sites],
        leaked_samples=[sample_names[i] for i in keep_samples],
        values=copy[np.ix_(keep_sites, keep_samples)].astype(np.float64),
    )
    verdict = accuse(dense_observations(plan, leak), plan.bias, codes, RECIPIENTS)
    # the source's own z is about 0.64 sqrt(positions) (the mean of 2 sqrt(p (1 - p)) under
    # the arcsine density), the naming threshold about 6 at 200 positions: 200 suffice
    named = {s.recipient for s in verdict.named}
    assert named <= {RECIPIENTS[source]}
    event("strong" if verdict.positions >= 200 else "weak")
    if verdict.positions >= 200:
        assert named == {RECIPIENTS[source]}


@PROPERTY_SETTINGS
@given(matrices)
def test_unmarked_data_names_no_one(genotypes: npt.NDArray[np.int8]) -> None:
    plan = make_plan(genotypes, secret=SECRET, dataset=DATASET, scheme=DENSE)
    codes = code_matrix(plan, secret=SECRET, dataset=DATASET, recipients=RECIPIENTS)
    sites, samples = genotypes.shape
    leak = Leak(genotypes.astype(np.float64), np.arange(sites), np.arange(samples))
    verdict = accuse(dense_observations(plan, leak), plan.bias, codes, RECIPIENTS, alpha=1e-3)
    assert verdict.named == ()
    # the p-values are bounds: on unmarked data they sit near 1
    assert all(s.p_value > 1e-3 for s in verdict.scores)


def test_the_score_is_the_symmetric_tardos_sum() -> None:
    genotypes = linked_dosages(3, 120, 150, 4)
    plan = make_plan(genotypes, secret=SECRET, dataset=DATASET, scheme=DENSE)
    codes = code_matrix(plan, secret=SECRET, dataset=DATASET, recipients=RECIPIENTS)
    y = np.random.default_rng(5).choice([0.0, 0.25, 0.5, 1.0], size=len(plan))
    verdict = accuse(y, plan.bias, codes, RECIPIENTS)
    by_name = {s.recipient: s.score for s in verdict.scores}
    for r, name in enumerate(RECIPIENTS):
        total = 0.0
        for k in range(len(plan)):
            p = plan.bias[k]
            g1, g0 = math.sqrt((1 - p) / p), math.sqrt(p / (1 - p))
            weight = 2 * y[k] - 1
            total += weight * (g1 if codes[r, k] else -g0)
        assert by_name[name] == pytest.approx(total, rel=1e-9, abs=1e-9)


def test_observations_read_averages_and_ignore_third_values() -> None:
    genotypes = linked_dosages(4, 80, 60, 3)
    plan = make_plan(genotypes, secret=SECRET, dataset=DATASET, scheme=DENSE)
    k = 0
    site, up, down = int(plan.site[k]), int(plan.up[k]), int(plan.down[k])
    values = genotypes.astype(np.float64)
    values[site, up] = plan.up_from[k] + 0.6
    values[site, down] = plan.down_from[k] - 0.6
    leak = Leak(values, np.arange(values.shape[0]), np.arange(values.shape[1]))
    assert dense_observations(plan, leak)[k] == pytest.approx(0.6)
    values[site, up] = plan.up_from[k] - 1 if plan.up_from[k] > 0 else plan.up_from[k] + 2
    values[site, down] = np.nan
    leak = Leak(values, np.arange(values.shape[0]), np.arange(values.shape[1]))
    assert dense_observations(plan, leak)[k] == 0.5


def test_bad_parameters_and_matrices_are_refused() -> None:
    with pytest.raises(InvalidInputError):
        Scheme(rate=0.0)
    with pytest.raises(InvalidInputError):
        Scheme(cutoff=0.6)
    with pytest.raises(InvalidInputError):
        make_plan(np.zeros((3, 3), dtype=np.int32), secret=SECRET, dataset=DATASET)  # type: ignore[arg-type]
