"""Matching a stated research purpose against a dataset's GA4GH DUO codes.

`match_purpose` says, for one dataset, whether a `ResearchPurpose` is compatible with the
dataset's data use permission and modifiers, incompatible (naming the DUO terms violated), or
needs a Data Access Committee's judgment; it also lists the obligations (`Condition`) the
researcher must accept (PUB, COL, RTN, MOR, TS). Every reason is given in English and Chinese.

`duo_rules.RULES` is the rule table: one entry per non-obsolete DUO permission and modifier, with
the function that evaluates it and its explanation; `duo_models` holds the types. Precedence:
any violated term makes the purpose incompatible; else any term needing judgment makes it need a
DAC; else it is compatible.

The module is pure: no I/O besides the offline vocabularies, no clock (the caller passes `today`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import date
from typing import Any

from genecommons.access.duo_models import (
    Condition,
    MatchContext,
    MatchResult,
    Reason,
    ResearchPurpose,
    RuleStatus,
    TermKind,
    Verdict,
    term_label,
)
from genecommons.access.duo_rules import RULES, RULES_BY_ID
from genecommons.catalog.vocabularies import duo

__all__ = ["match_purpose"]


_DUO_PERMISSION_CLASS = "DUO:0000001"


def _unusable(code: Any) -> Reason | None:
    """A needs-DAC reason if `code` is not a usable DUO permission or modifier, else None."""
    term = duo().lookup(code) if isinstance(code, str) else None
    shown = repr(code)
    if term is None:
        return Reason(
            term=str(code),
            shorthand=None,
            status=RuleStatus.NEEDS_DAC,
            en=f"{shown} is not a DUO term; a DAC must read the consent.",
            zh=f"{shown} 不是 DUO 术语；需由数据访问委员会查阅知情同意书。",
        )
    if term.obsolete:
        hint_en = f"; its replacement is {term.replaced_by}" if term.replaced_by else ""
        hint_zh = f"；其替代术语为 {term.replaced_by}" if term.replaced_by else ""
        return Reason(
            term=term.id,
            shorthand=term.shorthand,
            status=RuleStatus.NEEDS_DAC,
            en=f"{term_label(term.id, term.shorthand)} is obsolete{hint_en}; a DAC must judge.",
            zh=f"{term_label(term.id, term.shorthand)} 已废弃{hint_zh}；需由数据访问委员会判断。",
        )
    if term.id not in RULES_BY_ID:
        return Reason(
            term=term.id,
            shorthand=term.shorthand,
            status=RuleStatus.NEEDS_DAC,
            en=f"{term.id} ({term.label}) is not a data use permission or modifier; a DAC must "
            "judge.",
            zh=f"{term.id}（{term.label}）不是数据使用许可或修饰词；需由数据访问委员会判断。",
        )
    return None


def match_purpose(
    purpose: ResearchPurpose,
    dataset_codes: Sequence[str],
    *,
    dataset_diseases: Sequence[str] = (),
    time_limit: date | None = None,
    geographic_countries: Sequence[str] = (),
    moratorium_until: date | None = None,
    today: date,
) -> MatchResult:
    """Match a research purpose against one dataset's DUO codes.

    `dataset_codes` are DUO ids or shorthands ("DUO:0000042", "GRU"); `dataset_diseases` the
    disease terms of its DS permission; `time_limit` the last day of approved use (TS);
    `geographic_countries` the ISO 3166-1 countries use is limited to (GS); `moratorium_until`
    the first day results may be published (MOR); `today` the date to judge TS and MOR by.

    Unrecognised, obsolete or non-permission/modifier codes need a DAC; so does a dataset without
    a permission, or with several permissions unless every one of them is violated. Never raises
    on malformed codes or disease ids.
    """
    ids: set[str] = set()
    unusable: dict[str, Reason] = {}
    for code in dataset_codes:
        problem = _unusable(code)
        if problem is not None:
            unusable.setdefault(problem.term, problem)
        else:
            term = duo().lookup(code)
            if term is not None:
                ids.add(term.id)
    ctx = MatchContext(
        purpose=purpose,
        codes=frozenset(ids),
        dataset_diseases=tuple(dataset_diseases),
        time_limit=time_limit,
        geographic_countries=tuple(geographic_countries),
        moratorium_until=moratorium_until,
        today=today,
    )
    reasons: list[Reason] = []
    conditions: list[Condition] = []
    for rule in RULES:
        if rule.id not in ids:
            continue
        outcome = rule.evaluate(ctx)
        reasons.append(
            Reason(
                term=rule.id,
                shorthand=rule.shorthand,
                status=outcome.status,
                en=outcome.en,
                zh=outcome.zh,
            )
        )
        conditions.extend(outcome.conditions)

    permissions = [r for r in reasons if RULES_BY_ID[r.term].kind is TermKind.PERMISSION]
    if not permissions:
        reasons.insert(
            0,
            Reason(
                term=_DUO_PERMISSION_CLASS,
                shorthand=None,
                status=RuleStatus.NEEDS_DAC,
                en="The dataset has no data use permission (GRU, HMB, DS, POA or NRES); a DAC "
                "must read the consent.",
                zh="数据集没有数据使用许可（GRU、HMB、DS、POA 或 NRES）；需由数据访问委员会查阅知情同意书。",
            ),
        )
    elif len(permissions) > 1 and any(r.status is not RuleStatus.VIOLATED for r in permissions):
        # DUO expects one permission; when they disagree, which one governs is for the DAC.
        shown = ", ".join(r.label for r in permissions)
        reasons = [
            replace(r, status=RuleStatus.NEEDS_DAC)
            if r in permissions and r.status is RuleStatus.VIOLATED
            else r
            for r in reasons
        ]
        reasons.insert(
            0,
            Reason(
                term=_DUO_PERMISSION_CLASS,
                shorthand=None,
                status=RuleStatus.NEEDS_DAC,
                en=f"The dataset has several data use permissions ({shown}) that disagree about "
                "this purpose; DUO expects one, so a DAC must judge.",
                zh=f"数据集有多个数据使用许可（{shown}），对该目的结论不一；DUO 要求仅一个许可，"
                "需由数据访问委员会判断。",
            ),
        )
    reasons.extend(unusable.values())

    violated = tuple(r.label for r in reasons if r.status is RuleStatus.VIOLATED)
    if violated:
        verdict = Verdict.INCOMPATIBLE
    elif any(r.status is RuleStatus.NEEDS_DAC for r in reasons):
        verdict = Verdict.NEEDS_DAC
    else:
        verdict = Verdict.COMPATIBLE
    return MatchResult(
        verdict=verdict,
        violated=violated,
        conditions=tuple(conditions),
        reasons=tuple(reasons),
    )
