"""CLI of the demo: parse argv, call `write_demo` (with progress bars) or the demo's service,
print. Nothing else."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from genecommons.demo import service
from genecommons.demo.cohort import MAX_INDIVIDUALS, MIN_SEQUENCE_LENGTH, write_demo
from genecommons.progress import Fractions
from genecommons.progress_bars import reporter
from genecommons.runtime import operator, runtime

console = Console()


def demo(
    out: Annotated[Path, typer.Option("--out", help="Folder to write the demo bundle into")],
    individuals: Annotated[
        int, typer.Option("--individuals", min=1, max=MAX_INDIVIDUALS, help="Cohort size")
    ] = 2000,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Random seed")] = 42,
    reference_individuals: Annotated[
        int | None,
        typer.Option(
            "--reference-individuals",
            min=0,
            max=MAX_INDIVIDUALS,
            help="Reference panel size (default: half the cohort; 0 for none)",
        ),
    ] = None,
    length: Annotated[
        int | None,
        typer.Option(
            "--length",
            min=MIN_SEQUENCE_LENGTH,
            help="Simulate only this many bp of chr22's q arm (default: all of it)",
        ),
    ] = None,
) -> None:
    """Write a synthetic cohort as a submission bundle. 生成合成示范队列（提交包）。"""
    with reporter() as progress, Fractions(progress, end="done") as stages:
        summary = write_demo(
            out,
            individuals=individuals,
            seed=seed,
            reference_individuals=reference_individuals,
            sequence_length=length,
            progress=stages,
        )
    table = Table(title="Demo cohort 示范队列", show_header=False)
    table.add_row("folder", escape(str(summary.out_dir)))
    table.add_row("region", f"{summary.chrom}:{summary.start}-{summary.end} (GRCh38)")
    table.add_row("model", summary.model_id)
    table.add_row(
        "individuals",
        f"{summary.individuals} (+{summary.reference_individuals} in the reference panel)",
    )
    table.add_row("sites", str(summary.sites))
    table.add_row("T2D cases", str(summary.t2d_cases))
    table.add_row("cohort VCF", escape(str(summary.cohort_vcf)))
    if summary.public_frequencies_vcf is not None:
        table.add_row("public frequencies", escape(str(summary.public_frequencies_vcf)))
    table.add_row("truth", escape(str(summary.truth)))
    console.print(table)
    console.print(f"Submit it with: genecommons submit {escape(str(summary.out_dir))}")


def committee() -> None:
    """Create the demo's data access committee and a member account, unless they exist; the
    member's credentials are printed once, when the account is made. 创建示范数据访问委员会及其成员账号。"""
    context = runtime()
    made = service.ensure_committee(context.factory, context.settings, actor=operator())
    if made.dac_created:
        console.print(f"Created DAC {escape(made.dac)}. 已创建数据访问委员会。")
    if made.password is not None:
        console.print(
            f"Created DAC member {escape(made.member)} (shown once / 仅显示一次):", highlight=False
        )
        console.print(f"  password 密码: {made.password}", highlight=False)
        console.print(f"  TOTP secret 验证器密钥: {made.totp_secret}", highlight=False)
        console.print(f"  otpauth URI: {escape(made.totp_uri or '')}", highlight=False)
    elif made.member_added:
        console.print(f"{escape(made.member)} added to {escape(made.dac)}. 已添加。")
    if not (made.dac_created or made.password or made.member_added):
        console.print(
            f"DAC {escape(made.dac)} and its member {escape(made.member)} exist already. "
            "示范委员会及成员已存在。"
        )
