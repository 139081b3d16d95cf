"""Reading submissions: formats, encodings and hostile input (each refused cleanly)."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from genecommons.catalog.bundle import Bundle, Limits, decode_text, open_bundle
from genecommons.catalog.bundle_files import _rows_from_table
from genecommons.catalog.report import Problem


def rules(path: Path, limits: Limits | None = None) -> list[str]:
    with open_bundle(path, limits=limits) as (_, problems):
        return [p.rule for p in problems]


def test_folder_of_tsv(make_bundle: Any) -> None:
    with open_bundle(make_bundle()) as (bundle, problems):
        assert problems == []
        assert len(bundle.sheet("individuals")) == 3
        first = bundle.sheet("individuals")[0]
        assert first.number == 2 and first.file == "individuals.tsv"


def test_gb18030_and_bom(tmp_path: Path) -> None:
    text = "alias\tname_en\tname_zh\tcountry\tprovince\nBGC\tBGC\t北京基因组中心\tCN\t北京\n"
    (tmp_path / "gbk").mkdir()
    (tmp_path / "gbk" / "institutions.tsv").write_bytes(text.encode("gb18030"))
    (tmp_path / "bom").mkdir()
    (tmp_path / "bom" / "institutions.csv").write_bytes(
        b"\xef\xbb\xbf" + text.replace("\t", ",").encode("utf-8")
    )
    for folder in ("gbk", "bom"):
        with open_bundle(tmp_path / folder) as (bundle, problems):
            assert problems == []
            row = bundle.sheet("institutions")[0].values
            assert row["alias"] == "BGC" and row["name_zh"] == "北京基因组中心"


def test_wrong_encoding_is_located(tmp_path: Path) -> None:
    data = b"alias\tname_en\nX\t" + bytes([0x81, 0x20, 0xFF, 0xFE]) + b"\n"
    text, problem = decode_text(data, file="institutions.tsv")
    assert text is None and problem is not None
    assert problem.rule == "encoding" and "offset" in problem.message and problem.message_zh


def test_empty_and_truncated_files(tmp_path: Path) -> None:
    empty = tmp_path / "individuals.tsv"
    empty.write_bytes(b"")
    assert rules(empty) == ["file.empty"]
    truncated = tmp_path / "submission.json"
    truncated.write_text('{"studies": [{"alias": "S1", "title": "x"', encoding="utf-8")
    assert rules(truncated) == ["document.syntax"]
    book = tmp_path / "book.xlsx"
    book.write_bytes(b"PK\x03\x04" + b"\x00" * 50)
    assert rules(book) == ["archive.unreadable"]


def test_oversized_sheet(tmp_path: Path) -> None:
    sheet = tmp_path / "individuals.tsv"
    sheet.write_text("alias\n" + "x\n" * 1000, encoding="utf-8")
    assert rules(sheet, Limits(max_sheet_bytes=100)) == ["file.too_large"]


def test_zip_bomb_refused_before_unpacking(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("individuals.tsv", b"\0" * (50 << 20))
    assert rules(bomb) == ["archive.bomb"]


def test_zip_that_lies_about_sizes(tmp_path: Path) -> None:
    """A zip whose directory understates sizes is stopped by counting what comes out."""
    archive_path = tmp_path / "liar.zip"
    with zipfile.ZipFile(archive_path, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("individuals.tsv", b"alias\n" + b"x\n" * 5000)
    assert rules(archive_path, Limits(max_unpacked_bytes=1000)) == ["archive.too_large"]


@pytest.mark.parametrize(
    "name", ["../evil.tsv", "/etc/evil.tsv", "a/../../evil.tsv", "C:\\evil.tsv"]
)
def test_zip_path_traversal(tmp_path: Path, name: str) -> None:
    archive_path = tmp_path / "traversal.zip"
    with zipfile.ZipFile(archive_path, "w") as archive:
        archive.writestr(name, b"alias\nx\n")
    assert rules(archive_path) == ["archive.path"]
    assert not (tmp_path.parent / "evil.tsv").exists()


def test_zip_symlink_refused(tmp_path: Path) -> None:
    archive_path = tmp_path / "link.zip"
    info = zipfile.ZipInfo("individuals.tsv")
    info.external_attr = 0o120777 << 16
    with zipfile.ZipFile(archive_path, "w") as archive:
        archive.writestr(info, "/etc/passwd")
    assert rules(archive_path) == ["archive.path"]


def test_zip_bundle_is_read_and_cleaned_up(tmp_path: Path, make_bundle: Any) -> None:
    folder = make_bundle()
    archive_path = tmp_path / "bundle.zip"
    with zipfile.ZipFile(archive_path, "w") as archive:
        for path in folder.iterdir():
            archive.write(path, f"my-submission/{path.name}")
    staging = tmp_path / "staging"
    with open_bundle(archive_path, staging=staging) as (bundle, problems):
        assert problems == []
        assert len(bundle.sheet("samples")) == 3
    assert list(staging.iterdir()) == []


def test_formula_cells_stay_text(tmp_path: Path) -> None:
    openpyxl = pytest.importorskip("openpyxl")
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "studies"
    sheet.append(["alias", "title", "institution"])
    sheet.append(["S1", "=1+1", "BGC"])
    path = tmp_path / "submission.xlsx"
    book.save(path)
    with open_bundle(path) as (bundle, problems):
        assert problems == []
        assert bundle.sheet("studies")[0].values["title"] == "=1+1"


def test_yaml_aliases_refused(tmp_path: Path) -> None:
    path = tmp_path / "submission.yaml"
    path.write_text("a: &x [1, 2]\nstudies: *x\n", encoding="utf-8")
    assert rules(path) == ["document.syntax"]


def test_json_document(tmp_path: Path) -> None:
    path = tmp_path / "submission.json"
    path.write_text(json.dumps({"studies": [{"alias": "S1"}], "bogus": []}), encoding="utf-8")
    with open_bundle(path) as (bundle, problems):
        assert [p.rule for p in problems] == ["document.key.unknown"]
        assert bundle.sheet("studies")[0].values == {"alias": "S1"}


def test_unknown_file_kind(tmp_path: Path) -> None:
    path = tmp_path / "notes.docx"
    path.write_bytes(b"hello")
    assert rules(path) == ["file.kind"]


def test_ragged_rows(tmp_path: Path) -> None:
    path = tmp_path / "individuals.tsv"
    path.write_text("alias\tsex\nP1\tmale\textra\nP2\n", encoding="utf-8")
    with open_bundle(path) as (bundle, problems):
        assert [(p.rule, p.row) for p in problems] == [("sheet.row.width", 2)]
        assert bundle.sheet("individuals")[0].values == {"alias": "P2", "sex": None}


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=2000))
def test_any_bytes_never_crash_the_reader(tmp_path: Path, data: bytes) -> None:
    for name in ("individuals.tsv", "submission.json", "submission.yaml", "x.zip", "book.xlsx"):
        path = tmp_path / name
        path.write_bytes(data)
        with open_bundle(path) as (_, problems):
            assert all(p.message and p.message_zh for p in problems)


def test_zip_members_limit(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for i in range(20):
            archive.writestr(f"f{i}.txt", b"x")
    path = tmp_path / "many.zip"
    path.write_bytes(buffer.getvalue())
    assert rules(path, Limits(max_members=10)) == ["archive.members"]


_CELLS = st.lists(st.sampled_from(["", " ", "\t", "P1", " x ", "male", "1;2", "否"]), max_size=5)


@settings(max_examples=300)
@given(
    st.lists(st.sampled_from(["alias", "sex", "age", ""]), min_size=1, max_size=4),
    st.lists(_CELLS, max_size=8),
)
def test_a_delimited_sheet_reads_as_any_table_does(
    header: list[str], lines: list[list[str]]
) -> None:
    """The rows and problems of a sheet whose cells are all text (the fast path) are those the
    general reading of a table gives."""
    read = []
    for texts in (True, False):
        bundle, problems = Bundle(source="x"), list[Problem]()
        _rows_from_table(
            "individuals", "f.tsv", iter([header, *lines]), bundle, problems, texts=texts
        )
        rows = [(r.number, r.values) for r in bundle.sheet("individuals")]
        read.append((rows, [(p.rule, p.row, p.message) for p in problems], bundle.headers))
    assert read[0] == read[1]
