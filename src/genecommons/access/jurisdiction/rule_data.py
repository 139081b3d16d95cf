"""The jurisdiction rules as versioned data: a rule set, read and checked, and the one in force.

Each rule set (`rule_sets/*.json`, one per file) gives the dates it is in force, the legal basis
of every rule in English and Chinese, the security review threshold and the codes that count as
mainland China; `rules.evaluate` applies the one in force on the day. Pure: no I/O except reading
the packaged rule sets once.
"""

from __future__ import annotations

import functools
import itertools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from importlib import resources
from typing import Any

from genecommons.access.jurisdiction.countries import country_code
from genecommons.errors import InvalidInputError

__all__ = [
    "RULES_DIRECTORY",
    "RULES_PACKAGE",
    "Bilingual",
    "RuleDefinition",
    "RuleId",
    "RuleSet",
    "check_sequence",
    "load_rule_sets",
    "parse_rule_set",
    "rules_in_force",
]

RULES_PACKAGE = "genecommons.access.jurisdiction"
RULES_DIRECTORY = "rule_sets"


class RuleId(StrEnum):
    """The rules `evaluate` knows; every rule set must give the legal basis of each."""

    COUNTRY_ALLOW = "country-allow"
    COUNTRY_DENY = "country-deny"
    HGR_CHINESE_PARTY = "hgr-chinese-party"
    HGR_FOREIGN_PARTY = "hgr-foreign-party"
    HGR_NOT_APPLICABLE = "hgr-not-applicable"
    CONSENT_NO_ABROAD = "consent-no-abroad"
    HGR_FILING_REQUIRED = "hgr-filing-required"
    HGR_BACKUP_COPY = "hgr-backup-copy"
    HGR_SECURITY_REVIEW = "hgr-security-review"


@dataclass(frozen=True, slots=True)
class Bilingual:
    """A text in English and Chinese."""

    en: str
    zh: str


@dataclass(frozen=True, slots=True)
class RuleDefinition:
    """One rule of a rule set: its id, title and legal basis as recorded in the data."""

    id: str
    title: Bilingual
    basis: Bilingual


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleSet:
    """A version of the jurisdiction rules, in force from `effective_from` to `effective_until`
    (both inclusive; None: until replaced)."""

    id: str
    version: str
    effective_from: date
    effective_until: date | None
    title: Bilingual
    authority: Bilingual  # the department filings and security reviews are made with
    sources: tuple[Bilingual, ...]
    notes: tuple[Bilingual, ...]
    mainland: frozenset[str]  # ISO codes that are mainland China ("CN")
    outside_mainland: tuple[tuple[str, Bilingual], ...]  # codes to name as outside: HK, MO, TW
    foreign_control_share_percent: int
    security_review_threshold: int  # review when MORE than this many individuals
    rules: tuple[RuleDefinition, ...]

    def in_force(self, on: date) -> bool:
        """Whether this rule set is in force on the day `on`."""
        return self.effective_from <= on and (
            self.effective_until is None or on <= self.effective_until
        )

    def definition(self, rule: str) -> RuleDefinition:
        """The recorded title and legal basis of `rule`."""
        for definition in self.rules:
            if definition.id == rule:
                return definition
        raise KeyError(rule)

    def region_name(self, code: str) -> Bilingual | None:
        """The name of a region recorded as outside mainland China (HK, MO, TW), else None."""
        return dict(self.outside_mainland).get(code)


def _problem(source: str, where: str, en: str, zh: str) -> InvalidInputError:
    return InvalidInputError(
        f"rule set {source}: {where}: {en}",
        message_zh=f"规则集 {source}：{where}：{zh}",
        details={"source": source, "field": where},
    )


