"""The background build of recipients' fingerprinted copies: durable jobs and their builder.

A request that needs a copy not built yet makes a job (`fingerprint_copy_jobs`, one per file,
recipient and fingerprint secret: concurrent requests find the same one) and is told to come
back (`CopyNotReadyError`: DRS answers 202, downloads and htsget 503, with Retry-After). The
request's worker never builds anything. A builder (`build_pending`: run by `genecommons serve` in
a process of its own, or by `genecommons fingerprint build-pending`) claims a job, builds the
copy under a fresh copy id (`copies.build_copy`) while it keeps a heartbeat, and records the copy
and the job's end in one transaction: a copy row exists only for a copy whose objects are whole.

A job whose builder died (no heartbeat for `copy_build_lease_seconds`) is claimed again; the
objects its attempt left are removed first. A build that fails is tried again after a backoff,
at most `copy_build_max_attempts` times in all (a file that cannot be read as a VCF fails at
once); a failed job answers its requesters with its error (`CopyFailedError`) until an operator
retries it. Access is not decided here: a delivery asks the decision point each time the copy is
asked for, so a copy finished after its grant was revoked is never handed out.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from genecommons import clock
from genecommons.archive.locks import object_base, object_locks
from genecommons.archive.recipient_copies import Source
from genecommons.archive.served import ArchivedObject, archived_object, source_of
from genecommons.config import Settings
from genecommons.db import write_transaction
from genecommons.errors import (
    ConflictError,
    GeneCommonsError,
    InvalidInputError,
    NotFoundError,
    NotReadyError,
)
from genecommons.fingerprint import codes, copies
from genecommons.fingerprint.models import BuildReport, Copy, CopyJob
from genecommons.fingerprint.secret import fingerprint_secret
from genecommons.fingerprint.tables import fingerprint_copies, fingerprint_copy_jobs
from genecommons.policy.decision import require
from genecommons.policy.models import Action, Resource, Subject

logger = logging.getLogger(__name__)

jobs = fingerprint_copy_jobs
MAX_RETRY_AFTER = 60  # seconds: a client checks back at least this often
HEARTBEAT_SECONDS = 5.0
PERMANENT = (InvalidInputError, NotFoundError, ConflictError)  # retrying cannot help


class CopyNotReadyError(NotReadyError):
    """The recipient's fingerprinted copy is being made. Send the same request again after
    `retry_after` seconds (the Retry-After header)."""

    code = "copy_not_ready"

    def __init__(self, accession: str, *, retry_after: int, state: str, progress: float) -> None:
        super().__init__(
            f"Your fingerprinted copy of {accession} is being made ({state}, "
            f"{progress:.0%} done); ask again in {retry_after} s.",
            message_zh=f"正在为您生成 {accession} 的带指纹副本（{progress:.0%}）；"
            f"请在 {retry_after} 秒后重试。",
            details={"retry_after": retry_after, "state": state, "progress": round(progress, 3)},
            retry_after=retry_after,
        )


class CopyFailedError(GeneCommonsError):
    """The recipient's fingerprinted copy could not be made. The node's operator finds the job
    with `genecommons fingerprint copies`, fixes the cause and runs
    `genecommons fingerprint build-pending --retry-failed`; then ask again."""

    http_status = 500
    exit_code = 9
    code = "copy_failed"


def _job(row: Any) -> CopyJob:
    return CopyJob(
        id=int(row.id),
        accession=row.accession,
        recipient=row.recipient,
        dataset=row.dataset,
        key_id=row.key_id,
        state=row.state,
        attempts=int(row.attempts),
        progress=float(row.progress),
        error=dict(row.error) if row.error else None,
        attempt_copy_id=row.attempt_copy_id,
        created_at=row.created_at,
        updated_at=row.updated_at,
        started_at=row.started_at,
        heartbeat_at=row.heartbeat_at,
    )


def _find(session: Session, file_id: int, recipient: str, key_id: str) -> CopyJob | None:
    row = session.execute(
        select(jobs)
        .where(jobs.c.file_id == file_id)
        .where(jobs.c.recipient == recipient)
        .where(jobs.c.key_id == key_id)
    ).first()
    return None if row is None else _job(row)


# -- the request's side -----------------------------------------------------------------------


def copy_for(
    factory: sessionmaker[Session],
    settings: Settings,
    *,
    source: Source,
    dataset: str,
    recipient: str,
    requested_by: str,
) -> Copy:
    """The recipient's finished copy of `source`. When there is none yet, the job that builds it
    is made (or found) and CopyNotReadyError raised, or CopyFailedError when it failed."""
    key_id = codes.key_id(fingerprint_secret(settings))
    with factory() as session:
        found = copies.existing_copy(
            session,
            file_id=source.file_id,
            accession=source.accession,
            recipient=recipient,
            key_id=key_id,
        )
        job = None if found else _find(session, source.file_id, recipient, key_id)
    if found is not None:
        return found
    if job is None:
        job = _create(
            factory,
            source=source,
            dataset=dataset,
            recipient=recipient,
            key_id=key_id,
            requested_by=requested_by,
        )
    if job.state == "failed":
        error = job.error or {}
        raise CopyFailedError(
            f"Your fingerprinted copy of {source.accession} could not be made: "
            f"{error.get('message', 'unknown error')} The node's operator has been told; "
            "ask again once they have fixed it.",
            message_zh=f"无法生成您的 {source.accession} 带指纹副本："
            f"{error.get('message_zh', '未知错误')} 已通知节点运维人员，修复后请重试。",
            details={"job": job.id, "attempts": job.attempts},
        )
    if job.state == "done":  # finished since the look-up above
        with factory() as session:
            found = copies.existing_copy(
                session,
                file_id=source.file_id,
                accession=source.accession,
                recipient=recipient,
                key_id=key_id,
            )
        if found is not None:
            return found
        job = _rearm(factory, job)  # its copy was removed: build it again
    raise CopyNotReadyError(
        source.accession,
        retry_after=retry_after(settings, job),
        state="building" if job.state == "building" else "queued",
        progress=job.progress if job.state == "building" else 0.0,
    )


def _create(
    factory: sessionmaker[Session],
    *,
    source: Source,
    dataset: str,
    recipient: str,
    key_id: str,
    requested_by: str,
) -> CopyJob:
    now = clock.now()
    try:
        with write_transaction(factory) as session:
            session.execute(
                insert(jobs).values(
                    file_id=source.file_id,
                    accession=source.accession,
                    recipient=recipient,
                    dataset=dataset,
                    key_id=key_id,
                    state="pending",
                    attempts=0,
                    progress=0.0,
                    not_before=now,
                    requested_by=requested_by,
                    created_at=now,
                    updated_at=now,
                )
            )
    except IntegrityError:
        pass  # a concurrent request made it first: the same job serves both
    with factory() as session:
        job = _find(session, source.file_id, recipient, key_id)
    if job is None:  # pragma: no cover - the insert or the concurrent one committed it
        raise ConflictError(
            "The copy's job could not be recorded; ask again.",
            message_zh="未能记录副本生成任务，请重试。",
        )
    return job


def _rearm(factory: sessionmaker[Session], job: CopyJob) -> CopyJob:
    """A done job whose copy is gone, queued again."""
    now = clock.now()
    with write_transaction(factory) as session:
        session.execute(
            update(jobs)
            .where(jobs.c.id == job.id, jobs.c.state == "done")
            .values(state="pending", attempts=0, progress=0.0, not_before=now, updated_at=now)
        )
        row = session.execute(select(jobs).where(jobs.c.id == job.id)).one()
    return _job(row)


def retry_after(settings: Settings, job: CopyJob) -> int:
    """Seconds until the copy is likely ready: from the build's progress when it has made
    some, else the configured pause; between 1 and MAX_RETRY_AFTER."""
    seconds = float(settings.copy_retry_after_seconds)
    if job.state == "building" and job.progress > 0.01 and job.started_at is not None:
        elapsed = (clock.now() - clock.as_utc(job.started_at)).total_seconds()
        seconds = elapsed * (1 - job.progress) / job.progress
    return int(min(MAX_RETRY_AFTER, max(1, round(seconds))))


# -- the builder's side -----------------------------------------------------------------------


class _LeaseLostError(Exception):
    """Another builder took this job over (this one was silent too long): stop, keep nothing."""


@dataclass(frozen=True, slots=True)
class _Claimed:
    job: CopyJob
    file_id: int
    attempt: str  # the copy id this attempt writes under


def _runnable(settings: Settings, now: datetime) -> Any:
    silent_since = now - timedelta(seconds=settings.copy_build_lease_seconds)
    return or_(
        and_(jobs.c.state == "pending", jobs.c.not_before <= now),
        and_(jobs.c.state == "building", jobs.c.heartbeat_at < silent_since),
    )


def runnable(factory: sessionmaker[Session], settings: Settings) -> bool:
    """Whether a job waits for a builder (a cheap look, for the poller)."""
    with factory() as session:
        return bool(
            session.execute(select(exists().where(_runnable(settings, clock.now())))).scalar()
        )


def _same_attempt(row: Any) -> Any:
    column = jobs.c.attempt_copy_id
    return column.is_(None) if row.attempt_copy_id is None else column == row.attempt_copy_id


def _claim(factory: sessionmaker[Session], settings: Settings) -> _Claimed | None:
    """Take the oldest runnable job (one another builder has not taken meanwhile)."""
    while True:
        now = clock.now()
        with factory() as session:
            row = session.execute(
                select(jobs).where(_runnable(settings, now)).order_by(jobs.c.id).limit(1)
            ).first()
        if row is None:
            return None
        abandoned = row.state == "building"
        attempts = int(row.attempts) + 1
        attempt = f"{row.accession}{copies.SEPARATOR}{uuid.uuid4().hex[:16]}"
        values: dict[str, Any] = {"updated_at": now}
        if attempts > settings.copy_build_max_attempts:  # its builders died every time
            values.update(
                state="failed",
                error=_interrupted(int(row.attempts)),
                attempt_copy_id=None,
            )
        else:
            values.update(
                state="building",
                attempts=attempts,
                attempt_copy_id=attempt,
                progress=0.0,
                started_at=now,
                heartbeat_at=now,
            )
        with write_transaction(factory) as session:
            moved = session.execute(
                update(jobs)
                .where(jobs.c.id == row.id, jobs.c.state == row.state, _same_attempt(row))
                .values(**values)
            )
        if moved.rowcount != 1:  # type: ignore[attr-defined]
            continue  # another builder took it first
        if abandoned and row.attempt_copy_id:
            logger.warning("copy job %s: attempt %s was abandoned", row.id, row.attempt_copy_id)
            copies.discard(settings, copies.copy_keys(row.accession, row.attempt_copy_id))
        if values["state"] == "failed":
            logger.error("copy job %s failed: its builder was interrupted every time", row.id)
            continue
        with factory() as session:
            claimed = session.execute(select(jobs).where(jobs.c.id == row.id)).first()
        assert claimed is not None
        return _Claimed(_job(claimed), int(row.file_id), attempt)


def _interrupted(attempts: int) -> dict[str, str]:
    return {
        "code": "interrupted",
        "message": f"the build was interrupted {attempts} times (its process was stopped or "
        "ran out of memory).",
        "message_zh": f"生成过程被中断 {attempts} 次（进程被终止或内存不足）。",
    }


class _Heartbeat:
    """The build's progress callback: tells the job it is alive (now and then), and stops the
    build when another builder has taken the job over."""

    def __init__(
        self, factory: sessionmaker[Session], settings: Settings, claimed: _Claimed
    ) -> None:
        self.factory = factory
        self.claimed = claimed
        self.every = min(HEARTBEAT_SECONDS, settings.copy_build_lease_seconds / 4)
        self.last = clock.now()

    def __call__(self, progress: float) -> None:
        now = clock.now()
        if (now - self.last).total_seconds() < self.every:
            return
        self.last = now
        with write_transaction(self.factory) as session:
            moved = session.execute(
                update(jobs)
                .where(jobs.c.id == self.claimed.job.id)
                .where(jobs.c.state == "building")
                .where(jobs.c.attempt_copy_id == self.claimed.attempt)
                .values(heartbeat_at=now, progress=min(progress, 0.999), updated_at=now)
            )
        if moved.rowcount != 1:  # type: ignore[attr-defined]
            raise _LeaseLostError


def _source(factory: sessionmaker[Session], claimed: _Claimed) -> Source:
    with factory() as session:
        try:
            archived: ArchivedObject | None = archived_object(session, claimed.job.accession)
        except (NotFoundError, ConflictError):  # no file or object, or one failing its check
            archived = None
    if archived is None:
        raise ConflictError(
            f"{claimed.job.accession} is no longer archived intact (missing, or damaged at its "
            "last check); run `genecommons archive verify`.",
            message_zh=f"{claimed.job.accession} 的归档对象已不完整；请运行 "
            "`genecommons archive verify`。",
        )
    return source_of(archived)


def _run(factory: sessionmaker[Session], settings: Settings, claimed: _Claimed) -> str:
    """Build a claimed job's copy; how it ended (built, retrying, failed or lost). Its objects
    stay locked until the copy's row is committed or they are removed (archive.locks)."""
    base = object_base(copies.copy_keys(claimed.job.accession, claimed.attempt)[0])
    with object_locks(settings).hold(base):
        return _build(factory, settings, claimed)


