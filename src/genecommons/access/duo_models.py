"""The types of DUO matching: a research purpose, the verdict, its reasons and conditions, a rule.

`duo_matching.match_purpose` takes a `ResearchPurpose` and returns a `MatchResult`; the rule table
(`duo_rules.RULES`) is made of `Rule`s whose evaluators see a `MatchContext` and return an
`Evaluation`. Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

__all__ = [
    "Condition",
    "Evaluation",
    "MatchContext",
    "MatchResult",
    "Reason",
    "ResearchPurpose",
    "Rule",
    "RuleStatus",
    "TermKind",
    "Verdict",
    "term_label",
]


class Verdict(StrEnum):
    """The outcome of matching a purpose against one dataset."""

    COMPATIBLE = "compatible"
    INCOMPATIBLE = "incompatible"
    NEEDS_DAC = "needs_dac"


class RuleStatus(StrEnum):
    """What one DUO term says of the purpose."""

    SATISFIED = "satisfied"
    VIOLATED = "violated"
    NEEDS_DAC = "needs_dac"


class TermKind(StrEnum):
    """Whether a DUO term is a data use permission or a data use modifier."""

    PERMISSION = "permission"
    MODIFIER = "modifier"


@dataclass(frozen=True, slots=True, kw_only=True)
class ResearchPurpose:
    """A researcher's statement of what the data will be used for.

    `diseases` are disease term ids ("MONDO:0005148", "ICD10:E11.9", "OMIM:125853"). The flags are
    the researcher's own declarations; the DAC checks them against `summary` and the documents.
    `biomedical` marks health, medical or biomedical research (DUO:0000037); a purpose with a
    disease focus or clinical care use counts as health related even if it is not set.
    """

    title: str
    summary: str
    institution: str
    country: str  # ISO 3166-1 alpha-2 of the requesting institution
    diseases: tuple[str, ...] = ()
    biomedical: bool = False
    commercial: bool = False
    for_profit_institution: bool = False
    methods_development: bool = False
    population_ancestry: bool = False
    genetic_research: bool = False
    clinical_care: bool = False
    controls_use: bool = False
    collaborators: tuple[str, ...] = ()
    ethics_approval: bool = False  # an IRB/ERB approval document was provided
    project_type: str = "research"

    @property
    def health_related(self) -> bool:
        """Whether this is health, medical or biomedical research."""
        return self.biomedical or bool(self.diseases) or self.clinical_care


@dataclass(frozen=True, slots=True, kw_only=True)
class Reason:
    """Why a DUO term (or an unreadable code) gave its status, in English and Chinese."""

    term: str  # the DUO id, or the code as given when it is not a usable DUO term
    shorthand: str | None
    status: RuleStatus
    en: str
    zh: str

    @property
    def label(self) -> str:
        """The term as shown to people: "DUO:0000046 (NCU)"."""
        return term_label(self.term, self.shorthand)


@dataclass(frozen=True, slots=True, kw_only=True)
class Condition:
    """An obligation the researcher must accept to use the dataset (from PUB, COL, RTN, MOR, TS)."""

    term: str
    shorthand: str
    en: str
    zh: str
    until: date | None = None  # the date the obligation ends (MOR) or the use must end (TS)


@dataclass(frozen=True, slots=True, kw_only=True)
class MatchResult:
    """The verdict for one dataset, the violated terms, the conditions and every reason."""

    verdict: Verdict
    violated: tuple[str, ...]  # "DUO:0000046 (NCU)", in rule-table order
    conditions: tuple[Condition, ...]
    reasons: tuple[Reason, ...]

    @property
    def violated_ids(self) -> tuple[str, ...]:
        """The violated DUO ids alone ("DUO:0000046")."""
        return tuple(label.split(" ", 1)[0] for label in self.violated)


@dataclass(frozen=True, slots=True, kw_only=True)
class MatchContext:
    """What a rule sees: the purpose, the dataset's resolved DUO ids and their parameters."""

    purpose: ResearchPurpose
    codes: frozenset[str]
    dataset_diseases: tuple[str, ...]
    time_limit: date | None
    geographic_countries: tuple[str, ...]
    moratorium_until: date | None
    today: date


@dataclass(frozen=True, slots=True, kw_only=True)
class Evaluation:
    """What one rule concluded: a status, its reason, and any conditions it imposes."""

    status: RuleStatus
    en: str
    zh: str
    conditions: tuple[Condition, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    """One entry of the rule table: a DUO term, how it is evaluated and what it means."""

    id: str
    shorthand: str
    kind: TermKind
    label_zh: str
    evaluate: Callable[[MatchContext], Evaluation]
    en: str
    zh: str


def term_label(term: str, shorthand: str | None) -> str:
    """A term as shown to people: "DUO:0000046 (NCU)", or the id alone without a shorthand."""
    return term if shorthand is None else f"{term} ({shorthand})"
