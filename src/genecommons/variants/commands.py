"""CLI of the variant store. Parse, call the service, print."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from genecommons.progress_bars import reporter
from genecommons.runtime import operator, runtime
from genecommons.services import Services
from genecommons.variants import service, store_service

console = Console()
variants_app = typer.Typer(help="The variant store. 变异库。", no_args_is_help=True)


@variants_app.command("build")
def build(
    dataset: Annotated[str, typer.Argument(help="Dataset accession (GCD...)")],
    vcf: Annotated[Path, typer.Argument(help="Joint-called VCF, bgzipped")],
) -> None:
    """Build a dataset's variant store from its VCF, replacing the store it had (and a
    plaintext store of an older version). 由 VCF 建立（或重建）数据集的变异库。"""
    context = runtime()
    with reporter() as progress:
        summary = service.build_dataset_store(
            context.factory,
            context.settings,
            subject=operator(),
            dataset=dataset,
            vcf=vcf,
            progress=progress,
        )
    console.print(
        f"{summary.sites:,} sites from {summary.records:,} records x {summary.samples:,} "
        f"samples; groups: {', '.join(summary.groups)}"
    )


@variants_app.command("show")
def show(
    dataset: Annotated[str, typer.Argument(help="Dataset accession (GCD...)")],
    variant: Annotated[str, typer.Argument(help="CHROM-POS-REF-ALT, e.g. chr22-16050075-A-G")],
) -> None:
    """Allele counts of a variant by group. 按群体显示变异的等位基因计数。"""
    context = runtime()
    found = service.variant_counts(
        context.factory, context.settings, subject=operator(), dataset=dataset, key=variant
    )
    if found is None:
        console.print(f"{variant}: not in {dataset} / 不在该数据集中")
        raise typer.Exit(1)
    table = Table(title=found.variant.key)
    for column in ("group", "AC", "AN", "AF", "hom", "hemi"):
        table.add_column(column, justify="left" if column == "group" else "right")
    for group, cell in found.counts.items():
        frequency = found.frequency(group)
        table.add_row(
            group,
            str(cell["ac"]),
            str(cell["an"]),
            "" if frequency is None else f"{frequency:.5f}",
            str(cell["hom"]),
            str(cell["hemi"]),
        )
    console.print(table)


@variants_app.command("load-reference")
def load_reference(
    vcf: Annotated[
        Path,
        typer.Argument(
            help="Public allele counts: a sites VCF/BCF with INFO AC and AN (gnomAD-style), or "
            "one with genotypes"
        ),
    ],
    samples: Annotated[
        Path | None,
        typer.Option(
            "--samples",
            help="Count the genotypes of only the samples this file names, one a line. "
            "只统计该文件列出的样本（每行一个）。",
        ),
    ] = None,
) -> None:
    """Load the public reference allele counts by which the Beacon places each variant's
    threshold, replacing the previous reference. 载入公共参考等位基因计数（替换原有参考）。"""
    context = runtime()
    with console.status(f"loading public reference counts from {vcf.name} …"):
        summary = service.load_reference(
            context.factory, context.settings, subject=operator(), vcf=vcf, samples_file=samples
        )
    source = summary.source
    table = Table(title="Public reference counts 公共参考计数", show_header=False)
    table.add_column(no_wrap=True)
    table.add_column(overflow="fold")  # a digest or a path is shown whole
    table.add_row("source 来源", escape(source.file))
    table.add_row("sha256", source.sha256)
    table.add_row("records 记录", f"{summary.records:,}")
    table.add_row("variants 变异", f"{source.sites:,}")
    table.add_row("alleles (max AN) 等位基因数", f"{source.alleles:,}")
    counted = {
        "info": "INFO AC/AN",
        "genotypes": f"GT of {source.samples:,} samples 个样本的基因型",
        "info+genotypes": f"INFO AC/AN, else GT of {source.samples:,} samples 个样本的基因型",
    }[source.counted_from]
    table.add_row("counted from 计数来源", counted)
    table.add_row("file 文件", escape(str(summary.path)))
    console.print(table)


STATES = {
    "ok": "ok 正常",
    "damaged": "DAMAGED 已损坏",
    "leftover": "leftover 残留",
    "legacy": "plaintext (old format) 明文（旧格式）",
    "in-progress": "being built 正在建立",
    "missing": "MISSING 缺失",
    "restored": "restored 已恢复",
}


@variants_app.command("verify")
def verify(
    remove: Annotated[
        bool,
        typer.Option(
            "--remove",
            help="Remove leftovers and plaintext stores of the old format (never a store being "
            "built). 删除残留与旧格式的明文库（不会删除正在建立的库）。",
        ),
    ] = False,
) -> None:
    """Check every variant store against its binding in the catalog and check that every value
    it holds authenticates; report leftovers, plaintext stores and missing stores.
    校验每个变异库与目录登记是否一致、所有数据能否通过认证；报告残留、明文库与缺失的库。"""
    context = runtime()
    with console.status("verifying the variant stores …"):
        findings = store_service.verify_stores(
            context.factory, context.settings, subject=operator(), remove=remove
        )
    table = Table(title="Variant stores 变异库")
    for column in ("dataset", "state 状态", "directory 目录", "detail 说明"):
        table.add_column(column, overflow="fold")
    for finding in findings:
        state = STATES[finding.state] + (" — removed 已删除" if finding.removed else "")
        table.add_row(
            escape(finding.dataset or ""), state, escape(finding.path.name), escape(finding.detail)
        )
    console.print(table)
    bad = [f for f in findings if f.state in ("damaged", "missing")]
    left = [f for f in findings if f.state in ("leftover", "legacy") and not f.removed]
    if left:
        console.print("run `genecommons variants verify --remove` to remove what is left over")
    if bad or left:
        raise typer.Exit(1)


def clear_leftovers(context: Services) -> None:
    """Remove leftover variant stores (at `serve` start), saying what was removed."""
    findings = store_service.clear_leftovers(context.factory, context.settings, subject=operator())
    for finding in findings:
        if finding.removed:
            typer.echo(
                f"removed a leftover variant store {finding.path.name} ({finding.detail}) "
                f"已删除残留变异库",
                err=True,
            )
        elif finding.state in ("legacy", "damaged", "missing"):
            typer.echo(
                f"variant store {finding.path.name}: {STATES[finding.state]}: {finding.detail}; "
                "run `genecommons variants verify`",
                err=True,
            )
