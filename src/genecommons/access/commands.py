"""CLI of identities: parse argv, call the service, print. Nothing else."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from genecommons.access import affiliation, notify, second_factor, service, workflow
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


@users_app.command("set-institution")
def users_set_institution(
    email: str,
    institution: Annotated[str, typer.Option("--institution", help="Accession")],
) -> None:
    """Put an account at an institution (e.g. one made at its first OpenID Connect sign-in).
    设置账号所属机构。"""
    service.set_institution(
        runtime().factory, email=email, institution=institution, actor=operator()
    )
    console.print(f"{escape(email)} is now at {escape(institution)}. 已设置。")


@users_app.command("totp")
def users_totp(email: str) -> None:
    """Give an account a new TOTP secret for its authenticator app. 绑定一次性验证码。"""
    context = runtime()
    secret, uri = second_factor.enrol(
        context.factory, context.settings, email=email, actor=operator()
    )
    console.print(f"Secret (shown once / 仅显示一次): {secret}", highlight=False)
    console.print(f"otpauth URI: {escape(uri)}", highlight=False)


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


institutions_app = typer.Typer(help="Institutions. 机构。", no_args_is_help=True)


@institutions_app.command("verify")
def institutions_verify(
    accession: str,
    attestation: Annotated[str, typer.Option("--attestation", help="Who declared what, when")],
    foreign_controlled: Annotated[
        bool, typer.Option("--foreign-controlled", help="50% or more foreign-owned/controlled")
    ] = False,
) -> None:
    """Verify an institution's location and ownership. 核验机构所在地与控制权。"""
    result = service.verify_institution(
        runtime().factory,
        institution=accession,
        foreign_controlled=foreign_controlled,
        attestation=attestation,
        actor=operator(),
    )
    party = "foreign party 境外主体" if result["foreign_party"] else "Chinese party 境内主体"
    console.print(f"{accession} verified ({result['country']}): {party}.")


@institutions_app.command("domains")
def institutions_domains(
    accession: str,
    domain: Annotated[
        list[str] | None,
        typer.Option("--set", help="Declare these domains instead (repeat for several)"),
    ] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Declare none")] = False,
) -> None:
    """Show or declare an institution's e-mail domains: a verified address at one confirms a
    claimed affiliation. 查看或声明机构的电子邮件域名。"""
    factory = runtime().factory
    if domain or clear:
        result = affiliation.set_email_domains(
            factory, institution=accession, domains=domain or [], actor=operator()
        )
        shown, confirmed = result["domains"], result["confirmed"]
        for email in confirmed:
            console.print(f"Confirmed {escape(email)} at {escape(accession)}. 已确认。")
    else:
        shown = affiliation.email_domains(factory, institution=accession, actor=operator())
    console.print(f"{escape(accession)}: {', '.join(shown) or '(none / 无)'}")


affiliations_app = typer.Typer(
    help="Institutions that self-registered accounts claim. 自助注册账号申报的机构归属。",
    no_args_is_help=True,
)


@affiliations_app.command("list")
def affiliations_list() -> None:
    """Claims waiting for confirmation. 列出待确认的机构归属申请。"""
    table = Table("id", "email", "name", "institution", "claimed_at", "e-mail verified")
    for item in affiliation.list_claims(runtime().factory, actor=operator()):
        table.add_row(
            str(item["id"]),
            escape(item["email"]),
            escape(item["name"] or ""),
            item["institution"],
            item["claimed_at"],
            str(item["email_verified"]),
        )
    console.print(table)


@affiliations_app.command("confirm")
def affiliations_confirm(claim_id: int) -> None:
    """Confirm that an account belongs to the institution it claims. 确认机构归属。"""
    done = affiliation.confirm(runtime().factory, claim_id=claim_id, actor=operator())
    console.print(f"{escape(done['email'])} is at {escape(done['institution'])}. 已确认。")


@affiliations_app.command("reject")
def affiliations_reject(
    claim_id: int,
    reason: Annotated[str, typer.Option("--reason", help="Why (the claimant is told it)")],
) -> None:
    """Reject a claimed affiliation. 拒绝机构归属申请。"""
    done = affiliation.reject(runtime().factory, claim_id=claim_id, reason=reason, actor=operator())
    console.print(f"Claim of {escape(done['email'])} rejected. 已拒绝。")


dac_app = typer.Typer(help="Data access committees. 数据访问委员会。", no_args_is_help=True)
grants_app = typer.Typer(help="Access grants. 访问授权。", no_args_is_help=True)
mail_app = typer.Typer(help="Notifications. 通知。", no_args_is_help=True)


@dac_app.command("create")
def dac_create(alias: str, name: Annotated[str, typer.Option("--name")]) -> None:
    """Create a DAC; datasets name it by ALIAS in their `dac` column. 创建委员会。"""
    workflow.create_dac(runtime().factory, alias=alias, name=name, actor=operator())
    console.print(f"DAC {escape(alias)} created. 已创建。")


@dac_app.command("add-member")
def dac_add_member(
    alias: str, email: str, chair: Annotated[bool, typer.Option("--chair")] = False
) -> None:
    """Add an account to a DAC. 添加委员会成员。"""
    workflow.add_member(runtime().factory, dac=alias, email=email, chair=chair, actor=operator())
    console.print(f"{escape(email)} added to {escape(alias)}. 已添加。")


@grants_app.command("list")
def grants_list(email: str) -> None:
    """The grants in force for an account. 列出有效授权。"""
    table = Table("id", "dataset", "expires_at", "conditions")
    for grant in workflow.active_grants(runtime().factory, email=email.strip().lower()):
        table.add_row(
            str(grant["id"]),
            grant["dataset"],
            grant["expires_at"],
            escape("; ".join(grant["conditions"])),
        )
    console.print(table)


@grants_app.command("revoke")
def grants_revoke(
    grant_id: int,
    reason: Annotated[
        str, typer.Option("--reason", help="Why (required; the researcher is told it)")
    ],
) -> None:
    """Revoke a grant at once, for a reason. 撤销授权（须说明理由）。"""
    workflow.revoke_grant(runtime().factory, grant_id=grant_id, reason=reason, actor=operator())
    console.print(f"Grant {grant_id} revoked. 已撤销。")


@mail_app.command("deliver")
def mail_deliver() -> None:
    """Send waiting notifications through the configured SMTP server. 发送待发通知。"""
    settings = runtime().settings
    if not settings.smtp_host:
        raise typer.BadParameter(
            "Set GENECOMMONS_SMTP_HOST to deliver mail; until then "
            "notifications wait in the outbox table."
        )
    transport = notify.SmtpTransport(
        host=settings.smtp_host,
        port=settings.smtp_port,
        sender=settings.smtp_sender,
        username=settings.smtp_username,
        password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
        starttls=settings.smtp_starttls,
    )
    sent = notify.deliver_pending(runtime().factory, transport)
    console.print(f"{sent} notification(s) sent. 已发送。")
