"""Catalog use cases: submit, list and show. The only catalog code that opens transactions."""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Select, Table, func, insert, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from genecommons import clock
from genecommons.catalog.accessions import Reservation, reserve_accessions, settle_reservation
from genecommons.catalog.bundle import Limits, open_bundle
from genecommons.catalog.models import ENTITIES, is_accession
from genecommons.catalog.report import Report
from genecommons.catalog.repository import CommitCounts, PlanWriter
from genecommons.catalog.sql_view import SqlCatalogView
from genecommons.catalog.tables import (
    ENTITY_TABLES,
    phenotype_records,
    record_history,
    submissions,
)
from genecommons.catalog.validation import Plan, plan_submission
from genecommons.db import snapshot_transaction, write_transaction
from genecommons.errors import (
    BusyError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    SubmissionRejectedError,
)
from genecommons.ledger.events import EventTag, record_event
from genecommons.policy.decision import decide, require, require_visible
from genecommons.policy.models import Action, Resource, Subject
from genecommons.progress import SILENT, Progress
from genecommons.secrets import NodeKeys

logger = logging.getLogger(__name__)


class DataFileSink(Protocol):
    """Takes the data files a submission's folder holds (the archive implements it)."""

    def attach(
        self, session: Session, files: Mapping[str, str], paths: Mapping[str, Path]
    ) -> list[str]:
        """Archive `paths` (file alias -> path) as the catalog files `files` (alias ->
        accession) inside `session`; the accessions archived."""

    def discard(self) -> None:
        """Remove what `attach` stored (its transaction did not commit)."""


@dataclass(slots=True)
class SubmissionResult:
    """What happened to a submission."""

    report: Report
    committed: bool
    submission_id: int | None = None
    counts: CommitCounts = field(default_factory=CommitCounts)
    accessions: dict[str, dict[str, str]] = field(default_factory=dict)
    archived: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {
            "committed": self.committed,
            "submission_id": self.submission_id,
            "created": self.counts.created,
            "updated": self.counts.updated,
            "unchanged": self.counts.unchanged,
            "accessions": self.accessions,
            "archived": self.archived,
            "report": self.report.to_dict(),
        }


