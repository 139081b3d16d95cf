"""Use cases of fingerprinted deliveries and leak tracing.

`export_vcf` writes a recipient's fingerprinted copy of a dataset's genotypes (from its variant
store) and records it twice in the same transaction: a row of `fingerprint_deliveries` (what
tracing scores) and an audit event. `trace` reads a leaked file, aligns it with the dataset it
came from, and scores every recipient the deliveries table names. `simulate` runs the leak
simulation of `leaksim.py` on the demo's msprime cohort. `RecipientCopyService` is what the
archive's deliveries ask for recipients' copies (`archive.recipient_copies`): fingerprint
depends on the archive, never the other way round.

The marks are recomputed, never stored: they are a function of the node's fingerprint secret
(`Settings.fingerprint_key_file`), the dataset's genotypes and the recipient.
"""

from __future__ import annotations

import hashlib
import logging
import os
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from genecommons import clock
from genecommons.archive.recipient_copies import RecipientCopy, Source
from genecommons.catalog import reads as catalog_reads
from genecommons.catalog import service as catalog_service
from genecommons.catalog.export import sheet_columns
from genecommons.config import Settings
from genecommons.db import write_transaction
from genecommons.errors import InvalidInputError, NotFoundError
from genecommons.fingerprint import codes, copies, copy_jobs, genotypes, leaksim, relational, trace
from genecommons.fingerprint.delivery_sources import (
    VARIANT_STORE,
    delivered_sources,
    file_sha256,
    source_genotypes,
    variant_store_calls,
)
from genecommons.fingerprint.models import Copy, Delivery, TraceResult
from genecommons.fingerprint.policies import fingerprint_required, fingerprinted_dataset
from genecommons.fingerprint.secret import fingerprint_secret
from genecommons.fingerprint.table_tracing import TABLE_KEY, read_table, trace_table
from genecommons.fingerprint.tables import fingerprint_deliveries, fingerprint_policies
from genecommons.ledger.events import EventTag, record_event
from genecommons.policy.decision import require
from genecommons.policy.models import Action, Resource, Subject
from genecommons.progress import SILENT, Progress

logger = logging.getLogger(__name__)

EXPORT = "export"
MIN_MATCHED_SITES = 10


def set_policy(
    factory: sessionmaker[Session], *, subject: Subject, dataset: str, required: bool
) -> None:
    """Set whether the dataset's record-level deliveries carry a fingerprint (audited)."""
    require(subject, Action.SUBMIT, Resource("dataset", dataset))
    now = clock.now()
    with write_transaction(factory) as session:
        result = session.execute(
            update(fingerprint_policies)
            .where(fingerprint_policies.c.dataset == dataset)
            .values(fingerprint=required, updated_at=now, updated_by=subject.id)
        )
        if not result.rowcount:  # type: ignore[attr-defined]
            session.execute(
                insert(fingerprint_policies).values(
                    dataset=dataset, fingerprint=required, updated_at=now, updated_by=subject.id
                )
            )
        record_event(
            session,
            tag=EventTag.FINGERPRINT_POLICY_SET,
            actor=subject.id,
            subject=dataset,
            details={"fingerprint": required},
            now=now,
        )


