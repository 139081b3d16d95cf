"""Direct identifiers in submitted text: what is found, how it is masked in a report, and the
treatments a submitter may choose for a column that holds them.

Each detector is a small object with a kind, a precompiled pattern and, where the identifier
has one, a validator (the GB 11643 check digit of a PRC resident ID number, the Luhn digit of a
bank card). `scan` runs them in order of confidence over one text; a later detector never
reports a span an earlier one found. `Level.PATTERNED` (for identifier and code columns) runs
only the kinds that are recognised by their digits alone; `Level.FULL` (for free text) runs all
of them, including addresses, dates of birth and personal names, which need context.

Treatments: `drop` (the whole value goes), `mask` (each identifier found becomes asterisks),
`generalise` (dates of birth to year-month, addresses to their city; other kinds masked) and
`pseudonym` (each identifier found becomes a keyed HMAC-SHA256 pseudonym of its normalised
value: the same identifier gives the same pseudonym under one node key, and nothing without it).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import IntEnum, StrEnum

_HAN = "\u4e00-\u9fff"


class Kind(StrEnum):
    """The kinds of direct identifier detected."""

    ID_CARD = "id_card"
    BANK_CARD = "bank_card"
    EMAIL = "email"
    PHONE = "phone"
    PASSPORT = "passport"
    BIRTH_DATE = "birth_date"
    ADDRESS = "address"
    NAME = "name"


LABELS: dict[Kind, tuple[str, str]] = {
    Kind.ID_CARD: ("PRC resident ID number", "居民身份证号码"),
    Kind.BANK_CARD: ("bank card number", "银行卡号"),
    Kind.EMAIL: ("e-mail address", "电子邮箱地址"),
    Kind.PHONE: ("telephone number", "电话号码"),
    Kind.PASSPORT: ("passport number", "护照号码"),
    Kind.BIRTH_DATE: ("full date of birth", "完整出生日期"),
    Kind.ADDRESS: ("exact address", "详细住址"),
    Kind.NAME: ("personal name", "姓名"),
}


class Level(IntEnum):
    """How much of the detector set a column gets."""

    PATTERNED = 1  # identifier and code columns: the kinds recognised by their digits
    FULL = 2  # free text: every kind


class Treatment(StrEnum):
    """What is done to a declared column's identifiers before anything is stored."""

    DROP = "drop"
    MASK = "mask"
    GENERALISE = "generalise"
    PSEUDONYM = "pseudonym"


@dataclass(frozen=True, slots=True)
class Finding:
    """One identifier found in a text: its kind and where it is (start, end)."""

    kind: Kind
    start: int
    end: int
    value: str


@dataclass(frozen=True, slots=True)
class Detector:
    """A kind of identifier: a pattern, an optional validator of a match, the group that holds
    the identifier itself (0: the whole match) and the level that runs it."""

    kind: Kind
    pattern: re.Pattern[str]
    level: Level
    valid: Callable[[str], bool] | None = None
    group: int = 0

    def find(self, text: str) -> list[Finding]:
        """Every valid match in `text`."""
        found = []
        for match in self.pattern.finditer(text):
            value = match.group(self.group)
            if value is None or (self.valid is not None and not self.valid(value)):
                continue
            found.append(Finding(self.kind, match.start(self.group), match.end(self.group), value))
        return found