def submit(
    factory: sessionmaker[Session],
    path: Path,
    *,
    subject: Subject,
    dry_run: bool = False,
    today: date | None = None,
    limits: Limits | None = None,
    staging: Path | None = None,
    progress: Progress = SILENT,
    data_files: DataFileSink | None = None,
    identifier_key: Callable[[], bytes] | None = None,
) -> SubmissionResult:
    """Validate the submission at `path` and, unless `dry_run`, commit it all or nothing.

    Raises SubmissionRejectedError (with the full report) when any error is found; the catalog
    is then exactly as it was. `data_files` archives the
    declared data files the submission's folder holds, in the same transaction: if one fails
    its checks, nothing of the submission is stored. `progress` hears each stage: reading,
    validating, writing (the data files' stages are `data_files`' own). `identifier_key` gives
    the node's key for the keyed pseudonyms a submission may declare (`pseudonym_key`); without
    it, a pseudonym treatment is refused.
    """
    require(subject, Action.SUBMIT, Resource("submission"))
    today = today or clock.now().date()
    limits = limits or Limits()
    with ExitStack() as opened:
        opened.enter_context(_bulk_objects())
        with progress.stage(f"reading {path.name}", unit="rows") as reading:
            bundle, read_problems = opened.enter_context(
                open_bundle(path, limits=limits, staging=staging)
            )
            rows = sum(len(sheet) for sheet in bundle.rows.values())
            reading.update(rows)
        reservation = None
        try:
            if not dry_run:
                # committed first: numbers a submission that never commits was given stay used
                needs = {spec.prefix: len(bundle.sheet(name)) for name, spec in ENTITIES.items()}
                # a phenopacket naming no individual of the sheets adds one of its own
                needs[ENTITIES["individuals"].prefix] += len(bundle.phenopackets)
                with write_transaction(factory) as session:
                    reservation = reserve_accessions(session, needs)
            # the write lock is taken at the first write, after the plan: a long validation
            # holds up no other writer, and fails (BusyError) if one committed meanwhile
            with snapshot_transaction(factory) as session:
                view = SqlCatalogView(session)
                with progress.stage("validating", total=rows, unit="rows") as validating:
                    plan = plan_submission(
                        bundle,
                        view,
                        today=today,
                        max_problems=limits.max_problems,
                        identifier_key=identifier_key,
                        progress=progress,
                    )
                    validating.update(rows)
                plan.report.problems[:0] = read_problems
                if not plan.report.ok:
                    session.rollback()
                    _settle(factory, reservation)  # nothing was made for these numbers
                    _record_rejection(factory, subject, path, plan.report)
                    raise SubmissionRejectedError(
                        f"The submission has {len(plan.report.errors)} error(s); nothing was "
                        "stored.",
                        message_zh=f"提交内容有 {len(plan.report.errors)} 个错误；未保存任何内容。",
                        details=plan.report.to_dict(),
                    )
                if dry_run:
                    session.rollback()
                    return SubmissionResult(report=plan.report, committed=False)
                with progress.stage("writing catalog records", total=rows, unit="rows") as writing:
                    result = _commit(
                        session,
                        view,
                        plan,
                        subject=subject,
                        source=path.name,
                        reservation=reservation,
                    )
                    writing.update(rows)
                if data_files is not None:
                    declared = result.accessions.get("files", {})
                    present = {a: p for a, p in bundle.data_files.items() if a in declared}
                    if present:
                        result.archived = data_files.attach(session, declared, present)
            _settle(factory, reservation)
            return result
        except BaseException as error:
            if data_files is not None:
                data_files.discard()
            if isinstance(error, BusyError):
                raise ConflictError(
                    "Another change was written while your submission was being checked; "
                    "nothing from yours was stored. Submit again.",
                    message_zh="在检查您的提交期间有其他更改写入；您的提交未被保存，请重新提交。",
                ) from error
            raise


_gc_lock = threading.Lock()
_gc_holders = 0
_gc_was_enabled = False


@contextmanager
def _bulk_objects() -> Iterator[None]:
    """Python's cyclic garbage collector paused while a submission builds its millions of
    long-lived objects (rows, records, plan nodes, table rows): each of its full collections
    walks every one of them, which made the collector about a fifth of a large submission's CPU
    time and grow faster than the submission. Reference counting still frees what a submission
    drops; the few cycles it leaves wait for the collector, which resumes, as it was, when the
    last submission running in this process ends."""
    global _gc_holders, _gc_was_enabled
    with _gc_lock:
        if _gc_holders == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_holders += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_holders -= 1
            if _gc_holders == 0 and _gc_was_enabled:
                gc.enable()


def _settle(factory: sessionmaker[Session], reservation: Reservation | None) -> None:
    """Give back the reserved accessions no record took. Only to avoid gaps in the numbering:
    when the database refuses now, the numbers simply stay used."""
    if reservation is None:
        return
    try:
        with write_transaction(factory) as session:
            settle_reservation(session, reservation)
    except (BusyError, OperationalError):
        logger.info("unused accessions of a submission stay reserved (a gap in the numbering)")


