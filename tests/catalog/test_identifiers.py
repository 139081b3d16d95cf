"""Direct identifiers at the door: the detectors (property tests against slow reference
checks), masking, the treatments, and submissions refused or treated."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import date, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genecommons.catalog import identifiers as ids
from genecommons.catalog import service
from genecommons.catalog.identifiers import Kind, Level, Treatment
from genecommons.errors import SubmissionRejectedError
from genecommons.policy.models import Subject

OPERATOR = Subject.operator("tester")
KEY = bytes(range(32))

# text around a planted identifier: Chinese, punctuation and spaces, never a digit or a letter
_FILLER = st.text(alphabet="病情稳定的，。、；： 无（）", max_size=30)


def _reference_check(first17: str) -> str:
    """GB 11643 written out: ISO 7064 MOD 11-2 with weights 2^(17-i) mod 11."""
    total = sum(int(d) * (2 ** (17 - i) % 11) for i, d in enumerate(first17))
    return "10X98765432"[total % 11]


@st.composite
def id_numbers(draw: st.DrawFn) -> str:
    region = draw(st.integers(100000, 999999))
    born = draw(st.dates(date(1800, 1, 1), date(2099, 12, 31)))
    order = draw(st.integers(0, 999))
    first17 = f"{region}{born:%Y%m%d}{order:03d}"
    return first17 + _reference_check(first17)


def _luhn_digit(body: str) -> str:
    """The Luhn check digit of `body`, the slow way."""
    for d in "0123456789":
        digits = [int(c) for c in body + d][::-1]
        total = sum(
            x if i % 2 == 0 else (x * 2 - 9 if x * 2 > 9 else x * 2) for i, x in enumerate(digits)
        )
        if total % 10 == 0:
            return d
    raise AssertionError("no Luhn digit")


@st.composite
def card_numbers(draw: st.DrawFn) -> str:
    length = draw(st.integers(13, 19))
    body = str(draw(st.integers(1, 6))) + "".join(
        draw(st.lists(st.sampled_from("0123456789"), min_size=length - 2, max_size=length - 2))
    )
    return body + _luhn_digit(body)


def test_check_digit_matches_the_reference() -> None:
    assert ids.id_check_digit("11010519491231002") == "X"  # the example of GB 11643
    assert ids.valid_id_card("11010519491231002X")


@settings(max_examples=300)
@given(id_numbers(), _FILLER, _FILLER)
def test_every_valid_id_number_is_found(number: str, before: str, after: str) -> None:
    text = before + number + after
    found = ids.scan(text, Level.PATTERNED)
    assert [(f.kind, f.value) for f in found] == [(Kind.ID_CARD, number)]
    assert [f.value for f in ids.scan(text, Level.FULL)] == [number]


@settings(max_examples=300)
@given(id_numbers(), st.integers(1, 10), _FILLER)
def test_an_id_number_with_a_wrong_check_digit_is_not_one(
    number: str, shift: int, after: str
) -> None:
    wrong = "0123456789X"[("0123456789X".index(number[-1]) + shift) % 11]
    text = "号码" + number[:-1] + wrong + after
    assert all(f.kind is not Kind.ID_CARD for f in ids.scan(text, Level.FULL))


@settings(max_examples=300)
@given(card_numbers(), _FILLER, _FILLER)
def test_every_luhn_card_is_found(number: str, before: str, after: str) -> None:
    found = ids.scan(before + number + after, Level.FULL)
    assert [f.value for f in found] == [number]
    assert found[0].kind in (Kind.BANK_CARD, Kind.ID_CARD)  # 18 digits may be an ID number too


@settings(max_examples=300)
@given(card_numbers(), st.integers(1, 9))
def test_a_card_failing_luhn_is_not_one(number: str, shift: int) -> None:
    wrong = number[:-1] + str((int(number[-1]) + shift) % 10)
    assert all(f.kind is not Kind.BANK_CARD for f in ids.scan(f"卡号 {wrong} 。", Level.FULL))


@settings(max_examples=200)
@given(st.one_of(id_numbers(), card_numbers()), _FILLER, _FILLER)
def test_masking_never_leaks_the_digits(number: str, before: str, after: str) -> None:
    text = before + number + after
    findings = ids.scan(text, Level.FULL)
    for shown in [ids.mask_text(text, findings)] + [
        ids.report_excerpt(text, findings, f) for f in findings
    ]:
        assert not any(c.isdigit() for c in shown)
    masked = ids.treat(text, Treatment.MASK, level=Level.FULL)
    assert masked == before + "*" * len(number) + after


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ("联系电话 13912345678。", Kind.PHONE, "13912345678"),
        ("call +86 139 1234 5678 today", Kind.PHONE, "+86 139 1234 5678"),
        ("办公室 010-62345678", Kind.PHONE, "010-62345678"),
        ("phone (555) 270-7049 evenings", Kind.PHONE, "(555) 270-7049"),
        ("tel 001-507-843-9150x00806", Kind.PHONE, "001-507-843-9150x00806"),
        ("London +44 20 7946 0958", Kind.PHONE, "+44 20 7946 0958"),
        ("mail gmathis@example.com.", Kind.EMAIL, "gmathis@example.com"),
        ("护照号码：E12345678", Kind.PASSPORT, "E12345678"),
        ("Passport No. 835337406", Kind.PASSPORT, "835337406"),
        ("出生日期：1990年3月7日", Kind.BIRTH_DATE, "1990年3月7日"),
        ("born on March 7, 1990 in", Kind.BIRTH_DATE, "March 7, 1990"),
        ("DOB: 07/03/1990", Kind.BIRTH_DATE, "07/03/1990"),
        ("住北京市朝阳区建国路88号", Kind.ADDRESS, "北京市朝阳区建国路88号"),
        (
            "at 1777 Kramer Court, Johnsonfurt, NE 80119.",
            Kind.ADDRESS,
            "1777 Kramer Court, Johnsonfurt, NE 80119",
        ),
        ("患者孙凤英，女，", Kind.NAME, "孙凤英"),
        ("王建国先生", Kind.NAME, "王建国"),
        ("seen by Dr. Alice Walker", Kind.NAME, "Alice Walker"),
        ("Jennifer Lopez attended", Kind.NAME, "Jennifer Lopez"),
    ],
)
def test_kinds(text: str, kind: Kind, value: str) -> None:
    assert [(f.kind, f.value) for f in ids.scan(text)] == [(kind, value)]


@pytest.mark.parametrize(
    "text",
    [
        "Charles Bonnet syndrome with seizures since age 3 (HP:0001250).",
        "Collected on 2023-04-15 at 37 weeks; 46,XY karyotype.",
        "Illumina NovaSeq 6000, 150 bp paired-end reads.",
        "高血压，糖尿病，无家族史。",
        "MONDO:0005148; GRCh38; chr22:50818468",
    ],
)
def test_clean_texts(text: str) -> None:
    assert ids.scan(text) == []


def test_treatments() -> None:
    text = "出生日期：1990年3月7日，住北京市朝阳区建国路88号，电话13912345678"
    assert ids.treat(text, Treatment.DROP, level=Level.FULL) == ""
    assert ids.treat(text, Treatment.GENERALISE, level=Level.FULL) == (
        "出生日期：1990-03，住北京市，电话***********"
    )
    pseudonymised = ids.treat(text, Treatment.PSEUDONYM, level=Level.FULL, key=KEY)
    digest = hmac.new(KEY, b"phone:13912345678", hashlib.sha256).hexdigest()[:16]
    assert pseudonymised.endswith(f"电话[phone:{digest}]")
    assert "1990" not in pseudonymised
    # the same identifier, written otherwise, gets the same pseudonym; another key another
    assert ids.treat("+86 139 1234 5678", Treatment.PSEUDONYM, level=Level.FULL, key=KEY) == (
        f"[phone:{digest}]"
    )
    assert digest not in ids.treat(text, Treatment.PSEUDONYM, level=Level.FULL, key=b"x" * 32)
    with pytest.raises(ValueError, match="keyed pseudonym needs"):
        ids.treat(text, Treatment.PSEUDONYM, level=Level.FULL)


# -- submissions ------------------------------------------------------------------------------

PLANTED = "11010519491231002X"


def _planted(sheets: Any) -> dict[str, Any]:
    data = sheets()
    data["studies"][0]["description"] = f"先证者身份证号 {PLANTED}，born on 1949-12-31."
    return data


def test_a_planted_id_number_is_refused_with_a_masked_located_problem(
    factory: Any, make_bundle: Any, sheets: Any
) -> None:
    with pytest.raises(SubmissionRejectedError) as raised:
        service.submit(factory, make_bundle(_planted(sheets)), subject=OPERATOR)
    problems = [p for p in raised.value.details["problems"] if p["rule"].startswith("identifier.")]
    assert sorted(p["rule"] for p in problems) == ["identifier.birth_date", "identifier.id_card"]
    found = next(p for p in problems if p["rule"] == "identifier.id_card")
    assert (found["file"], found["row"], found["column"]) == ("studies.tsv", 2, "description")
    assert "PRC resident ID number" in found["message"] and "居民身份证号码" in found["message_zh"]
    assert "identifier_columns" in found["suggestion"]
    for problem in problems:
        assert not any(c.isdigit() for c in problem["value"])
    assert PLANTED not in str(raised.value.details)


def test_an_id_number_as_an_alias_is_refused(factory: Any, make_bundle: Any, sheets: Any) -> None:
    data = sheets()
    data["individuals"][0]["alias"] = PLANTED
    data["identifier_columns"] = [{"sheet": "individuals", "column": "alias", "treatment": "mask"}]
    with pytest.raises(SubmissionRejectedError) as raised:
        service.submit(factory, make_bundle(data), subject=OPERATOR)
    rules = {p["rule"] for p in raised.value.details["problems"]}
    assert {"identifier.id_card", "identifier.declaration"} <= rules
    assert PLANTED not in str(raised.value.details)


@pytest.mark.parametrize(
    ("treatment", "stored"),
    [
        ("mask", "先证者身份证号 ******************，born on ****-**-**."),
        ("generalise", "先证者身份证号 ******************，born on 1949-12."),
        ("drop", None),
    ],
)
def test_a_declared_column_is_treated_before_it_is_stored(
    factory: Any, make_bundle: Any, sheets: Any, treatment: str, stored: str | None
) -> None:
    data = _planted(sheets)
    data["identifier_columns"] = [
        {"sheet": "studies", "column": "description", "treatment": treatment}
    ]
    result = service.submit(factory, make_bundle(data), subject=OPERATOR)
    assert result.committed
    record = service.get_record(
        factory, "studies", result.accessions["studies"]["ST1"], subject=OPERATOR
    )
    assert record.get("description") == stored
    treated = [p for p in result.report.problems if p.rule == "identifier.treated"]
    assert [p.column for p in treated] == ["description"]


def test_a_keyed_pseudonym_needs_the_node_key(factory: Any, make_bundle: Any, sheets: Any) -> None:
    data = _planted(sheets)
    data["identifier_columns"] = [
        {"sheet": "studies", "column": "description", "treatment": "pseudonym"}
    ]
    with pytest.raises(SubmissionRejectedError) as raised:
        service.submit(factory, make_bundle(data), subject=OPERATOR)
    assert "identifier.no_key" in {p["rule"] for p in raised.value.details["problems"]}

    result = service.submit(
        factory, make_bundle(data), subject=OPERATOR, identifier_key=lambda: KEY
    )
    record = service.get_record(
        factory, "studies", result.accessions["studies"]["ST1"], subject=OPERATOR
    )
    digest = hmac.new(KEY, f"id_card:{PLANTED}".encode(), hashlib.sha256).hexdigest()[:16]
    assert f"[id_card:{digest}]" in record["description"]
    assert PLANTED not in record["description"] and "1949" not in record["description"]


def test_the_declaration_in_a_document_as_a_mapping(
    factory: Any, tmp_path: Any, sheets: Any
) -> None:
    import json

    data = _planted(sheets)
    data["identifier_columns"] = {"studies": {"description": "mask"}}
    path = tmp_path / "submission.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    result = service.submit(factory, path, subject=OPERATOR, dry_run=True)
    assert result.report.ok


def test_the_pseudonym_key_is_derived_from_the_node_keys(settings: Any) -> None:
    from genecommons.secrets import node_keys

    keys = node_keys(settings)
    assert service.pseudonym_key(keys) == keys.derive("identifier-pseudonym")
    assert len(service.pseudonym_key(keys)) == 32


def test_dates_around_a_birth_keyword(  # a collection date is not a date of birth
) -> None:
    today = date(2024, 5, 1)
    text = f"Sample collected {today.isoformat()}; follow-up {today + timedelta(days=30)}."
    assert ids.scan(text) == []


class _Recorded:
    """A Progress that keeps every stage's description, total and the counts it heard."""

    def __init__(self) -> None:
        self.stages: list[tuple[str, float | None, list[float]]] = []

    def stage(self, description: str, *, total: float | None = None, unit: str = "") -> Any:
        from contextlib import contextmanager

        heard: list[float] = []
        self.stages.append((description, total, heard))

        class _Stage:
            def advance(self, amount: float = 1) -> None:
                heard.append((heard[-1] if heard else 0) + amount)

            def update(self, completed: float) -> None:
                heard.append(completed)

            def total(self, total: float | None) -> None:
                raise AssertionError("the totals are known when a stage opens")

        @contextmanager
        def opened() -> Any:
            yield _Stage()

        return opened()


