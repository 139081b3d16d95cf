"""Jurisdiction and HGR rules: may this requester get record-level access to this dataset?

The rules are kept as versioned data (`rule_sets/*.json`, one rule set per file) with the dates they
are in force, the legal basis of every rule in English and Chinese, the 500-person security
review threshold and the codes that count as mainland China; `rule_data` reads them and picks the
one in force. The code here only evaluates them: a new version of the law is a new data file, not
a new branch in the code.

`evaluate` applies, in this order:

1. the dataset's country policy (`country-allow` or `country-deny`), by the ISO 3166-1 code of
   the requester's institution;
2. whether the requester is a Chinese party in mainland China (`hgr-chinese-party`: nothing more
   applies) or a foreign party, i.e. located outside mainland China (Hong Kong, Macao and Taiwan
   included) or 50% or more foreign-owned or foreign-controlled;
3. for a foreign party: the consent (`consent-no-abroad`), then, if the dataset holds human
   genetic resource information (else `hgr-not-applicable`), the filing of the provision abroad
   (`hgr-filing-required`), the information backup (`hgr-backup-copy`) and the security review
   (`hgr-security-review`).

Every rule is evaluated and reported; the decision allows only if none failed, and names the
rule that decided it. The module is pure: no I/O except reading the packaged rule sets once
(`rule_data`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum

from genecommons.access.jurisdiction.countries import country_code
from genecommons.access.jurisdiction.rule_data import RuleId, RuleSet, rules_in_force
from genecommons.errors import InvalidInputError

__all__ = [
    "CountryPolicy",
    "DatasetFacts",
    "JurisdictionDecision",
    "Obligation",
    "PolicyMode",
    "Requester",
    "RuleOutcome",
    "evaluate",
    "is_foreign_party",
]


class PolicyMode(StrEnum):
    """Whether a dataset's country list names the countries allowed or those denied."""

    ALLOW = "allow"
    DENY = "deny"


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CountryPolicy:
    """A dataset's list of ISO 3166-1 alpha-2 codes whose institutions it allows (allow-list,
    nothing else allowed) or denies (deny-list, everything else allowed)."""

    mode: PolicyMode
    countries: frozenset[str]

    def __post_init__(self) -> None:
        try:
            mode = PolicyMode(self.mode)
        except ValueError:
            raise InvalidInputError(
                f"country policy mode must be 'allow' or 'deny', not {self.mode!r}",
                message_zh=f"国家或地区政策的模式必须是 allow 或 deny，而不是 {self.mode!r}",
            ) from None
        if isinstance(self.countries, str):
            raise InvalidInputError(
                "country policy countries must be a collection of codes, not one string",
                message_zh="国家或地区政策的代码必须是代码集合，而不是单个字符串",
            )
        codes = frozenset(country_code(c, field_name="country_policy") for c in self.countries)
        object.__setattr__(self, "mode", mode)
        object.__setattr__(self, "countries", codes)

    def permits(self, code: str) -> bool:
        """Whether an institution located in `code` passes this policy."""
        listed = code in self.countries
        return listed if self.mode is PolicyMode.ALLOW else not listed


@dataclass(frozen=True, slots=True, kw_only=True)
class Requester:
    """Who asks: where their institution is (ISO alpha-2) and whether it is 50% or more
    foreign-owned or foreign-controlled, as the institution attested."""

    institution_country: str
    foreign_controlled: bool

    def __post_init__(self) -> None:
        code = country_code(self.institution_country, field_name="institution_country")
        object.__setattr__(self, "institution_country", code)


def _blank_to_none(value: str | None) -> str | None:
    return (value.strip() or None) if isinstance(value, str) else None


@dataclass(frozen=True, slots=True, kw_only=True)
class DatasetFacts:
    """What the rules need to know of a dataset (its study, consents, HGR records, archive).

    - `sequence_individuals`: individuals with exome (WES) or genome (WGS) sequence data.
    - `consent_abroad_allowed`: False if any consent covering the data forbids provision abroad.
    - `provision_abroad_filing`, `security_review`: the numbers of the records in force that
      cover this provision, or None; blank text counts as None.
    - `archived_here`: the data is archived in this node, which holds the backup copy.
    """

    hgr_information: bool
    sequence_individuals: int
    consent_abroad_allowed: bool
    archived_here: bool
    important_pedigree: bool = False
    specific_region_population: bool = False
    country_policy: CountryPolicy | None = None
    provision_abroad_filing: str | None = None
    security_review: str | None = None

    def __post_init__(self) -> None:
        count = self.sequence_individuals
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise InvalidInputError(
                f"sequence_individuals must be a whole number of 0 or more, not {count!r}",
                message_zh=f"sequence_individuals 必须是不小于 0 的整数，而不是 {count!r}",
            )
        object.__setattr__(
            self, "provision_abroad_filing", _blank_to_none(self.provision_abroad_filing)
        )
        object.__setattr__(self, "security_review", _blank_to_none(self.security_review))


