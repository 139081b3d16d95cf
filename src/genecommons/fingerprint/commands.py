"""CLI of fingerprinting: datasets' settings, recorded deliveries, recipients' copies and their
builder, leak tracing (`genecommons trace`) and the leak simulation. Parse, call, print."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from genecommons.catalog import service as catalog_service
from genecommons.catalog.export import write_sheets
from genecommons.fingerprint import copy_jobs
from genecommons.fingerprint import service as fingerprint_service
from genecommons.fingerprint.leaksim import SimulationReport, SimulationSettings
from genecommons.fingerprint.models import BuildReport
from genecommons.fingerprint.trace import DEFAULT_ALPHA
from genecommons.progress_bars import reporter
from genecommons.runtime import operator, runtime

console = Console()
fingerprint_app = typer.Typer(
    help="Fingerprinted deliveries and the leak simulation. 带指纹的数据交付与泄露模拟。",
    no_args_is_help=True,
)


def trace(
    leaked: Annotated[
        Path,
        typer.Argument(help="The leaked file: genotypes (VCF, VCF.gz, TSV) or a sheet (TSV/CSV)"),
    ],
    dataset: Annotated[
        str | None, typer.Option("--dataset", help="The dataset it came from (default: guess)")
    ] = None,
    alpha: Annotated[
        float,
        typer.Option("--alpha", min=1e-12, max=0.5, help="Chance of naming any innocent at most"),
    ] = DEFAULT_ALPHA,
) -> None:
    """Score every recipient of the leaked data and name the likely sources. 追溯泄露来源。"""
    context = runtime()
    with reporter() as progress:
        result = fingerprint_service.trace_leak(
            context.factory,
            context.settings,
            subject=operator(),
            leaked=leaked,
            dataset=dataset,
            alpha=alpha,
            progress=progress,
        )
    verdict = result.verdict
    console.print(
        f"{escape(result.file)} ({result.format}): dataset {result.dataset}, "
        f"{result.matched_sites:,} sites x {result.matched_samples:,} samples matched, "
        f"{verdict.positions:,} marked positions read."
    )
    table = Table(title="Recipients 接收者")
    for column in ("recipient", "score", "z", "p-value", "named", "deliveries"):
        table.add_column(
            column, justify="left" if column in ("recipient", "deliveries") else "right"
        )
    for score in verdict.scores:
        table.add_row(
            escape(score.recipient),
            f"{score.score:.1f}",
            f"{score.z:.2f}",
            f"{score.p_value:.3g}",
            "[red]YES 是[/red]" if score.named else "no",
            ", ".join(result.deliveries.get(score.recipient, [])),
        )
    console.print(table)
    if verdict.named:
        console.print(
            f"Likely source(s) 可能的来源: {', '.join(escape(s.recipient) for s in verdict.named)} "
            f"(p <= {verdict.alpha:g}, corrected for {len(verdict.scores)} recipients)."
        )
    else:
        console.print(
            f"No recipient is named at p <= {verdict.alpha:g}. 没有接收者达到显著性阈值。"
        )


@fingerprint_app.command("simulate")
def simulate(
    trials: Annotated[int, typer.Option("--trials", min=1)] = 1000,
    recipients: Annotated[int, typer.Option("--recipients", min=2)] = 100,
    colluders: Annotated[int, typer.Option("--colluders", min=1, help="At most this many")] = 5,
    subset: Annotated[float, typer.Option("--subset", min=0.001, max=1.0)] = 0.10,
    subset_of: Annotated[str, typer.Option("--subset-of", help="samples or sites")] = "samples",
    flips: Annotated[float, typer.Option("--flips", min=0.0, max=0.5)] = 0.01,
    attack_threshold: Annotated[float, typer.Option("--attack-threshold", min=0.0, max=1.0)] = 0.25,
    individuals: Annotated[int, typer.Option("--individuals", min=20)] = 1000,
    length: Annotated[int, typer.Option("--length", min=10_000, help="bp of chr22")] = 2_000_000,
    seed: Annotated[int, typer.Option("--seed", min=0)] = 42,
) -> None:
    """Run the leak simulation and check the goal. 运行泄露追溯模拟并检验目标。"""
    if subset_of not in ("samples", "sites"):
        raise typer.BadParameter("--subset-of is samples or sites")
    settings = SimulationSettings(
        recipients=recipients,
        max_colluders=min(colluders, recipients),
        trials=trials,
        subset=subset,
        subset_of=subset_of,
        flips=flips,
        attack_threshold=attack_threshold,
        seed=seed,
    )
    with reporter() as progress:
        report = fingerprint_service.simulate(
            individuals=individuals,
            length=length,
            seed=seed,
            settings=settings,
            progress=progress,
        )
    print_simulation(report)
    if not goal_met(report):
        raise typer.Exit(1)


def goal_met(report: SimulationReport) -> bool:
    """Whether the simulation meets the goal: at least 99% of leakers caught, at most 0.1% false
    alarms, at most 0.5% of cells changed and allele frequencies and GWAS kept."""
    return (
        report.caught_rate >= 0.99
        and report.false_alarm_rate <= 0.001
        and report.changed_share_max <= 0.005
        and report.max_af_deviation <= 0.005
        and report.gwas_spearman_min >= 0.99
    )


def print_simulation(report: SimulationReport) -> None:
    """The figures of a simulation, beside the goal."""
    s = report.settings
    console.print(
        f"{report.samples:,} samples x {report.sites:,} biallelic sites, {report.positions:,} "
        f"marked positions; {s.recipients} recipients, up to {s.max_colluders} colluders, "
        f"{s.subset:.0%} of the {s.subset_of} leaked, {s.flips:.1%} flips, correlation attack "
        f"at q < {s.attack_threshold}; {report.trials} trials in {report.seconds:.0f} s."
    )
    table = Table(title="Trials 试验 (min z: weakest colluder; max z: strongest innocent)")
    columns = ("colluders", "strategy", "trials", "caught", "innocent named", "min z", "max z")
    for column in columns:
        table.add_column(column, justify="right")
    for o in report.outcomes:
        table.add_row(
            str(o.colluders),
            o.strategy,
            str(o.trials),
            str(o.caught),
            str(o.false_alarms),
            f"{o.min_colluder_z:.1f}",
            f"{o.max_innocent_z:.1f}",
        )
    console.print(table)
    goal = Table(title="Goal 目标")
    for column in ("figure", "measured", "goal"):
        goal.add_column(column, justify="left" if column == "figure" else "right")
    goal.add_row("a colluder named", f"{report.caught_rate:.2%}", ">= 99%")
    goal.add_row("an innocent named", f"{report.false_alarm_rate:.2%}", "<= 0.1%")
    goal.add_row("cells changed (max copy)", f"{report.changed_share_max:.3%}", "<= 0.5%")
    goal.add_row("max AF deviation", f"{report.max_af_deviation:.4f}", "<= 0.005")
    goal.add_row("GWAS Spearman (min copy)", f"{report.gwas_spearman_min:.4f}", ">= 0.99")
    goal.add_row("attack: marks reverted", f"{report.attack_marks_reverted:.1%}", "")
    goal.add_row("attack: clean cells changed", f"{report.attack_clean_changed:.2%}", "")
    console.print(goal)
    console.print(
        "Goal met. 达到目标。" if goal_met(report) else "[red]Goal NOT met. 未达到目标。[/red]"
    )


@fingerprint_app.command("policy")
def policy(
    dataset: Annotated[str, typer.Argument(help="Dataset accession (GCD...)")],
    required: Annotated[
        bool, typer.Option("--required/--off", help="Fingerprint its record-level deliveries")
    ] = True,
) -> None:
    """Set whether a dataset's deliveries are fingerprinted. 设置数据集交付是否带指纹。"""
    context = runtime()
    fingerprint_service.set_policy(
        context.factory, subject=operator(), dataset=dataset, required=required
    )
    console.print(f"{dataset}: fingerprint {'required 必需' if required else 'off 关闭'}")


