"""CLI of the catalog: parse argv, call the service, print. Nothing else."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from genecommons.catalog import service
from genecommons.catalog.bundle import SHEET_SUFFIXES
from genecommons.catalog.export import write_templates
from genecommons.catalog.report import Report
from genecommons.catalog.validation.identifiers import scan_sheet_file
from genecommons.errors import SubmissionRejectedError
from genecommons.progress_bars import reporter
from genecommons.runtime import operator, runtime
from genecommons.secrets import node_keys

console = Console()
err = Console(stderr=True)

studies_app = typer.Typer(help="Studies in the catalog. 目录中的研究。", no_args_is_help=True)
datasets_app = typer.Typer(help="Datasets in the catalog. 目录中的数据集。", no_args_is_help=True)


def submit(
    path: Annotated[Path, typer.Argument(help="Folder, .zip, .xlsx, .json/.yaml or a sheet")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate only")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON")] = False,
) -> None:
    """Validate a submission and commit it all or nothing. 验证并提交元数据。"""
    context = runtime()
    subject = operator()
    try:
        with reporter() as progress:
            files = context.submission_files(subject, progress=progress)
            result = service.submit(
                context.factory,
                path,
                subject=subject,
                dry_run=dry_run,
                staging=context.settings.staging_dir,
                progress=progress,
                data_files=files,
                identifier_key=lambda: service.pseudonym_key(node_keys(context.settings)),
            )
    except SubmissionRejectedError as error:
        if as_json:
            typer.echo(json.dumps(error.details, ensure_ascii=False, indent=2))
        else:
            from genecommons.catalog.report import Problem, Severity

            problems = [
                Problem(**{**p, "severity": Severity(p["severity"])})
                for p in error.details["problems"]
            ]
            err.print(escape(Report(problems=problems).to_text()), highlight=False)
        raise typer.Exit(error.exit_code) from None
    if as_json:
        typer.echo(json.dumps(result.to_dict(), ensure_ascii=False, indent=2))
        return
    console.print(escape(result.report.to_text()), highlight=False)
    if result.committed:
        console.print(
            f"Committed submission {result.submission_id}: {result.counts.created} "
            f"created, {result.counts.updated} updated, {result.counts.unchanged} "
            f"unchanged. 已提交。"
        )
        for accession in result.archived:
            console.print(f"  archived file {accession} 已归档")
        for built in files.variant_stores.built:
            console.print(
                f"  variant store {built.path.name}: {built.sites:,} sites, "
                f"{built.samples:,} samples 变异库已建立"
            )
        for entity in ("studies", "datasets"):
            for alias, accession in result.accessions.get(entity, {}).items():
                console.print(
                    f"  {entity[:-1] if entity != 'studies' else 'study'} "
                    f"{escape(alias)} -> {accession}"
                )
    else:
        console.print("Dry run: nothing was stored. 仅验证，未保存。")


def scan_identifiers(
    path: Annotated[Path, typer.Argument(help="A TSV or CSV sheet, of any size")],
    sheet: Annotated[
        str | None, typer.Option("--sheet", help="The sheet it is (default: the file's name)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the findings as JSON")] = False,
) -> None:
    """Scan one sheet for direct identifiers, row by row; exit 1 when any is found.
    扫描表格中的直接标识符。"""
    delimiter = SHEET_SUFFIXES.get(path.suffix.lower())
    if delimiter is None or not path.is_file():
        err.print(f"{escape(str(path))}: give a .tsv, .txt or .csv file / 请提供 TSV 或 CSV 文件")
        raise typer.Exit(2)
    with reporter() as progress, path.open("rb") as handle:
        result = scan_sheet_file(
            handle,
            sheet=(sheet or path.stem).lower(),
            delimiter=delimiter,
            name=path.name,
            size=path.stat().st_size,
            progress=progress,
        )
    found = sum(result.counts.values())
    if as_json:
        summary = {
            "rows": result.rows,
            "findings": found,
            "counts": [
                {"column": c, "kind": k, "count": n} for (c, k), n in sorted(result.counts.items())
            ],
            "problems": Report(problems=result.problems).to_dict()["problems"],
        }
        typer.echo(json.dumps(summary, ensure_ascii=False, indent=2))
    else:
        console.print(escape(Report(problems=result.problems).to_text()), highlight=False)
        for (column, kind), count in sorted(result.counts.items()):
            console.print(f"  {escape(column)}: {count:,} {kind}")
        console.print(f"{result.rows:,} rows scanned, {found:,} identifier(s) found. 扫描完成。")
    if found or any(p.rule == "sheet.syntax" for p in result.problems):
        raise typer.Exit(1)


def template(
    out: Annotated[Path, typer.Option("--out", help="Folder to write into")] = Path("template"),
) -> None:
    """Write empty submission templates (TSV sheets and an .xlsx workbook). 生成空白模板。"""
    for path in write_templates(out):
        console.print(str(path))


def _listing(entity: str, page: int, page_size: int, columns: list[str]) -> None:
    context = runtime()
    result = service.list_records(
        context.factory, entity, subject=operator(), page=page, page_size=page_size
    )
    table = Table(title=f"{entity} ({result.total}) — page {result.page}")
    for column in columns:
        table.add_column(column)
    for item in result.items:
        table.add_row(*(escape(str(item.get(c, "") or "")) for c in columns))
    console.print(table)


def _show(entity: str, accession: str) -> None:
    context = runtime()
    item = service.get_record(
        context.factory, entity, accession, subject=operator(), with_history=True
    )
    typer.echo(json.dumps(item, ensure_ascii=False, indent=2, default=str))


@studies_app.command("list")
def studies_list(page: int = 1, page_size: int = 50) -> None:
    """List studies. 列出研究。"""
    _listing("studies", page, page_size, ["accession", "alias", "title", "study_type"])


@studies_app.command("show")
def studies_show(accession: str) -> None:
    """Show one study with its history. 显示研究详情。"""
    _show("studies", accession)


@datasets_app.command("list")
def datasets_list(page: int = 1, page_size: int = 50) -> None:
    """List datasets. 列出数据集。"""
    _listing("datasets", page, page_size, ["accession", "alias", "title", "access_tier"])


@datasets_app.command("show")
def datasets_show(accession: str) -> None:
    """Show one dataset with its history. 显示数据集详情。"""
    _show("datasets", accession)