def _commit(
    session: Session,
    view: SqlCatalogView,
    plan: Plan,
    *,
    subject: Subject,
    source: str,
    reservation: Reservation | None = None,
) -> SubmissionResult:
    now = clock.now()
    submission_id = session.execute(
        insert(submissions).returning(submissions.c.id),
        {
            "received_at": now,
            "submitter": subject.id,
            "source": source[:500],
            "created": 0,
            "updated": 0,
            "unchanged": 0,
            "report": {},
        },
    ).scalar_one()
    writer = PlanWriter(
        session,
        view,
        actor=subject.id,
        submission_id=submission_id,
        now=now,
        reservation=reservation,
    )
    counts = writer.write(plan)
    accessions: dict[str, dict[str, str]] = {}
    for entity, nodes in plan.nodes.items():
        accessions[entity] = {n.record.alias: writer.accessions[id(n)] for n in nodes}
    summary = plan.report.to_dict()
    summary["problems"] = summary["problems"][:1000]
    session.execute(
        update(submissions)
        .where(submissions.c.id == submission_id)
        .values(
            created=counts.created,
            updated=counts.updated,
            unchanged=counts.unchanged,
            report=summary,
        )
    )
    record_event(
        session,
        tag=EventTag.SUBMISSION_ACCEPTED,
        actor=subject.id,
        subject=f"submission:{submission_id}",
        details={
            "source": source,
            "created": counts.created,
            "updated": counts.updated,
            "unchanged": counts.unchanged,
        },
    )
    logger.info(
        "submission %s committed: %s created, %s updated",
        submission_id,
        counts.created,
        counts.updated,
    )
    return SubmissionResult(
        report=plan.report,
        committed=True,
        submission_id=submission_id,
        counts=counts,
        accessions=accessions,
    )


def _record_rejection(
    factory: sessionmaker[Session], subject: Subject, path: Path, report: Report
) -> None:
    with write_transaction(factory) as session:
        record_event(
            session,
            tag=EventTag.SUBMISSION_REJECTED,
            actor=subject.id,
            subject=f"source:{path.name}",
            details={
                "errors": len(report.errors),
                "rules": sorted({p.rule for p in report.errors})[:50],
            },
        )


PSEUDONYM_PURPOSE = "identifier-pseudonym"


def pseudonym_key(keys: NodeKeys) -> bytes:
    """The node's key for keyed pseudonyms of direct identifiers, derived from its key store
    (so it exists wherever `genecommons init` ran, and is never made by a read)."""
    return keys.derive(PSEUDONYM_PURPOSE)


# -- reading ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a listing."""

    items: list[dict[str, Any]]
    total: int
    page: int
    page_size: int


METADATA_ENTITIES = {"studies": "study", "datasets": "dataset"}
INDIVIDUAL_LEVEL = {"individuals": "individual", "samples": "sample"}
FILTERS: dict[str, tuple[str, ...]] = {
    "studies": ("study_type", "public"),
    "datasets": ("access_tier",),
    "individuals": ("sex", "ethnic_group", "population", "province", "country", "birth_year"),
    "samples": ("tissue",),
}


def _record_read(
    factory: sessionmaker[Session],
    subject: Subject,
    what: str,
    accessions: list[str],
    **context: Any,
) -> None:
    """Audit a read of individual-level records: who saw which participants, and how. In a
    transaction of its own that takes the write lock when it begins, after the read's: a read
    transaction that went on to write would fail at once whenever another write committed
    since it began (on SQLite), turning a read into a failed request."""
    details: dict[str, Any] = {"entity": what, "accessions": accessions}
    details.update({k: v for k, v in context.items() if v})
    with write_transaction(factory) as session:
        record_event(
            session,
            tag=EventTag.RECORD_READ,
            actor=subject.id,
            subject=accessions[0] if len(accessions) == 1 else None,
            details=details,
        )


def _public_studies() -> Select[tuple[int]]:
    studies = ENTITY_TABLES["studies"]
    return select(studies.c.id).where(studies.c.public.is_(True))


def _iso(moment: datetime) -> str:
    return clock.as_utc(moment).isoformat()


def _item(row: Any) -> dict[str, Any]:
    item = dict(row.doc)
    item.update(
        accession=row.accession,
        alias=row.alias,
        revision=row.revision,
        created_at=_iso(row.created_at),
        updated_at=_iso(row.updated_at),
    )
    return item