# --------------------------------------------------------------------------------------------
# Decisions
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RuleOutcome:
    """One rule applied: whether it was satisfied, and why, in English and Chinese."""

    rule: str
    passed: bool
    reason: str
    reason_zh: str


@dataclass(frozen=True, slots=True)
class Obligation:
    """Something the caller must do when it acts on an allowing decision."""

    id: str
    text: str
    text_zh: str


@dataclass(frozen=True, slots=True, kw_only=True)
class JurisdictionDecision:
    """The verdict on record-level access for one requester and dataset.

    `rule` is the rule that decided: the first that failed, or, when allowed, the rule that
    classified the requester (hgr-chinese-party, hgr-not-applicable or hgr-foreign-party).
    `rules` lists every rule applied, in order. `reasons` are those of the failed rules when
    denied, else of every rule applied. `rule_set` and `rule_set_version` name the data used.
    """

    allowed: bool
    rule: str
    rules: tuple[str, ...]
    reasons: tuple[str, ...]
    reasons_zh: tuple[str, ...]
    obligations: tuple[Obligation, ...]
    rule_set: str
    rule_set_version: str
    foreign_party: bool
    outcomes: tuple[RuleOutcome, ...] = field(default=())


def is_foreign_party(requester: Requester, *, rules: RuleSet) -> bool:
    """Whether the requester is a foreign party: located outside mainland China, or 50% or more
    foreign-owned or foreign-controlled."""
    return requester.institution_country not in rules.mainland or requester.foreign_controlled


def _country_outcome(policy: CountryPolicy, code: str) -> RuleOutcome:
    listed = ", ".join(sorted(policy.countries)) or "-"
    listed_zh = "、".join(sorted(policy.countries)) or "无"
    if policy.mode is PolicyMode.ALLOW:
        if policy.permits(code):
            return RuleOutcome(
                RuleId.COUNTRY_ALLOW,
                True,
                f"The requester's institution is in {code}, a country the dataset allows.",
                f"申请机构位于 {code}，在数据集允许的国家或地区名单中。",
            )
        return RuleOutcome(
            RuleId.COUNTRY_ALLOW,
            False,
            f"The dataset allows institutions in {listed} only; the requester's institution is "
            f"in {code}.",
            f"该数据集仅允许位于 {listed_zh} 的机构访问；申请机构位于 {code}。",
        )
    if policy.permits(code):
        return RuleOutcome(
            RuleId.COUNTRY_DENY,
            True,
            f"The requester's institution is in {code}, not a country the dataset denies.",
            f"申请机构位于 {code}，不在数据集拒绝的国家或地区名单中。",
        )
    return RuleOutcome(
        RuleId.COUNTRY_DENY,
        False,
        f"The dataset denies access to institutions in {code}.",
        f"该数据集拒绝位于 {code} 的机构访问。",
    )


def _foreign_why(requester: Requester, rules: RuleSet) -> tuple[str, str]:
    code = requester.institution_country
    en: list[str] = []
    zh: list[str] = []
    if code not in rules.mainland:
        region = rules.region_name(code)
        if region is not None:
            en.append(f"it is in {region.en} ({code}), which counts as outside mainland China")
            zh.append(f"位于{region.zh}（{code}），按中国境外对待")
        else:
            en.append(f"it is in {code}, outside mainland China")
            zh.append(f"位于中国境外（{code}）")
    if requester.foreign_controlled:
        share = rules.foreign_control_share_percent
        en.append(
            f"it is {share}% or more foreign-owned or foreign-controlled (its own attestation)"
        )
        zh.append(f"境外组织或个人持股{share}%以上或实际控制（依机构声明）")
    return "; ".join(en), "；".join(zh)


