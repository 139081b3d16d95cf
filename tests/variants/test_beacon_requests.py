"""Reading Beacon requests (pure): any input is a request or an InvalidInputError, never another
exception; written forms of a variant normalise to one; range and bracket matching agree with
a slow, obviously correct reference."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from genecommons.errors import InvalidInputError
from genecommons.variants.beacon import (
    GET_OPTIONS,
    GET_PARAMETERS,
    VariantParameters,
    criteria,
    parse_body,
    parse_query_string,
    variant_query,
)
from genecommons.variants.normalize import Variant, normalize

BASES = st.text(alphabet="ACGT", min_size=1, max_size=6)
NAMES = st.sampled_from(sorted(GET_PARAMETERS | GET_OPTIONS | {"bogus", "$schema"}))
HOSTILE = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        ["1' OR '1'='1", "<script>", "../../etc/passwd", "NaN", "-1", "1e99", "9" * 30]
    ),
    st.integers(-(10**12), 10**12).map(str),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(NAMES, HOSTILE), max_size=8))
def test_any_query_string_is_a_request_or_an_input_error(items: list[tuple[str, str]]) -> None:
    try:
        request = parse_query_string(items)
        criteria(request.query.filters)
        variant_query(request.query.requestParameters, max_range=1_000_000)
    except InvalidInputError as error:
        problem = error
        assert problem.message and problem.message_zh


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = st.sampled_from(
    [
        "referenceName",
        "start",
        "end",
        "referenceBases",
        "alternateBases",
        "assemblyId",
        "variantType",
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(FIELDS, JSON, max_size=6),
    st.lists(JSON, max_size=3),
    JSON,
)
def test_any_body_is_a_request_or_an_input_error(
    parameters: dict[str, Any], filters: list[Any], extra: Any
) -> None:
    for body in (
        {"meta": {}, "query": {"requestParameters": parameters, "filters": filters}},
        {"meta": extra, "query": extra},
        extra,
    ):
        try:
            request = parse_body(body)
            criteria(request.query.filters)
            variant_query(request.query.requestParameters, max_range=1_000_000)
        except InvalidInputError as error:
            problem = error
            assert problem.message and problem.message_zh


@settings(max_examples=300, deadline=None)
@given(
    st.integers(1_000, 40_000_000),
    BASES,
    BASES,
    st.text(alphabet="ACGT", max_size=4),
    st.text(alphabet="ACGT", max_size=4),
)
def test_padded_and_lower_case_forms_normalise_to_the_same_variant(
    pos: int, ref: str, alt: str, before: str, after: str
) -> None:
    assume(ref != alt)
    (_, plain), *_ = normalize("22", pos, ref, [alt])
    # in a repeat (A>AA after an A) padding moves the variant: left alignment needs the
    # reference genome, which is not done (normalize.py); such forms are not compared
    assume(plain.ref[-1] != plain.alt[-1])
    written = VariantParameters(
        referenceName="chr22",
        start=[pos - len(before) - 1],
        referenceBases=(before + ref + after).lower(),
        alternateBases=before + alt + after,
    )
    query = variant_query(written, max_range=1_000_000)
    assert query is not None and query.exact() == plain
    assert query.matches(plain)


VARIANTS = st.builds(
    lambda pos, ref, alt: Variant("22", pos, ref, alt),
    st.integers(100, 300),
    BASES,
    BASES,
)


@settings(max_examples=300, deadline=None)
@given(VARIANTS, st.integers(90, 310), st.integers(1, 40))
def test_range_matching_is_overlap(variant: Variant, start: int, width: int) -> None:
    query = variant_query(
        VariantParameters(referenceName="22", start=[start], end=[start + width]), max_range=10**6
    )
    assert query is not None
    covered = set(range(variant.pos, variant.end + 1))  # 1-based reference bases of the variant
    asked = set(range(start + 1, start + width + 1))  # Beacon's 0-based, half-open range
    assert query.matches(variant) is bool(covered & asked)


@settings(max_examples=300, deadline=None)
@given(VARIANTS, st.integers(90, 310), st.integers(0, 20), st.integers(0, 40), st.integers(0, 20))
def test_bracket_matching_bounds_both_ends(
    variant: Variant, low: int, start_width: int, gap: int, end_width: int
) -> None:
    starts = [low, low + start_width]
    ends = [low + start_width + gap + 1, low + start_width + gap + 1 + end_width]
    query = variant_query(
        VariantParameters(referenceName="22", start=starts, end=ends), max_range=10**6
    )
    assert query is not None
    begin, finish = variant.pos - 1, variant.end  # Beacon's 0-based start and exclusive end
    inside = starts[0] <= begin <= starts[1] and ends[0] <= finish <= ends[1]
    assert query.matches(variant) is inside


@pytest.mark.parametrize(
    ("name", "canonical"),
    [
        ("chr22", "22"),
        ("22", "22"),
        ("NC_000022.11", "22"),
        ("chrX", "X"),
        ("x", "X"),
        ("chrM", "MT"),
        ("NC_000023.11", "X"),
    ],
)
def test_chromosome_names(name: str, canonical: str) -> None:
    query = variant_query(
        VariantParameters(referenceName=name, start=[100], alternateBases="A"), max_range=10
    )
    assert query is not None and query.chrom == canonical