@fingerprint_app.command("deliveries")
def deliveries(
    dataset: Annotated[str | None, typer.Option("--dataset")] = None,
) -> None:
    """List the recorded deliveries. 列出交付记录。"""
    context = runtime()
    table = Table(title="Deliveries 交付")
    for column in (
        "delivery",
        "recipient",
        "dataset",
        "when",
        "channel",
        "marked",
        "cells changed",
    ):
        table.add_column(column)
    for d in fingerprint_service.deliveries(context.factory, subject=operator(), dataset=dataset):
        table.add_row(
            d.delivery_id,
            escape(d.recipient),
            d.dataset,
            d.delivered_at.isoformat(timespec="seconds"),
            d.channel,
            "yes" if d.fingerprinted else "no",
            f"{float(d.utility.get('changed_share', 0.0)):.3%}",
        )
    console.print(table)


@fingerprint_app.command("build-pending")
def build_pending(
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed", help="Put failed builds back in the queue first")
    ] = False,
    keep_watching: Annotated[
        bool, typer.Option("--watch", help="Keep building as requests arrive, until stopped")
    ] = False,
) -> None:
    """Build the fingerprinted copies requests are waiting for (what `serve` does in the
    background). 生成等待中的带指纹副本。"""
    context = runtime()
    # a stopped builder gives its job back (not counted as an attempt) and leaves no object
    signal.signal(signal.SIGTERM, lambda number, _frame: sys.exit(128 + number))
    if retry_failed:
        count = copy_jobs.retry_failed(context.factory, subject=operator())
        console.print(f"{count} failed build(s) queued again. 已重新排队 {count} 个失败任务。")
    failed = 0
    while True:
        report = copy_jobs.build_pending(context.factory, context.settings)
        failed += report.failed
        if report != BuildReport() or not keep_watching:
            console.print(
                f"Copies built {report.built}, failed {report.failed}, to retry "
                f"{report.retrying}, taken over {report.lost}. 已生成 {report.built} 个，失败 "
                f"{report.failed} 个，待重试 {report.retrying} 个。"
            )
        if not keep_watching:
            break
        time.sleep(context.settings.copy_build_poll_seconds)
    if failed:
        raise typer.Exit(code=1)