def export_vcf(
    factory: sessionmaker[Session],
    settings: Settings,
    *,
    subject: Subject,
    dataset: str,
    recipient: str,
    out: Path,
    scheme: codes.Scheme | None = None,
) -> Delivery:
    """Write the recipient's copy of the dataset's genotypes to `out` (VCF, bgzipped when the
    name ends in .gz) and record the delivery; nothing is left behind on failure."""

    require(subject, Action.READ_RECORDS, Resource("dataset", dataset))
    recipient = recipient.strip()
    if not recipient:
        raise InvalidInputError(
            "Name the recipient (an e-mail address) of the export.",
            message_zh="请指明导出的接收者（电子邮箱）。",
        )
    scheme = scheme or codes.Scheme()
    secret = fingerprint_secret(settings)
    source = genotypes.from_zarr(variant_store_calls(factory, settings, dataset))
    with factory() as session:
        marked = fingerprint_required(session, dataset)
    copy, cost, positions = source, codes.Utility(0, 0, 0.0), 0
    if marked:
        dosages = source.dosages()
        plan = codes.make_plan(dosages, secret=secret, dataset=dataset, scheme=scheme)
        bits = codes.recipient_bits(plan, secret=secret, dataset=dataset, recipient=recipient)
        copy = genotypes.mark(source, plan, bits)
        cost = codes.utility(dosages, copy.dosages())
        positions = len(plan)
        if not positions:
            logger.warning("%s: too few samples or common sites to mark any cell", dataset)
    delivery_id = str(uuid.uuid4())
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.{delivery_id}.partial")
    try:
        if out.name.endswith(".gz"):
            handle: Any = genotypes.BgzfFile(partial)
        else:
            handle = partial.open("wb")
        try:
            genotypes.write_vcf(
                copy,
                handle,
                source=f"GeneCommons {dataset}",
                extra=[f"##genecommons_delivery={delivery_id}"],
            )
        finally:
            handle.close()
        digest = file_sha256(partial)
        what = {
            "format": "vcf.gz" if out.name.endswith(".gz") else "vcf",
            "file": out.name,
            "sha256": digest,
            "sites": len(source.positions),
            "samples": len(source.samples),
            "marked_positions": positions,
            "source": VARIANT_STORE,
        }
        delivery = Delivery(
            delivery_id=delivery_id,
            recipient=recipient,
            dataset=dataset,
            delivered_at=clock.now(),
            channel=EXPORT,
            fingerprinted=marked,
            what=what,
            key_id=codes.key_id(secret),
            utility=cost.as_json(),
        )
        with write_transaction(factory) as session:
            record_delivery(session, delivery, scheme=scheme, actor=subject.id)
        os.replace(partial, out)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return delivery


def record_delivery(
    session: Session,
    delivery: Delivery,
    *,
    scheme: codes.Scheme | relational.TableScheme,
    actor: str,
) -> None:
    """Record a delivery and its audit event, in the caller's transaction."""
    session.execute(
        insert(fingerprint_deliveries).values(
            delivery_id=delivery.delivery_id,
            recipient=delivery.recipient,
            dataset=delivery.dataset,
            delivered_at=delivery.delivered_at,
            channel=delivery.channel,
            fingerprinted=delivery.fingerprinted,
            what=delivery.what,
            key_id=delivery.key_id,
            scheme=scheme.as_json(),
            utility=delivery.utility,
            actor=actor,
        )
    )
    record_event(
        session,
        tag=EventTag.FINGERPRINT_DELIVERED,
        actor=actor,
        subject=delivery.dataset,
        details={
            "delivery_id": delivery.delivery_id,
            "recipient": delivery.recipient,
            "channel": delivery.channel,
            "fingerprinted": delivery.fingerprinted,
            "key_id": delivery.key_id,
            "what": delivery.what,
            "utility": delivery.utility,
        },
        now=delivery.delivered_at,
    )


def export_study_for(
    factory: sessionmaker[Session],
    settings: Settings,
    accession: str,
    *,
    subject: Subject,
    recipient: str,
) -> dict[str, list[dict[str, Any]]]:
    """A study's records as sheet rows for `recipient`: where one of its datasets is
    fingerprinted, its individual-level numbers carry the recipient's marks and the export is
    recorded as a delivery (`fingerprint_tables`); otherwise the catalog's plain export."""
    sheets = catalog_service.export_study(factory, accession, subject=subject)
    with factory() as session:
        datasets = catalog_reads.study_datasets(session, accession)
    marked, _ = fingerprint_tables(
        factory,
        settings,
        subject=subject,
        study=accession,
        datasets=datasets,
        sheets=sheets,
        columns={name: sheet_columns(name) for name in sheets},
        recipient=recipient,
    )
    return marked