def _security_review(dataset: DatasetFacts, cumulative: int, rules: RuleSet) -> RuleOutcome:
    threshold = rules.security_review_threshold
    en: list[str] = []
    zh: list[str] = []
    if dataset.important_pedigree:
        en.append("the dataset holds important family (pedigree) information")
        zh.append("数据集含重要遗传家系信息")
    if dataset.specific_region_population:
        en.append("the dataset holds information of a population of a specific region")
        zh.append("数据集含特定地区人群的人类遗传资源信息")
    if dataset.sequence_individuals > 0 and cumulative > threshold:
        en.append(
            f"the institution's cumulative count of individuals with exome or genome sequence "
            f"data, this request included, is {cumulative}, more than {threshold}"
        )
        zh.append(
            f"该机构含本次申请在内累计获得外显子组或基因组测序信息的人数为 {cumulative} 例，超过 {threshold} 例"
        )
    if not en:
        return RuleOutcome(
            RuleId.HGR_SECURITY_REVIEW,
            True,
            f"No security review is required: the dataset is not flagged as important-family or "
            f"specific-region, and the institution's cumulative count of individuals with exome "
            f"or genome sequence data, {cumulative}, is not more than {threshold}.",
            f"无需安全审查：数据集未标记为重要遗传家系或特定地区，且该机构累计获得外显子组或基因组"
            f"测序信息的人数为 {cumulative} 例，未超过 {threshold} 例。",
        )
    why_en, why_zh = "; ".join(en), "；".join(zh)
    if dataset.security_review is not None:
        return RuleOutcome(
            RuleId.HGR_SECURITY_REVIEW,
            True,
            f"A security review is required ({why_en}) and is recorded: {dataset.security_review}.",
            f"需要安全审查（{why_zh}），已登记审查记录：{dataset.security_review}。",
        )
    return RuleOutcome(
        RuleId.HGR_SECURITY_REVIEW,
        False,
        f"A security review is required ({why_en}) but none is recorded; the data provider must "
        f"pass the security review organised by {rules.authority.en} and record it.",
        f"需要安全审查（{why_zh}），但未登记审查记录；数据提供方须通过{rules.authority.zh}组织的"
        f"安全审查并登记。",
    )


def _hgr_outcomes(dataset: DatasetFacts, cumulative: int, rules: RuleSet) -> list[RuleOutcome]:
    filing = dataset.provision_abroad_filing
    outcomes = [
        RuleOutcome(
            RuleId.HGR_FILING_REQUIRED,
            True,
            f"The provision abroad is filed under number {filing}.",
            f"对外提供已备案，备案号 {filing}。",
        )
        if filing is not None
        else RuleOutcome(
            RuleId.HGR_FILING_REQUIRED,
            False,
            f"No filing number for provision abroad is recorded; the data provider must file the "
            f"provision abroad with {rules.authority.en} and record the number.",
            f"未登记对外提供备案号；数据提供方须向{rules.authority.zh}办理对外提供备案并登记备案号。",
        ),
        RuleOutcome(
            RuleId.HGR_BACKUP_COPY,
            True,
            "A backup copy of the information is held: the data is archived here.",
            "已保存信息备份：数据在本平台归档。",
        )
        if dataset.archived_here
        else RuleOutcome(
            RuleId.HGR_BACKUP_COPY,
            False,
            "No backup copy of the information is held; archive the data here before it is "
            "provided abroad.",
            "未保存信息备份；对外提供前须先在本平台归档数据。",
        ),
        _security_review(dataset, cumulative, rules),
    ]
    return outcomes