@fingerprint_app.command("copies")
def copies(
    state: Annotated[
        str | None, typer.Option("--state", help="pending, building, done or failed")
    ] = None,
) -> None:
    """List the jobs that build recipients' fingerprinted copies. 列出带指纹副本的生成任务。"""
    context = runtime()
    table = Table(title="Fingerprinted copies 带指纹副本")
    for column in ("job", "file", "recipient", "state", "attempts", "progress", "error"):
        table.add_column(column)
    for job in copy_jobs.list_jobs(context.factory, subject=operator(), state=state):
        table.add_row(
            str(job.id),
            job.accession,
            escape(job.recipient),
            job.state,
            str(job.attempts),
            f"{job.progress:.0%}",
            escape(str((job.error or {}).get("message", ""))),
        )
    console.print(table)


# Exports for a recipient, fingerprinted where the data's policy asks: registered by the CLI
# under the commands of what they export (`studies export`, `variants export`).


def export_study(
    accession: str,
    out: Annotated[Path, typer.Option("--out")] = Path("export"),
    recipient: Annotated[
        str | None,
        typer.Option(
            "--recipient",
            help="Who receives it (e-mail): a fingerprinted dataset's numbers carry their marks",
        ),
    ] = None,
) -> None:
    """Export a study's records as TSV sheets, safe to open in Excel. 导出研究记录。"""
    context = runtime()
    if recipient is None:
        sheets = catalog_service.export_study(context.factory, accession, subject=operator())
    else:
        sheets = fingerprint_service.export_study_for(
            context.factory, context.settings, accession, subject=operator(), recipient=recipient
        )
    for path in write_sheets(out, sheets):
        console.print(str(path))


def export_vcf(
    dataset: Annotated[str, typer.Argument(help="Dataset accession (GCD...)")],
    recipient: Annotated[str, typer.Option("--recipient", help="Who receives it (e-mail)")],
    out: Annotated[Path, typer.Option("--out", help="The VCF to write (.vcf or .vcf.gz)")],
) -> None:
    """Export a dataset's genotypes for a recipient, fingerprinted as its policy says, and record
    the delivery. 为接收者导出数据集基因型（按策略加指纹）并记录交付。"""
    context = runtime()
    with console.status(f"exporting {dataset} for {recipient} …"):
        delivery = fingerprint_service.export_vcf(
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