def fingerprint_tables(
    factory: sessionmaker[Session],
    settings: Settings,
    *,
    subject: Subject,
    study: str,
    datasets: list[str],
    sheets: dict[str, list[dict[str, Any]]],
    columns: Mapping[str, Sequence[str]],
    recipient: str,
    scheme: relational.TableScheme | None = None,
) -> tuple[dict[str, list[dict[str, Any]]], Delivery | None]:
    """The recipient's copy of a study's exported sheets: when one of its datasets is
    fingerprinted, the numeric cells of every sheet keyed by alias (individuals' age and
    birth year, phenotype values) are marked for the recipient and the export is recorded as a
    delivery (None: no dataset asks for it, the sheets are returned as they are). `columns`
    are each sheet's columns as the export writes them."""
    recipient = recipient.strip()
    if not recipient:
        raise InvalidInputError(
            "Name the recipient (an e-mail address) of the export.",
            message_zh="请指明导出的接收者（电子邮箱）。",
        )
    with factory() as session:
        marked_by = next((d for d in sorted(datasets) if fingerprint_required(session, d)), None)
    if marked_by is None:
        return sheets, None
    scheme = scheme or relational.TableScheme()
    secret = fingerprint_secret(settings)
    out: dict[str, list[dict[str, Any]]] = {}
    costs: dict[str, Any] = {}
    marked_columns: dict[str, list[str]] = {}
    for name, rows in sheets.items():
        marked = [c for c in relational.MARKED_COLUMNS if c in columns.get(name, ())]
        if not marked or TABLE_KEY not in columns.get(name, ()):
            out[name] = rows
            continue
        marked_columns[name] = marked
        out[name], cost = relational.mark_rows(
            rows,
            key=TABLE_KEY,
            columns=marked,
            secret=secret,
            dataset=marked_by,
            recipient=recipient,
            scheme=scheme,
        )
        costs[name] = cost.as_json()
    delivery = Delivery(
        delivery_id=str(uuid.uuid4()),
        recipient=recipient,
        dataset=marked_by,
        delivered_at=clock.now(),
        channel=EXPORT,
        fingerprinted=True,
        what={
            "format": "tsv",
            "source": f"table:{study}",
            "study": study,
            "sheets": sorted(sheets),
            "rows": {name: len(rows) for name, rows in sheets.items()},
            "marked_columns": marked_columns,
        },
        key_id=codes.key_id(secret),
        utility=costs,
    )
    with write_transaction(factory) as session:
        record_delivery(session, delivery, scheme=scheme, actor=subject.id)
    return out, delivery


def deliveries(
    factory: sessionmaker[Session], *, subject: Subject, dataset: str | None = None
) -> list[Delivery]:
    """Recorded deliveries (of one dataset), oldest first."""
    require(subject, Action.READ_AUDIT, Resource("audit"))
    query = select(fingerprint_deliveries).order_by(fingerprint_deliveries.c.id)
    if dataset is not None:
        query = query.where(fingerprint_deliveries.c.dataset == dataset)
    with factory() as session:
        rows = session.execute(query).all()
    return [
        Delivery(
            delivery_id=r.delivery_id,
            recipient=r.recipient,
            dataset=r.dataset,
            delivered_at=r.delivered_at,
            channel=r.channel,
            fingerprinted=r.fingerprinted,
            what=dict(r.what),
            key_id=r.key_id,
            utility=dict(r.utility),
        )
        for r in rows
    ]