def _build(factory: sessionmaker[Session], settings: Settings, claimed: _Claimed) -> str:
    job = claimed.job
    written = copies.copy_keys(job.accession, claimed.attempt)
    try:
        if codes.key_id(fingerprint_secret(settings)) != job.key_id:
            raise ConflictError(
                "the node's fingerprint secret changed since the copy was asked for.",
                message_zh="请求副本后，节点的指纹密钥已更换。",
            )
        values = copies.build_copy(
            settings,
            source=_source(factory, claimed),
            dataset=job.dataset,
            recipient=job.recipient,
            copy_id=claimed.attempt,
            progress=_Heartbeat(factory, settings, claimed),
        )
        now = clock.now()
        with write_transaction(factory) as session:
            moved = session.execute(
                update(jobs)
                .where(jobs.c.id == job.id)
                .where(jobs.c.state == "building")
                .where(jobs.c.attempt_copy_id == claimed.attempt)
                .values(state="done", progress=1.0, error=None, updated_at=now)
            )
            if moved.rowcount != 1:  # type: ignore[attr-defined]
                raise _LeaseLostError
            session.execute(insert(fingerprint_copies).values(**values, created_at=now))
    except _LeaseLostError:
        copies.discard(settings, written)
        logger.warning("copy job %s was taken over by another builder; this attempt stops", job.id)
        return "lost"
    except (KeyboardInterrupt, SystemExit):
        copies.discard(settings, written)
        _release(factory, claimed)
        raise
    except Exception as error:
        copies.discard(settings, written)
        return _failed(factory, settings, claimed, error)
    logger.info("copy job %s: %s built for %s", job.id, claimed.attempt, job.recipient)
    return "built"


