"""JSON and YAML from clients, parsed only once their nesting is known to be within bounds.

Python's `json` and PyYAML's composer recurse once per level of nesting: a document of a few
kilobytes nested a thousand deep ends in RecursionError, wherever it is parsed (a request body,
a header, a file of a submission), and whatever walks the parsed value afterwards (validation,
rendering) recurses as deep again. Every document a client sends is therefore read through this
module: JSON is scanned for its depth without recursion before `json.loads` sees it, and YAML
is composed by a loader that counts its depth (and refuses anchors and aliases, so that a small
document cannot expand into a huge one).

Depth counts nested arrays and objects (YAML sequences and mappings): `1` is 0 deep, `[1]`
and `{"a": 1}` are 1 deep, `[[1]]` is 2 deep. `MAX_NESTING` is far beyond what any document of
the node's formats needs (a phenopacket nests about 20 deep).
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from genecommons.errors import NestingTooDeepError

MAX_NESTING = 64

# Per match: a run of anything but brackets (JSON strings taken whole, so that brackets inside
# them do not count), then one structural bracket, or the end of the text. Possessive
# quantifiers and a string that may run to the end (unterminated: json rejects it later) keep
# every match attempt successful, so the scan is linear in the length of the text whatever it
# holds.
_STRUCTURE = re.compile(
    r'[^"\[\]{}]*+(?:"[^"\\]*+(?:\\.[^"\\]*+)*+(?:"|\\?\Z)[^"\[\]{}]*+)*+([\[\]{}]|\Z)',
    re.DOTALL,
)


def json_text(data: str | bytes | bytearray) -> str:
    """`data` as text, decoded as `json.loads` decodes bytes (UTF-8, -16 or -32, by its first
    bytes). Raises UnicodeDecodeError (a ValueError) for bytes that are not such text."""
    if isinstance(data, str):
        return data
    return bytes(data).decode(json.detect_encoding(data), "surrogatepass")


def json_nesting_offset(text: str, *, limit: int = MAX_NESTING) -> int | None:
    """Where (the character offset of the bracket) the JSON text first nests deeper than
    `limit`, or None if it never does. Text that is not JSON is scanned all the same: what it
    says of nesting is right for the part of it that is valid JSON."""
    if text.count("[") + text.count("{") <= limit:
        return None  # too few brackets to nest deeper, wherever they are (most documents)
    depth = 0
    for match in _STRUCTURE.finditer(text):
        bracket = match.group(1)
        if bracket in ("[", "{"):
            depth += 1
            if depth > limit:
                return match.start(1)
        elif bracket:
            depth = max(depth - 1, 0)
    return None


def check_json_nesting(
    data: str | bytes | bytearray, *, limit: int = MAX_NESTING, place: str = "The document"
) -> None:
    """Raise NestingTooDeepError (naming `place`) if the JSON `data` nests arrays and objects
    deeper than `limit`. Raises UnicodeDecodeError for bytes that are not JSON text."""
    offset = json_nesting_offset(json_text(data), limit=limit)
    if offset is not None:
        raise _too_deep(place, limit=limit, where=f"character {offset + 1}")


def loads_json(
    data: str | bytes | bytearray,
    *,
    limit: int = MAX_NESTING,
    place: str = "The document",
    **options: Any,
) -> Any:
    """`json.loads(data, **options)` for a document from a client: NestingTooDeepError if it
    nests deeper than `limit`, otherwise whatever `json.loads` returns or raises (ValueError
    for text that is not JSON)."""
    text = json_text(data)
    offset = json_nesting_offset(text, limit=limit)
    if offset is not None:
        raise _too_deep(place, limit=limit, where=f"character {offset + 1}")
    return json.loads(text, **options)


def _too_deep(place: str, *, limit: int, where: str) -> NestingTooDeepError:
    return NestingTooDeepError(
        f"{place} nests arrays and objects more than {limit} levels deep (at {where}); no "
        "document of GeneCommons needs that many: flatten it.",
        message_zh=f"{place} 中数组与对象的嵌套超过 {limit} 层（位于 {where}）；GeneCommons 的任何文档"
        "都不需要这么深的嵌套，请将其展平。",
        details={"place": place, "where": where, "max_nesting": limit},
    )


class BoundedYamlLoader(yaml.SafeLoader):
    """A safe YAML loader for documents from clients: no tags beyond the safe ones, no anchors
    or aliases (no 'billion laughs'), and no nesting deeper than MAX_NESTING (raises
    NestingTooDeepError, whose details name the line)."""

    nesting_limit = MAX_NESTING
    place = "The document"

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise yaml.composer.ComposerError(
                None, None, "YAML aliases are not allowed", event.start_mark
            )
        if not self.check_event(yaml.SequenceStartEvent, yaml.MappingStartEvent):
            return super().compose_node(parent, index)
        self._depth += 1
        try:
            if self._depth > self.nesting_limit:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise _too_deep(
                    self.place,
                    limit=self.nesting_limit,
                    where=f"line {mark.line + 1}, column {mark.column + 1}",
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def load_yaml(text: str, *, place: str = "The document") -> Any:
    """The YAML document `text` from a client, read with BoundedYamlLoader. Raises
    yaml.YAMLError for text that is not YAML (or uses aliases) and NestingTooDeepError."""
    loader = BoundedYamlLoader(text)
    loader.place = place
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()
