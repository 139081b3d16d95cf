"""The DUO rule table: one entry per non-obsolete DUO permission and modifier, with its evaluator.

Each evaluator says what its term makes of a purpose (satisfied, violated, needs a DAC) and why,
in English and Chinese, with the obligations (`Condition`) it imposes. docs/duo-matching.md
documents each entry and a test keeps the two in step; `duo_matching.match_purpose` applies the
table. Pure: no I/O besides the offline vocabularies, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from genecommons.access.duo_diseases import disease_id, disease_relation
from genecommons.access.duo_models import (
    Condition,
    Evaluation,
    MatchContext,
    Rule,
    RuleStatus,
    TermKind,
)
from genecommons.catalog.vocabularies import countries

__all__ = ["RULES", "RULES_BY_ID"]


def _ok(en: str, zh: str, *conditions: Condition) -> Evaluation:
    return Evaluation(status=RuleStatus.SATISFIED, en=en, zh=zh, conditions=conditions)


def _bad(en: str, zh: str) -> Evaluation:
    return Evaluation(status=RuleStatus.VIOLATED, en=en, zh=zh)


def _dac(en: str, zh: str) -> Evaluation:
    return Evaluation(status=RuleStatus.NEEDS_DAC, en=en, zh=zh)


# Permissions
# --------------------------------------------------------------------------------------------

_CC = "DUO:0000043"


def _clinical_care_check(ctx: MatchContext, shorthand: str) -> Evaluation | None:
    """A violation if the purpose includes clinical care and the dataset lacks CC."""
    if ctx.purpose.clinical_care and _CC not in ctx.codes:
        return _bad(
            f"{shorthand} permits research use only; use in clinical care needs the CC "
            "(DUO:0000043) modifier, which this dataset does not carry.",
            f"{shorthand} 仅允许研究用途；用于临床诊疗需要数据集带有 CC（DUO:0000043）修饰词，"
            "而本数据集没有。",
        )
    return None


def _nres(ctx: MatchContext) -> Evaluation:
    return _ok("NRES: the data may be used without restriction.", "NRES：数据的使用不受限制。")


def _gru(ctx: MatchContext) -> Evaluation:
    return _clinical_care_check(ctx, "GRU") or _ok(
        "GRU permits any research purpose.", "GRU 允许任何研究用途。"
    )


def _hmb(ctx: MatchContext) -> Evaluation:
    cc = _clinical_care_check(ctx, "HMB")
    if cc is not None:
        return cc
    purpose = ctx.purpose
    if not purpose.health_related:
        what_en = (
            "population origins or ancestry research"
            if purpose.population_ancestry
            else "research that is not health, medical or biomedical research"
        )
        what_zh = (
            "人群起源或祖源研究" if purpose.population_ancestry else "非健康、医学或生物医学研究"
        )
        return _bad(
            f"HMB permits health, medical or biomedical research only; the purpose is "
            f"{what_en} (no disease focus, not declared biomedical).",
            f"HMB 仅允许健康、医学或生物医学研究；该目的属于{what_zh}（无疾病焦点，也未声明为生物医学研究）。",
        )
    if purpose.population_ancestry:
        return _dac(
            "HMB excludes the study of population origins or ancestry; the purpose is health "
            "related but includes ancestry research, so a DAC must judge whether that part "
            "serves the health question.",
            "HMB 不包括人群起源或祖源研究；该目的与健康相关但包含祖源研究，需由数据访问委员会判断该部分"
            "是否服务于健康问题。",
        )
    return _ok(
        "HMB: the purpose is health, medical or biomedical research.",
        "HMB：该目的属于健康、医学或生物医学研究。",
    )


def _ds(ctx: MatchContext) -> Evaluation:
    cc = _clinical_care_check(ctx, "DS")
    if cc is not None:
        return cc
    consented = [(raw, disease_id(raw)) for raw in ctx.dataset_diseases]
    if not consented:
        return _dac(
            "DS: the dataset does not record the disease its consent is restricted to; a DAC "
            "must read the consent.",
            "DS：数据集未记录其知情同意所限定的疾病；需由数据访问委员会查阅知情同意书。",
        )
    bad_consented = [raw for raw, known in consented if known is None]
    if bad_consented:
        return _dac(
            f"DS: the dataset's disease {bad_consented[0]!r} is not a recognised disease id "
            "(MONDO, ICD-10, OMIM or Orphanet); a DAC must judge.",
            f"DS：数据集的疾病 {bad_consented[0]!r} 不是可识别的疾病编号（MONDO、ICD-10、OMIM 或 "
            "Orphanet）；需由数据访问委员会判断。",
        )
    allowed = [known for _, known in consented if known is not None]
    shown = ", ".join(allowed)
    if not ctx.purpose.diseases:
        return _bad(
            f"DS permits research on {shown} only; the purpose names no disease.",
            f"DS 仅允许针对 {shown} 的研究；该目的未指明任何疾病。",
        )
    matched: list[str] = []
    unmatched: list[str] = []
    unknown_en: list[str] = []
    unknown_zh: list[str] = []
    for raw in ctx.purpose.diseases:
        wanted = disease_id(raw)
        if wanted is None:
            unknown_en.append(f"{raw!r} is not a recognised disease id")
            unknown_zh.append(f"{raw!r} 不是可识别的疾病编号")
            continue
        relations = [disease_relation(wanted, consent) for consent in allowed]
        if any(rel == "match" for rel, _, _ in relations):
            matched.append(wanted)
        elif all(rel == "nomatch" for rel, _, _ in relations):
            unmatched.append(wanted)
        else:
            unknown_en += [en for rel, en, _ in relations if rel == "unknown"]
            unknown_zh += [zh for rel, _, zh in relations if rel == "unknown"]
    if not matched and not unknown_en:
        controls_en = (
            " Use as controls for another disease is not research on the consented disease."
            if ctx.purpose.controls_use
            else ""
        )
        controls_zh = (
            "用作其他疾病的对照不属于针对所同意疾病的研究。" if ctx.purpose.controls_use else ""
        )
        return _bad(
            f"DS permits research on {shown} (or diseases under it) only; the purpose's "
            f"{', '.join(unmatched)} is not.{controls_en}",
            f"DS 仅允许针对 {shown}（或其下位疾病）的研究；该目的的 {'、'.join(unmatched)} 不在其中。"
            f"{controls_zh}",
        )
    if unknown_en or unmatched:
        parts_en = list(unknown_en)
        parts_zh = list(unknown_zh)
        if unmatched:
            parts_en.append(f"{', '.join(unmatched)} is outside {shown}")
            parts_zh.append(f"{'、'.join(unmatched)} 不属于 {shown}")
        return _dac(
            f"DS permits research on {shown} only; a DAC must judge: {'; '.join(parts_en)}.",
            f"DS 仅允许针对 {shown} 的研究；需由数据访问委员会判断：{'；'.join(parts_zh)}。",
        )
    if ctx.purpose.population_ancestry:
        return _dac(
            "DS (a kind of HMB) excludes the study of population origins or ancestry; a DAC must "
            "judge whether the ancestry part serves the disease question.",
            "DS（属于 HMB）不包括人群起源或祖源研究；需由数据访问委员会判断祖源部分是否服务于该疾病问题。",
        )
    return _ok(
        f"DS: the purpose's {', '.join(matched)} is {shown} or lies under it.",
        f"DS：该目的的 {'、'.join(matched)} 即 {shown} 或属于其下位疾病。",
    )


def _poa(ctx: MatchContext) -> Evaluation:
    cc = _clinical_care_check(ctx, "POA")
    if cc is not None:
        return cc
    if ctx.purpose.population_ancestry:
        return _ok(
            "POA: the purpose is population origins or ancestry research.",
            "POA：该目的属于人群起源或祖源研究。",
        )
    return _bad(
        "POA permits the study of population origins or ancestry only; the purpose is not.",
        "POA 仅允许人群起源或祖源研究；该目的不属于此类研究。",
    )


# --------------------------------------------------------------------------------------------
# Modifiers
# --------------------------------------------------------------------------------------------


def _rs(ctx: MatchContext) -> Evaluation:
    return _dac(
        "RS: use is limited to a research type the DUO code does not name; a DAC must judge.",
        "RS：使用限于某类研究，但 DUO 代码未指明类别；需由数据访问委员会判断。",
    )


def _nmds(ctx: MatchContext) -> Evaluation:
    if ctx.purpose.methods_development:
        return _bad(
            "NMDS forbids methods development research; the purpose includes it.",
            "NMDS 禁止方法学开发研究；该目的包含方法学开发。",
        )
    return _ok("NMDS: the purpose includes no methods development.", "NMDS：该目的不含方法学开发。")


def _gso(ctx: MatchContext) -> Evaluation:
    if not ctx.purpose.genetic_research:
        return _bad(
            "GSO limits use to genetic studies; the purpose does not study genotypes.",
            "GSO 仅允许遗传学研究；该目的不涉及基因型研究。",
        )
    return _ok("GSO: the purpose is a genetic study.", "GSO：该目的属于遗传学研究。")


def _npuncu(ctx: MatchContext) -> Evaluation:
    purpose = ctx.purpose
    if purpose.commercial or purpose.for_profit_institution:
        what_en = " and ".join(
            text
            for flag, text in (
                (purpose.for_profit_institution, "the institution is for-profit"),
                (purpose.commercial, "the use is commercial"),
            )
            if flag
        )
        what_zh = "，且".join(
            text
            for flag, text in (
                (purpose.for_profit_institution, "机构为营利性机构"),
                (purpose.commercial, "用途为商业用途"),
            )
            if flag
        )
        return _bad(
            f"NPUNCU limits use to not-for-profit organisations and non-commercial use; {what_en}.",
            f"NPUNCU 仅允许非营利机构的非商业使用；{what_zh}。",
        )
    return _ok(
        "NPUNCU: a not-for-profit organisation, non-commercial use.",
        "NPUNCU：非营利机构，非商业使用。",
    )


def _npu(ctx: MatchContext) -> Evaluation:
    if ctx.purpose.for_profit_institution:
        return _bad(
            "NPU limits use to not-for-profit organisations; the institution is for-profit.",
            "NPU 仅允许非营利机构使用；该机构为营利性机构。",
        )
    return _ok("NPU: the institution is not-for-profit.", "NPU：该机构为非营利机构。")


def _ncu(ctx: MatchContext) -> Evaluation:
    if ctx.purpose.commercial:
        return _bad(
            "NCU limits use to non-commercial use; the purpose is commercial.",
            "NCU 仅允许非商业使用；该目的为商业用途。",
        )
    return _ok("NCU: the use is non-commercial.", "NCU：该用途为非商业用途。")


def _pub(ctx: MatchContext) -> Evaluation:
    return _ok(
        "PUB: accepted as a condition.",
        "PUB：作为使用条件接受。",
        Condition(
            term="DUO:0000019",
            shorthand="PUB",
            en="Make the results of studies using the data available to the scientific community.",
            zh="须将使用该数据所得的研究结果向科学界公开。",
        ),
    )


def _col(ctx: MatchContext) -> Evaluation:
    return _ok(
        "COL: accepted as a condition.",
        "COL：作为使用条件接受。",
        Condition(
            term="DUO:0000020",
            shorthand="COL",
            en="Collaborate with the primary study investigator(s).",
            zh="须与原始研究的主要研究者合作。",
        ),
    )


def _irb(ctx: MatchContext) -> Evaluation:
    if not ctx.purpose.ethics_approval:
        return _bad(
            "IRB requires documentation of local ethics (IRB/ERB) approval; none was provided.",
            "IRB 要求提供本地伦理委员会（IRB/ERB）批准文件；未提供。",
        )
    return _ok("IRB: an ethics approval document was provided.", "IRB：已提供伦理审查批准文件。")


def _country(value: str) -> str | None:
    term = countries().lookup(value)
    return None if term is None else term.id


def _gs(ctx: MatchContext) -> Evaluation:
    allowed = sorted({c for c in map(_country, ctx.geographic_countries) if c is not None})
    if not allowed:
        return _dac(
            "GS: the dataset does not record the countries its use is limited to; a DAC must "
            "read the consent.",
            "GS：数据集未记录其使用所限定的国家或地区；需由数据访问委员会查阅知情同意书。",
        )
    shown = ", ".join(allowed)
    country = _country(ctx.purpose.country)
    if country is None:
        return _dac(
            f"GS limits use to {shown}; the requester's country {ctx.purpose.country!r} is not "
            "a recognised ISO 3166-1 code, so a DAC must judge.",
            f"GS 限定在 {shown} 内使用；申请者所在国家 {ctx.purpose.country!r} 不是可识别的 "
            "ISO 3166-1 代码，需由数据访问委员会判断。",
        )
    if country not in allowed:
        return _bad(
            f"GS limits use to {shown}; the requesting institution is in {country}.",
            f"GS 限定在 {shown} 内使用；申请机构位于 {country}。",
        )
    return _ok(
        f"GS: the requesting institution is in {country}, within {shown}.",
        f"GS：申请机构位于 {country}，在 {shown} 范围内。",
    )


def _mor(ctx: MatchContext) -> Evaluation:
    until = ctx.moratorium_until
    if until is None:
        return _dac(
            "MOR: the dataset does not record the date its publication moratorium ends; a DAC "
            "must give it.",
            "MOR：数据集未记录其发表禁令的截止日期；需由数据访问委员会给出。",
        )
    if ctx.today >= until:
        return _ok(
            f"MOR: the publication moratorium ended on {until.isoformat()}.",
            f"MOR：发表禁令已于 {until.isoformat()} 结束。",
        )
    return _ok(
        "MOR: accepted as a condition.",
        "MOR：作为使用条件接受。",
        Condition(
            term="DUO:0000024",
            shorthand="MOR",
            en=f"Do not publish results of studies using the data before {until.isoformat()}.",
            zh=f"在 {until.isoformat()} 之前不得发表使用该数据的研究结果。",
            until=until,
        ),
    )


def _ts(ctx: MatchContext) -> Evaluation:
    limit = ctx.time_limit
    if limit is None:
        return _dac(
            "TS: the dataset does not record the date its approved use ends; a DAC must give it.",
            "TS：数据集未记录其获准使用的截止日期；需由数据访问委员会给出。",
        )
    if ctx.today > limit:
        return _bad(
            f"TS: use of this dataset was approved until {limit.isoformat()}, which has passed.",
            f"TS：该数据集的获准使用期限至 {limit.isoformat()}，现已过期。",
        )
    return _ok(
        f"TS: use is approved until {limit.isoformat()}.",
        f"TS：获准使用至 {limit.isoformat()}。",
        Condition(
            term="DUO:0000025",
            shorthand="TS",
            en=f"Stop using the data after {limit.isoformat()}.",
            zh=f"须在 {limit.isoformat()} 之后停止使用该数据。",
            until=limit,
        ),
    )


def _us(ctx: MatchContext) -> Evaluation:
    return _dac(
        "US: use is limited to users the data provider approves; a DAC must judge.",
        "US：仅限数据提供方批准的用户使用；需由数据访问委员会判断。",
    )


def _ps(ctx: MatchContext) -> Evaluation:
    return _dac(
        "PS: use is limited to an approved project; a DAC must judge.",
        "PS：仅限在获批项目内使用；需由数据访问委员会判断。",
    )


def _is(ctx: MatchContext) -> Evaluation:
    return _dac(
        "IS: use is limited to approved institutions; a DAC must judge.",
        "IS：仅限获批机构使用；需由数据访问委员会判断。",
    )


def _rtn(ctx: MatchContext) -> Evaluation:
    return _ok(
        "RTN: accepted as a condition.",
        "RTN：作为使用条件接受。",
        Condition(
            term="DUO:0000029",
            shorthand="RTN",
            en="Return derived or enriched data to the database or resource.",
            zh="须将衍生或扩充的数据返还给数据库或资源方。",
        ),
    )


def _cc(ctx: MatchContext) -> Evaluation:
    if ctx.purpose.clinical_care:
        return _ok("CC: use in clinical care is allowed.", "CC：允许将数据用于临床诊疗。")
    return _ok(
        "CC allows clinical care use; the purpose does not need it.",
        "CC 允许临床诊疗用途；该目的不涉及临床诊疗。",
    )


def _npoa(ctx: MatchContext) -> Evaluation:
    if ctx.purpose.population_ancestry:
        return _bad(
            "NPOA forbids population origins or ancestry research; the purpose includes it.",
            "NPOA 禁止人群起源或祖源研究；该目的包含此类研究。",
        )
    return _ok(
        "NPOA: the purpose includes no population origins or ancestry research.",
        "NPOA：该目的不含人群起源或祖源研究。",
    )


_P, _M = TermKind.PERMISSION, TermKind.MODIFIER

#: The rule table: every non-obsolete DUO data use permission and modifier, in evaluation order.
RULES: tuple[Rule, ...] = (
    Rule(
        id="DUO:0000004",
        shorthand="NRES",
        kind=_P,
        label_zh="无限制",
        evaluate=_nres,
        en="No restriction: compatible with every purpose, clinical care included.",
        zh="无限制：与任何目的兼容，包括临床诊疗。",
    ),
    Rule(
        id="DUO:0000042",
        shorthand="GRU",
        kind=_P,
        label_zh="一般研究用途",
        evaluate=_gru,
        en="General research use: compatible with every research purpose (health, fundamental "
        "biology, population origins or ancestry, methods development, commercial). Clinical "
        "care is not research: a clinical care purpose is incompatible unless the dataset "
        "also carries CC.",
        zh="一般研究用途：与任何研究目的兼容（健康、基础生物学、人群起源或祖源、方法学开发、商业研究）。"
        "临床诊疗不属于研究：除非数据集同时带有 CC，临床诊疗目的不兼容。",
    ),
    Rule(
        id="DUO:0000006",
        shorthand="HMB",
        kind=_P,
        label_zh="健康、医学或生物医学研究",
        evaluate=_hmb,
        en="Health, medical or biomedical research: the purpose must be health related (a "
        "disease focus, declared biomedical, or clinical care); otherwise incompatible. It "
        "excludes population origins or ancestry research: ancestry research that is not health "
        "related is incompatible; health related ancestry research needs a DAC. Clinical care "
        "as for GRU.",
        zh="健康、医学或生物医学研究：目的必须与健康相关（有疾病焦点、声明为生物医学研究或临床诊疗），"
        "否则不兼容。不包括人群起源或祖源研究：与健康无关的祖源研究不兼容；与健康相关的祖源研究需由"
        "数据访问委员会判断。临床诊疗同 GRU。",
    ),
    Rule(
        id="DUO:0000007",
        shorthand="DS",
        kind=_P,
        label_zh="特定疾病研究",
        evaluate=_ds,
        en="Disease specific research: each disease of the purpose is compared with the dataset's "
        "diseases. It matches if it is one of them or lies under one in the hierarchy (ICD-10: "
        "offline, from the code structure, e.g. E11.9 under E11 under E10-E14). If every "
        "purpose disease matches: compatible (needs a DAC if it also includes ancestry "
        "research). If none matches and none is uncertain, or the purpose names no disease: "
        "incompatible. Otherwise (MONDO or OMIM terms that are not identical, terms of different "
        "vocabularies, unrecognised ids, or only some diseases matching): needs a DAC. A dataset "
        "whose DS names no disease needs a DAC. Clinical care as for GRU.",
        zh="特定疾病研究：将目的中的每种疾病与数据集的疾病比较。若为其中之一或在层级中属于其下位疾病"
        "（ICD-10 依编码结构离线判断，例如 E11.9 属于 E11，E11 属于 E10-E14）即为匹配。全部匹配："
        "兼容（若同时包含祖源研究则需数据访问委员会判断）。全部不匹配且无不确定项，或目的未指明疾病："
        "不兼容。其他情况（不相同的 MONDO 或 OMIM 术语、不同词表的术语、无法识别的编号、仅部分匹配）："
        "需数据访问委员会判断。DS 未指明疾病的数据集需数据访问委员会判断。临床诊疗同 GRU。",
    ),
    Rule(
        id="DUO:0000011",
        shorthand="POA",
        kind=_P,
        label_zh="仅限人群起源或祖源研究",
        evaluate=_poa,
        en="Population origins or ancestry research only: compatible if the purpose declares "
        "population/ancestry research, otherwise incompatible. Clinical care as for GRU.",
        zh="仅限人群起源或祖源研究：目的声明为人群/祖源研究则兼容，否则不兼容。临床诊疗同 GRU。",
    ),
    Rule(
        id="DUO:0000012",
        shorthand="RS",
        kind=_M,
        label_zh="特定研究类型限制",
        evaluate=_rs,
        en="Research specific restrictions: the research type is not machine readable, so always "
        "needs a DAC.",
        zh="特定研究类型限制：研究类型无法机器判读，因此总需数据访问委员会判断。",
    ),
    Rule(
        id="DUO:0000015",
        shorthand="NMDS",
        kind=_M,
        label_zh="不得用于一般方法学研究",
        evaluate=_nmds,
        en="No general methods research: incompatible if the purpose includes methods development.",
        zh="不得用于一般方法学研究：目的包含方法学开发则不兼容。",
    ),
    Rule(
        id="DUO:0000016",
        shorthand="GSO",
        kind=_M,
        label_zh="仅限遗传学研究",
        evaluate=_gso,
        en="Genetic studies only: incompatible unless the purpose declares genetic (genotype) "
        "research.",
        zh="仅限遗传学研究：除非目的声明为遗传（基因型）研究，否则不兼容。",
    ),
    Rule(
        id="DUO:0000018",
        shorthand="NPUNCU",
        kind=_M,
        label_zh="仅限非营利机构的非商业使用",
        evaluate=_npuncu,
        en="Not-for-profit, non-commercial use only: incompatible if the institution is "
        "for-profit or the use is commercial.",
        zh="仅限非营利机构的非商业使用：机构为营利性或用途为商业用途则不兼容。",
    ),
    Rule(
        id="DUO:0000019",
        shorthand="PUB",
        kind=_M,
        label_zh="须发表结果",
        evaluate=_pub,
        en="Publication required: never a violation; adds the condition to make results "
        "available to the scientific community.",
        zh="须发表结果：不构成违反；附加须向科学界公开研究结果的条件。",
    ),
    Rule(
        id="DUO:0000020",
        shorthand="COL",
        kind=_M,
        label_zh="须合作",
        evaluate=_col,
        en="Collaboration required: never a violation; adds the condition to collaborate with "
        "the primary study investigator(s).",
        zh="须合作：不构成违反；附加须与原始研究主要研究者合作的条件。",
    ),
    Rule(
        id="DUO:0000021",
        shorthand="IRB",
        kind=_M,
        label_zh="须伦理审查批准",
        evaluate=_irb,
        en="Ethics approval required: incompatible unless an ethics (IRB/ERB) approval document "
        "was provided.",
        zh="须伦理审查批准：未提供伦理委员会（IRB/ERB）批准文件则不兼容。",
    ),
    Rule(
        id="DUO:0000022",
        shorthand="GS",
        kind=_M,
        label_zh="地域限制",
        evaluate=_gs,
        en="Geographical restriction: compatible if the requesting institution's country is one "
        "of the dataset's countries (ISO 3166-1), incompatible if not; needs a DAC if the "
        "dataset records no country or the requester's country is not recognised.",
        zh="地域限制：申请机构所在国家属于数据集限定的国家（ISO 3166-1）则兼容，否则不兼容；数据集未记录"
        "国家或申请者国家无法识别时需数据访问委员会判断。",
    ),
    Rule(
        id="DUO:0000024",
        shorthand="MOR",
        kind=_M,
        label_zh="发表禁令",
        evaluate=_mor,
        en="Publication moratorium: before the moratorium date, adds the condition not to publish "
        "until then; on or after it, nothing; needs a DAC if the date is not recorded.",
        zh="发表禁令：禁令日期之前，附加在此之前不得发表的条件；当日及之后无要求；未记录日期时需数据访问"
        "委员会判断。",
    ),
    Rule(
        id="DUO:0000025",
        shorthand="TS",
        kind=_M,
        label_zh="使用时限",
        evaluate=_ts,
        en="Time limit on use: incompatible once today is after the dataset's time limit; until "
        "then adds the condition to stop using the data after that date; needs a DAC if the "
        "date is not recorded.",
        zh="使用时限：今天晚于数据集的使用期限则不兼容；期限内附加须在该日期后停止使用的条件；未记录日期时"
        "需数据访问委员会判断。",
    ),
    Rule(
        id="DUO:0000026",
        shorthand="US",
        kind=_M,
        label_zh="特定用户限制",
        evaluate=_us,
        en="User specific restriction: always needs a DAC, which approves users.",
        zh="特定用户限制：总需数据访问委员会判断，由其批准用户。",
    ),
    Rule(
        id="DUO:0000027",
        shorthand="PS",
        kind=_M,
        label_zh="特定项目限制",
        evaluate=_ps,
        en="Project specific restriction: always needs a DAC, which approves projects.",
        zh="特定项目限制：总需数据访问委员会判断，由其批准项目。",
    ),
    Rule(
        id="DUO:0000028",
        shorthand="IS",
        kind=_M,
        label_zh="特定机构限制",
        evaluate=_is,
        en="Institution specific restriction: always needs a DAC, which approves institutions.",
        zh="特定机构限制：总需数据访问委员会判断，由其批准机构。",
    ),
    Rule(
        id="DUO:0000029",
        shorthand="RTN",
        kind=_M,
        label_zh="须返还数据",
        evaluate=_rtn,
        en="Return to database or resource: never a violation; adds the condition to return "
        "derived or enriched data.",
        zh="须返还数据：不构成违反；附加须返还衍生或扩充数据的条件。",
    ),
    Rule(
        id="DUO:0000043",
        shorthand="CC",
        kind=_M,
        label_zh="临床诊疗使用",
        evaluate=_cc,
        en="Clinical care use: allows use in clinical care; never a violation. Without it, a "
        "clinical care purpose is incompatible with GRU, HMB, DS and POA.",
        zh="临床诊疗使用：允许用于临床诊疗；不构成违反。若无此修饰词，临床诊疗目的与 GRU、HMB、DS、POA 不兼容。",
    ),
    Rule(
        id="DUO:0000044",
        shorthand="NPOA",
        kind=_M,
        label_zh="禁止人群起源或祖源研究",
        evaluate=_npoa,
        en="Population origins or ancestry research prohibited: incompatible if the purpose "
        "includes it.",
        zh="禁止人群起源或祖源研究：目的包含此类研究则不兼容。",
    ),
    Rule(
        id="DUO:0000045",
        shorthand="NPU",
        kind=_M,
        label_zh="仅限非营利机构使用",
        evaluate=_npu,
        en="Not-for-profit organisation use only: incompatible if the institution is for-profit "
        "(commercial use by a not-for-profit is not excluded by NPU alone).",
        zh="仅限非营利机构使用：机构为营利性则不兼容（单独的 NPU 不排除非营利机构的商业用途）。",
    ),
    Rule(
        id="DUO:0000046",
        shorthand="NCU",
        kind=_M,
        label_zh="仅限非商业使用",
        evaluate=_ncu,
        en="Non-commercial use only: incompatible if the use is commercial (a for-profit "
        "institution doing non-commercial research is not excluded by NCU alone).",
        zh="仅限非商业使用：用途为商业用途则不兼容（单独的 NCU 不排除营利机构的非商业研究）。",
    ),
)

#: The rule table by DUO id.
RULES_BY_ID: Mapping[str, Rule] = MappingProxyType({rule.id: rule for rule in RULES})
