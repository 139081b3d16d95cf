"""The early-warning rules as versioned data: a rule set, read and checked, and the packaged one.

A rule set (`alert_rules/*.json`, or the file `GENECOMMONS_ALERT_RULES_FILE` names) gives each
rule its kind, severity, event tags and thresholds; `alerts.EarlyWarning` evaluates them. Pure:
no I/O except reading the rule set's file.
"""

from __future__ import annotations

import functools
import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any

from genecommons.errors import InvalidInputError

RULES_PACKAGE = "genecommons.audit"
RULES_DIRECTORY = "alert_rules"
DEFAULT_RULES = "early-warning-2026.json"


class RuleKind(StrEnum):
    """What a rule watches for."""

    GRANT_VOLUME = "grant_volume"
    AFTER_GRANT_END = "after_grant_end"
    UNEXPECTED_NETWORK = "unexpected_network"
    EVENT = "event"
    REPEATED = "repeated"
    MANY_ACCOUNTS = "many_accounts"


SEVERITIES = ("low", "medium", "high")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class AlertRule:
    """One rule and its thresholds."""

    id: str
    kind: RuleKind
    severity: str
    tags: frozenset[str]
    title: str
    title_zh: str
    window_seconds: int = 3600
    threshold: int = 0
    keys: tuple[str, ...] = ("actor",)
    ceiling_events: int | None = None
    ceiling_bytes: int | None = None
    history_factor: float | None = None
    history_windows: int = 14
    history_minimum: int = 3
    minimum_events: int = 1
    learn_first: int = 1
    networks: Mapping[str, tuple[Network, ...]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AlertRuleSet:
    """A versioned set of rules."""

    id: str
    version: str
    rules: tuple[AlertRule, ...]

    @property
    def name(self) -> str:
        """id@version, as alerts record it."""
        return f"{self.id}@{self.version}"


def _bad(source: str, place: str, problem: str, problem_zh: str) -> InvalidInputError:
    return InvalidInputError(
        f"{source}: {place}: {problem}. Fix the alert rule file and start the watcher again.",
        message_zh=f"{source}：{place}：{problem_zh}。请修正预警规则文件后重新启动监视。",
        details={"file": source, "place": place},
    )


def _positive(value: Any, *, source: str, place: str, allow_none: bool = False) -> Any:
    if value is None and allow_none:
        return None
    if type(value) is not int or value <= 0:
        raise _bad(source, place, f"must be a positive integer, not {value!r}", "须为正整数")
    return value


def parse_rule_set(document: Any, *, source: str) -> AlertRuleSet:
    """Read a rule set document; `InvalidInputError` names the place of any mistake."""
    if not isinstance(document, dict):
        raise _bad(source, "(top)", "must be a JSON object", "须为 JSON 对象")
    for name in ("id", "version"):
        if not isinstance(document.get(name), str) or not document[name]:
            raise _bad(source, name, "must be a non-empty string", "须为非空字符串")
    items = document.get("rules")
    if not isinstance(items, list) or not items:
        raise _bad(source, "rules", "must be a non-empty list", "须为非空列表")
    rules: list[AlertRule] = []
    for number, item in enumerate(items):
        place = f"rules[{number}]"
        if not isinstance(item, dict):
            raise _bad(source, place, "must be an object", "须为对象")
        rules.append(_parse_rule(item, source=source, place=place))
    ids = [rule.id for rule in rules]
    if len(set(ids)) != len(ids):
        raise _bad(source, "rules", "rule ids must be unique", "规则 id 不得重复")
    return AlertRuleSet(id=document["id"], version=document["version"], rules=tuple(rules))


_KNOWN = {
    "id",
    "kind",
    "severity",
    "tags",
    "title",
    "window_seconds",
    "threshold",
    "keys",
    "ceiling_events",
    "ceiling_bytes",
    "history_factor",
    "history_windows",
    "history_minimum",
    "minimum_events",
    "learn_first",
    "institution_networks",
    "notes",
}


def _parse_rule(item: dict[str, Any], *, source: str, place: str) -> AlertRule:
    unknown = sorted(set(item) - _KNOWN)
    if unknown:
        raise _bad(source, place, f"unknown fields {unknown}", f"未知字段 {unknown}")
    try:
        kind = RuleKind(str(item.get("kind")))
    except ValueError:
        raise _bad(
            source,
            f"{place}.kind",
            f"must be one of {[k.value for k in RuleKind]}",
            f"须为 {[k.value for k in RuleKind]} 之一",
        ) from None
    if not isinstance(item.get("id"), str) or not item["id"]:
        raise _bad(source, f"{place}.id", "must be a non-empty string", "须为非空字符串")
    if item.get("severity") not in SEVERITIES:
        raise _bad(source, f"{place}.severity", f"must be one of {SEVERITIES}", "取值无效")
    tags = item.get("tags")
    if not isinstance(tags, list) or not tags or not all(isinstance(t, str) for t in tags):
        raise _bad(source, f"{place}.tags", "must be a non-empty list of tags", "须为非空标签列表")
    title = item.get("title")
    if not isinstance(title, dict) or not all(isinstance(title.get(k), str) for k in ("en", "zh")):
        raise _bad(source, f"{place}.title", "needs en and zh strings", "须含 en 与 zh 字符串")
    keys = item.get("keys", ["actor"])
    if not isinstance(keys, list) or not keys or not all(isinstance(k, str) for k in keys):
        raise _bad(source, f"{place}.keys", "must be a list of field names", "须为字段名列表")
    for key in keys:
        for part in key.split("|"):
            if part not in ("actor", "subject") and not part.startswith("details."):
                raise _bad(
                    source,
                    f"{place}.keys",
                    f"{part!r} is not actor, subject or details.NAME",
                    f"{part!r} 不是 actor、subject 或 details.NAME",
                )
    factor = item.get("history_factor")
    if factor is not None and (not isinstance(factor, int | float) or factor <= 1):
        raise _bad(source, f"{place}.history_factor", "must be a number above 1", "须为大于 1 的数")
    networks: dict[str, tuple[Network, ...]] = {}
    raw = item.get("institution_networks", {})
    if not isinstance(raw, dict):
        raise _bad(source, f"{place}.institution_networks", "must be an object", "须为对象")
    for institution, cidrs in raw.items():
        try:
            networks[institution] = tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)
        except (TypeError, ValueError) as error:
            raise _bad(
                source,
                f"{place}.institution_networks.{institution}",
                f"not a list of networks (CIDR): {error}",
                "须为网络（CIDR）列表",
            ) from None
    threshold = item.get("threshold", 0)
    if kind in (RuleKind.REPEATED, RuleKind.MANY_ACCOUNTS):
        _positive(threshold, source=source, place=f"{place}.threshold")
    return AlertRule(
        id=item["id"],
        kind=kind,
        severity=item["severity"],
        tags=frozenset(tags),
        title=title["en"],
        title_zh=title["zh"],
        window_seconds=_positive(
            item.get("window_seconds", 3600), source=source, place=f"{place}.window_seconds"
        ),
        threshold=threshold,
        keys=tuple(keys),
        ceiling_events=_positive(
            item.get("ceiling_events"),
            source=source,
            place=f"{place}.ceiling_events",
            allow_none=True,
        ),
        ceiling_bytes=_positive(
            item.get("ceiling_bytes"),
            source=source,
            place=f"{place}.ceiling_bytes",
            allow_none=True,
        ),
        history_factor=float(factor) if factor is not None else None,
        history_windows=_positive(
            item.get("history_windows", 14), source=source, place=f"{place}.history_windows"
        ),
        history_minimum=_positive(
            item.get("history_minimum", 3), source=source, place=f"{place}.history_minimum"
        ),
        minimum_events=_positive(
            item.get("minimum_events", 1), source=source, place=f"{place}.minimum_events"
        ),
        learn_first=_positive(
            item.get("learn_first", 1), source=source, place=f"{place}.learn_first"
        ),
        networks=networks,
    )


@functools.cache
def default_rule_set() -> AlertRuleSet:
    """The rule set shipped in the package; read once."""
    item = resources.files(RULES_PACKAGE).joinpath(RULES_DIRECTORY).joinpath(DEFAULT_RULES)
    return parse_rule_set(json.loads(item.read_text(encoding="utf-8")), source=DEFAULT_RULES)


def load_rule_set(path: Path | None) -> AlertRuleSet:
    """The rule set in `path`, or the packaged one when None."""
    if path is None:
        return default_rule_set()
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise _bad(
            str(path), "(file)", f"cannot be read as JSON: {error}", "无法读取为 JSON"
        ) from None
    return parse_rule_set(document, source=str(path))