def list_records(
    factory: sessionmaker[Session],
    entity: str,
    *,
    subject: Subject,
    page: int = 1,
    page_size: int = 50,
    filters: dict[str, str] | None = None,
    study: str | None = None,
) -> Page:
    """A page of `entity` records the subject may see, newest accession last."""
    if entity not in FILTERS:
        raise NotFoundError(f"Unknown collection {entity!r}.", message_zh=f"未知集合 {entity!r}。")
    if not 1 <= page <= 1_000_000 or not 1 <= page_size <= 1000:
        raise InvalidInputError(
            "page must be between 1 and 1,000,000 and page_size between 1 and 1000.",
            message_zh="page 须在 1 到 1,000,000 之间，page_size 须在 1 到 1000 之间。",
        )
    table = ENTITY_TABLES[entity]
    statement = select(table)
    if entity in INDIVIDUAL_LEVEL:
        require(subject, Action.READ_INDIVIDUAL_RECORDS, Resource(INDIVIDUAL_LEVEL[entity]))
    else:
        kind = METADATA_ENTITIES[entity]
        if not decide(subject, Action.READ_METADATA, Resource(kind, public=False)).allowed:
            # the subject sees public records only: the policy allows public metadata
            require(subject, Action.READ_METADATA, Resource(kind, public=True))
            column = table.c.id if entity == "studies" else table.c.study_id
            statement = statement.where(column.in_(_public_studies()))
    for name, value in (filters or {}).items():
        if name not in FILTERS[entity]:
            raise InvalidInputError(
                f"Unknown filter {name!r}; filters are {', '.join(FILTERS[entity])}.",
                message_zh=f"未知的筛选条件 {name!r}。",
            )
        column = table.c[name]
        typed: Any = value
        if name == "public":
            typed = value.lower() in ("1", "true", "yes")
        elif name == "birth_year":
            try:
                typed = int(value)
            except ValueError as error:
                raise InvalidInputError(
                    "birth_year must be a whole number.", message_zh="birth_year 必须是整数。"
                ) from error
        statement = statement.where(column == typed)
    with factory() as session:
        if study is not None and entity != "studies":
            study_id = _study_id(session, study, subject=subject)
            statement = statement.where(table.c.study_id == study_id)
        total = session.execute(select(func.count()).select_from(statement.subquery())).scalar_one()
        rows = session.execute(
            statement.order_by(table.c.id).limit(page_size).offset((page - 1) * page_size)
        ).all()
    if entity in INDIVIDUAL_LEVEL and rows:
        _record_read(
            factory,
            subject,
            entity,
            [r.accession for r in rows],
            study=study,
            filters=dict(filters or {}),
            page=page,
        )
    return Page([_item(r) for r in rows], int(total), page, page_size)


def _study_id(session: Session, accession: str, *, subject: Subject) -> int:
    """The id of a study the subject may see; NotFoundError alike when there is none and when
    the subject may not see it."""
    studies = ENTITY_TABLES["studies"]
    found = session.execute(
        select(studies.c.id, studies.c.public).where(studies.c.accession == accession)
    ).first()
    missing = NotFoundError(f"No study {accession}.", message_zh=f"不存在研究 {accession}。")
    if found is None:
        raise missing
    resource = Resource("study", accession, public=bool(found.public))
    require_visible(subject, Action.READ_METADATA, resource, missing=missing)
    return int(found.id)


