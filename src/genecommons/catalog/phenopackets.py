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

`phenopacket_from_rows` builds the document for an individual whose phenotypes came as sheet rows
(`phenopacket_rows`). Locating problems in the JSON is `phenopacket_json`'s part, resolving terms
`phenopacket_terms`'s, and durations `iso_durations`'s.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format
from phenopackets.schema.v2 import Phenopacket

from genecommons import bounded
from genecommons.catalog.iso_durations import age_to_years
from genecommons.catalog.models import Sex
from genecommons.catalog.phenopacket_json import (
    PARSE_ERRORS,
    ROOT,
    NotJsonError,
    is_map,
    join,
    json_kind,
    json_kind_zh,
    locate,
    objects,
    refuse_constant,
    short,
)
from genecommons.catalog.phenopacket_rows import phenopacket_from_rows
from genecommons.catalog.phenopacket_terms import (
    SEX_FROM_PACKET,
    did_you_mean,
    disease_lookup,
    fold,
    hpo_lookup,
    hpo_suggest,
)
from genecommons.catalog.report import Problem, Severity
from genecommons.errors import NestingTooDeepError

__all__ = [
    "PhenopacketResult",
    "phenopacket_from_rows",
    "read_phenopacket",
]

_AGE_TYPE = "org.phenopackets.schema.v2.core.Age"


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
                value=None if value is None else short(value),
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
                parse_constant=refuse_constant,
            )
        except NotJsonError as error:
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
            paths = {id(obj): path for path, obj in objects(data, ROOT)}
            for obj, key in duplicates:
                self.add(
                    "phenopacket.json",
                    f"The key {key!r} appears more than once in one object.",
                    f"同一对象中键 {key!r} 出现了多次。",
                    column=join(paths.get(id(obj), ROOT), key),
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
                f"A phenopacket is a JSON object, not {json_kind(data)}.",
                f"表型包应为 JSON 对象，而不是{json_kind_zh(data)}。",
                column=ROOT,
                value=data,
                suggestion='Give an object: {"id": …, "subject": {…}, …} / 请提供 JSON 对象',
            )
            return None
        packet = Phenopacket()
        try:
            json_format.ParseDict(data, packet)
        except PARSE_ERRORS:
            found: list[tuple[str, str, Any, str | None]] = []
            locate(data, Phenopacket, ROOT, found)
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
            sex = SEX_FROM_PACKET.get("" if sex_value is None else sex_value.name, Sex.UNKNOWN)
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
            if type_name.startswith("google.protobuf.") or is_map(descriptor):
                continue
            sub = join(path, descriptor.json_name)
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
            term = hpo_lookup(written)
            features.append((written if term is None else term.id, feature.excluded))
            if term is None:
                hints = hpo_suggest(feature.type.label or written)
                self.add(
                    "vocabulary.hpo",
                    "The feature's id is not a known HPO term.",
                    "该表型特征的编号不是已知的 HPO 术语。",
                    column=f"{path}.id",
                    value=written,
                    suggestion=did_you_mean(hints),
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
                replacement = hpo_lookup(term.replaced_by) if term.replaced_by else None
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
            elif feature.type.label and fold(feature.type.label) != fold(term.label):
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
            term = disease_lookup(written)
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
            if known_label and disease.term.label and fold(disease.term.label) != fold(term.label):
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
