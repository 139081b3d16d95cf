"""CLI of the audit log: verify it, witness another node's. Parse, call, print."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from genecommons.audit import service
from genecommons.runtime import runtime

console = Console()
audit_app = typer.Typer(help="The tamper-evident audit log. 防篡改审计日志。", no_args_is_help=True)


@audit_app.command("verify")
def verify() -> None:
    """Recompute the log from storage and report any tampering. 校验审计日志。"""
    context = runtime()
    key = service.signing_key(context.settings)
    result = service.verify(context.factory, key.public_key())
    if result.problems:
        for problem in result.problems:
            console.print(f"[red]TAMPERED[/red] {problem}")
        console.print(
            f"{len(result.problems)} problem(s) in a log of {result.tree_size} "
            "events. 审计日志已被篡改。"
        )
        raise typer.Exit(7)
    console.print(f"The audit log of {result.tree_size} events is intact. 审计日志完整。")


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
