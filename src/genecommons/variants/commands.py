"""CLI of the variant store. Parse, call the service, print."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from genecommons.audit import trace_service
from genecommons.runtime import operator, runtime
from genecommons.variants import service

console = Console()
variants_app = typer.Typer(help="The variant store. 变异库。", no_args_is_help=True)


@variants_app.command("build")
def build(
    dataset: Annotated[str, typer.Argument(help="Dataset accession (GCD...)")],
    vcf: Annotated[Path, typer.Argument(help="Joint-called VCF, bgzipped and indexed")],
) -> None:
    """Build a dataset's variant store from its VCF. 由 VCF 建立数据集的变异库。"""
    context = runtime()
    with console.status(f"building the variant store of {dataset} …"):
        summary = service.build_dataset_store(
            context.factory, context.settings, subject=operator(), dataset=dataset, vcf=vcf
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
        context.settings, subject=operator(), dataset=dataset, key=variant
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


@variants_app.command("export")
def export(
    dataset: Annotated[str, typer.Argument(help="Dataset accession (GCD...)")],
    recipient: Annotated[str, typer.Option("--recipient", help="Who receives it (e-mail)")],
    out: Annotated[Path, typer.Option("--out", help="The VCF to write (.vcf or .vcf.gz)")],
) -> None:
    """Export a dataset's genotypes for a recipient, fingerprinted as its policy says, and record
    the delivery. 为接收者导出数据集基因型（按策略加指纹）并记录交付。"""
    context = runtime()
    with console.status(f"exporting {dataset} for {recipient} …"):
        delivery = trace_service.export_vcf(
            context.factory,
            context.settings,
            subject=operator(),
            dataset=dataset,
            recipient=recipient,
            out=out,
        )
    marked = "fingerprinted 已加指纹" if delivery.fingerprinted else "not fingerprinted 未加指纹"
    console.print(
        f"{out}: {delivery.what['sites']:,} sites x {delivery.what['samples']:,} samples, "
        f"{marked}; delivery {delivery.delivery_id}"
    )
    if delivery.fingerprinted:
        console.print(
            f"cells changed {float(delivery.utility['changed_share']):.3%}, max AF deviation "
            f"{float(delivery.utility['max_af_deviation']):.4f}"
        )
