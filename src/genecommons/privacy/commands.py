"""CLI of privacy: parse argv, call the service, print. Nothing else."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from genecommons.privacy import assessments, attack, beacon_rules, evaluation, measurements
from genecommons.privacy.report_model import PrivacyReport, report_document
from genecommons.progress_bars import reporter
from genecommons.runtime import operator, runtime

console = Console()
privacy_app = typer.Typer(
    help="Privacy: measure and defend. 隐私：评估与防护。", no_args_is_help=True
)


@privacy_app.command("attack-beacon")
def attack_beacon(
    dataset: Annotated[str, typer.Argument(help="Dataset accession (GCD...) with a variant store")],
    demo: Annotated[
        Path | None, typer.Option("--demo", help="Demo folder: its cohort VCF and reference panel")
    ] = None,
    cohort: Annotated[Path | None, typer.Option("--cohort", help="Members' VCF")] = None,
    panel: Annotated[Path | None, typer.Option("--panel", help="Reference panel VCF")] = None,
    url: Annotated[
        list[str] | None,
        typer.Option(
            "--url",
            help="Also attack this Beacon v2 (base URL, or NAME=URL to name it; repeatable)",
        ),
    ] = None,
    token: Annotated[str | None, typer.Option("--token", help="Bearer token for --url")] = None,
    victims: Annotated[
        int, typer.Option("--victims", min=5, help="Members (and non-members)")
    ] = 100,
    outsiders: Annotated[
        int | None,
        typer.Option("--outsiders", min=5, help="Non-members, if not as many as --victims"),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", min=0)] = 1,
    max_queries: Annotated[
        int, typer.Option("--max-queries", min=1, help="Queries per victim, at most")
    ] = attack.QUERY_COUNTS[-1],
    correctness_sites: Annotated[
        int,
        typer.Option(
            "--correctness-sites", min=1, help="Sites (and as many absent alleles) to score"
        ),
    ] = 20_000,
    public_people: Annotated[
        Path | None,
        typer.Option(
            "--public-people",
            help="File of the panel's people whose counts are the node's public reference "
            "(never drawn as non-members; --demo reads them from truth.json)",
        ),
    ] = None,
    sybils: Annotated[
        int,
        typer.Option(
            "--sybils",
            min=0,
            max=250,
            help="Also attack the count tier with this many accounts of one institution, each "
            "at its own address, per-caller budgets against pooled ones (0: not)",
        ),
    ] = 0,
    out: Annotated[Path, typer.Option("--out", help="Folder for the plot and the JSON")] = Path(
        "attack-beacon"
    ),
) -> None:
    """Re-identification attacks on the Beacon, undefended and defended. 对 Beacon 的再识别攻击评估。"""
    public: tuple[str, ...] = ()
    if demo is not None:
        cohort = cohort or demo / "cohort.vcf.gz"
        panel = panel or demo / "reference_panel.vcf.gz"
        public = evaluation.demo_public_people(demo)
    if public_people is not None:
        public = tuple(n for n in public_people.read_text(encoding="utf-8").split() if n)
    if cohort is None or panel is None:
        raise typer.BadParameter(
            "give --demo, or --cohort and --panel / 请给出 --demo 或 --cohort 与 --panel"
        )
    inputs = measurements.AttackInputs(
        cohort=cohort,
        panel=panel,
        public=public,
        victims=victims,
        outsiders=outsiders,
        seed=seed,
        queries=tuple(q for q in attack.QUERY_COUNTS if q <= max_queries) or (max_queries,),
        correctness_sites=correctness_sites,
        urls=served_beacons(url or []),
        sybils=sybils,
    )
    context = runtime()
    with reporter() as progress:
        figures, _ = measurements.measure(
            context.factory,
            context.settings,
            subject=operator(),
            dataset=dataset,
            inputs=inputs,
            token=token,
            progress=progress,
        )
    out.mkdir(parents=True, exist_ok=True)
    evaluation.plot(figures, out / "power.png")
    (out / "figures.json").write_text(figures.to_json() + "\n", encoding="utf-8")
    for beacon, curves in figures.curves.items():
        table = Table(title=f"{beacon}: power at 5% false positives / 假阳性率 5% 时的检出率")
        table.add_column("queries", justify="right")
        for curve in curves:
            table.add_column(curve.name.replace(", ", "\n"), justify="right")
        for q in curves[0].queries:
            table.add_row(str(q), *(cell(c, q) for c in curves))
        console.print(table)
    for beacon, found in figures.inference.items():
        console.print(
            f"{beacon}: von Thenen alleles asked carried {found['allele_accuracy']:.1%}, hidden "
            f"alleles inferred at >= 50% carried {found['confident_accuracy']:.1%} (their "
            f"frequency says {found['prior_accuracy']:.1%}), answers right "
            f"{found['answer_accuracy']:.1%}, power at 5 queries {found['power_at_5_queries']:.2f}"
        )
    for beacon, right in figures.correctness.items():
        console.print(
            f"{beacon}: alleles of frequency >= 1% answered right {right.common_correct:.2%} "
            f"(of {right.common_asked:,}), >= 5% {right.frequent_correct:.2%} (of "
            f"{right.frequent_asked:,}); absent alleles said present {right.absent_present} "
            f"(of {right.absent_asked:,})"
        )
    console.print(f"plot: {out / 'power.png'}  figures: {out / 'figures.json'}")
    console.print(
        f"kept for `genecommons privacy report {dataset}` / 已记录，可用 `genecommons privacy "
        f"report {dataset}` 查看"
    )


@privacy_app.command("report")
def report(
    dataset: Annotated[str, typer.Argument(help="Dataset accession (GCD...)")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON")] = False,
) -> None:
    """How private a dataset is: the attacks measured on it, the utility, the budgets spent,
    and whether the measurement still describes it. 数据集的隐私报告。"""
    context = runtime()
    found = assessments.privacy_report(
        context.factory, context.settings, subject=operator(), dataset=dataset
    )
    if as_json:
        typer.echo(json.dumps(report_document(found), ensure_ascii=False, indent=1))
        return
    print_report(found)


def print_report(found: PrivacyReport) -> None:
    """The report as tables on the terminal."""
    members = f"{found.members:,}" if found.members is not None else "no variant store 无变异库"
    console.print(f"[bold]{found.dataset}[/bold]: Beacon members 成员 {members}")
    defence = ", ".join(f"{k}={v}" for k, v in found.defence.items())
    console.print(f"defence 防护: {defence}")
    measured = found.measurement
    state = {"current": "current 有效", "stale": "stale 已过时", "missing": "missing 未测量"}
    console.print(f"measurement 测量: {state[found.judgement.freshness]}")
    for en, zh in zip(found.judgement.reasons, found.judgement.reasons_zh, strict=True):
        console.print(f"  {en}\n  {zh}")
    if measured is not None:
        parameters = measured.parameters
        console.print(
            f"measured 测量于 {measured.measured_at:%Y-%m-%d %H:%M} UTC by {measured.measured_by} "
            f"on {measured.members:,} members; victims {parameters.get('victims')}, seed "
            f"{parameters.get('seed')}, version {parameters.get('version')}"
        )
        table = Table(
            title=f"power at 5% false positives (goal <= {found.goal_power:.2f}) / "
            "假阳性率 5% 时的检出率"
        )
        for column in ("Beacon", "attacker 攻击者", "queries 查询数", "power 检出率", "worst 最高"):
            table.add_column(column, justify="left" if column == "Beacon" else "right")
        for power in measured.powers:
            table.add_row(
                power.beacon,
                power.attacker,
                " ".join(str(q) for q in power.queries),
                " ".join(f"{p:.2f}" for p in power.power),
                f"{power.worst:.2f}",
            )
        console.print(table)
        for beacon, utility in measured.utility.items():
            console.print(
                f"{beacon}: alleles of frequency >= 1% answered 频率 >= 1% 的等位基因回答正确 "
                f"{float(utility.get('common_correct', 0.0)):.1%}; absent said present 不存在却"
                f"答存在 {utility.get('absent_present')}"
            )
    if found.budgets:
        table = Table(title="Beacon budgets spent / Beacon 预算使用")
        for column in ("party 主体", "parties 数", "spent 总计", "most 最多", "exhausted 用尽"):
            table.add_column(column, justify="right")
        for use in found.budgets:
            table.add_row(
                use.kind,
                f"{use.parties:,}",
                f"{use.spent:,.2f}",
                f"{use.most:,.2f}",
                f"{use.exhausted:,}",
            )
        console.print(table)
    released = found.releases
    closed = f"; closed 已关闭 {released.closed_at:%Y-%m-%d}" if released.closed_at else ""
    console.print(
        f"open frequencies 开放频率: {released.variants:,} variant tables released, epsilon spent "
        f"已用 ε {released.epsilon_spent:,.2f}; detection budget 检测预算 "
        f"{released.detection_spent:.3f} of {released.detection_limit:.3f} (the pooled attack's "
        f"power now 汇总攻击检出率 {released.detection_power:.2f}){closed}"
    )


@privacy_app.command("reassess")
def reassess(
    datasets: Annotated[
        list[str] | None,
        typer.Argument(help="Dataset accessions (default: every dataset measured before)"),
    ] = None,
) -> None:
    """Measure the attacks again, with the inputs recorded, on each dataset whose measurement
    it has outgrown (its members changed by 10% or more, or the defence's settings changed).
    以记录的输入重新测量已过时的数据集。"""
    context = runtime()
    with reporter() as progress:
        measured = measurements.reassess(
            context.factory,
            context.settings,
            subject=operator(),
            datasets=datasets or (),
            progress=progress,
        )
    if not measured:
        console.print("Every measurement still describes its dataset. 所有测量仍然有效。")
    for dataset, found in measured.items():
        worst = found.served_worst
        console.print(
            f"{dataset}: measured again on {found.members:,} members; worst power against the "
            f"served Beacon {'-' if worst is None else f'{worst:.2f}'} / 已重新测量"
        )


@privacy_app.command("check-reference")
def check_reference(
    datasets: Annotated[
        list[str] | None,
        typer.Argument(help="Dataset accessions (default: every dataset with a variant store)"),
    ] = None,
) -> None:
    """Check whether the public reference suits each dataset; the Beacon places a dataset's
    windows by it only when it does (from its next start). 检查公共参考是否适用于各数据集。"""
    context = runtime()
    chosen = datasets or beacon_rules.datasets_with_stores(context.factory, context.settings)
    table = Table(title="Public reference against each dataset / 公共参考与各数据集")
    for column in ("dataset", "alleles", "listed", "exposure with / without", "ratio", "used"):
        table.add_column(column, justify="left" if column == "dataset" else "right")
    for dataset in chosen:
        with console.status(f"checking {dataset} …"):
            fit = beacon_rules.check_reference(
                context.factory, context.settings, subject=operator(), dataset=dataset
            )
        used = "yes 是" if fit.suits else "no 否"
        table.add_row(
            dataset,
            f"{fit.sites:,}",
            f"{fit.listed:,}",
            f"{fit.placed:,.1f} / {fit.unplaced:,.1f}",
            f"{fit.ratio:.2f}",
            used,
        )
    console.print(table)
    if not chosen:
        console.print("No dataset has a variant store. 没有数据集拥有变异库。")
    console.print(
        "A reference is used for a dataset when its windows at least halve what the dataset's "
        "alleles expose; restart `genecommons serve` to apply. 窗口使暴露至少减半时才对该数据集"
        "使用公共参考；重启 `genecommons serve` 后生效。"
    )


def cell(curve: attack.Curve, queries: int) -> str:
    """The power after `queries`, with its 95% interval when measured."""
    if queries not in curve.queries:
        return ""
    i = curve.queries.index(queries)
    if not curve.low:
        return f"{curve.power[i]:.2f}"
    return f"{curve.power[i]:.2f} ({curve.low[i]:.2f}–{curve.high[i]:.2f})"


def served_beacons(values: list[str]) -> dict[str, str]:
    """`--url` values by name: NAME=URL, or a bare URL named http, http-2, ..."""
    found: dict[str, str] = {}
    for i, value in enumerate(values, start=1):
        name, sep, rest = value.partition("=")
        if sep and not name.startswith(("http://", "https://")) and "/" not in name:
            name, value = name.strip(), rest.strip()
        else:
            name = "http" if i == 1 else f"http-{i}"
        if not name or name in found or name in ("undefended", "hide-rare", "defended"):
            raise typer.BadParameter(
                f"--url {value!r}: give each Beacon its own name, not undefended, hide-rare or "
                f"defended / 请为每个 Beacon 取不同的名称（不能用 undefended、hide-rare 或 defended）",
                param_hint="--url",
            )
        found[name] = value
    return found
