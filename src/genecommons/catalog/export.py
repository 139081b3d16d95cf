"""Writing catalog records back out as sheets, safe to open in a spreadsheet program."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from genecommons.catalog.models import ENTITIES, LIST_SEPARATOR, PHENOTYPES_SHEET, Phenotype

# A cell starting with one of these is run as a formula by Excel, LibreOffice and Sheets.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def spreadsheet_safe(value: Any) -> str:
    """A cell's text, with a leading apostrophe where a spreadsheet would run it as a formula."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        value = LIST_SEPARATOR.join(str(v) for v in value)
    text = str(value)
    if text.startswith(FORMULA_TRIGGERS):
        try:
            float(text)  # a negative number is data, not a formula
            return text
        except ValueError:
            return "'" + text
    return text


def sheet_columns(sheet: str) -> list[str]:
    """The columns of a sheet, in the order the model declares them."""
    model = Phenotype if sheet == PHENOTYPES_SHEET else ENTITIES[sheet].model
    return list(model.model_fields)


def to_tsv(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """Rows as TSV text with a header line, every cell made spreadsheet-safe."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter="\t", lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([spreadsheet_safe(row.get(c)) for c in columns])
    return buffer.getvalue()


def write_templates(out: Path, *, workbook: bool = True) -> list[Path]:
    """Write an empty sheet per entity (TSV) and, optionally, one .xlsx workbook."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    sheets = [*ENTITIES, PHENOTYPES_SHEET]
    for sheet in sheets:
        path = out / f"{sheet}.tsv"
        path.write_text(to_tsv([], sheet_columns(sheet)), encoding="utf-8")
        written.append(path)
    if workbook:
        import openpyxl

        book = openpyxl.Workbook()
        default = book.active
        if default is not None:
            book.remove(default)
        for sheet in sheets:
            book.create_sheet(sheet).append(sheet_columns(sheet))
        path = out / "submission.xlsx"
        book.save(path)
        written.append(path)
    return written


def write_sheets(out: Path, sheets: Mapping[str, list[dict[str, Any]]]) -> list[Path]:
    """Write records as one TSV per sheet (an export that opens safely in Excel)."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for sheet, rows in sheets.items():
        path = out / f"{sheet}.tsv"
        path.write_text(to_tsv(rows, sheet_columns(sheet)), encoding="utf-8")
        written.append(path)
    return written
