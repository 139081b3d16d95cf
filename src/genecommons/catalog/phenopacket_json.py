"""The JSON side of reading a phenopacket: paths, values as shown, and where the schema refused it.

A problem is located by its JSON path (``phenotypicFeatures[3].type.id``, `ROOT` for the whole
document); `locate` narrows protobuf's verdict on a document down to the innermost parts it
refuses. Pure.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterator
from typing import Any

from google.protobuf import json_format, message_factory

ROOT = "$"  # the JSON path of the whole document
_MAX_SCHEMA_PROBLEMS = 50
_VALUE_CHARS = 200

# Errors that protobuf's JSON parser raises for input it refuses.
PARSE_ERRORS = (
    json_format.ParseError,
    TypeError,
    ValueError,
    AttributeError,
    KeyError,
    IndexError,
    RecursionError,
)


def short(value: Any) -> str:
    """`value` as text for a Problem, cut to a readable length."""
    if isinstance(value, str):
        text = value
    else:
        try:
            text = json.dumps(value, ensure_ascii=False, sort_keys=True)
        except (TypeError, ValueError, RecursionError):
            text = repr(value)
    return text if len(text) <= _VALUE_CHARS else text[: _VALUE_CHARS - 1] + "…"


_PLAIN_KEY = re.compile(r"[A-Za-z_@][A-Za-z0-9_@]*")


def join(path: str, key: str) -> str:
    """The JSON path of `key` inside `path`: `subject.id`, or `subject["odd key"]`."""
    if _PLAIN_KEY.fullmatch(key):
        return key if path in ("", ROOT) else f"{path}.{key}"
    return f"{path or ROOT}[{json.dumps(key, ensure_ascii=False)}]"


class NotJsonError(ValueError):
    """NaN or Infinity in JSON text (Python's reader accepts them; JSON does not)."""


def refuse_constant(name: str) -> Any:
    """Refuse NaN and Infinity, which Python's JSON reader would accept."""
    raise NotJsonError(name)


def is_map(descriptor: Any) -> bool:
    """Whether a protobuf field is a map (a JSON object of keys to values)."""
    message_type = descriptor.message_type
    return message_type is not None and bool(message_type.GetOptions().map_entry)


def objects(data: Any, path: str) -> Iterator[tuple[str, Any]]:
    """Every JSON object in `data` with its path."""
    if isinstance(data, dict):
        yield path, data
        for key, value in data.items():
            yield from objects(value, join(path, key))
    elif isinstance(data, list):
        for index, item in enumerate(data):
            yield from objects(item, f"{path}[{index}]")


def json_kind(value: Any) -> str:
    """What kind of JSON value `value` is, in English ("an array", "null")."""
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "null"


def json_kind_zh(value: Any) -> str:
    """What kind of JSON value `value` is, in Chinese."""
    return {
        "an array": "数组",
        "a string": "字符串",
        "a boolean": "布尔值",
        "a number": "数字",
        "null": " null",
    }[json_kind(value)]


def _refusal(data: Any, cls: Any) -> str | None:
    """Why protobuf refuses `data` as a `cls` message, or None if it accepts it."""
    try:
        json_format.ParseDict(data, cls())
    except PARSE_ERRORS as error:
        return str(error) or type(error).__name__
    return None


def locate(data: Any, cls: Any, path: str, found: list[tuple[str, str, Any, str | None]]) -> None:
    """Append (path, reason, value, suggestion) for the innermost parts of `data` that protobuf
    refuses as a `cls` message. Protobuf itself is the judge at every step; this only narrows
    down where its verdict applies."""
    if len(found) >= _MAX_SCHEMA_PROBLEMS:
        return
    reason = _refusal(data, cls)
    if reason is None:
        return
    descriptor = cls.DESCRIPTOR
    if not isinstance(data, dict) or descriptor.full_name.startswith("google.protobuf."):
        found.append((path, reason, data, None))
        return
    before = len(found)
    fields = {f.name: f for f in descriptor.fields} | {f.json_name: f for f in descriptor.fields}
    for key, value in data.items():
        if len(found) >= _MAX_SCHEMA_PROBLEMS:
            return
        where = join(path, key)
        spec = fields.get(key)
        if spec is None:
            names = [f.json_name for f in descriptor.fields]
            close = difflib.get_close_matches(key, names, n=1)
            found.append(
                (
                    where,
                    f"{descriptor.name} has no field {key!r}; its fields are {', '.join(names)}.",
                    key,
                    f"{close[0]}" if close else None,
                )
            )
            continue
        if spec.message_type is None or is_map(spec) or value is None:
            leaf = _refusal({key: value}, cls)
            if leaf is not None:
                found.append((where, leaf, value, None))
            continue
        sub = message_factory.GetMessageClass(spec.message_type)
        if spec.is_repeated and isinstance(value, list):
            for index, item in enumerate(value):
                locate(item, sub, f"{where}[{index}]", found)
        elif spec.is_repeated:
            found.append((where, f"{key} must be a JSON array.", value, None))
        else:
            locate(value, sub, where, found)
    if len(found) == before:
        found.append((path, reason, data, None))
