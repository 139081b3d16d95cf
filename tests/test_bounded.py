"""The bounded parsers of documents from clients (genecommons/bounded.py): the depth they find is
the depth of the parsed value, whatever the strings hold, and no nesting makes them recurse."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from genecommons import bounded
from genecommons.errors import InvalidInputError, NestingTooDeepError

# strings full of what a scanner could take for structure: brackets, quotes, backslashes
TRICKY_TEXT = st.text(alphabet=st.sampled_from('[]{}"\\/:,ab é\n\t\x00\u2028'), max_size=12)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TRICKY_TEXT
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TRICKY_TEXT, inner, max_size=4),
    max_leaves=40,
)


def depth(value: Any) -> int:
    """The nesting depth of a parsed value, the slow and obvious way."""
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    return 0


@settings(max_examples=400)
@given(VALUES, st.booleans(), st.sampled_from([None, 0, 2]))
def test_the_scan_finds_the_depth_of_the_value(value: Any, ascii_only: bool, indent: Any) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only, indent=indent)
    deep = depth(value)
    assert bounded.json_nesting_offset(text, limit=deep) is None
    if deep:
        offset = bounded.json_nesting_offset(text, limit=deep - 1)
        assert offset is not None and text[offset] in "[{"
        with pytest.raises(NestingTooDeepError):
            bounded.loads_json(text, limit=deep - 1)
    assert bounded.loads_json(text, limit=deep) == json.loads(text)


@settings(max_examples=200)
@given(VALUES, st.sampled_from(["utf-8", "utf-16", "utf-16-be", "utf-32-le"]))
def test_bytes_are_read_as_json_reads_them(value: Any, encoding: str) -> None:
    data = json.dumps(value, ensure_ascii=False).encode(encoding)
    deep = depth(value)
    bounded.check_json_nesting(data, limit=deep)
    assert bounded.loads_json(data, limit=deep) == json.loads(data)
    if deep:
        with pytest.raises(NestingTooDeepError):
            bounded.check_json_nesting(data, limit=deep - 1)


@settings(max_examples=400)
@given(st.text(alphabet=st.sampled_from('[]{}"\\:,1 a'), max_size=60))
def test_any_text_is_scanned_and_agrees_with_json_where_it_is_json(text: str) -> None:
    offset = bounded.json_nesting_offset(text, limit=2)
    try:
        value = json.loads(text)
    except ValueError:
        return  # not JSON: the scan ends, whatever it says (json refuses the text)
    assert (offset is None) == (depth(value) <= 2)


@pytest.mark.parametrize(
    "text",
    [
        "[" * 100_000,
        "[" * 100_000 + "]" * 100_000,
        '{"a":' * 50_000 + "1" + "}" * 50_000,
        '[{"x": [' * 30_000,
        '["' + '\\"[' * 50_000 + '"' + ",[" * 100,  # brackets inside a string do not count
    ],
)
def test_nesting_of_any_depth_is_refused_without_recursion(text: str) -> None:
    with pytest.raises(NestingTooDeepError) as refused:
        bounded.loads_json(text, place="The body")
    error = refused.value
    assert isinstance(error, InvalidInputError) and error.http_status == 422
    assert error.details["max_nesting"] == bounded.MAX_NESTING
    assert "The body" in error.message and error.message_zh != error.message


@pytest.mark.parametrize(
    "text",
    [
        '"' + "\\" * 99_999,  # an unterminated string of backslashes
        '"' + '\\"' * 50_000,  # of escaped quotes
        "[" + "a" * 200_000,  # a long tail without brackets
        "]" * 1000 + "[" * 10,  # more closing than opening brackets
    ],
)
def test_malformed_text_is_scanned_to_its_end(text: str) -> None:
    assert bounded.json_nesting_offset(text) is None
    with pytest.raises(json.JSONDecodeError):
        bounded.loads_json(text)


def test_bytes_that_are_not_text_are_a_value_error() -> None:
    with pytest.raises(UnicodeDecodeError):
        bounded.loads_json(b"[\xff\xfe\xfd]")


def test_json_options_reach_the_parser() -> None:
    pairs: list[list[tuple[str, Any]]] = []

    def hook(items: list[tuple[str, Any]]) -> dict[str, Any]:
        pairs.append(items)
        return dict(items)

    assert bounded.loads_json('{"a": 1, "a": 2}', object_pairs_hook=hook) == {"a": 2}
    assert pairs == [[("a", 1), ("a", 2)]]


# -- YAML -------------------------------------------------------------------------------------

YAML_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**6), max_value=10**6)
    | st.text(alphabet=st.sampled_from("[]{}\"'\\:,-#&*!|>ab é"), max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(alphabet="abc", min_size=1, max_size=3), inner, max_size=4)
    ),
    max_leaves=30,
)


@settings(max_examples=300)
@given(YAML_VALUES, st.sampled_from([None, True, False]))
def test_yaml_nests_as_deep_as_its_value(value: Any, flow: bool | None) -> None:
    text = yaml.safe_dump(value, default_flow_style=flow, allow_unicode=True)
    deep = depth(value)

    class Limited(bounded.BoundedYamlLoader):
        nesting_limit = deep

    assert yaml.load(text, Loader=Limited) == value  # noqa: S506 - a SafeLoader subclass
    assert bounded.load_yaml(text) == yaml.safe_load(text)
    if deep:

        class Tighter(bounded.BoundedYamlLoader):
            nesting_limit = deep - 1

        with pytest.raises(NestingTooDeepError):
            yaml.load(text, Loader=Tighter)  # noqa: S506 - a SafeLoader subclass


@pytest.mark.parametrize(
    "text",
    [
        "[" * 5000 + "]" * 5000,
        "{a: " * 5000 + "1" + "}" * 5000,
        "".join(" " * i + "- \n" for i in range(3000)),
        "".join(" " * i + "k:\n" for i in range(3000)) + " " * 3000 + "k: 1\n",
    ],
)
def test_deep_yaml_is_refused_with_its_line(text: str) -> None:
    with pytest.raises(NestingTooDeepError) as refused:
        bounded.load_yaml(text, place="submission.yaml")
    assert refused.value.details["where"].startswith("line ")
    assert "submission.yaml" in refused.value.message


def test_yaml_aliases_and_unsafe_tags_are_refused() -> None:
    with pytest.raises(yaml.YAMLError):
        bounded.load_yaml("a: &x [1, 2]\nb: *x\n")
    with pytest.raises(yaml.YAMLError):
        bounded.load_yaml("!!python/object/apply:os.system ['true']")