def trace_leak(
    factory: sessionmaker[Session],
    settings: Settings,
    *,
    subject: Subject,
    leaked: Path,
    dataset: str | None = None,
    alpha: float = trace.DEFAULT_ALPHA,
    progress: Progress = SILENT,
) -> TraceResult:
    """Score every recipient of the dataset a leaked file came from; name the likely sources.
    `progress` hears the reading, the matching against each delivered dataset and the scoring."""
    require(subject, Action.READ_AUDIT, Resource("audit"))
    with progress.stage(f"reading {leaked.name}"):
        table = read_table(leaked)
    if table is not None:
        with progress.stage(
            f"tracing the rows of {leaked.name}", total=len(table), unit="rows"
        ) as step:
            traced = trace_table(
                factory,
                settings,
                subject=subject,
                leaked=leaked,
                rows=table,
                dataset=dataset,
                alpha=alpha,
            )
            step.update(len(table))
        return traced
    secret = fingerprint_secret(settings)
    current_key = codes.key_id(secret)
    with progress.stage(f"reading the genotypes of {leaked.name}"):
        matrix = genotypes.read_leak(leaked)
    with factory() as session:
        candidates = delivered_sources(session, dataset)
    if not candidates:
        raise NotFoundError(
            "No fingerprinted delivery is recorded"
            + (f" for dataset {dataset}." if dataset else "."),
            message_zh="没有记录任何带指纹的交付"
            + (f"（数据集 {dataset}）。" if dataset else "。"),
        )
    # the dataset the leak came from: the one sharing most of its sites and samples
    best: tuple[int, tuple[str, str], genotypes.Genotypes, trace.Leak] | None = None
    with progress.stage(
        "matching against the delivered datasets", total=len(candidates), unit="datasets"
    ) as step:
        for candidate in candidates:
            source = source_genotypes(factory, settings, *candidate)
            aligned = trace.align(
                original_sites=source.site_keys,
                original_samples=source.samples,
                leaked_sites=matrix.sites,
                leaked_samples=matrix.samples,
                values=matrix.values,
            )
            overlap = aligned.values.size
            if best is None or overlap > best[0]:
                best = (overlap, candidate, source, aligned)
            step.advance()
    assert best is not None
    _, (name, origin), source, aligned = best
    if len(aligned.sites) < MIN_MATCHED_SITES or len(aligned.samples) == 0:
        raise InvalidInputError(
            f"{leaked.name}: only {len(aligned.sites)} sites and {len(aligned.samples)} samples "
            "match a dataset delivered with a fingerprint; nothing to trace.",
            message_zh=f"{leaked.name}：仅有 {len(aligned.sites)} 个位点和 {len(aligned.samples)} "
            "个样本与带指纹交付的数据集相符，无法追溯。",
            details={"file": leaked.name},
        )
    with factory() as session:
        rows = session.execute(
            select(
                fingerprint_deliveries.c.recipient,
                fingerprint_deliveries.c.delivery_id,
                fingerprint_deliveries.c.what,
            )
            .where(fingerprint_deliveries.c.dataset == name)
            .where(fingerprint_deliveries.c.fingerprinted.is_(True))
            .where(fingerprint_deliveries.c.key_id == current_key)
            .order_by(fingerprint_deliveries.c.id)
        ).all()
    by_recipient: dict[str, list[str]] = {}
    for recipient, delivery_id, what in rows:
        if str((what or {}).get("source") or VARIANT_STORE) == origin:
            by_recipient.setdefault(recipient, []).append(delivery_id)
    recipients = list(by_recipient)
    with progress.stage(
        f"scoring the recipients of {name}", total=len(recipients), unit="recipients"
    ) as step:
        plan = codes.make_plan(source.dosages(), secret=secret, dataset=name)
        recipient_codes = codes.code_matrix(
            plan, secret=secret, dataset=name, recipients=recipients
        )
        observed = trace.dense_observations(plan, aligned)
        verdict = trace.accuse(observed, plan.bias, recipient_codes, recipients, alpha=alpha)
        step.update(len(recipients))
    with write_transaction(factory) as session:
        record_event(
            session,
            tag=EventTag.LEAK_TRACED,
            actor=subject.id,
            subject=name,
            details={
                "file": leaked.name,
                "sha256": file_sha256(leaked),
                "source": origin,
                "format": matrix.format,
                "matched_sites": len(aligned.sites),
                "matched_samples": len(aligned.samples),
                "positions": verdict.positions,
                "recipients": len(recipients),
                "named": [
                    {"recipient": s.recipient, "p_value": s.p_value, "z": round(s.z, 3)}
                    for s in verdict.named
                ],
            },
        )
    return TraceResult(
        file=leaked.name,
        format=matrix.format,
        dataset=name,
        matched_sites=len(aligned.sites),
        matched_samples=len(aligned.samples),
        verdict=verdict,
        deliveries=by_recipient,
    )


