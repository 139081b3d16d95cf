"""The JSON text bulk writes store: what the json module would write, read back the same."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from genecommons.catalog.bulk import _encoded, _json_text

_TEXT = st.text(st.characters(codec="utf-8"), max_size=20)
_SCALARS = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | _TEXT
_FLOATS = st.floats(allow_nan=False, allow_infinity=False)


def _documents(scalars: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
        max_leaves=12,
    )


def _reference(document: Any) -> str:
    """The slow, obvious reference: the json module with the options the column's text had."""
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))


@given(_documents(_SCALARS))
def test_json_text_is_the_json_modules_text(document: Any) -> None:
    assert _json_text(document) == _reference(document)
    assert str(_encoded(document)) == _reference(document)


@given(_documents(_SCALARS | _FLOATS))
def test_json_text_reads_back_as_the_document(document: Any) -> None:
    # floats may be spelt otherwise (1e-07 or 1e-7): the same number either way
    assert json.loads(_json_text(document)) == document
    assert json.loads(_json_text(document)) == json.loads(_reference(document))


def test_an_encoded_document_is_written_as_encoded() -> None:
    encoded = _encoded({"alias": "I1", "name_zh": "国家基因组中心"})
    assert _json_text(encoded) == '{"alias":"I1","name_zh":"国家基因组中心"}'
    assert type(_json_text(encoded)) is str
