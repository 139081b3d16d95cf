"""CLI of identities: parse argv, call the service, print. Nothing else."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from genecommons.access import (
    affiliation,
    committees,
    institution_service,
    listings,
    notify,
    second_factor,
    service,
    workflow,
)
from genecommons.catalog.service import Page
from genecommons.policy.models import Role
from genecommons.runtime import operator, runtime

console = Console()
users_app = typer.Typer(help="Accounts. 账号。", no_args_is_help=True)
tokens_app = typer.Typer(help="API tokens. API 令牌。", no_args_is_help=True)

PageOpt = Annotated[int, typer.Option("--page", min=1, max=listings.MAX_PAGE, help="From 1")]
SizeOpt = Annotated[
    int, typer.Option("--page-size", min=1, max=listings.MAX_PAGE_SIZE, help="Records per page")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON (for scripts)")]


def _cell(value: Any) -> str:
    """A value as a table cell shows it (lists joined, records as compact JSON)."""
    if value is None:
        return ""
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ", ".join(value)
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def _print_page(page: Page, title: str, columns: Sequence[str], as_json: bool) -> None:
    """A listing: JSON (items, total, page, page_size), or a table of `columns`."""
    if as_json:
        body = {
            "items": page.items,
            "total": page.total,
            "page": page.page,
            "page_size": page.page_size,
        }
        typer.echo(json.dumps(body, ensure_ascii=False, indent=2, default=str))
        return
    table = Table(title=f"{title} ({page.total}) — page {page.page}")
    for column in columns:
        table.add_column(column)
    for item in page.items:
        table.add_row(*(escape(_cell(item.get(c))) for c in columns))
    console.print(table)


def _print_one(item: dict[str, Any], as_json: bool) -> None:
    """One record: JSON, or a table of its fields."""
    if as_json:
        typer.echo(json.dumps(item, ensure_ascii=False, indent=2, default=str))
        return
    table = Table(show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    for key, value in item.items():
        table.add_row(escape(key), escape(_cell(value)))
    console.print(table)


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
    institution_service.set_institution(
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
def users_list(page: PageOpt = 1, page_size: SizeOpt = 50, as_json: JsonOpt = False) -> None:
    """List accounts. 列出账号。"""
    found = listings.list_users(runtime().factory, actor=operator(), page=page, page_size=page_size)
    columns = ("email", "institution", "roles", "active", "authenticator")
    _print_page(found, "accounts 账号", columns, as_json)


@users_app.command("show")
def users_show(email: str, as_json: JsonOpt = False) -> None:
    """Show one account. 显示账号详情。"""
    _print_one(listings.get_user(runtime().factory, email, actor=operator()), as_json)


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


@tokens_app.command("list")
def tokens_list(
    user: Annotated[str | None, typer.Option("--user", help="One account's tokens")] = None,
    page: PageOpt = 1,
    page_size: SizeOpt = 50,
    as_json: JsonOpt = False,
) -> None:
    """List API tokens (never their secrets). 列出 API 令牌（不含令牌本身）。"""
    found = listings.list_tokens(
        runtime().factory, actor=operator(), user=user, page=page, page_size=page_size
    )
    columns = ("id", "user", "label", "kind", "scopes", "status", "expires_at", "last_used_at")
    _print_page(found, "API tokens 令牌", columns, as_json)


@tokens_app.command("show")
def tokens_show(token_id: int, as_json: JsonOpt = False) -> None:
    """Show one API token (never its secret). 显示令牌详情。"""
    _print_one(listings.get_token(runtime().factory, token_id, actor=operator()), as_json)


@tokens_app.command("revoke")
def tokens_revoke(token_id: int) -> None:
    """Revoke an API token by its id. 撤销 API 令牌。"""
    service.revoke_token(runtime().factory, token_id=token_id, actor=operator())
    console.print(f"Token {token_id} revoked. 已撤销。")


institutions_app = typer.Typer(help="Institutions. 机构。", no_args_is_help=True)


@institutions_app.command("list")
def institutions_list(page: PageOpt = 1, page_size: SizeOpt = 50, as_json: JsonOpt = False) -> None:
    """List institutions, with how each was verified. 列出机构及其核验情况。"""
    found = listings.list_institutions(
        runtime().factory, actor=operator(), page=page, page_size=page_size
    )
    for item in [] if as_json else found.items:  # the table says whether it was verified
        verification = item.get("verification") or {}
        item["verified"] = verification.get("verified", False)
    columns = ("accession", "alias", "name_en", "name_zh", "country", "kind", "verified")
    _print_page(found, "institutions 机构", columns, as_json)


@institutions_app.command("show")
def institutions_show(accession: str, as_json: JsonOpt = False) -> None:
    """Show one institution with its verification and e-mail domains. 显示机构详情。"""
    _print_one(listings.get_institution(runtime().factory, accession, actor=operator()), as_json)


@institutions_app.command("verify")
def institutions_verify(
    accession: str,
    attestation: Annotated[str, typer.Option("--attestation", help="Who declared what, when")],
    foreign_controlled: Annotated[
        bool, typer.Option("--foreign-controlled", help="50% or more foreign-owned/controlled")
    ] = False,
) -> None:
    """Verify an institution's location and ownership. 核验机构所在地与控制权。"""
    result = institution_service.verify_institution(
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
requests_app = typer.Typer(help="Data access requests. 数据访问申请。", no_args_is_help=True)


@requests_app.command("list")
def requests_list(
    requester: Annotated[
        str | None, typer.Option("--requester", help="One account's requests")
    ] = None,
    page: PageOpt = 1,
    page_size: SizeOpt = 50,
    as_json: JsonOpt = False,
) -> None:
    """List data access requests with their datasets' statuses. 列出数据访问申请。"""
    found = listings.list_requests(
        runtime().factory, actor=operator(), requester=requester, page=page, page_size=page_size
    )
    for item in [] if as_json else found.items:
        item["statuses"] = [f"{d['dataset']}: {d['status']}" for d in item["datasets"]]
    columns = ("id", "requester", "title", "statuses", "created_at")
    _print_page(found, "requests 申请", columns, as_json)


@requests_app.command("show")
def requests_show(request_id: int, as_json: JsonOpt = False) -> None:
    """Show one request, with the consent match of each dataset. 显示申请详情。"""
    _print_one(workflow.get_request(runtime().factory, request_id, actor=operator()), as_json)


@dac_app.command("create")
def dac_create(alias: str, name: Annotated[str, typer.Option("--name")]) -> None:
    """Create a DAC; datasets name it by ALIAS in their `dac` column. 创建委员会。"""
    committees.create_dac(runtime().factory, alias=alias, name=name, actor=operator())
    console.print(f"DAC {escape(alias)} created. 已创建。")


@dac_app.command("list")
def dac_list(page: PageOpt = 1, page_size: SizeOpt = 50, as_json: JsonOpt = False) -> None:
    """List data access committees and their members. 列出数据访问委员会。"""
    found = listings.list_dacs(runtime().factory, actor=operator(), page=page, page_size=page_size)
    for item in [] if as_json else found.items:
        item["members"] = [
            m["email"] + (" (chair)" if m["chair"] else "") for m in item.get("members", [])
        ]
    _print_page(found, "DACs 委员会", ("alias", "name", "members", "created_at"), as_json)


@dac_app.command("show")
def dac_show(alias: str, as_json: JsonOpt = False) -> None:
    """Show one data access committee. 显示委员会详情。"""
    _print_one(listings.get_dac(runtime().factory, alias, actor=operator()), as_json)


@dac_app.command("add-member")
def dac_add_member(
    alias: str, email: str, chair: Annotated[bool, typer.Option("--chair")] = False
) -> None:
    """Add an account to a DAC. 添加委员会成员。"""
    committees.add_member(runtime().factory, dac=alias, email=email, chair=chair, actor=operator())
    console.print(f"{escape(email)} added to {escape(alias)}. 已添加。")


@grants_app.command("list")
def grants_list(
    email: Annotated[str | None, typer.Argument(help="One account's grants")] = None,
    include_ended: Annotated[
        bool, typer.Option("--all", help="Also expired and revoked grants")
    ] = False,
    page: PageOpt = 1,
    page_size: SizeOpt = 50,
    as_json: JsonOpt = False,
) -> None:
    """List grants (in force, unless --all), of every account or of EMAIL. 列出授权。"""
    found = listings.list_grants(
        runtime().factory,
        actor=operator(),
        holder=email,
        in_force=not include_ended,
        page=page,
        page_size=page_size,
    )
    columns = ("id", "holder", "dataset", "status", "expires_at", "conditions")
    _print_page(found, "grants 授权", columns, as_json)


@grants_app.command("show")
def grants_show(grant_id: int, as_json: JsonOpt = False) -> None:
    """Show one grant. 显示授权详情。"""
    _print_one(listings.get_grant(runtime().factory, grant_id, actor=operator()), as_json)


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
