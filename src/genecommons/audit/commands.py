"""CLI of the audit log (verify it, witness another node's, watch it for early warnings, list
the alerts). Parse, call, print."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from genecommons.audit import service, watch
from genecommons.progress_bars import reporter
from genecommons.runtime import operator, runtime

console = Console()
audit_app = typer.Typer(help="The tamper-evident audit log. 防篡改审计日志。", no_args_is_help=True)


@audit_app.command("verify")
def verify() -> None:
    """Recompute the log from storage and report any tampering. 校验审计日志。"""
    context = runtime()
    key = service.signing_key(context.settings)
    with reporter() as progress:
        result = service.verify(context.factory, key.public_key(), progress=progress)
    if result.problems:
        for problem in result.problems:
            console.print(f"[red]TAMPERED[/red] {problem}")
        console.print(
            f"{len(result.problems)} problem(s) in a log of {result.tree_size} "
            "events. 审计日志已被篡改。"
        )
        raise typer.Exit(7)
    console.print(f"The audit log of {result.tree_size} events is intact. 审计日志完整。")
    if result.queued:
        console.print(
            f"{result.queued} more event(s) are queued and join the tree at the next sequencing "
            f"(`genecommons audit watch --once`). 另有 {result.queued} 条事件排队待入树。"
        )


@audit_app.command("witness")
def witness(
    url: str,
    state: Annotated[Path, typer.Option("--state", help="Where the heads seen are kept")] = Path(
        "witness-state.json"
    ),
) -> None:
    """Check that a node's log only grew since last time (consistency proof). 见证日志只增不改。"""
    result = service.witness(url, state=state)
    if not result.consistent:
        console.print(
            f"[red]INCONSISTENT[/red]: the log of {url} is not an extension of the "
            f"head seen before (size {result.previous_size}). 日志不一致。"
        )
        raise typer.Exit(7)
    console.print(f"Consistent: {result.previous_size} -> {result.tree_size} events. 一致。")


@audit_app.command("watch")
def watch_log(
    once: Annotated[bool, typer.Option("--once", help="One pass, then exit")] = False,
    interval: Annotated[
        float | None, typer.Option("--interval", help="Seconds between passes", min=0.1)
    ] = None,
) -> None:
    """Evaluate the early-warning rules over new events; store and send alerts. 审计预警。"""
    context = runtime()
    pause = interval or context.settings.audit_watch_interval_seconds
    while True:
        report = watch.watch_once(context.factory, context.settings)
        console.print(
            f"Read {report.read} events (cursor at {report.position}), raised {report.raised} "
            f"alert(s), delivered {report.delivered}. 已读取 {report.read} 条事件，"
            f"新预警 {report.raised} 条。"
        )
        if once:
            return
        time.sleep(pause)


@audit_app.command("alerts")
def alerts(
    after: Annotated[int, typer.Option("--after", help="Alerts after this id", min=0)] = 0,
    limit: Annotated[int, typer.Option("--limit", min=1, max=watch.MAX_ALERTS)] = 20,
    rule: Annotated[str | None, typer.Option("--rule", help="Only this rule's alerts")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="With evidence and proofs")] = False,
) -> None:
    """List the early-warning alerts with the log entries behind them. 列出审计预警。"""
    context = runtime()
    result = watch.list_alerts(
        context.factory,
        context.settings,
        service.signing_key(context.settings),
        actor=operator(),
        after=after,
        limit=limit,
        rule=rule,
    )
    if as_json:
        typer.echo(json.dumps(result, ensure_ascii=False, indent=2))
        return
    for alert in result["alerts"]:
        console.print(
            f"#{alert['id']} {alert['raised_at']} [{alert['severity']}] {alert['rule']}: "
            f"{escape(alert['summary'])}\n    {escape(alert['summary_zh'])}\n"
            f"    leaves {alert['leaf_indices']} (delivery: {alert['delivery']})",
            highlight=False,
        )
    console.print(
        f"{len(result['alerts'])} alert(s); proofs against tree size "
        f"{result['sth']['tree_size']}. 共 {len(result['alerts'])} 条预警。"
    )