def simulate(
    *,
    individuals: int,
    length: int,
    seed: int,
    settings: leaksim.SimulationSettings,
    scheme: codes.Scheme | None = None,
    progress: Progress = SILENT,
) -> leaksim.SimulationReport:
    """The leak simulation on a demo cohort of `individuals` over `length` bp of chr22;
    `progress` hears the cohort's simulation and the trials."""
    with progress.stage(f"simulating {individuals:,} genomes over {length:,} bp"):
        dosages, trait = leaksim.demo_dosages(individuals=individuals, length=length, seed=seed)
    with progress.stage("leak trials", total=settings.trials, unit="trials") as step:
        return leaksim.run_simulation(
            dosages,
            trait,
            settings=settings,
            scheme=scheme,
            secret=hashlib.sha256(f"genecommons-simulation-{seed}".encode()).digest(),
            progress=step.update,
        )


class RecipientCopyService:
    """Recipients' fingerprinted copies of archived VCFs, as the archive's deliveries ask for
    them (implements `archive.recipient_copies.RecipientCopies`)."""

    def original_accession(self, object_id: str) -> str | None:
        """The archived file's accession of a copy's id (None: not a copy's id)."""
        return copies.original_accession(object_id)

    def find_copy(self, session: Session, *, copy_id: str, accession: str) -> Copy | None:
        """A copy by its id."""
        return copies.find_copy(session, copy_id=copy_id, accession=accession)

    def object_keys(self, session: Session) -> set[str]:
        """The object store's keys the copies use (their objects and indexes)."""
        return copies.object_keys(session)

    def copy_for(
        self,
        factory: sessionmaker[Session],
        settings: Settings,
        *,
        source: Source,
        datasets: tuple[str, ...],
        recipient: str,
        requested_by: str,
    ) -> Copy | None:
        """The recipient's finished copy of `source` (None: none of `datasets` marks its
        deliveries); CopyNotReadyError while it is made, CopyFailedError when it failed."""
        with factory() as session:
            dataset = fingerprinted_dataset(session, datasets)
        if dataset is None:
            return None
        return copy_jobs.copy_for(
            factory,
            settings,
            source=source,
            dataset=dataset,
            recipient=recipient,
            requested_by=requested_by,
        )

    def record_delivery(
        self,
        session: Session,
        *,
        actor: str,
        copy: RecipientCopy,
        channel: str,
        sha256: str,
        what: dict[str, Any],
    ) -> None:
        """Record a DRS or htsget delivery of `copy` (`sha256`: of what was served) for leak
        tracing, in the caller's transaction."""
        record_delivery(
            session,
            Delivery(
                delivery_id=str(uuid.uuid4()),
                recipient=copy.recipient,
                dataset=copy.dataset,
                delivered_at=clock.now(),
                channel=channel,
                fingerprinted=copy.object_key is not None,
                what={
                    "format": "vcf.gz",
                    "file": copy.accession,
                    "source": f"file:{copy.accession}",
                    "copy": copy.copy_id if copy.object_key is not None else None,
                    "sha256": sha256,
                    "marked_positions": copy.marked_positions,
                    **what,
                },
                key_id=copy.key_id,
                utility=copy.utility,
            ),
            scheme=codes.Scheme(),
            actor=actor,
        )
