"""`genecommons backup DEST` and `genecommons restore SRC`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from genecommons.backup import service
from genecommons.errors import InvalidInputError
from genecommons.runtime import operator, runtime

console = Console(stderr=True)
PassphraseFile = Annotated[
    Path | None,
    typer.Option(
        "--passphrase-file",
        help="A file holding the backup passphrase (at least 12 characters); asked for when "
        "not given. 备份口令文件（至少 12 个字符）；未指定时交互输入。",
    ),
]


def _passphrase(path: Path | None, *, confirm: bool) -> bytes:
    if path is None:
        return str(
            typer.prompt("Backup passphrase 备份口令", hide_input=True, confirmation_prompt=confirm)
        ).encode("utf-8")
    try:
        return path.read_bytes()
    except OSError as error:
        raise InvalidInputError(
            f"The passphrase file {path} cannot be read ({error.strerror}).",
            message_zh=f"无法读取口令文件 {path}（{error.strerror}）。",
        ) from error


def backup(
    destination: Annotated[Path, typer.Argument(help="A new or empty directory. 新的或空目录。")],
    passphrase_file: PassphraseFile = None,
    with_objects: Annotated[
        bool,
        typer.Option(
            "--with-objects",
            help="Copy the (encrypted) objects of the object store too, not only their "
            "manifest. 同时复制对象存储中的（加密）对象。",
        ),
    ] = False,
) -> None:
    """Back up the node while it serves: the database, every key and secret (encrypted with
    the passphrase) and the object store's manifest. 在线备份节点。"""
    context = runtime()
    summary = service.backup(
        context.settings,
        context.factory,
        destination,
        actor=operator().id,
        passphrase=_passphrase(passphrase_file, confirm=True),
        with_objects=with_objects,
        progress=lambda stage: console.print(f"Backing up {stage}… 正在备份", highlight=False),
    )
    typer.echo(
        f"Backup complete: {summary.destination} ({summary.files} files, {summary.objects} "
        f"objects listed, {summary.bytes} bytes, {summary.seconds:.1f} s). "
        "Keep the passphrase apart from the backup. 备份完成；请将口令与备份分开保管。"
    )


def restore(
    source: Annotated[Path, typer.Argument(help="A backup directory. 备份目录。")],
    passphrase_file: PassphraseFile = None,
) -> None:
    """Restore a backup into this environment's empty data directory and database, every
    checksum checked first. 将备份恢复到空的数据目录与数据库。"""
    # a wrong passphrase is reported once, as a GeneCommons error, not also by crypt4gh's log
    logging.getLogger("crypt4gh").setLevel(logging.CRITICAL)
    context = runtime()
    summary = service.restore(
        context.settings,
        source,
        actor=operator().id,
        passphrase=_passphrase(passphrase_file, confirm=False),
        progress=lambda stage: console.print(f"Restoring {stage}… 正在恢复", highlight=False),
    )
    typer.echo(
        f"Restored into {summary.data_dir}: {summary.files} files, {summary.objects} objects, "
        f"node key {summary.key_id} ({summary.seconds:.1f} s). Run `genecommons init` to "
        "migrate the database if this version is newer. 恢复完成。"
    )