def get_record(
    factory: sessionmaker[Session],
    entity: str,
    accession: str,
    *,
    subject: Subject,
    with_history: bool = False,
) -> dict[str, Any]:
    """One record by accession, if the subject may see it."""
    if entity not in FILTERS or not is_accession(accession):
        raise NotFoundError(f"No {entity} {accession}.", message_zh=f"不存在 {accession}。")
    table: Table = ENTITY_TABLES[entity]
    missing = NotFoundError(
        f"No {ENTITIES[entity].label_en} {accession}.",
        message_zh=f"不存在{ENTITIES[entity].label_zh} {accession}。",
    )
    with factory() as session:
        row = session.execute(select(table).where(table.c.accession == accession)).first()
        if row is None:
            raise missing
        if entity in INDIVIDUAL_LEVEL:
            require(
                subject,
                Action.READ_INDIVIDUAL_RECORDS,
                Resource(INDIVIDUAL_LEVEL[entity], accession),
                missing=missing,
            )
        else:
            study_id = row.id if entity == "studies" else row.study_id
            studies = ENTITY_TABLES["studies"]
            public = bool(
                session.execute(
                    select(studies.c.public).where(studies.c.id == study_id)
                ).scalar_one()
            )
            # not visible: "not found", as for a record that does not exist
            require(
                subject,
                Action.READ_METADATA,
                Resource(METADATA_ENTITIES[entity], accession, public),
                missing=missing,
            )
        item = _item(row)
        if entity == "individuals":
            packet = session.execute(
                select(phenotype_records.c.document).where(
                    phenotype_records.c.individual_id == row.id
                )
            ).scalar_one_or_none()
            item["phenopacket"] = packet
        if entity == "studies":
            item["counts"] = {
                name: int(
                    session.execute(
                        select(func.count())
                        .select_from(ENTITY_TABLES[name])
                        .where(ENTITY_TABLES[name].c.study_id == row.id)
                    ).scalar_one()
                )
                for name in ("individuals", "samples", "datasets", "analyses")
            }
        if with_history:
            item["history"] = [
                {
                    "revision": h.revision,
                    "change": h.change,
                    "changed_fields": h.changed_fields,
                    "changed_at": _iso(h.changed_at),
                    "changed_by": h.changed_by,
                    "submission_id": h.submission_id,
                }
                for h in session.execute(
                    select(record_history)
                    .where(record_history.c.accession == accession)
                    .order_by(record_history.c.revision)
                )
            ]
    if entity in INDIVIDUAL_LEVEL:
        _record_read(factory, subject, entity, [accession], history=with_history)
    return item


def list_submissions(
    factory: sessionmaker[Session], *, subject: Subject, page: int = 1, page_size: int = 50
) -> Page:
    """Submissions received, newest first."""
    require(subject, Action.READ_SUBMISSIONS, Resource("submission"))
    with factory() as session:
        total = session.execute(select(func.count()).select_from(submissions)).scalar_one()
        rows = session.execute(
            select(submissions)
            .order_by(submissions.c.id.desc())
            .limit(page_size)
            .offset((page - 1) * page_size)
        ).all()
    items = [
        {
            "id": r.id,
            "received_at": _iso(r.received_at),
            "submitter": r.submitter,
            "source": r.source,
            "created": r.created,
            "updated": r.updated,
            "unchanged": r.unchanged,
        }
        for r in rows
    ]
    return Page(items, int(total), page, page_size)


def export_study(
    factory: sessionmaker[Session],
    accession: str,
    *,
    subject: Subject,
) -> dict[str, list[dict[str, Any]]]:
    """Every record of a study as sheet rows (references written as accessions). A copy for a
    recipient, fingerprinted where its datasets ask for it, is fingerprint's
    (`fingerprint.service.export_study_for`)."""
    require(subject, Action.READ_INDIVIDUAL_RECORDS, Resource("study", accession))
    sheets: dict[str, list[dict[str, Any]]] = {}
    with factory() as session:
        study_id = _study_id(session, accession, subject=subject)
        studies = ENTITY_TABLES["studies"]
        study = session.execute(select(studies).where(studies.c.id == study_id)).one()
        institutions = ENTITY_TABLES["institutions"]
        institution = session.execute(
            select(institutions).where(institutions.c.id == study.institution_id)
        ).one()
        sheets["institutions"] = [dict(institution.doc)]
        sheets["studies"] = [dict(study.doc) | {"institution": institution.alias}]
        for name in ENTITIES:
            if name in ("institutions", "studies"):
                continue
            table = ENTITY_TABLES[name]
            rows = (
                session.execute(
                    select(table.c.doc).where(table.c.study_id == study_id).order_by(table.c.id)
                )
                .scalars()
                .all()
            )
            if rows:
                sheets[name] = [dict(doc) for doc in rows]
    _record_read(factory, subject, "study export", [accession])
    return sheets