# -- validators -------------------------------------------------------------------------------

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def id_check_digit(first17: str) -> str:
    """The GB 11643 check character of the first 17 digits of a resident ID number."""
    total = sum(int(d) * w for d, w in zip(first17, _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11]


def valid_id_card(value: str) -> bool:
    """Whether `value` is an 18-character resident ID number with a correct check character."""
    return (
        len(value) == 18
        and value[:17].isdigit()
        and id_check_digit(value[:17]) == value[17].upper()
    )


def luhn_ok(digits: str) -> bool:
    """Whether a digit string passes the Luhn check."""
    total = 0
    for i, char in enumerate(reversed(digits)):
        d = ord(char) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _valid_card(value: str) -> bool:
    digits = re.sub(r"[ -]", "", value)
    return 12 <= len(digits) <= 19 and luhn_ok(digits)


def _phone_digits(value: str) -> bool:
    number = value.split("x")[0]  # without an extension
    return 7 <= sum(c.isdigit() for c in number) <= 15


# -- dictionaries -----------------------------------------------------------------------------

# the most common Chinese surnames (about 87% of the population), and compound ones
_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁"
    "任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武"
    "戴莫孔向汤常温康施文牛樊葛邢安齐易乔伍庞颜倪庄聂章鲁岳翟殷詹申欧耿关兰焦俞左柳甘祝包宁尚符舒阮"
    "柯纪梅童凌毕单季裴霍涂成苗谷盛曲翁冉骆蓝路游辛靳管柴蒙鲍华喻祁蒲房滕屈饶解牟艾尤阳时穆农司卓古"
    "吉缪简车项连芦麦褚娄窦戚岑景党宫费卜冷晏席卫米柏宗瞿桂全佟应臧闵苟邬边卞姬师和仇栾隋商刁沙荣巫"
    "寇桑郎甄丛仲虞敖巩明佘池查麻苑迟邝"
)
_COMPOUND_SURNAMES = (
    "欧阳",
    "司马",
    "上官",
    "诸葛",
    "东方",
    "皇甫",
    "尉迟",
    "公孙",
    "慕容",
    "令狐",
)
# characters common in given names
_GIVEN = (
    "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂华玉萍红建文辉力鹏飞斌宇浩凯健俊帆帅旭宁龙林"
    "欢阳佳彬波婷雪琳晶颖倩慧巧美淑惠珠翠雅芝莉凤洁梅琼玲燕彩春菊荣爱妹香月莺媛瑞凡佩璐娅琦晨妍茜秋"
    "珊莎锦黛青倩婉娴瑾颖露瑶怡婵雁蓓纨仪荷丹蓉眉君琴蕊薇菁梦岚苑婕馨瑗琰韵融园艺咏卿聪澜纯毓悦昭冰"
    "爽琬茗羽希宁欣飘育滢馥筠柔竹霭凝晓欢霄枫芸菲寒伊亚宜可姣影荔枝思丽秀娟英华慧巧美娜静淑惠珠翠雅"
    "国庆东方峰良海山仁波宁贵福生龙元全胜学祥才发武新利清飞彬富顺信子杰涛昌成康星光天达安岩中茂进有"
    "坚和彪博诚先敬震振壮会思群豪心邦承乐绍功松善厚庆磊民友裕河哲江超浩亮政谦亨奇固之轮翰朗伯宏言若"
    "鸣朋斌梁栋维启克伦翔旭鹏泽晨辰士以建家致树炎德行时泰盛雄琛钧冠策腾楠榕风航弘义兴良飞俊峰强军平"
    "保东文辉力明永健世广志义兴良海山仁波宁贵福生龙元全国胜学祥才发武新利清飞彬富顺信子杰涛昌成康星"
    "秀兰桂英玉兰桂兰秀珍凤英玉珍玉梅凤兰秀荣桂珍秀云桂荣秀梅丽娟婷婷欣怡梓涵诗涵梓萱子涵一诺依诺"
    "宇轩浩然浩宇子轩宇航皓轩子豪浩轩俊杰子墨雨泽梓轩博文晨阳"
    "冬春夏秋梅兰竹菊金银铁铭志勇刚毅坤乾红霞艳丽颖娇嘉琪璇瑜璐蕾薇蓉莹萌颜玥雯晗昊昕旻琨"
)
_GIVEN_SET = frozenset(_GIVEN)
_SURNAME_RE = "(?:" + "|".join(_COMPOUND_SURNAMES) + f"|[{_SURNAMES}])"
_GIVEN_RE = f"[{''.join(sorted(_GIVEN_SET))}]"