def _release(factory: sessionmaker[Session], claimed: _Claimed) -> None:
    """Give a job back, its attempt not counted (the builder is being stopped)."""
    with write_transaction(factory) as session:
        session.execute(
            update(jobs)
            .where(jobs.c.id == claimed.job.id)
            .where(jobs.c.attempt_copy_id == claimed.attempt)
            .values(
                state="pending",
                attempts=jobs.c.attempts - 1,
                attempt_copy_id=None,
                progress=0.0,
                updated_at=clock.now(),
            )
        )


def _failed(
    factory: sessionmaker[Session], settings: Settings, claimed: _Claimed, error: Exception
) -> str:
    """Record a failed attempt: tried again later, or failed for good."""
    job = claimed.job
    if isinstance(error, GeneCommonsError):
        described = {"code": error.code, "message": error.message, "message_zh": error.message_zh}
        logger.error("copy job %s failed: %s", job.id, error.message)
    else:
        described = {
            "code": "internal",
            "message": "an internal error (the node's log names it).",
            "message_zh": "内部错误（详见节点日志）。",
        }
        logger.exception("copy job %s failed", job.id)
    final = isinstance(error, PERMANENT) or job.attempts >= settings.copy_build_max_attempts
    now = clock.now()
    with write_transaction(factory) as session:
        session.execute(
            update(jobs)
            .where(jobs.c.id == job.id)
            .where(jobs.c.attempt_copy_id == claimed.attempt)
            .values(
                state="failed" if final else "pending",
                error=described,
                attempt_copy_id=None,
                progress=0.0,
                not_before=now + timedelta(seconds=min(300, 10 * 2 ** (job.attempts - 1))),
                updated_at=now,
            )
        )
    return "failed" if final else "retrying"


