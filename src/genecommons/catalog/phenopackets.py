"""GA4GH Phenopackets v2: read and check a submitted phenopacket, or build one from sheet rows.

`read_phenopacket` parses a Phenopacket v2 JSON document with the official protobuf schema (the
`phenopackets` package; `google.protobuf.json_format` refuses unknown fields and wrong types), then
checks what the schema cannot: identifiers, vocabularies and ISO 8601 durations. It never raises
on bad input; every problem comes back as a located `Problem` (file = the source, column = the
JSON path, e.g. ``phenotypicFeatures[3].type.id``, list indexes counted from 0).

Rules (errors unless marked):

- ``phenopacket.json``: the text is not JSON (located by line); a key repeated in one object
- ``phenopacket.schema``: not a Phenopacket v2 message (unknown field, wrong type, bad enum ...)
- ``phenopacket.id``: no ``id``
- ``phenopacket.subject``: no ``subject`` or no ``subject.id``
- ``phenopacket.feature`` / ``phenopacket.disease``: a feature without ``type.id``, a disease
  without ``term.id``
- ``phenopacket.duration``: an ``iso8601duration`` that is not an ISO 8601 duration
- ``phenopacket.metadata`` (warning): no ``metaData``
- ``vocabulary.hpo``: a feature id that is not a known HPO term (with suggestions)
- ``vocabulary.hpo.obsolete`` (warning): an obsolete HPO term, naming its replacement; the
  document keeps the term as written
- ``vocabulary.hpo.label`` / ``vocabulary.disease.label`` (warnings): a label that differs from
  the ontology's
- ``vocabulary.hpo.form`` / ``vocabulary.disease.form`` (warnings): an id written in a
  non-canonical form (``hp_0001250``)
- ``vocabulary.disease``: a disease id that is not a well-formed MONDO, OMIM or ORPHA id or a
  known ICD-10 code

`phenopacket_from_rows` builds the document for an individual whose phenotypes came as sheet rows.
"""

from __future__ import annotations

import difflib
import functools
import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from google.protobuf import json_format, message_factory
from phenopackets.schema.v2 import Phenopacket

from genecommons import bounded, clock
from genecommons.catalog.models import Phenotype, PhenotypeKind, Sex
from genecommons.catalog.report import Problem, Severity
from genecommons.catalog.vocabularies import Term, disease_term, hpo
from genecommons.errors import NestingTooDeepError

__all__ = [
    "SCHEMA_VERSION",
    "PhenopacketResult",
    "age_to_years",
    "phenopacket_from_rows",
    "read_phenopacket",
    "years_to_duration",
]

SCHEMA_VERSION = "2.0"
ROOT = "$"  # the JSON path of the whole document
_MAX_SCHEMA_PROBLEMS = 50
_VALUE_CHARS = 200
_AGE_TYPE = "org.phenopackets.schema.v2.core.Age"

# Errors that protobuf's JSON parser raises for input it refuses.
_PARSE_ERRORS = (
    json_format.ParseError,
    TypeError,
    ValueError,
    AttributeError,
    KeyError,
    IndexError,
    RecursionError,
)

_DURATION = re.compile(
    r"P(?!$)"
    r"(?:(?P<Y>\d+(?:[.,]\d+)?)Y)?"
    r"(?:(?P<M>\d+(?:[.,]\d+)?)M)?"
    r"(?:(?P<W>\d+(?:[.,]\d+)?)W)?"
    r"(?:(?P<D>\d+(?:[.,]\d+)?)D)?"
    r"(?:T(?!$)"
    r"(?:(?P<h>\d+(?:[.,]\d+)?)H)?"
    r"(?:(?P<m>\d+(?:[.,]\d+)?)M)?"
    r"(?:(?P<s>\d+(?:[.,]\d+)?)S)?)?"
)
_YEARS_PER_UNIT = {
    "Y": 1.0,
    "M": 1 / 12,
    "W": 7 / 365.25,
    "D": 1 / 365.25,
    "h": 1 / (365.25 * 24),
    "m": 1 / (365.25 * 24 * 60),
    "s": 1 / (365.25 * 24 * 3600),
}

_SEX_FROM_PACKET = {
    "UNKNOWN_SEX": Sex.UNKNOWN,
    "FEMALE": Sex.FEMALE,
    "MALE": Sex.MALE,
    "OTHER_SEX": Sex.OTHER,
}
_SEX_TO_PACKET = {sex.value: name for name, sex in _SEX_FROM_PACKET.items()}