_FUNCTION_WORDS_TEXT = "The And Or Of In On At To For With From By Is Was Were Are Be Has Had Not"
_FUNCTION_WORDS = frozenset(_FUNCTION_WORDS_TEXT.split())
# common English given names (US Social Security top names across decades)
_FIRST_NAMES_TEXT = """
    James John Robert Michael William David Richard Joseph Thomas Charles Christopher Daniel
    Matthew Anthony Mark Donald Steven Paul Andrew Joshua Kenneth Kevin Brian George Timothy
    Ronald Edward Jason Jeffrey Ryan Jacob Gary Nicholas Eric Jonathan Stephen Larry Justin
    Scott Brandon Benjamin Samuel Gregory Alexander Frank Patrick Raymond Jack Dennis Jerry
    Tyler Aaron Jose Adam Nathan Henry Douglas Zachary Peter Kyle Ethan Walter Noah Jeremy
    Christian Keith Roger Terry Gerald Harold Sean Austin Carl Arthur Lawrence Dylan Jesse
    Jordan Bryan Billy Joe Bruce Gabriel Logan Albert Willie Alan Juan Wayne Elijah Randy Roy
    Vincent Ralph Eugene Russell Bobby Mason Philip Louis Travis Bradley Shawn Cody Todd Corey
    Derek Dustin Victor Marcus Luis Mary Patricia Jennifer Linda Elizabeth Barbara Susan Jessica
    Sarah Karen Lisa Nancy Betty Margaret Sandra Ashley Kimberly Emily Donna Michelle Carol
    Amanda Dorothy Melissa Deborah Stephanie Rebecca Sharon Laura Cynthia Kathleen Amy Angela
    Shirley Anna Brenda Pamela Emma Nicole Helen Samantha Katherine Christine Debra Rachel
    Carolyn Janet Catherine Maria Heather Diane Ruth Julie Olivia Joyce Virginia Victoria Kelly
    Lauren Christina Joan Evelyn Judith Megan Andrea Cheryl Hannah Jacqueline Martha Gloria
    Teresa Ann Sara Madison Frances Kathryn Janice Jean Abigail Alice Judy Sophia Grace Denise
    Amber Doris Marilyn Danielle Beverly Isabella Theresa Diana Natalie Brittany Charlotte Marie
    Kayla Alexis Lori Tiffany Tammy Crystal Erin Erica Courtney Kristen Allison Tara Monica
    Vanessa Molly Kristin Jamie Lindsay Casey Shannon Brittney Holly Dawn April Stacy Tracy
    Wendy Valerie Leslie Veronica Kristina Sheila Tina Lucas Connor Hunter Caleb Isaac Luke Owen
    Evan Isaiah Chase Cole Jared Blake Alex Trevor Devin Seth Garrett Jake Spencer Ian Chad
    Shane Brett Craig Joel Jeffery Troy Mitchell Curtis Lindsey Chelsea Whitney Brianna Taylor
    Morgan Sydney Destiny Jasmine Alyssa Kaitlyn Mackenzie Hailey Paige Chloe Ella Avery Mia
    Harper Aria Riley Zoe Lily Layla Nora Scarlett Ellie Leah Stella Hazel Aurora Savannah
    Audrey Brooklyn Bella Claire Skylar Lucy Anthony Liam Oliver Jackson Aiden Sebastian Carter
    Wyatt Jayden Grayson Levi Julian Mateo Lincoln Josiah Hudson Kimberly Kelsey Krista Kristy
    Brandy Misty Latoya Tonya Candace Felicia Robin Renee Regina Jill Carrie Kari Dana Monique
    Meghan Heidi Caroline Sabrina Melanie Natasha Yolanda Katie Rhonda Gina Stacey Marcia Lydia
    Calvin Francisco Manuel Jesus Antonio Ricardo Carlos Jorge Mario Miguel Edgar Javier Omar
    Alejandro Martin Ernest Phillip Johnny Howard Fred Jimmy Stanley Leonard Dale Earl Glenn
    Allen Clarence Jon Rodney Joshua Norman Melvin Lee Danny Micheal Tony Darren Derrick Brent
    Erik Clinton Ricky Andre Reginald Marc Kurt Max Rachael Maureen Colleen
"""
_FIRST_NAMES = frozenset(_FIRST_NAMES_TEXT.split())
_NOT_SURNAME_TEXT = """
    Syndrome Disease Disorder Hospital University Institute Center Centre College School Street
    Avenue Road Court Medical Clinic Foundation Laboratory Lab Department Program Project Study
    Cohort Group Trial Registry Consortium Database County City State Park River Lake Valley Bay
    Island Mountain Bridge Award Prize Scale Score Index Test Method Type Cell Cells Gene
    Protein Sign Phenomenon Anomaly Malformation Sequence Complex Reaction Criteria
    Classification The And Or Of In On At To For With From By Is Was Were Are Be Has Had Not
"""
_NOT_SURNAME = frozenset(_NOT_SURNAME_TEXT.split())
# words after two capitalised words that make them a term, not a person
_NOT_AFTER = frozenset(w for w in _NOT_SURNAME if w not in _FUNCTION_WORDS)
_CAP = r"(?:O'|Mc|Mac)?[A-Z][a-z]+(?:-[A-Z][a-z]+)?"
_STREET_SUFFIX = (
    "Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Place|Pl|Way|Terrace"
    "|Circle|Cir|Square|Sq|Parkway|Pkwy|Highway|Hwy|Trail|Trl|Alley|Crescent|Close|Row|Plaza"
)
_US_STATE_ZIP = r"[A-Z]{2} \d{5}(?:-\d{4})?"
_MONTHS = (
    "January|February|March|April|May|June|July|August|September|October|November|December"
    "|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec"
)
_DATE = (
    r"(?<!\d)(?:(?:19|20)\d{2}[-/.](?:1[0-2]|0?[1-9])[-/.](?:3[01]|[12]\d|0?[1-9])"
    r"|(?:19|20)\d{2}\s*年\s*(?:1[0-2]|0?[1-9])\s*月\s*(?:3[01]|[12]\d|0?[1-9])\s*[日号]"
    r"|(?:3[01]|[12]\d|0?[1-9])[/.-](?:1[0-2]|0?[1-9])[/.-](?:19|20)\d{2}"
    rf"|(?:{_MONTHS})\.? (?:3[01]|[12]\d|0?[1-9])(?:st|nd|rd|th)?,? (?:19|20)\d{{2}}"
    rf"|(?:3[01]|[12]\d|0?[1-9]) (?:{_MONTHS})\.?,? (?:19|20)\d{{2}})(?!\d)"
)

