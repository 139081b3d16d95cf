"""One file of a submission read into its bundle: a delimited sheet, a workbook, a JSON/YAML
document; and the bundle itself (rows, where each came from, the limits a reader keeps to)."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import yaml

from genecommons import bounded
from genecommons.catalog.models import IDENTIFIER_COLUMNS_SHEET, PHENOPACKETS_KEY, READABLE_SHEETS
from genecommons.catalog.report import Problem
from genecommons.errors import NestingTooDeepError

SHEET_SUFFIXES = {".tsv": "\t", ".txt": "\t", ".csv": ","}
DOCUMENT_SUFFIXES = {".json", ".yaml", ".yml"}
DOCUMENT_STEM = "submission"  # in a folder, only submission.json|yaml is a document
WORKBOOK_SUFFIXES = {".xlsx", ".xlsm"}


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds that keep a hostile submission from exhausting the machine."""

    max_sheet_bytes: int = 1 << 30
    max_unpacked_bytes: int = 4 << 30
    max_members: int = 10_000
    max_ratio: int = 200
    max_problems: int = 10_000


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs 3x, for every row read
class Row:
    """One record as submitted: raw values by column, and where it came from."""

    sheet: str
    file: str
    number: int  # as a spreadsheet shows it: the header is row 1
    values: dict[str, Any]


@dataclass(slots=True)
class Bundle:
    """Everything read from a submission."""

    source: str
    rows: dict[str, list[Row]] = field(default_factory=dict)
    headers: dict[str, tuple[str, list[str]]] = field(default_factory=dict)  # sheet -> file, cols
    phenopackets: list[tuple[str, Any]] = field(default_factory=list)  # (place, document)
    data_files: dict[str, Path] = field(default_factory=dict)  # relative name -> path on disk

    def sheet(self, name: str) -> list[Row]:
        """The rows of one sheet (empty if the submission has none)."""
        return self.rows.get(name, [])


def _problem(rule: str, en: str, zh: str, **where: Any) -> Problem:
    return Problem(rule=rule, message=en, message_zh=zh, **where)


def decode_text(data: bytes, *, file: str) -> tuple[str | None, Problem | None]:
    """Decode sheet bytes as UTF-8 (with or without BOM), else GB18030/GBK as Excel in China
    writes them; anything else is refused with a located problem."""
    try:
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError as utf8_error:
        try:
            return data.decode("gb18030"), None
        except UnicodeDecodeError:
            return None, _problem(
                "encoding",
                f"The file is neither UTF-8 nor GB18030/GBK (first bad byte at offset "
                f"{utf8_error.start}).",
                f"文件既不是 UTF-8 也不是 GB18030/GBK 编码（第一个错误字节位于偏移 {utf8_error.start}）。",
                file=file,
                suggestion="Save the sheet as 'CSV UTF-8' or 'Unicode text' / 请另存为 UTF-8 编码",
            )