def test_a_sheet_of_any_size_is_scanned_row_by_row_with_progress() -> None:
    import io

    from genecommons.catalog.validation.identifiers import scan_sheet_file

    rows = ["alias\tstudy\tdescription\tanalysis_type\treference_assembly"]
    for i in range(25_000):
        text = f"联系电话13912345678，第{i}例" if i % 1000 == 7 else "Joint calling of the cohort."
        rows.append(f"A{i}\tST1\t{text}\tother\tGRCh38")
    rows.append(f"{PLANTED}\tST1\tclean\tother\tGRCh38")
    data = ("\n".join(rows) + "\n").encode()
    progress = _Recorded()
    result = scan_sheet_file(
        io.BytesIO(data),
        sheet="analyses",
        delimiter="\t",
        name="analyses.tsv",
        size=len(data),
        progress=progress,
        keep=10,
    )
    assert result.rows == 25_001
    assert dict(result.counts) == {("description", "phone"): 25, ("alias", "id_card"): 1}
    assert len(result.problems) == 10  # the first ten kept; all counted
    first = result.problems[0]
    assert (first.file, first.row, first.column) == ("analyses.tsv", 9, "description")
    assert "13912345678" not in str(result.problems)
    (description, total, heard) = progress.stages[0]
    assert description == "scanning analyses.tsv for identifiers"
    assert total == len(data) and heard[-1] == len(data) and len(heard) >= 3