_NB = r"(?<![0-9A-Za-z])"  # no letter or digit before
_NA = r"(?![0-9A-Za-z])"  # no letter or digit after

DETECTORS: tuple[Detector, ...] = (
    Detector(
        Kind.ID_CARD,
        re.compile(
            _NB
            + r"[1-9]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx]"
            + _NA
        ),
        Level.PATTERNED,
        valid_id_card,
    ),
    Detector(
        Kind.EMAIL,
        re.compile(r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"),
        Level.PATTERNED,
    ),
    Detector(
        Kind.BANK_CARD,
        re.compile(
            r"(?<![\d-])(?:[1-6]\d{12,18}"
            r"|(?:50|5[6-8]|6\d)\d{10}|0604\d{8}"  # 12-digit Maestro
            r"|[1-6]\d{3}(?:[ -]\d{4}){2}[ -]\d{1,7}"
            r"|3[47]\d{2}[ -]\d{6}[ -]\d{5})(?![\d-])"
        ),
        Level.PATTERNED,
        _valid_card,
    ),
    Detector(
        Kind.PHONE,
        re.compile(
            # PRC mobile, with or without +86
            r"(?<![\d+])(?:(?:\+|00)?86[ -]?)?1[3-9]\d[ -]?\d{4}[ -]?\d{4}(?!\d)"
            # PRC landline with its area code: 010-12345678, (0755) 1234567
            r"|(?<!\d)(?:\+86[ -]?)?\(?0\d{2,3}\)?[ -]\d{7,8}(?:-\d{1,5})?(?!\d)"
            # North American: (555) 555-5555, 555-555-5555, 555.555.5555, +1-..., 001-..., x123
            r"|(?<![\d+])(?:(?:\+1|001)[ -.]?)?(?:\(\d{3}\) ?|\d{3}[-.])\d{3}[-.]\d{4}"
            r"(?: ?x\d{1,5})?(?!\d)"
            # other international forms: +CC then groups
            r"|(?<![\d+])\+\d{1,3}(?:[ -]\(?\d{1,6}\)?){1,5}(?!\d)"
            # ten digits written together (North American)
            r"|(?<![\d+.-])\d{10}(?![\d.-])"
        ),
        Level.PATTERNED,
        _phone_digits,
    ),
    Detector(
        Kind.PASSPORT,
        re.compile(
            r"(?:passport|护照)(?:\s*(?:no\.?|number|num\.?|#|号码|号))?\s*(?:is\s*)?[:：]?\s*"
            r"([A-Z]{0,2}\d{6,9})" + _NA + r"|" + _NB + r"(E[A-HJ-NP-Z]\d{7}|[EG]\d{8})" + _NA,
            re.IGNORECASE,
        ),
        Level.FULL,
    ),
    Detector(
        Kind.BIRTH_DATE,
        re.compile(
            r"(?:born(?:\s+on)?|date\s+of\s+birth|d\.?o\.?b\.?|birth\s*date|birthday"
            r"|出生日期|出生于|出生|生日|生于)\s*(?:is\s*)?[:：,，]?\s*(" + _DATE + ")",
            re.IGNORECASE,
        ),
        Level.FULL,
        group=1,
    ),
    Detector(
        Kind.ADDRESS,
        re.compile(
            # Chinese: province / city / county / district, a street, a house or building number
            rf"(?:(?:住址|地址|家住|住在|现住|居住于|居住在|住|位于)[:：]?\s*)?"
            rf"((?:[{_HAN}]{{2,8}}?(?:省|自治区|特别行政区))?[{_HAN}]{{1,10}}?(?:市|县|区|州|盟|旗)"
            rf"[{_HAN}0-9]{{0,14}}?(?:路|街|道|巷|弄|胡同|大街|村|镇)"
            rf"[{_HAN}A-Za-z0-9-]{{0,12}}?[A-Za-z0-9]{{1,6}}(?:号|座|栋|幢|单元|室|楼)"
            r"(?:\s*\d{6})?)"
            # US: number, street words, a suffix or a unit, then (optionally) City, ST ZIP
            rf"|\b\d{{1,6}}(?: {_CAP}){{1,3}} (?:{_STREET_SUFFIX})\b\.?"
            rf"(?: (?:Apt\.|Suite) \d{{1,5}})?(?:,? ?\n?(?:{_CAP} ){{0,2}}{_CAP}, {_US_STATE_ZIP})?"
            rf"|\b\d{{1,6}}(?: {_CAP}){{1,4}}(?: (?:Apt\.|Suite) \d{{1,5}})?,? ?\n?"
            rf"(?:{_CAP} ){{0,2}}{_CAP}, {_US_STATE_ZIP}\b"
            r"|\b(?:USNS|USNV|USS|USCGC) [A-Z][a-z]+,? ?\n?FPO A[AEP] \d{5}\b"
            r"|\b(?:PSC|Unit) \d{4},? Box \d{4},? ?\n?[AD]PO A[AEP] \d{5}\b"
        ),
        Level.FULL,
    ),
    Detector(
        Kind.NAME,
        re.compile(
            # English: a title, or a context word, then one or two capitalised words
            rf"\b(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof)\.? ({_CAP}(?: {_CAP})?)"
            rf"|\b(?:[Pp]atient|[Nn]amed|[Nn]ame:|[Pp]roband|[Cc]alled|mother|father|sister|brother"
            rf"|husband|wife|son|daughter|guardian|contact),? "
            rf"({_CAP} {_CAP})"
            # English: a common given name and a capitalised surname
            rf"|\b(?P<given>[A-Z][a-z]+ (?:[A-Z]\. )?{_CAP})\b"
            # Chinese: a context word, then surname and given name
            rf"|(?:患者|病人|姓名|受检者|先证者|联系人|父亲|母亲|丈夫|妻子|儿子|女儿|医生|医师|护士)"
            rf"\s*[:：]?\s*({_SURNAME_RE}{_GIVEN_RE}{_GIVEN_RE}?"
            rf"|{_SURNAME_RE}[{_HAN}]{{1,2}}?(?=[^{_HAN}]|$|[，。、男女系之的在于是，]))"
            # Chinese: surname and given name, then what a person does in a record
            rf"|({_SURNAME_RE}{_GIVEN_RE}{_GIVEN_RE}?)(?=负责|随访|签字|签名|陈述|代诉|同意|拒绝|主诉|"
            rf"表示|提供|填写|报告|介绍|送检)"
            # Chinese: surname and given name, then an honorific
            rf"|({_SURNAME_RE}[{_HAN}]{{1,2}}?)(?=先生|女士|小姐|医生|教授|大夫|主任|同志|老师)"
            # Chinese without context: surname and one or two common given-name characters,
            # standing alone (not inside a longer run of Chinese)
            rf"|(?<![{_HAN}])({_SURNAME_RE}{_GIVEN_RE}{_GIVEN_RE}?)(?![{_HAN}])"
        ),
        Level.FULL,
    ),
)


_NAMES = next(d.pattern for d in DETECTORS if d.kind is Kind.NAME)


def _name_match(match: re.Match[str]) -> tuple[int, int, str] | None:
    for group in range(1, (match.re.groups or 0) + 1):
        value = match.group(group)
        if value is not None and match.re is not _NAMES:
            return match.start(group), match.end(group), value
        if value is not None:
            words = value.split(" ")
            after = match.string[match.end(group) : match.end(group) + 20].split()
            if words[-1] in _NOT_SURNAME or (
                after and after[0].strip(",.;:").title() in _NOT_AFTER
            ):
                return None
            if match.re.groupindex.get("given") == group and words[0] not in _FIRST_NAMES:
                return None
            return match.start(group), match.end(group), value
    if match.re is not _NAMES:
        return match.start(), match.end(), match.group(0)
    return None


def _grouped(detector: Detector, text: str) -> list[Finding]:
    found = []
    for match in detector.pattern.finditer(text):
        place = _name_match(match)
        if place is None:
            continue
        start, end, value = place
        if detector.valid is not None and not detector.valid(value):
            continue
        found.append(Finding(detector.kind, start, end, value))
    return found


_DIGITS_OR_AT = re.compile(r"\d{7}|@|\d[ -.]\d{3}")
# text none of the detectors can match (most free text of a submission): skipped at once
_PROBABLY_CLEAN = re.compile(
    rf"\d{{5}}|\d[ -.)]+\d{{3}}|@|[{_HAN}]|[A-Z][a-z]+ [A-Z]|\+\d"
    r"|\b(?:Mr|Mrs|Ms|Dr|Prof|Miss|Mx)\b|(?i:born|birth|dob|d\.o\.b|passport)"
)


def prefilter(level: Level) -> Callable[[str], re.Match[str] | None]:
    """One precompiled search that finds nothing in a text no detector of `level` can match."""
    return (_PROBABLY_CLEAN if level is Level.FULL else _DIGITS_OR_AT).search


def scan(text: str, level: Level = Level.FULL) -> list[Finding]:
    """The identifiers in `text`, by position; overlapping findings keep the more certain."""
    if prefilter(level)(text) is None:
        return []
    findings: list[Finding] = []
    for detector in DETECTORS:
        if detector.level > level:
            continue
        found = (
            _grouped(detector, text)
            if detector.kind in (Kind.NAME, Kind.PASSPORT, Kind.ADDRESS)
            else detector.find(text)
        )
        for finding in found:
            if not any(f.start < finding.end and finding.start < f.end for f in findings):
                findings.append(finding)
    findings.sort(key=lambda f: f.start)
    return findings


# -- masking and treatments -------------------------------------------------------------------

_KEEP = frozenset(" -@.()+:/\n")


def mask_value(value: str) -> str:
    """`value` with every character except separators replaced by an asterisk."""
    return "".join(c if c in _KEEP else "*" for c in value)


def _replace(text: str, findings: Sequence[Finding], make: Callable[[Finding], str]) -> str:
    out = []
    last = 0
    for finding in findings:
        out.append(text[last : finding.start])
        out.append(make(finding))
        last = finding.end
    out.append(text[last:])
    return "".join(out)


def mask_text(text: str, findings: Sequence[Finding]) -> str:
    """`text` with each finding masked."""
    return _replace(text, findings, lambda f: mask_value(f.value))


def report_excerpt(
    text: str, findings: Sequence[Finding], finding: Finding, width: int = 40
) -> str:
    """Where `finding` is in `text`, every identifier of the text masked: a window of `width`
    characters either side, for a report."""
    masked = mask_text(text, findings)
    shift = sum(len(mask_value(f.value)) - len(f.value) for f in findings if f.end <= finding.start)
    start = max(0, finding.start + shift - width)
    end = min(len(masked), finding.start + shift + len(mask_value(finding.value)) + width)
    return ("…" if start else "") + masked[start:end] + ("…" if end < len(masked) else "")


def normalise(finding: Finding) -> str:
    """The identifier's value in one canonical form (what a pseudonym is made of)."""
    if finding.kind is Kind.PHONE:
        digits = re.sub(r"\D", "", finding.value.split("x")[0])
        for prefix in ("0086", "86"):  # a PRC number with and without its country code
            if digits.startswith(prefix) and len(digits) - len(prefix) in (10, 11):
                return digits[len(prefix) :]
        return digits
    if finding.kind in (Kind.ID_CARD, Kind.BANK_CARD):
        return re.sub(r"[^0-9Xx]", "", finding.value).upper()
    if finding.kind in (Kind.EMAIL, Kind.NAME, Kind.PASSPORT):
        return " ".join(finding.value.split()).casefold()
    return finding.value


def pseudonym(finding: Finding, key: bytes) -> str:
    """The keyed pseudonym of a finding: its kind and 16 hex digits of HMAC-SHA256."""
    digest = hmac.new(key, f"{finding.kind}:{normalise(finding)}".encode(), hashlib.sha256)
    return f"[{finding.kind}:{digest.hexdigest()[:16]}]"


_YEAR_MONTH = re.compile(r"((?:19|20)\d{2})\D{1,3}(0?[1-9]|1[0-2])\D")
_DMY = re.compile(r"(?:3[01]|[12]\d|0?[1-9])[/.-](0?[1-9]|1[0-2])[/.-]((?:19|20)\d{2})")
_YEAR = re.compile(r"(?:19|20)\d{2}")
_CITY_ZH = re.compile(
    rf"^(?:[{_HAN}]{{2,8}}?(?:省|自治区|特别行政区))?[{_HAN}]{{1,10}}?(?:市|县|州|盟)"
)
_CITY_US = re.compile(rf"((?:{_CAP} ){{0,2}}{_CAP}, [A-Z]{{2}}) \d{{5}}")


def generalise(finding: Finding) -> str:
    """A date of birth as year-month (year when the month is unclear), an address as its city
    (or province); any other identifier masked."""
    value = finding.value
    if finding.kind is Kind.BIRTH_DATE:
        dmy = _DMY.fullmatch(value)
        if dmy:
            return f"{dmy.group(2)}-{int(dmy.group(1)):02d}"
        ym = _YEAR_MONTH.match(value + " ")
        if ym:
            return f"{ym.group(1)}-{int(ym.group(2)):02d}"
        year = _YEAR.search(value)
        return year.group(0) if year else mask_value(value)
    if finding.kind is Kind.ADDRESS:
        city = _CITY_ZH.match(value) or _CITY_US.search(value)
        if city:
            return city.group((city.re.groups and 1) or 0)
        return mask_value(value)
    return mask_value(value)


def treat(text: str, treatment: Treatment, *, level: Level, key: bytes | None = None) -> str:
    """`text` after `treatment`: "" for drop, else each identifier found replaced. A keyed
    pseudonym needs the node's `key`."""
    if treatment is Treatment.DROP:
        return ""
    findings = scan(text, level)
    if not findings:
        return text
    if treatment is Treatment.MASK:
        return mask_text(text, findings)
    if treatment is Treatment.GENERALISE:
        return _replace(text, findings, generalise)
    if key is None:
        raise ValueError("a keyed pseudonym needs the node's key")
    return _replace(text, findings, lambda f: pseudonym(f, key))