def _cell(value: Any) -> Any:
    """A workbook cell as the text a person sees (dates as ISO 8601, whole numbers bare)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return (
            value.date().isoformat() if value.time() == datetime.min.time() else (value.isoformat())
        )
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _rows_from_table(
    sheet: str,
    file: str,
    table: Iterator[list[Any]],
    bundle: Bundle,
    problems: list[Problem],
    *,
    texts: bool = False,
) -> None:
    """The rows of one table into `bundle`; `texts`: every cell is already a str (a delimited
    file's), so that cells need no conversion."""
    header: list[str] | None = None
    named = False  # every column of the header has a name
    rows = bundle.rows.setdefault(sheet, [])
    for number, cells in enumerate(table, start=1):
        if header is None:
            header = [str(c).strip() if c is not None else "" for c in cells]
            while header and not header[-1]:
                header.pop()
            if not header:
                problems.append(
                    _problem(
                        "sheet.header",
                        "The sheet has no header row.",
                        "表格缺少表头行。",
                        file=file,
                        row=number,
                        suggestion="Start from `genecommons template` / 请使用模板",
                    )
                )
                return
            seen: set[str] = set()
            for col in header:
                if col in seen:
                    problems.append(
                        _problem(
                            "sheet.header.duplicate",
                            f"Column {col!r} appears twice.",
                            f"列 {col!r} 重复出现。",
                            file=file,
                            row=number,
                            column=col,
                        )
                    )
                seen.add(col)
            bundle.headers[sheet] = (file, header)
            named = all(header)
            continue
        if texts and named:
            if not "".join(cells).strip():
                continue  # blank line
            if len(cells) > len(header) and "".join(cells[len(header) :]).strip():
                problems.append(_width(len(cells), len(header), file=file, row=number))
                continue
            if len(cells) < len(header):
                cells = cells + [None] * (len(header) - len(cells))
            values = dict(zip(header, cells, strict=False))  # blank cells past the header go
            rows.append(Row(sheet=sheet, file=file, number=number, values=values))
            continue
        if not any(c is not None and str(c).strip() for c in cells):
            continue  # blank line
        if len(cells) > len(header) and any(
            c is not None and str(c).strip() for c in cells[len(header) :]
        ):
            problems.append(_width(len(cells), len(header), file=file, row=number))
            continue
        if len(cells) < len(header):
            cells = list(cells) + [None] * (len(header) - len(cells))
        values = {col: _cell(cells[i]) for i, col in enumerate(header) if col}
        rows.append(Row(sheet=sheet, file=file, number=number, values=values))


def _width(cells: int, columns: int, *, file: str, row: int) -> Problem:
    return _problem(
        "sheet.row.width",
        f"The row has {cells} cells but the header has {columns} columns.",
        f"该行有 {cells} 个单元格，但表头只有 {columns} 列。",
        file=file,
        row=row,
        suggestion="Check for a stray tab or comma / 检查多余的制表符或逗号",
    )


def read_delimited(
    path: Path, sheet: str, bundle: Bundle, problems: list[Problem], *, name: str, limits: Limits
) -> None:
    """Read one TSV/CSV sheet into `bundle`."""
    size = path.stat().st_size
    if size == 0:
        problems.append(_problem("file.empty", "The file is empty.", "文件为空。", file=name))
        return
    if size > limits.max_sheet_bytes:
        problems.append(
            _problem(
                "file.too_large",
                f"The sheet is {size} bytes; the limit is {limits.max_sheet_bytes}.",
                f"表格大小为 {size} 字节，超过上限 {limits.max_sheet_bytes}。",
                file=name,
                suggestion="Split it into several submissions / 请拆分为多次提交",
            )
        )
        return
    text, problem = decode_text(path.read_bytes(), file=name)
    if problem or text is None:
        problems.append(problem or _problem("encoding", "Unreadable.", "无法读取。", file=name))
        return
    delimiter = SHEET_SUFFIXES[path.suffix.lower()]
    # a dataset may list every run in one cell; the sheet size limit bounds it instead
    csv.field_size_limit(max(csv.field_size_limit(), min(limits.max_sheet_bytes, 2**31 - 1)))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        _rows_from_table(sheet, name, iter(reader), bundle, problems, texts=True)
    except csv.Error as error:
        problems.append(
            _problem(
                "sheet.syntax",
                f"The file is not well-formed {path.suffix[1:].upper()}: {error}.",
                f"文件格式不正确：{error}。",
                file=name,
                row=reader.line_num,
                suggestion="Check quotes: a cell with a quote must be quoted / 检查引号",
            )
        )


def read_workbook(
    path: Path, bundle: Bundle, problems: list[Problem], *, name: str, limits: Limits
) -> None:
    """Read every known sheet of an .xlsx workbook into `bundle`."""
    import openpyxl  # imported here: only workbook submissions need it

    if not _zip_is_safe(path, problems, name=name, limits=limits):
        return
    try:
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=False)
    except Exception as error:  # openpyxl raises many types for a damaged file
        problems.append(
            _problem(
                "workbook.unreadable",
                f"The workbook cannot be read ({type(error).__name__}).",
                f"无法读取该工作簿（{type(error).__name__}），文件可能已损坏或被截断。",
                file=name,
                suggestion="Re-save it from Excel as .xlsx / 请用 Excel 重新保存为 .xlsx",
            )
        )
        return
    try:
        for title in workbook.sheetnames:
            sheet = title.strip().lower()
            if sheet not in READABLE_SHEETS:
                problems.append(
                    _problem(
                        "workbook.sheet.unknown",
                        f"Unknown sheet {title!r}.",
                        f"未知工作表 {title!r}。",
                        file=name,
                        suggestion=f"Sheets are: {', '.join(READABLE_SHEETS)}",
                    )
                )
                continue
            rows = (list(r) for r in workbook[title].iter_rows(values_only=True))
            _rows_from_table(sheet, f"{name}:{title}", rows, bundle, problems)
    finally:
        workbook.close()