# Resources (metaData.resources) for the prefixes that `phenopacket_from_rows` writes.
_RESOURCES: Mapping[str, Mapping[str, str]] = {
    "HP": {
        "id": "hp",
        "name": "human phenotype ontology",
        "url": "http://purl.obolibrary.org/obo/hp.owl",
        "namespacePrefix": "HP",
        "iriPrefix": "http://purl.obolibrary.org/obo/HP_",
    },
    "ICD10": {
        "id": "icd10",
        "name": "International Statistical Classification of Diseases and Related Health "
        "Problems 10th Revision",
        "url": "https://icd.who.int/browse10/2019/en",
        "version": "2019",
        "namespacePrefix": "ICD10",
        "iriPrefix": "https://icd.who.int/browse10/2019/en#/",
    },
    "MONDO": {
        "id": "mondo",
        "name": "Mondo Disease Ontology",
        "url": "http://purl.obolibrary.org/obo/mondo.obo",
        "namespacePrefix": "MONDO",
        "iriPrefix": "http://purl.obolibrary.org/obo/MONDO_",
    },
    "OMIM": {
        "id": "omim",
        "name": "Online Mendelian Inheritance in Man",
        "url": "https://www.omim.org",
        "namespacePrefix": "OMIM",
        "iriPrefix": "https://omim.org/entry/",
    },
    "ORPHA": {
        "id": "ordo",
        "name": "Orphanet Rare Disease Ontology",
        "url": "http://www.orphadata.org/data/ORDO/ordo_orphanet.owl",
        "namespacePrefix": "ORPHA",
        "iriPrefix": "http://www.orpha.net/ORDO/Orphanet_",
    },
    "LOINC": {
        "id": "loinc",
        "name": "Logical Observation Identifiers Names and Codes",
        "url": "https://loinc.org",
        "namespacePrefix": "LOINC",
        "iriPrefix": "https://loinc.org/",
    },
    "UCUM": {
        "id": "ucum",
        "name": "Unified Code for Units of Measure",
        "url": "https://ucum.org",
        "namespacePrefix": "UCUM",
        "iriPrefix": "https://ucum.org/ucum#",
    },
}


@dataclass(frozen=True, slots=True)
class PhenopacketResult:
    """What `read_phenopacket` made of a document."""

    document: dict[str, Any] | None  # canonical camelCase JSON; None if it could not be parsed
    problems: list[Problem] = field(default_factory=list)
    features: list[tuple[str, bool]] = field(default_factory=list)  # (HPO id, excluded)
    diseases: list[tuple[str, bool]] = field(default_factory=list)  # (disease id, excluded)
    subject_id: str | None = None
    sex: Sex = Sex.UNKNOWN
    age_years: float | None = None  # from subject.timeAtLastEncounter.age

    @property
    def errors(self) -> list[Problem]:
        """The problems that refuse the document."""
        return [p for p in self.problems if p.severity is Severity.ERROR]

    @property
    def warnings(self) -> list[Problem]:
        """The problems that are only reported."""
        return [p for p in self.problems if p.severity is Severity.WARNING]

    @property
    def ok(self) -> bool:
        """Whether the document was parsed and has no errors."""
        return self.document is not None and not self.errors


# --------------------------------------------------------------------------------------------
# Durations
# --------------------------------------------------------------------------------------------


def age_to_years(duration: str) -> float | None:
    """The ISO 8601 duration `duration` ("P6Y3M", "P2W", "PT36H") in years; None if malformed.

    Months are 1/12 year and days 1/365.25 year.
    """
    match = _DURATION.fullmatch(duration)
    if match is None:
        return None
    years = 0.0
    for unit, per in _YEARS_PER_UNIT.items():
        amount = match.group(unit)
        if amount is not None:
            years += float(amount.replace(",", ".")) * per
    return years if math.isfinite(years) else None