def build_pending(
    factory: sessionmaker[Session],
    settings: Settings,
    *,
    stop: threading.Event | None = None,
    limit: int | None = None,
) -> BuildReport:
    """Build every copy waiting for a builder (at most `limit`), one after the other, until
    none is left or `stop` is set."""
    report = BuildReport()
    done = 0
    while (stop is None or not stop.is_set()) and (limit is None or done < limit):
        claimed = _claim(factory, settings)
        if claimed is None:
            break
        report = report.add(_run(factory, settings, claimed))
        done += 1
    return report


def list_jobs(
    factory: sessionmaker[Session], *, subject: Subject, state: str | None = None
) -> list[CopyJob]:
    """The copy jobs (in one state), oldest first (data stewards, administrators, operators)."""
    require(subject, Action.LIST_FILES, Resource("file"))
    query = select(jobs).order_by(jobs.c.id)
    if state is not None:
        query = query.where(jobs.c.state == state)
    with factory() as session:
        return [_job(row) for row in session.execute(query).all()]


def retry_failed(factory: sessionmaker[Session], *, subject: Subject) -> int:
    """Put failed jobs back in the queue with their attempts reset; how many."""
    require(subject, Action.LIST_FILES, Resource("file"))
    now = clock.now()
    with write_transaction(factory) as session:
        moved = session.execute(
            update(jobs)
            .where(jobs.c.state == "failed")
            .values(state="pending", attempts=0, not_before=now, updated_at=now)
        )
    return int(moved.rowcount)  # type: ignore[attr-defined]


