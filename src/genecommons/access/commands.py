"""CLI of identities: parse argv, call the service, print. Nothing else."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from genecommons.access import service
from genecommons.access.models import Role
from genecommons.runtime import operator, runtime

console = Console()
users_app = typer.Typer(help="Accounts. 账号。", no_args_is_help=True)
tokens_app = typer.Typer(help="API tokens. API 令牌。", no_args_is_help=True)


@users_app.command("add")
def users_add(
    email: str,
    institution: Annotated[str | None, typer.Option("--institution", help="Accession")] = None,
    role: Annotated[list[Role], typer.Option("--role", help="Repeat for several")] = [],  # noqa: B006
) -> None:
    """Create an account (a password is generated and shown once). 创建账号。"""
    created = service.add_user(
        runtime().factory,
        email=email,
        roles=[str(r) for r in role],
        institution=institution,
        actor=operator(),
        generate_password=True,
    )
    console.print(f"Created {escape(created.email)} ({', '.join(created.roles) or 'no roles'}).")
    console.print(f"Password (shown once / 仅显示一次): {created.password}", highlight=False)


@users_app.command("list")
def users_list() -> None:
    """List accounts. 列出账号。"""
    table = Table("email", "institution", "roles", "active")
    for user in service.list_users(runtime().factory, actor=operator()):
        table.add_row(
            escape(user["email"]),
            user["institution"] or "",
            ", ".join(user["roles"]),
            str(user["active"]),
        )
    console.print(table)


@tokens_app.command("create")
def tokens_create(
    email: str,
    days: Annotated[int, typer.Option("--days", min=1, max=366)] = 90,
    scope: Annotated[list[str] | None, typer.Option("--scope")] = None,
    label: Annotated[str | None, typer.Option("--label")] = None,
) -> None:
    """Create an API token for EMAIL; prints the token alone on stdout. 创建 API 令牌。"""
    issued = service.create_token(
        runtime().factory, email=email, actor=operator(), days=days, scopes=scope, label=label
    )
    typer.echo(issued.token)


@tokens_app.command("revoke")
def tokens_revoke(token_id: int) -> None:
    """Revoke an API token by its id. 撤销 API 令牌。"""
    service.revoke_token(runtime().factory, token_id=token_id, actor=operator())
    console.print(f"Token {token_id} revoked. 已撤销。")