def read_document(
    path: Path, bundle: Bundle, problems: list[Problem], *, name: str, limits: Limits
) -> None:
    """Read a JSON or YAML submission document into `bundle`."""
    size = path.stat().st_size
    if size == 0:
        problems.append(_problem("file.empty", "The file is empty.", "文件为空。", file=name))
        return
    if size > limits.max_sheet_bytes:
        problems.append(
            _problem(
                "file.too_large",
                f"The document is {size} bytes; the limit is {limits.max_sheet_bytes}.",
                f"文件大小 {size} 字节，超过上限。",
                file=name,
            )
        )
        return
    text, problem = decode_text(path.read_bytes(), file=name)
    if problem or text is None:
        problems.append(problem or _problem("encoding", "Unreadable.", "无法读取。", file=name))
        return
    try:
        document = (
            bounded.loads_json(text, place=name)
            if path.suffix.lower() == ".json"
            else bounded.load_yaml(text, place=name)
        )
    except NestingTooDeepError as error:
        problems.append(
            _problem(
                "document.nesting",
                error.message,
                error.message_zh,
                file=name,
                suggestion=f"Nest at most {bounded.MAX_NESTING} levels / "
                f"嵌套不超过 {bounded.MAX_NESTING} 层",
            )
        )
        return
    except json.JSONDecodeError as error:
        problems.append(
            _problem(
                "document.syntax",
                f"Invalid JSON: {error.msg} at line {error.lineno}, column {error.colno}.",
                f"JSON 格式错误：第 {error.lineno} 行第 {error.colno} 列，{error.msg}。",
                file=name,
                row=error.lineno,
            )
        )
        return
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problems.append(
            _problem(
                "document.syntax",
                f"Invalid YAML: {error}",
                f"YAML 格式错误：{error}",
                file=name,
                row=line,
            )
        )
        return
    if not isinstance(document, dict):
        problems.append(
            _problem(
                "document.shape",
                "The document must be an object whose keys are sheet names.",
                "文件顶层必须是以表名为键的对象。",
                file=name,
                suggestion=f"Keys: {', '.join((*READABLE_SHEETS, PHENOPACKETS_KEY))}",
            )
        )
        return
    for key, items in document.items():
        sheet = str(key).strip().lower()
        if sheet == PHENOPACKETS_KEY and isinstance(items, list):
            for i, packet in enumerate(items, start=1):
                bundle.phenopackets.append((f"{name}:{PHENOPACKETS_KEY}[{i}]", packet))
            continue
        if sheet == IDENTIFIER_COLUMNS_SHEET and isinstance(items, dict):
            items = _declarations(items)  # {sheet: {column: treatment}}
        if sheet not in READABLE_SHEETS:
            problems.append(
                _problem(
                    "document.key.unknown",
                    f"Unknown key {key!r}.",
                    f"未知的键 {key!r}。",
                    file=name,
                    suggestion=f"Keys: {', '.join((*READABLE_SHEETS, PHENOPACKETS_KEY))}",
                )
            )
            continue
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            problems.append(
                _problem(
                    "document.shape",
                    f"{key!r} must be a list of objects.",
                    f"{key!r} 必须是对象列表。",
                    file=name,
                    column=str(key),
                )
            )
            continue
        rows = bundle.rows.setdefault(sheet, [])
        for i, item in enumerate(items, start=1):
            rows.append(Row(sheet=sheet, file=f"{name}:{sheet}", number=i, values=dict(item)))


def _declarations(mapping: dict[Any, Any]) -> list[dict[str, Any]] | dict[Any, Any]:
    """`{sheet: {column: treatment}}` as rows of the identifier_columns sheet (the mapping as it
    was when it has another shape: refused as such)."""
    rows = []
    for sheet, columns in mapping.items():
        if not isinstance(columns, dict):
            return mapping
        for column, treatment in columns.items():
            rows.append({"sheet": sheet, "column": column, "treatment": treatment})
    return rows


def _zip_is_safe(path: Path, problems: list[Problem], *, name: str, limits: Limits) -> bool:
    """Check a zip's directory for bombs and hostile paths before anything is unpacked."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError) as error:
        problems.append(
            _problem(
                "archive.unreadable",
                f"The archive cannot be read: {error}.",
                f"无法读取压缩包：{error}。",
                file=name,
                suggestion="The file may be truncated; upload it again / 文件可能被截断，请重新上传",
            )
        )
        return False
    if len(members) > limits.max_members:
        problems.append(
            _problem(
                "archive.members",
                f"The archive has {len(members)} members; the limit is {limits.max_members}.",
                f"压缩包包含 {len(members)} 个文件，超过上限 {limits.max_members}。",
                file=name,
            )
        )
        return False
    total = 0
    for member in members:
        total += member.file_size
        ratio = member.file_size / max(member.compress_size, 1)
        if member.file_size > 1 << 20 and ratio > limits.max_ratio:
            problems.append(
                _problem(
                    "archive.bomb",
                    f"Member {member.filename!r} expands {ratio:.0f}-fold; this "
                    "looks like a zip bomb.",
                    f"成员 {member.filename!r} 的压缩比为 {ratio:.0f}，疑似压缩炸弹。",
                    file=name,
                    value=member.filename,
                )
            )
            return False
    if total > limits.max_unpacked_bytes:
        problems.append(
            _problem(
                "archive.too_large",
                f"The archive unpacks to {total} bytes; the limit is {limits.max_unpacked_bytes}.",
                f"压缩包解压后 {total} 字节，超过上限。",
                file=name,
            )
        )
        return False
    return True