def test_validation_reports_the_scan_as_a_stage(make_bundle: Any, sheets: Any) -> None:
    from genecommons.catalog.bundle import open_bundle
    from genecommons.catalog.validation import EmptyCatalog, plan_submission

    progress = _Recorded()
    with open_bundle(make_bundle()) as (bundle, _):
        rows = sum(len(r) for r in bundle.rows.values())
        plan = plan_submission(bundle, EmptyCatalog(), today=date(2025, 1, 1), progress=progress)
    assert plan.report.ok
    assert [(d, t, h[-1]) for d, t, h in progress.stages] == [
        ("scanning for identifiers", rows, rows)
    ]


def test_the_demo_submission_has_no_findings(tmp_path: Any) -> None:
    from genecommons.catalog.bundle import open_bundle
    from genecommons.catalog.models import READABLE_SHEETS
    from genecommons.catalog.validation.identifiers import scanned_columns
    from genecommons.demo.cohort import write_demo

    demo = write_demo(tmp_path / "demo", seed=7, individuals=40, sequence_length=100_000)
    with open_bundle(demo.out_dir) as (bundle, problems):
        assert problems == []
        scanned = 0
        for sheet, rows in bundle.rows.items():
            assert sheet in READABLE_SHEETS
            columns = scanned_columns(sheet)
            for row in rows:
                for column, value in row.values.items():
                    if column in columns and isinstance(value, str) and value:
                        scanned += 1
                        found = ids.scan(value, columns[column][0])
                        assert found == [], (sheet, row.number, column, found)
    assert scanned > 100


def test_the_scan_command_masks_and_exits_1_on_findings(tmp_path: Any) -> None:
    from typer.testing import CliRunner

    from genecommons.cli import app

    sheet = tmp_path / "studies.tsv"
    sheet.write_text(
        "alias\ttitle\tdescription\nST1\tHearing loss\t联系电话 13912345678\n", encoding="utf-8"
    )
    found = CliRunner().invoke(app, ["scan-identifiers", str(sheet), "--json"])
    assert found.exit_code == 1, found.output
    summary = json.loads(found.output)
    assert summary["counts"] == [{"column": "description", "kind": "phone", "count": 1}]
    assert summary["problems"][0]["row"] == 2
    assert "13912345678" not in found.output
    sheet.write_text("alias\ttitle\nST1\tHearing loss\n", encoding="utf-8")
    clean = CliRunner().invoke(app, ["scan-identifiers", str(sheet)])
    assert clean.exit_code == 0, clean.output
    assert "1 rows scanned, 0 identifier(s) found" in clean.output
