"""CLI of compliance reports: parse argv, call the service, write the files."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from genecommons.compliance import service
from genecommons.compliance.reports import SECTIONS
from genecommons.runtime import operator, runtime

console = Console()
compliance_app = typer.Typer(help="Compliance reports. 合规报告。", no_args_is_help=True)


@compliance_app.command("report")
def report(
    start: Annotated[datetime, typer.Option("--from", formats=["%Y-%m-%d"])],
    end: Annotated[datetime, typer.Option("--to", formats=["%Y-%m-%d"])],
    out: Annotated[Path, typer.Option("--out", help="Folder for report.json and CSVs")],
) -> None:
    """Write the report of a period as JSON and one CSV per section. 生成合规报告。"""
    result = service.report(runtime().factory, start=start.date(), end=end.date(), actor=operator())
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(
        json.dumps(result.to_json(), ensure_ascii=False, indent=2), encoding="utf-8"
    )
    for section in SECTIONS:
        (out / f"{section}.csv").write_text(result.to_csv(section), encoding="utf-8")
    console.print(f"Report written to {out} / 报告已写入。")
