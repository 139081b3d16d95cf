"""The `genecommons` command: mounts every capability's commands; one error mapping."""

from __future__ import annotations

import logging
import os
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from sqlalchemy.orm import Session, sessionmaker

from genecommons import progress
from genecommons.access import commands as access_commands
from genecommons.access import notify, passport_service, second_factor
from genecommons.access import service as access_service
from genecommons.archive import commands as archive_commands
from genecommons.archive import keys_and_store
from genecommons.audit import commands as audit_commands
from genecommons.audit import service as audit_service
from genecommons.backup import commands as backup_commands
from genecommons.catalog import commands as catalog_commands
from genecommons.compliance import commands as compliance_commands
from genecommons.config import Settings, share_metrics_dir, unshare_metrics_dir
from genecommons.db import check_node_key_present, write_transaction
from genecommons.demo import commands as demo_commands
from genecommons.errors import GeneCommonsError, Refusal
from genecommons.fingerprint import commands as fingerprint_commands
from genecommons.fingerprint.secret import seal_fingerprint_secret
from genecommons.ledger.events import record_events, refusal_event
from genecommons.metrics import prepare_directory
from genecommons.node_init import create_node_secrets, one_init_at_a_time
from genecommons.privacy import beacon_rules
from genecommons.privacy import commands as privacy_commands
from genecommons.runtime import operator, runtime
from genecommons.secrets import NodeKeys, restrict_umask
from genecommons.variants import commands as variants_commands

app = typer.Typer(
    name="genecommons",
    help="GeneCommons: keep, protect and share human genetic data. 人类遗传数据平台。",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)


@app.command()
def init() -> None:
    """Create or migrate the database and the data directory (safe to run again). 初始化。"""
    from genecommons.migrate import upgrade_node
    from genecommons.upgrade import encrypt_plaintext_database

    context = runtime()
    check_node_key_present(context.settings)  # a new node key would not open the database
    keys = create_node_secrets(context.settings)  # the node key first: it seals the others
    with one_init_at_a_time(context.settings.data_dir):
        encrypted = encrypt_plaintext_database(context.settings)
        if encrypted is not None:
            typer.echo(
                f"Protected at rest: the database {encrypted} encrypted (SQLCipher, with a key "
                "derived from the node key). 数据库已加密。"
            )
        upgrade_node(context.settings)
        typer.echo(f"Database ready: {context.settings.effective_database_url.split('@')[-1]}")
        typer.echo(f"Data directory: {context.settings.data_dir}")
        _protect_at_rest(context.settings, context.factory, keys)
        _reseal_variant_stores(context.settings, context.factory)
        password = access_service.ensure_admin(context.factory)
    if password:
        typer.echo(
            f"Created administrator {access_service.ADMIN_EMAIL}; password (shown once, "
            f"仅显示一次): {password}"
        )


def _protect_at_rest(settings: Settings, factory: sessionmaker[Session], keys: NodeKeys) -> None:
    """What earlier versions kept in plaintext, sealed or encrypted under the node key store
    with the same values (codes, marks, windows and signatures stay valid), and sent messages
    purged from the outbox; each step safe to run again."""
    from genecommons.upgrade import restrict_modes

    done = [
        ("TOTP secret(s) sealed", second_factor.seal_plaintext_secrets(factory, keys)),
        ("visa signing key(s) encrypted", passport_service.protect_keys(settings)),
        ("tree-head key encrypted", audit_service.protect_signing_key(settings)),
        ("fingerprint secret sealed", seal_fingerprint_secret(settings, keys)),
        ("Beacon threshold key sealed", beacon_rules.seal_beacon_key(settings, keys)),
        ("archive key passphrase sealed", keys_and_store.seal_archive_passphrase(settings, keys)),
        ("sent message(s) removed from the outbox", notify.purge_sent(factory)),
        (
            "file(s) and folder(s) made readable by the node's user only",
            restrict_modes(settings.data_dir),
        ),
    ]
    for what, count in done:
        if count:
            typer.echo(f"Protected at rest: {int(count)} {what}. 已加密保护或清除。")


def _reseal_variant_stores(settings: Settings, factory: sessionmaker[Session]) -> None:
    """Plaintext variant stores of an earlier version, rebuilt sealed from the archive."""
    from genecommons.runtime import operator
    from genecommons.upgrade import reseal_plaintext_stores

    for done in reseal_plaintext_stores(factory, settings, subject=operator()):
        if done.source is not None:
            typer.echo(
                f"Protected at rest: the plaintext variant store of {done.dataset} rebuilt "
                f"from {done.source} ({done.detail}). 已由归档 VCF 重建为加密变异库。"
            )
        else:
            err.print(
                f"The plaintext variant store of {done.dataset} is kept, unserved: "
                f"{done.detail}. 明文变异库未被使用，请用 `genecommons variants build` 重建。"
            )