def evaluate(
    *,
    requester: Requester,
    dataset: DatasetFacts,
    cumulative_individuals: int,
    on: date,
    rules: RuleSet | None = None,
) -> JurisdictionDecision:
    """Decide whether `requester` may get record-level access to `dataset` on the day `on`.

    `cumulative_individuals` is the number of individuals with exome or genome sequence data
    that the requester's institution has requested or been granted so far, this request
    included (the caller counts it; it can be no less than `dataset.sequence_individuals`).
    `rules` defaults to the rule set in force on `on`; one given must be in force on `on`.
    The result depends on the arguments only.
    """
    rule_set = rules_in_force(on=on) if rules is None else rules
    if not rule_set.in_force(on):
        raise InvalidInputError(
            f"rule set {rule_set.id} is not in force on {on.isoformat()}",
            message_zh=f"规则集 {rule_set.id} 在 {on.isoformat()} 不施行",
        )
    if (
        isinstance(cumulative_individuals, bool)
        or not isinstance(cumulative_individuals, int)
        or cumulative_individuals < dataset.sequence_individuals
    ):
        raise InvalidInputError(
            f"cumulative_individuals ({cumulative_individuals!r}) must be a whole number that "
            f"includes this request's {dataset.sequence_individuals} individuals",
            message_zh=f"cumulative_individuals（{cumulative_individuals!r}）必须是整数，且包含本次申请的 "
            f"{dataset.sequence_individuals} 人",
        )
    code = requester.institution_country
    outcomes: list[RuleOutcome] = []
    if dataset.country_policy is not None:
        outcomes.append(_country_outcome(dataset.country_policy, code))
    foreign = is_foreign_party(requester, rules=rule_set)
    obligations: list[Obligation] = []
    if not foreign:
        basis = RuleOutcome(
            RuleId.HGR_CHINESE_PARTY,
            True,
            f"The requester's institution is in mainland China ({code}) and not foreign-"
            f"controlled: a Chinese party, so the rules on provision abroad do not apply.",
            f"申请机构位于中国境内（{code}）且不受境外控制，属于中方单位，不适用对外提供的规定。",
        )
        outcomes.append(basis)
    else:
        why_en, why_zh = _foreign_why(requester, rule_set)
        outcomes.append(
            RuleOutcome(
                RuleId.CONSENT_NO_ABROAD,
                True,
                "The consent under which the data was given allows provision to foreign parties.",
                "数据所依据的知情同意允许向外方提供。",
            )
            if dataset.consent_abroad_allowed
            else RuleOutcome(
                RuleId.CONSENT_NO_ABROAD,
                False,
                f"The requester is a foreign party ({why_en}) and the consent under which the data "
                f"was given forbids provision to foreign parties; no filing or review overrides it.",
                f"申请方为外方单位（{why_zh}），而数据所依据的知情同意不允许向外方提供；"
                f"任何备案或审查均不能替代。",
            )
        )
        if not dataset.hgr_information:
            basis = RuleOutcome(
                RuleId.HGR_NOT_APPLICABLE,
                True,
                "The dataset holds no human genetic resource information (only data such as "
                "clinical, imaging, protein or metabolic data), so the HGR rules on provision "
                "abroad do not apply.",
                "该数据集不含人类遗传资源信息（仅含临床、影像、蛋白质或代谢等数据），"
                "不适用人类遗传资源对外提供的规定。",
            )
            outcomes.append(basis)
        else:
            basis = RuleOutcome(
                RuleId.HGR_FOREIGN_PARTY,
                True,
                f"The requester's institution is a foreign party ({why_en}); giving it this "
                f"dataset's human genetic resource information is provision abroad.",
                f"申请机构属于外方单位（{why_zh}）；向其提供本数据集的人类遗传资源信息属于对外提供。",
            )
            outcomes.append(basis)
            outcomes.extend(_hgr_outcomes(dataset, cumulative_individuals, rule_set))
            obligations.append(
                Obligation(
                    "report-provision-abroad",
                    f"Record this provision abroad (filing {dataset.provision_abroad_filing}) in "
                    f"the compliance report.",
                    f"在合规报告中登记本次对外提供（备案号 {dataset.provision_abroad_filing}）。",
                )
            )
            if dataset.sequence_individuals:
                obligations.append(
                    Obligation(
                        "count-sequence-individuals",
                        f"Add this grant's {dataset.sequence_individuals} individuals with exome "
                        f"or genome sequence data to the institution's cumulative count (now "
                        f"{cumulative_individuals}).",
                        f"将本次授权的 {dataset.sequence_individuals} 名外显子组或基因组测序个体"
                        f"计入该机构的累计人数（现为 {cumulative_individuals} 例）。",
                    )
                )
    failed = [o for o in outcomes if not o.passed]
    allowed = not failed
    shown = outcomes if allowed else failed
    return JurisdictionDecision(
        allowed=allowed,
        rule=str(basis.rule if allowed else failed[0].rule),
        rules=tuple(str(o.rule) for o in outcomes),
        reasons=tuple(o.reason for o in shown),
        reasons_zh=tuple(o.reason_zh for o in shown),
        obligations=tuple(obligations) if allowed else (),
        rule_set=rule_set.id,
        rule_set_version=rule_set.version,
        foreign_party=foreign,
        outcomes=tuple(outcomes),
    )
