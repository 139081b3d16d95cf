"""CLI of the archive: upload, ingest, list, verify, keys. Parse, call the service, print."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from genecommons.archive import ingestion, inventory, keys_and_store, uploads
from genecommons.archive.client import UploadClient, default_state_dir
from genecommons.archive.keys import format_public_key, parse_public_key
from genecommons.errors import AuthenticationError
from genecommons.progress_bars import reporter
from genecommons.runtime import operator, runtime

console = Console()
archive_app = typer.Typer(help="The encrypted archive. 加密归档。", no_args_is_help=True)


def upload(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    file: Annotated[str, typer.Option("--file", help="Accession of the catalog file (GCF…)")],
    server: Annotated[
        str | None, typer.Option("--server", help="Server URL (default: this node's issuer URL)")
    ] = None,
    token: Annotated[
        str | None,
        typer.Option("--token", envvar="GENECOMMONS_TOKEN", help="API token", show_default=False),
    ] = None,
    upload_id: Annotated[str | None, typer.Option("--upload-id", help="Resume this upload")] = None,
) -> None:
    """Upload a data file (plain or Crypt4GH for the archive's key); resumes if interrupted.
    上传数据文件，中断后可续传。"""
    if not token:
        raise AuthenticationError(
            "Give an API token with --token or GENECOMMONS_TOKEN.",
            message_zh="请通过 --token 或 GENECOMMONS_TOKEN 提供 API 令牌。",
        )
    url = server or runtime().settings.issuer_url
    client = UploadClient(url, token, state_dir=default_state_dir())
    try:
        with (
            reporter() as progress,
            progress.stage(
                f"uploading {path.name}", total=path.stat().st_size, unit="bytes"
            ) as step,
        ):
            result = client.upload(path, accession=file, upload_id=upload_id, progress=step.update)
    finally:
        client.close()
    console.print(
        f"Archived {result['accession']}: {result['size']} bytes, sha256 {result['sha256']}. "
        "已归档。"
    )


@archive_app.command("ingest")
def ingest(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    file: Annotated[str, typer.Option("--file", help="Accession of the catalog file (GCF…)")],
) -> None:
    """Archive a file on this machine as the operator. 以运维身份归档本机文件。"""
    context = runtime()
    with (
        reporter() as progress,
        progress.stage(f"archiving {path.name}", total=path.stat().st_size, unit="bytes") as step,
    ):
        result = ingestion.archive_path(
            context.factory,
            context.settings,
            subject=operator(),
            accession=file,
            path=path,
            progress=step.advance,
        )
    console.print(json.dumps(result.to_dict(), indent=2))


@archive_app.command("files")
def files(
    dataset: Annotated[str | None, typer.Option("--dataset")] = None,
    page: int = 1,
    page_size: int = 50,
) -> None:
    """List archived files. 列出归档文件。"""
    context = runtime()
    listing = inventory.list_files(
        context.factory, subject=operator(), page=page, page_size=page_size, dataset=dataset
    )
    table = Table("accession", "name", "datasets", "format", "size", "sha256", "state")
    for item in listing["items"]:
        table.add_row(
            item["accession"],
            escape(item["name"]),
            ", ".join(item["datasets"]),
            item["format"],
            str(item["size"]),
            item["sha256"][:16] + "…",
            item["state"],
        )
    console.print(table)
    console.print(f"{listing['total']} file(s). 共 {listing['total']} 个文件。")


@archive_app.command("verify")
def verify(
    remove_orphans: Annotated[
        bool,
        typer.Option(
            "--remove-orphans",
            help="Remove the objects no catalog row names (left by killed writers). "
            "删除目录中没有记录的孤立对象。",
        ),
    ] = False,
) -> None:
    """Re-read every object; report any that no longer match their checksum, and the orphans
    no catalog row names. 校验归档并报告孤立对象。"""
    context = runtime()
    with reporter() as progress:
        report = inventory.verify(
            context.factory,
            context.settings,
            subject=operator(),
            copies=context.recipient_copies,
            progress=progress,
            remove_orphans=remove_orphans,
        )
    for item in report.damaged:
        for problem in item["problems"]:
            console.print(
                f"[red]DAMAGED[/red] {item['accession']} {escape(problem['object'])}: "
                f"{escape(problem['problem'])}"
            )
    removed = set(report.removed)
    for orphan in report.orphans:
        state = "REMOVED" if orphan in removed else "ORPHAN"
        console.print(f"[yellow]{state}[/yellow] {escape(orphan)}")
    if report.in_flight:
        console.print(
            f"{report.in_flight} object(s) being written now were left alone. "
            f"{report.in_flight} 个正在写入的对象未检查。"
        )
    left = len(report.orphans) - len(removed)
    if left:
        console.print(
            f"{left} orphan object(s) in the store that no catalog row names (left by a "
            "process killed mid-write): remove them with `genecommons archive verify "
            f"--remove-orphans`. 存储中有 {left} 个目录未记录的孤立对象，可用 --remove-orphans 删除。"
        )
    if report.damaged:
        console.print(f"{len(report.damaged)} of {report.checked} file(s) damaged. 归档已损坏。")
    if not report.ok:
        raise typer.Exit(7)
    console.print(f"All {report.checked} archived file(s) match their checksums. 归档完整。")


@archive_app.command("expire-uploads")
def expire_uploads() -> None:
    """Close uploads left open longer than GENECOMMONS_UPLOAD_EXPIRY_HOURS and delete their
    staged bytes. 关闭过期的上传并删除其暂存内容。"""
    context = runtime()
    expired = uploads.expire_uploads(context.factory, context.settings, subject=operator())
    for upload_id in expired:
        console.print(f"expired {upload_id}")
    console.print(f"{len(expired)} upload(s) expired. 已关闭 {len(expired)} 个过期上传。")


@archive_app.command("public-key")
def public_key() -> None:
    """Print the archive's Crypt4GH public key (encrypt uploads for it). 打印归档公钥。"""
    keys = keys_and_store.archive_keys(runtime().settings)
    typer.echo(format_public_key(keys.public), nl=False)


@archive_app.command("register-key")
def register_key(
    email: str,
    key_file: Annotated[Path, typer.Option("--public-key", exists=True, dir_okay=False)],
) -> None:
    """Register a user's Crypt4GH public key for deliveries. 登记用户公钥。"""
    context = runtime()
    keys_and_store.register_public_key(
        context.factory,
        subject=operator(),
        owner=f"user:{email}",
        public_key=parse_public_key(key_file.read_bytes()),
    )
    console.print(f"Registered the Crypt4GH key of {escape(email)}. 已登记。")