@app.command()
def serve(
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 8000,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            help="Worker processes answering requests (default GENECOMMONS_WORKERS, else one "
            "per core, up to 4). 工作进程数（默认每核一个，最多 4 个）。",
        ),
    ] = None,
    access_log: Annotated[
        bool,
        typer.Option(
            "--access-log/--no-access-log",
            help="Log a line per HTTP request (every data access is in the audit log either "
            "way). 逐请求记录访问日志。",
        ),
    ] = False,
) -> None:
    """Start the HTTP API, with the audit log's sequencer and early-warning watcher in the
    background of this process (one for all the workers), and the builder of fingerprinted
    copies in a process of its own. 启动 API 服务。"""
    import threading

    from genecommons import serving
    from genecommons.archive.uploads import UploadExpiry
    from genecommons.audit.watch import Background
    from genecommons.fingerprint.copy_jobs import CopyBuilder
    from genecommons.privacy.upkeep import Reassessor

    context = runtime()
    count = workers or context.settings.effective_workers
    metrics_dir = prepare_directory(context.settings.metrics_dir)  # a previous run's counts out
    if count > 1:  # each worker writes its metrics there; the one asked adds them all up
        share_metrics_dir(metrics_dir)
    variants_commands.clear_leftovers(context)
    background = Background(context.factory, context.settings)
    background.start()
    builder = CopyBuilder(context.factory, context.settings)
    builder.start()
    expiry = UploadExpiry(context.factory, context.settings, subject=operator())
    expiry.start()
    reassessor = Reassessor(context.factory, context.settings)
    reassessor.start()
    typer.echo(
        f"Audit log sequencer and early-warning watcher running in process {os.getpid()}, for "
        f"{count} worker(s); fingerprinted copies are built in a process of their own. "
        f"审计日志排序器与预警监视器在进程 {os.getpid()} 中运行，服务 {count} 个工作进程；"
        "带指纹副本在独立进程中生成。",
        err=True,
    )
    url = serving.health_url(host, port)
    stop = threading.Event()
    serving.announce_when_ready(
        url,
        within=context.settings.worker_startup_seconds,
        ready=lambda seconds: typer.echo(
            f"GeneCommons answers at {url.removesuffix('/health')} ({seconds:.0f} s to start). "
            f"GeneCommons 已就绪（启动用时 {seconds:.0f} 秒）。",
            err=True,
        ),
        late=lambda seconds: typer.echo(
            f"No worker answers at {url} after {seconds:.0f} s: the machine may be busy (workers "
            "are replaced when silent for GENECOMMONS_WORKER_STARTUP_SECONDS); see the log above. "
            f"{seconds:.0f} 秒后仍无工作进程应答：机器可能繁忙，请查看上方日志。",
            err=True,
        ),
        stop=stop,
    )
    try:
        # each worker builds its own app (and engine) from the environment's settings, as
        # this process read them; with one worker it runs in this process
        serving.run(
            settings=context.settings, host=host, port=port, workers=count, access_log=access_log
        )
    finally:
        stop.set()
        reassessor.stop()
        expiry.stop()
        builder.stop()
        background.stop()
        unshare_metrics_dir()


app.command("submit")(catalog_commands.submit)
app.command("template")(catalog_commands.template)
app.command("scan-identifiers")(catalog_commands.scan_identifiers)
catalog_commands.studies_app.command("export")(fingerprint_commands.export_study)
app.add_typer(catalog_commands.studies_app, name="studies")
app.add_typer(catalog_commands.datasets_app, name="datasets")
app.add_typer(access_commands.users_app, name="users")
app.add_typer(access_commands.tokens_app, name="tokens")
app.add_typer(access_commands.institutions_app, name="institutions")
app.add_typer(access_commands.affiliations_app, name="affiliations")
app.add_typer(access_commands.dac_app, name="dac")
app.add_typer(access_commands.grants_app, name="grants")
app.add_typer(access_commands.requests_app, name="requests")
app.add_typer(access_commands.mail_app, name="mail")
app.add_typer(compliance_commands.compliance_app, name="compliance")
app.add_typer(audit_commands.audit_app, name="audit")
app.command("trace")(fingerprint_commands.trace)
app.add_typer(fingerprint_commands.fingerprint_app, name="fingerprint")
app.command("upload")(archive_commands.upload)
app.add_typer(archive_commands.archive_app, name="archive")
variants_commands.variants_app.command("export")(fingerprint_commands.export_vcf)
app.add_typer(variants_commands.variants_app, name="variants")
app.add_typer(privacy_commands.privacy_app, name="privacy")

app.command("demo")(demo_commands.demo)
app.command("demo-committee")(demo_commands.committee)
app.command("backup")(backup_commands.backup)
app.command("restore")(backup_commands.restore)


def _audit_refusal(refusal: Refusal, *, answered: int) -> None:
    """Write a refusal of the decision point to the audit log (as the app's error mapping
    does for HTTP), saying so on stderr when the log cannot take it."""
    event = refusal_event(
        refusal, address="local", route="cli " + " ".join(sys.argv[1:3]), answered=answered
    )
    try:
        with write_transaction(runtime().factory) as session:
            record_events(session, [event])
    except Exception as failure:  # the refusal stands; the operator must know it is unrecorded
        err.print(
            f"Warning: this refusal could not be written to the audit log ({escape(str(failure))}).",
            highlight=False,
        )
        err.print("警告：此次拒绝未能写入审计日志。", highlight=False)


def main() -> None:
    """Run the CLI, turning GeneCommons errors into a bilingual message and an exit code (a
    refusal of the decision point written to the audit log first)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # off a terminal, long work reports one line per stage here instead of a bar
    logging.getLogger(progress.__name__).setLevel(logging.INFO)
    restrict_umask()  # whatever the node writes is readable by its own user only
    try:
        app()
    except GeneCommonsError as error:
        if error.refusal is not None:
            _audit_refusal(error.refusal, answered=error.exit_code)
        # one line each, however wide the terminal: scripts and logs read them whole
        err.print(f"Error: {escape(error.message)}", highlight=False, soft_wrap=True)
        err.print(f"错误：{escape(error.message_zh)}", highlight=False, soft_wrap=True)
        sys.exit(error.exit_code)