def years_to_duration(years: float) -> str:
    """An ISO 8601 duration for an age in `years`: whole years, months, then days ("P6Y6M")."""
    if not math.isfinite(years) or years < 0:
        raise ValueError(f"an age in years must be finite and not negative: {years!r}")
    total_months = years * 12
    months = math.floor(total_months + 1e-9)
    days = round((total_months - months) * 365.25 / 12)
    if days >= 30:  # rounds up to a whole month
        months, days = months + 1, 0
    whole_years, months = divmod(months, 12)
    parts = [(whole_years, "Y"), (months, "M"), (days, "D")]
    text = "".join(f"{n}{unit}" for n, unit in parts if n)
    return f"P{text or '0D'}"


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def _short(value: Any) -> str:
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


def _join(path: str, key: str) -> str:
    """The JSON path of `key` inside `path`: `subject.id`, or `subject["odd key"]`."""
    if _PLAIN_KEY.fullmatch(key):
        return key if path in ("", ROOT) else f"{path}.{key}"
    return f"{path or ROOT}[{json.dumps(key, ensure_ascii=False)}]"


class _Reader:
    """Collects the problems of one document."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[Problem] = []

    def add(
        self,
        rule: str,
        message: str,
        message_zh: str,
        *,
        column: str,
        value: Any = None,
        suggestion: str | None = None,
        row: int | None = None,
        warning: bool = False,
    ) -> None:
        self.problems.append(
            Problem(
                rule=rule,
                message=message,
                message_zh=message_zh,
                file=self.source,
                row=row,
                column=column,
                value=None if value is None else _short(value),
                suggestion=suggestion,
                severity=Severity.WARNING if warning else Severity.ERROR,
            )
        )

    # --- JSON ----------------------------------------------------------------------------

    def load(self, document: str | bytes | Mapping[str, Any]) -> Any:
        """The document as plain JSON data; None (with a problem) if it is not JSON."""
        if isinstance(document, Mapping):
            try:
                # a JSON round trip: plain dicts and lists, and anything not JSON is refused
                text = json.dumps(document, allow_nan=False)
            except (TypeError, ValueError, RecursionError) as error:
                self.add(
                    "phenopacket.json",
                    f"The phenopacket is not JSON data: {error}.",
                    f"表型包不是 JSON 数据：{error}。",
                    column=ROOT,
                    suggestion="Give a JSON object / 请提供 JSON 对象",
                )
                return None
        elif isinstance(document, bytes):
            try:
                text = document.decode("utf-8-sig")
            except UnicodeDecodeError as error:
                self.add(
                    "phenopacket.json",
                    f"The phenopacket is not UTF-8 text (byte {error.start}).",
                    f"表型包不是 UTF-8 文本（第 {error.start} 字节）。",
                    column=ROOT,
                    suggestion="Save the file as UTF-8 / 请以 UTF-8 编码保存文件",
                )
                return None
        else:
            text = document.removeprefix("\ufeff")
        duplicates: list[tuple[dict[str, Any], str]] = []

        def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
            obj: dict[str, Any] = {}
            for key, value in items:
                if key in obj:
                    duplicates.append((obj, key))
                obj[key] = value
            return obj

        try:
            data = bounded.loads_json(
                text,
                place="The phenopacket",
                object_pairs_hook=pairs,
                parse_constant=_refuse_constant,
            )
        except _NotJsonError as error:
            self.add(
                "phenopacket.json",
                f"{error.args[0]} is not a JSON value.",
                f"{error.args[0]} 不是 JSON 值。",
                column=ROOT,
                value=error.args[0],
                suggestion="Write a number, or leave the value out / 请写数字，或省略该值",
            )
            return None
        except json.JSONDecodeError as error:
            self.add(
                "phenopacket.json",
                f"The phenopacket is not valid JSON: {error.msg} "
                f"(line {error.lineno}, character {error.colno}).",
                f"表型包不是有效的 JSON：{error.msg}（第 {error.lineno} 行，第 {error.colno} 个字符）。",
                column=ROOT,
                row=error.lineno,
                value=text[max(error.pos - 20, 0) : error.pos + 20],
                suggestion="Check the JSON with a validator / 请用 JSON 校验工具检查",
            )
            return None
        except NestingTooDeepError as error:
            self.add(
                "phenopacket.json",
                error.message,
                error.message_zh,
                column=ROOT,
                suggestion=f"Nest at most {bounded.MAX_NESTING} levels / "
                f"嵌套不超过 {bounded.MAX_NESTING} 层",
            )
            return None
        if duplicates:
            paths = {id(obj): path for path, obj in _objects(data, ROOT)}
            for obj, key in duplicates:
                self.add(
                    "phenopacket.json",
                    f"The key {key!r} appears more than once in one object.",
                    f"同一对象中键 {key!r} 出现了多次。",
                    column=_join(paths.get(id(obj), ROOT), key),
                    value=key,
                    suggestion="Keep one of them / 只保留一个",
                )
        return data

    # --- schema --------------------------------------------------------------------------

    def parse(self, data: Any) -> Any:
        """The Phenopacket message for `data`; None (with located problems) if it does not fit."""
        if not isinstance(data, dict):
            self.add(
                "phenopacket.schema",
                f"A phenopacket is a JSON object, not {_json_kind(data)}.",
                f"表型包应为 JSON 对象，而不是{_json_kind_zh(data)}。",
                column=ROOT,
                value=data,
                suggestion='Give an object: {"id": …, "subject": {…}, …} / 请提供 JSON 对象',
            )
            return None
        packet = Phenopacket()
        try:
            json_format.ParseDict(data, packet)
        except _PARSE_ERRORS:
            found: list[tuple[str, str, Any, str | None]] = []
            _locate(data, Phenopacket, ROOT, found)
            if not found:  # protobuf refused the whole but no part of it: name the whole
                found.append((ROOT, "the document does not parse as a phenopacket.", None, None))
            for path, detail, value, suggestion in found:
                self.add(
                    "phenopacket.schema",
                    f"Not valid under the Phenopackets v2 schema: {detail}",
                    f"不符合 Phenopackets v2 模式：{detail}",
                    column=path,
                    value=value,
                    suggestion=suggestion,
                )
            return None
        return packet

    # --- content -------------------------------------------------------------------------

    def check(self, packet: Any) -> PhenopacketResult:
        """Check what the schema does not, and gather the convenience fields."""
        if not packet.id:
            self.add(
                "phenopacket.id",
                "The phenopacket has no id.",
                "表型包缺少 id。",
                column="id",
                suggestion="Give the phenopacket an id / 请为表型包提供 id",
            )
        subject_id: str | None = None
        sex = Sex.UNKNOWN
        age_years: float | None = None
        if not packet.HasField("subject"):
            self.add(
                "phenopacket.subject",
                "The phenopacket has no subject.",
                "表型包缺少 subject（个体）。",
                column="subject",
                suggestion='Add "subject": {"id": …} / 请添加 subject',
            )
        else:
            subject = packet.subject
            subject_id = subject.id or None
            if subject_id is None:
                self.add(
                    "phenopacket.subject",
                    "The subject of the phenopacket has no id.",
                    "表型包的 subject 缺少 id。",
                    column="subject.id",
                    suggestion="Give the subject an id / 请为 subject 提供 id",
                )
            sex_values = subject.DESCRIPTOR.fields_by_name["sex"].enum_type.values_by_number
            sex_value = sex_values.get(subject.sex)
            sex = _SEX_FROM_PACKET.get("" if sex_value is None else sex_value.name, Sex.UNKNOWN)
            time = subject.time_at_last_encounter
            if time.HasField("age"):
                age_years = age_to_years(time.age.iso8601duration)
        self._check_durations(packet, "")
        features = self._check_features(packet)
        diseases = self._check_diseases(packet)
        if not packet.HasField("meta_data"):
            self.add(
                "phenopacket.metadata",
                "The phenopacket has no metaData (who created it, which ontology versions).",
                "表型包缺少 metaData（创建者及所用本体版本）。",
                column="metaData",
                suggestion="Add metaData with created, createdBy, resources and "
                "phenopacketSchemaVersion / 请添加 metaData",
                warning=True,
            )
        return PhenopacketResult(
            document=json_format.MessageToDict(packet),
            problems=self.problems,
            features=features,
            diseases=diseases,
            subject_id=subject_id,
            sex=sex,
            age_years=age_years,
        )

    def _check_durations(self, message: Any, path: str) -> None:
        for descriptor, value in message.ListFields():
            if descriptor.message_type is None:
                continue
            type_name = descriptor.message_type.full_name
            if type_name.startswith("google.protobuf.") or _is_map(descriptor):
                continue
            sub = _join(path, descriptor.json_name)
            items = enumerate(value) if descriptor.is_repeated else [(None, value)]
            for index, item in items:
                where = sub if index is None else f"{sub}[{index}]"
                if type_name == _AGE_TYPE:
                    self._check_age(item.iso8601duration, f"{where}.iso8601duration")
                else:
                    self._check_durations(item, where)

    def _check_age(self, duration: str, path: str) -> None:
        if age_to_years(duration) is None:
            self.add(
                "phenopacket.duration",
                "An age must be an ISO 8601 duration such as P6Y3M, P2W or P10D.",
                "年龄应为 ISO 8601 时长，例如 P6Y3M、P2W 或 P10D。",
                column=path,
                value=duration,
                suggestion="Write it as P<years>Y<months>M<days>D / 请写作 P<年>Y<月>M<日>D",
            )

    def _check_features(self, packet: Any) -> list[tuple[str, bool]]:
        features: list[tuple[str, bool]] = []
        for i, feature in enumerate(packet.phenotypic_features):
            path = f"phenotypicFeatures[{i}].type"
            written = feature.type.id
            if not written:
                self.add(
                    "phenopacket.feature",
                    "The phenotypic feature has no HPO term id.",
                    "表型特征缺少 HPO 术语编号。",
                    column=f"{path}.id",
                    suggestion="Give type.id, e.g. HP:0001250 / 请提供 type.id，例如 HP:0001250",
                )
                continue
            term = _hpo_lookup(written)
            features.append((written if term is None else term.id, feature.excluded))
            if term is None:
                hints = _hpo_suggest(feature.type.label or written)
                self.add(
                    "vocabulary.hpo",
                    "The feature's id is not a known HPO term.",
                    "该表型特征的编号不是已知的 HPO 术语。",
                    column=f"{path}.id",
                    value=written,
                    suggestion=_did_you_mean(hints),
                )
                continue
            if term.id != written:
                self.add(
                    "vocabulary.hpo.form",
                    f"HPO ids are written {term.id}.",
                    f"HPO 编号应写作 {term.id}。",
                    column=f"{path}.id",
                    value=written,
                    suggestion=term.id,
                    warning=True,
                )
            if term.obsolete:
                replacement = _hpo_lookup(term.replaced_by) if term.replaced_by else None
                named = (
                    f"{replacement.id} ({replacement.label})"
                    if replacement is not None
                    else term.replaced_by
                )
                self.add(
                    "vocabulary.hpo.obsolete",
                    f"HPO term {term.id} is obsolete"
                    + (f"; it was replaced by {named}." if named else "."),
                    f"HPO 术语 {term.id} 已废弃" + (f"，已由 {named} 取代。" if named else "。"),
                    column=f"{path}.id",
                    value=written,
                    suggestion=named,
                    warning=True,
                )
            elif feature.type.label and _fold(feature.type.label) != _fold(term.label):
                self.add(
                    "vocabulary.hpo.label",
                    f"The label differs from the HPO label of {term.id}, {term.label!r}.",
                    f"标签与 {term.id} 的 HPO 标签 {term.label!r} 不一致。",
                    column=f"{path}.label",
                    value=feature.type.label,
                    suggestion=term.label,
                    warning=True,
                )
        return features

    def _check_diseases(self, packet: Any) -> list[tuple[str, bool]]:
        diseases: list[tuple[str, bool]] = []
        for i, disease in enumerate(packet.diseases):
            path = f"diseases[{i}].term"
            written = disease.term.id
            if not written:
                self.add(
                    "phenopacket.disease",
                    "The disease has no term id.",
                    "疾病缺少术语编号。",
                    column=f"{path}.id",
                    suggestion="Give term.id, e.g. OMIM:614959, MONDO:0005148 or ICD10:E11.9 / "
                    "请提供 term.id",
                )
                continue
            term = _disease_lookup(written)
            diseases.append((written if term is None else term.id, disease.excluded))
            if term is None:
                self.add(
                    "vocabulary.disease",
                    "The disease id is not a MONDO, OMIM or ORPHA id or a known ICD-10 code.",
                    "疾病编号不是 MONDO、OMIM、ORPHA 编号，也不是已知的 ICD-10 编码。",
                    column=f"{path}.id",
                    value=written,
                    suggestion="Write e.g. MONDO:0005148, OMIM:614959, ORPHA:558 or ICD10:E11.9 / "
                    "请写作 MONDO:0005148、OMIM:614959、ORPHA:558 或 ICD10:E11.9",
                )
                continue
            if term.id != written:
                self.add(
                    "vocabulary.disease.form",
                    f"This disease id is written {term.id}.",
                    f"该疾病编号应写作 {term.id}。",
                    column=f"{path}.id",
                    value=written,
                    suggestion=term.id,
                    warning=True,
                )
            # MONDO, OMIM and ORPHA are checked by form only: their label is the id itself
            known_label = term.label != term.id
            if (
                known_label
                and disease.term.label
                and _fold(disease.term.label) != _fold(term.label)
            ):
                self.add(
                    "vocabulary.disease.label",
                    f"The label differs from the label of {term.id}, {term.label!r}.",
                    f"标签与 {term.id} 的标签 {term.label!r} 不一致。",
                    column=f"{path}.label",
                    value=disease.term.label,
                    suggestion=term.label,
                    warning=True,
                )
        return diseases


class _NotJsonError(ValueError):
    """NaN or Infinity in JSON text (Python's reader accepts them; JSON does not)."""


def _refuse_constant(name: str) -> Any:
    raise _NotJsonError(name)


def _fold(text: str) -> str:
    return " ".join(text.casefold().split())


@functools.lru_cache(maxsize=65536)
def _hpo_lookup(value: str) -> Term | None:
    return hpo().lookup(value)


@functools.lru_cache(maxsize=4096)
def _hpo_suggest(value: str) -> tuple[Term, ...]:
    return tuple(hpo().suggest(value, limit=3))


@functools.lru_cache(maxsize=16384)
def _disease_lookup(value: str) -> Term | None:
    return disease_term(value)


def _did_you_mean(terms: Sequence[Term]) -> str | None:
    if not terms:
        return None
    return "; ".join(f"{t.id} ({t.label})" for t in terms)


def _is_map(descriptor: Any) -> bool:
    message_type = descriptor.message_type
    return message_type is not None and bool(message_type.GetOptions().map_entry)


def _objects(data: Any, path: str) -> Iterator[tuple[str, Any]]:
    """Every JSON object in `data` with its path."""
    if isinstance(data, dict):
        yield path, data
        for key, value in data.items():
            yield from _objects(value, _join(path, key))
    elif isinstance(data, list):
        for index, item in enumerate(data):
            yield from _objects(item, f"{path}[{index}]")


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "null"


def _json_kind_zh(value: Any) -> str:
    return {
        "an array": "数组",
        "a string": "字符串",
        "a boolean": "布尔值",
        "a number": "数字",
        "null": " null",
    }[_json_kind(value)]


def _refusal(data: Any, cls: Any) -> str | None:
    """Why protobuf refuses `data` as a `cls` message, or None if it accepts it."""
    try:
        json_format.ParseDict(data, cls())
    except _PARSE_ERRORS as error:
        return str(error) or type(error).__name__
    return None


def _locate(data: Any, cls: Any, path: str, found: list[tuple[str, str, Any, str | None]]) -> None:
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
        where = _join(path, key)
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
        if spec.message_type is None or _is_map(spec) or value is None:
            leaf = _refusal({key: value}, cls)
            if leaf is not None:
                found.append((where, leaf, value, None))
            continue
        sub = message_factory.GetMessageClass(spec.message_type)
        if spec.is_repeated and isinstance(value, list):
            for index, item in enumerate(value):
                _locate(item, sub, f"{where}[{index}]", found)
        elif spec.is_repeated:
            found.append((where, f"{key} must be a JSON array.", value, None))
        else:
            _locate(value, sub, where, found)
    if len(found) == before:
        found.append((path, reason, data, None))


def read_phenopacket(
    document: str | bytes | Mapping[str, Any], *, source: str
) -> PhenopacketResult:
    """Parse and check a Phenopacket v2 JSON document (text, UTF-8 bytes or parsed JSON).

    `source` names the document in problems (a file name, or ``file:phenopackets[2]``). Never
    raises on bad input: the result's `problems` say what is wrong and where; `document` is the
    canonical camelCase JSON, or None if the document could not be parsed.
    """
    reader = _Reader(source)
    data = reader.load(document)
    if data is None and reader.problems:
        return PhenopacketResult(document=None, problems=reader.problems)
    packet = reader.parse(data)
    if packet is None:
        return PhenopacketResult(document=None, problems=reader.problems)
    return reader.check(packet)


# --------------------------------------------------------------------------------------------
# Building
# --------------------------------------------------------------------------------------------


def _prefix(curie: str) -> str:
    return curie.split(":", 1)[0] if ":" in curie else ""


def _onset(years: float | None) -> dict[str, Any]:
    if years is None:
        return {}
    return {"age": {"iso8601duration": years_to_duration(years)}}


def _assay_id(code: str) -> str:
    if ":" in code:
        return code
    return f"LOINC:{code}" if re.fullmatch(r"\d{1,7}-\d", code) else code


def _unit(unit: str | None) -> dict[str, str]:
    code = (unit or "1").removeprefix("UCUM:")
    return {"id": f"UCUM:{code}", "label": code}


def phenopacket_from_rows(
    *,
    packet_id: str,
    subject_id: str,
    sex: str,
    age_years: float | None,
    rows: Sequence[Phenotype],
    created_by: str,
    created: datetime | None = None,
) -> dict[str, Any]:
    """A Phenopacket v2 document (camelCase JSON) for one individual's phenotype sheet rows.

    Features become phenotypicFeatures (the HPO label filled in when the row has none), diseases
    become diseases, measurements become measurements (the assay code, e.g. LOINC:8302-2, and a
    quantity in UCUM units). `sex` is a `Sex` value; `created` defaults to now (UTC). The rows are
    expected to have passed validation; the result is valid under the protobuf schema.
    """
    features: list[dict[str, Any]] = []
    diseases: list[dict[str, Any]] = []
    measurements: list[dict[str, Any]] = []
    prefixes: set[str] = set()
    for row in rows:
        kind = PhenotypeKind(row.kind)
        if kind is PhenotypeKind.FEATURE:
            term = _hpo_lookup(row.term)
            term_id = row.term if term is None else term.id
            label = row.label or (term.label if term is not None else term_id)
            feature: dict[str, Any] = {"type": {"id": term_id, "label": label}}
            if row.excluded:
                feature["excluded"] = True
            if row.onset_age is not None:
                feature["onset"] = _onset(row.onset_age)
            features.append(feature)
            prefixes.add(_prefix(term_id))
        elif kind is PhenotypeKind.DISEASE:
            term = _disease_lookup(row.term)
            term_id = row.term if term is None else term.id
            label = row.label or (term.label if term is not None else term_id)
            disease: dict[str, Any] = {"term": {"id": term_id, "label": label}}
            if row.excluded:
                disease["excluded"] = True
            if row.onset_age is not None:
                disease["onset"] = _onset(row.onset_age)
            diseases.append(disease)
            prefixes.add(_prefix(term_id))
        else:
            assay = _assay_id(row.term)
            measurement: dict[str, Any] = {"assay": {"id": assay, "label": row.label or assay}}
            if row.value is not None:
                unit = _unit(row.unit)
                measurement["value"] = {"quantity": {"unit": unit, "value": row.value}}
                prefixes.add("UCUM")
            if row.onset_age is not None:
                measurement["timeObserved"] = _onset(row.onset_age)
            measurements.append(measurement)
            prefixes.add(_prefix(assay))
    subject: dict[str, Any] = {"id": subject_id}
    packet_sex = _SEX_TO_PACKET.get(str(sex), "UNKNOWN_SEX")
    if packet_sex != "UNKNOWN_SEX":  # the enum's default, which the canonical form leaves out
        subject["sex"] = packet_sex
    if age_years is not None:
        subject["timeAtLastEncounter"] = _onset(age_years)
    resources = []
    for prefix in sorted(prefixes):
        resource = _RESOURCES.get(prefix)
        if resource is None:
            continue
        entry = dict(resource)
        if prefix == "HP":
            entry["version"] = str(getattr(hpo(), "version", ""))
        resources.append(entry)
    when = (created or clock.now()).astimezone(UTC)
    document: dict[str, Any] = {
        "id": packet_id,
        "subject": subject,
        "phenotypicFeatures": features,
        "measurements": measurements,
        "diseases": diseases,
        "metaData": {
            "created": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "createdBy": created_by,
            **({"resources": resources} if resources else {}),
            "phenopacketSchemaVersion": SCHEMA_VERSION,
        },
    }
    # Written directly in the canonical form protobuf's MessageToDict gives (no empty lists);
    # the tests check that parsing and re-serialising it changes nothing. A protobuf round
    # trip here would cost 0.4 ms an individual, most of a large submission's commit time.
    return {key: value for key, value in document.items() if value != []}