class CopyBuilder:
    """`genecommons serve`'s copy builder: a thread that looks for waiting jobs every
    `copy_build_poll_seconds` and, when there are any, runs `genecommons fingerprint
    build-pending` in a process of its own, so that a build's memory and CPU are never those of
    a worker answering requests (and are given back when it ends). A builder killed half way
    leaves its job to the next run (after the lease)."""

    def __init__(self, factory: sessionmaker[Session], settings: Settings) -> None:
        self.factory = factory
        self.settings = settings
        self._stop = threading.Event()
        self._process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="copy-builder", daemon=True)

    def start(self) -> None:
        """Start looking for jobs."""
        self._thread.start()

    def stop(self) -> None:
        """Stop looking; a build under way is asked to stop (its job goes back to the queue)."""
        self._stop.set()
        with self._lock:
            process = self._process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        self._thread.join(timeout=60)

    def _run(self) -> None:
        while not self._stop.wait(self.settings.copy_build_poll_seconds):
            try:
                if not runnable(self.factory, self.settings):
                    continue
                with self._lock:
                    if self._stop.is_set():
                        break
                    self._process = subprocess.Popen(  # our own CLI, no shell
                        [sys.executable, "-m", "genecommons", "fingerprint", "build-pending"]
                    )
                self._process.wait()
            except Exception:  # logged; the next poll tries again
                logger.exception("the copy builder's pass failed")
