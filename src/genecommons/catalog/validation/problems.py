"""Building the report's problems: one in both languages, and those of a row that failed to parse."""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import ValidationError

from genecommons.catalog.bundle import Row
from genecommons.catalog.report import Problem, Severity


def _p(
    rule: str,
    en: str,
    zh: str,
    row: Row | None = None,
    column: str | None = None,
    value: Any = None,
    suggestion: str | None = None,
    severity: Severity = Severity.ERROR,
) -> Problem:
    return Problem(
        rule=rule,
        message=en,
        message_zh=zh,
        file=row.file if row else None,
        row=row.number if row else None,
        column=column,
        value=None if value is None else str(value)[:200],
        suggestion=suggestion,
        severity=severity,
    )


_PYDANTIC_ZH = {
    "missing": "必填项为空或缺失。",
    "string_pattern_mismatch": "标识符只能包含字母、数字及 . _ : -，且以字母或数字开头，最长 128 个字符。",
    "string_too_long": "文本过长。",
    "string_too_short": "文本不能为空。",
    "int_parsing": "应为整数。",
    "int_from_float": "应为整数。",
    "float_parsing": "应为数字。",
    "bool_parsing": "应为是/否（yes/no）。",
    "date_parsing": "应为日期，格式为 YYYY-MM-DD。",
    "date_from_datetime_parsing": "应为日期，格式为 YYYY-MM-DD。",
    "date_from_datetime_inexact": "应为日期，不应包含时间。",
    "enum": "不是允许的取值之一。",
    "literal_error": "不是允许的取值之一。",
    "greater_than_equal": "数值过小。",
    "less_than_equal": "数值过大。",
    "extra_forbidden": "未知的列。",
    "value_error": "取值无效。",
    "list_type": "应为列表。",
    "string_type": "应为文本。",
}


def _pydantic_problems(error: ValidationError, row: Row, skip: set[str]) -> list[Problem]:
    problems = []
    for item in error.errors():
        column = ".".join(str(part) for part in item["loc"]) or None
        if column in skip:
            continue
        kind = item["type"]
        value = item.get("input")
        if kind == "string_type" and value is None:
            kind = "missing"
        message = "Required value is empty or missing." if kind == "missing" else item["msg"]
        if kind == "string_pattern_mismatch":
            message = (
                "Identifiers may use letters, digits, '.', '_', ':' and '-', start with a "
                "letter or digit and be at most 128 characters long."
            )
        suggestion = None
        if kind == "enum":
            expected = [
                v.strip(" '")
                for v in str(item.get("ctx", {}).get("expected", ""))
                .replace(" or ", ",")
                .split(",")
                if v.strip()
            ]
            close = difflib.get_close_matches(str(value), expected, n=1, cutoff=0.3)
            suggestion = (f"Did you mean {close[0]!r}? Allowed: " if close else "Allowed: ") + (
                ", ".join(expected)
            )
        problems.append(
            _p(
                f"type.{kind}",
                message,
                _PYDANTIC_ZH.get(kind, item["msg"]),
                row,
                column,
                None if kind == "missing" else value,
                suggestion,
            )
        )
    return problems