def _keys(source: str, where: str, value: Any, required: Iterable[str]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _problem(source, where, "must be an object", "必须是对象")
    names = set(required)
    missing, unknown = sorted(names - set(value)), sorted(set(value) - names)
    if missing:
        raise _problem(source, where, f"missing {', '.join(missing)}", f"缺少 {'、'.join(missing)}")
    if unknown:
        raise _problem(
            source, where, f"unknown field {', '.join(unknown)}", f"未知字段 {'、'.join(unknown)}"
        )
    return value


def _text(source: str, where: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _problem(source, where, "must be non-empty text", "必须是非空文本")
    return value.strip()


def _bilingual(source: str, where: str, value: Any) -> Bilingual:
    data = _keys(source, where, value, ("en", "zh"))
    return Bilingual(
        en=_text(source, f"{where}.en", data["en"]), zh=_text(source, f"{where}.zh", data["zh"])
    )


def _date(source: str, where: str, value: Any) -> date:
    try:
        return date.fromisoformat(_text(source, where, value))
    except ValueError:
        raise _problem(
            source,
            where,
            f"{value!r} is not a date (YYYY-MM-DD)",
            f"{value!r} 不是日期（YYYY-MM-DD）",
        ) from None


def _int(source: str, where: str, value: Any, *, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _problem(
            source,
            where,
            f"must be a whole number from {low} to {high}",
            f"必须是 {low} 到 {high} 的整数",
        )
    return value


def _code(source: str, where: str, value: Any) -> str:
    try:
        return country_code(value if isinstance(value, str) else "", field_name=where)
    except InvalidInputError:
        raise _problem(
            source,
            where,
            f"{value!r} is not an ISO 3166-1 alpha-2 code",
            f"{value!r} 不是 ISO 3166-1 两字母代码",
        ) from None


_RULE_SET_FIELDS = (
    "id",
    "version",
    "effective_from",
    "effective_until",
    "title",
    "authority",
    "sources",
    "notes",
    "mainland",
    "outside_mainland",
    "foreign_control_share_percent",
    "security_review_threshold",
    "rules",
)


def parse_rule_set(data: Mapping[str, Any], *, source: str = "<data>") -> RuleSet:
    """Build and check a RuleSet from its JSON form (see `rule_sets/hgr-2024.json`).

    Every field is required; every rule `evaluate` knows must have a title and basis; mainland
    codes must be ISO codes and disjoint from the codes named as outside mainland China.
    """
    d = _keys(source, "(top)", data, _RULE_SET_FIELDS)
    start = _date(source, "effective_from", d["effective_from"])
    until = (
        None
        if d["effective_until"] is None
        else _date(source, "effective_until", d["effective_until"])
    )
    if until is not None and until < start:
        raise _problem(source, "effective_until", "is before effective_from", "早于 effective_from")
    for name in ("sources", "notes", "mainland"):
        if not isinstance(d[name], list):
            raise _problem(source, name, "must be a list", "必须是列表")
    mainland = frozenset(_code(source, f"mainland[{i}]", c) for i, c in enumerate(d["mainland"]))
    if not mainland:
        raise _problem(source, "mainland", "must name at least one code", "至少须列出一个代码")
    outside_raw = d["outside_mainland"]
    if not isinstance(outside_raw, Mapping):
        raise _problem(source, "outside_mainland", "must be an object", "必须是对象")
    outside = tuple(
        (_code(source, f"outside_mainland.{k}", k), _bilingual(source, f"outside_mainland.{k}", v))
        for k, v in sorted(outside_raw.items())
    )
    if mainland & {code for code, _ in outside}:
        raise _problem(
            source,
            "outside_mainland",
            "names a code that is also in mainland",
            "含有同时列为境内的代码",
        )
    rules_raw = d["rules"]
    if not isinstance(rules_raw, Mapping):
        raise _problem(source, "rules", "must be an object", "必须是对象")
    known = {rule.value for rule in RuleId}
    missing, unknown = sorted(known - set(rules_raw)), sorted(set(rules_raw) - known)
    if missing or unknown:
        raise _problem(
            source,
            "rules",
            f"must define exactly the known rules; missing {missing}, unknown {unknown}",
            f"须且仅须定义已知规则；缺少 {missing}，未知 {unknown}",
        )
    rules = tuple(
        RuleDefinition(
            id=rule.value,
            title=_bilingual(
                source, f"rules.{rule.value}.title", _rule(source, rules_raw, rule)["title"]
            ),
            basis=_bilingual(
                source, f"rules.{rule.value}.basis", _rule(source, rules_raw, rule)["basis"]
            ),
        )
        for rule in RuleId
    )
    return RuleSet(
        id=_text(source, "id", d["id"]),
        version=_text(source, "version", d["version"]),
        effective_from=start,
        effective_until=until,
        title=_bilingual(source, "title", d["title"]),
        authority=_bilingual(source, "authority", d["authority"]),
        sources=tuple(_bilingual(source, f"sources[{i}]", s) for i, s in enumerate(d["sources"])),
        notes=tuple(_bilingual(source, f"notes[{i}]", n) for i, n in enumerate(d["notes"])),
        mainland=mainland,
        outside_mainland=outside,
        foreign_control_share_percent=_int(
            source,
            "foreign_control_share_percent",
            d["foreign_control_share_percent"],
            low=1,
            high=100,
        ),
        security_review_threshold=_int(
            source, "security_review_threshold", d["security_review_threshold"], low=0, high=10**9
        ),
        rules=rules,
    )


def _rule(source: str, rules: Mapping[str, Any], rule: RuleId) -> Mapping[str, Any]:
    return _keys(source, f"rules.{rule.value}", rules[rule.value], ("title", "basis"))


def check_sequence(rule_sets: Sequence[RuleSet]) -> tuple[RuleSet, ...]:
    """The rule sets sorted by start date, after checking that ids are unique and that no two
    are in force on the same day."""
    ordered = tuple(sorted(rule_sets, key=lambda r: r.effective_from))
    ids = [r.id for r in ordered]
    if len(set(ids)) != len(ids):
        raise InvalidInputError(
            f"rule set ids must be unique: {ids}", message_zh=f"规则集标识必须唯一：{ids}"
        )
    for earlier, later in itertools.pairwise(ordered):
        if earlier.effective_until is None or earlier.effective_until >= later.effective_from:
            raise InvalidInputError(
                f"rule sets {earlier.id} and {later.id} overlap: {earlier.id} must end before "
                f"{later.effective_from.isoformat()}",
                message_zh=f"规则集 {earlier.id} 与 {later.id} 的施行期间重叠：{earlier.id} 须在 "
                f"{later.effective_from.isoformat()} 之前结束",
            )
    return ordered


@functools.cache
def load_rule_sets() -> tuple[RuleSet, ...]:
    """Every rule set shipped in the package (`rule_sets/*.json`), oldest first; read once."""
    folder = resources.files(RULES_PACKAGE).joinpath(RULES_DIRECTORY)
    found: list[RuleSet] = []
    for item in sorted(folder.iterdir(), key=lambda entry: entry.name):
        if item.name.endswith(".json"):
            found.append(
                parse_rule_set(json.loads(item.read_text(encoding="utf-8")), source=item.name)
            )
    return check_sequence(found)


def rules_in_force(*, on: date, rule_sets: Sequence[RuleSet] | None = None) -> RuleSet:
    """The rule set in force on the day `on` (from the packaged ones unless `rule_sets` given).

    Raises InvalidInputError when none is: the platform does not decide for days no rule set
    covers.
    """
    candidates = load_rule_sets() if rule_sets is None else check_sequence(rule_sets)
    for rule_set in candidates:
        if rule_set.in_force(on):
            return rule_set
    first = candidates[0].effective_from.isoformat() if candidates else "-"
    raise InvalidInputError(
        f"no jurisdiction rule set is in force on {on.isoformat()} (the earliest recorded takes "
        f"effect on {first})",
        message_zh=f"{on.isoformat()} 没有施行中的管辖规则集（记录的最早规则集自 {first} 起施行）",
        details={"on": on.isoformat()},
    )
