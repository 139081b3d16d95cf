"""Whether the node is ready to serve, and the metrics it exposes.

Readiness looks at what a request needs and the node cannot make on its own: the database,
the object store, the key files `genecommons init` makes, and an audit sequencer that keeps up
(the events of high-rate requests wait in the audit queue until it appends them to the log).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from genecommons import clock, metrics
from genecommons.archive.keys_and_store import object_store
from genecommons.audit import service as audit_service
from genecommons.config import Settings
from genecommons.errors import AccessDeniedError, NotReadyError
from genecommons.policy.decision import decide_metrics, refusal
from genecommons.policy.models import Action, Resource, Subject

READY_RETRY_SECONDS = 5


@dataclass(frozen=True, slots=True)
class Check:
    """One thing readiness looks at, and what is wrong with it (nothing when ready)."""

    name: str
    ready: bool
    message: str = ""
    message_zh: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The check as GET /readyz shows it."""
        document: dict[str, Any] = {"name": self.name, "ready": self.ready}
        if not self.ready:
            document.update(message=self.message, message_zh=self.message_zh)
        return document


def _database(factory: sessionmaker[Session]) -> Check:
    try:
        with factory() as session:
            session.execute(text("SELECT 1"))
    except Exception as error:  # whatever the driver raises: the database cannot answer
        return Check(
            "database",
            False,
            f"The database does not answer ({type(error).__name__}); check that it runs and "
            "that GENECOMMONS_DATABASE_URL names it.",
            f"数据库无响应（{type(error).__name__}）；请检查数据库是否运行，"
            "以及 GENECOMMONS_DATABASE_URL 是否正确。",
        )
    return Check("database", True)


def _object_store(settings: Settings) -> Check:
    try:
        problem = object_store(settings).reachable()
    except Exception as error:  # an S3 client fails in many ways; each means not reachable
        problem = f"{type(error).__name__}"
    if problem is None:
        return Check("object_store", True)
    return Check(
        "object_store",
        False,
        f"The object store {settings.effective_archive_url} cannot be used ({problem}); check "
        "GENECOMMONS_ARCHIVE_URL and the store's credentials.",
        f"对象存储 {settings.effective_archive_url} 无法使用（{problem}）；请检查 "
        "GENECOMMONS_ARCHIVE_URL 及其凭据。",
    )


def key_files(settings: Settings) -> dict[str, Path]:
    """The key files a serving node needs, each by what it is for (all made by `genecommons
    init`)."""
    files = {
        "node key": settings.node_key_file,
        "audit signing key": settings.audit_key_file,
        "archive secret key": settings.archive_key_dir / "archive.sec",
        "archive public key": settings.archive_key_dir / "archive.pub",
        "fingerprint key": settings.fingerprint_key_file,
    }
    if settings.beacon_guard == "defended":
        files["Beacon threshold key"] = settings.beacon_key_file
    return files


def _keys(settings: Settings) -> Check:
    # present and readable: unlocking each would cost a key derivation on every probe
    missing = [
        f"{name} ({path})"
        for name, path in key_files(settings).items()
        if not (path.is_file() and os.access(path, os.R_OK))
    ]
    if not missing:
        return Check("keys", True)
    listed = ", ".join(missing)
    return Check(
        "keys",
        False,
        f"Key files missing or unreadable: {listed}; run `genecommons init`, or restore them "
        "from the backup.",
        f"密钥文件缺失或不可读：{listed}；请运行 `genecommons init` 或从备份恢复。",
    )


def _sequencer(factory: sessionmaker[Session], settings: Settings) -> Check:
    bound = settings.ready_max_sequencer_lag_seconds
    try:
        state = audit_service.queue_state(factory)
    except Exception as error:  # the database check says why
        return Check(
            "audit_sequencer",
            False,
            f"The audit queue cannot be read ({type(error).__name__}).",
            f"无法读取审计队列（{type(error).__name__}）。",
        )
    lag = state.lag_seconds(clock.now())
    if lag <= bound:
        return Check("audit_sequencer", True)
    return Check(
        "audit_sequencer",
        False,
        f"The audit log's sequencer is {lag:.0f} s behind ({state.depth} events waiting; the "
        f"bound is {bound:g} s): check that `genecommons serve` runs its background work and "
        "that its log shows no failing pass.",
        f"审计日志排序器落后 {lag:.0f} 秒（{state.depth} 个事件等待；上限 {bound:g} 秒）：请检查 "
        "`genecommons serve` 的后台任务是否运行，以及日志中是否有失败记录。",
    )


def readiness(factory: sessionmaker[Session], settings: Settings) -> list[Check]:
    """Every readiness check, ready or not."""
    return [
        _database(factory),
        _object_store(settings),
        _keys(settings),
        _sequencer(factory, settings),
    ]


def require_ready(factory: sessionmaker[Session], settings: Settings) -> dict[str, Any]:
    """The readiness document, or NotReadyError (503) saying what is not ready and how to fix
    it."""
    checks = readiness(factory, settings)
    failed = [c for c in checks if not c.ready]
    if failed:
        raise NotReadyError(
            "The node is not ready: " + " ".join(c.message for c in failed),
            message_zh="节点尚未就绪：" + "".join(c.message_zh for c in failed),
            retry_after=READY_RETRY_SECONDS,
            details=[c.to_dict() for c in checks],
        )
    return {"status": "ready", "checks": [c.to_dict() for c in checks]}


def address_listed(settings: Settings, address: str) -> bool:
    """Whether `address` is in `metrics_allow_ips`."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:  # "unknown", or a test client's name
        return False
    return any(ip in network for network in settings.metrics_allowed_networks)


def require_metrics_reader(subject: Subject, *, address: str, settings: Settings) -> None:
    """Refuse (AccessDeniedError, carrying the refusal for the audit log) a caller the
    decision point does not let read the metrics."""
    decision = decide_metrics(subject, from_listed_address=address_listed(settings, address))
    if not decision.allowed:
        raise AccessDeniedError(
            " ".join(decision.reasons),
            message_zh="".join(decision.reasons_zh),
            details={"rule": decision.rule},
            refusal=refusal(subject, Action.READ_METRICS, Resource("metrics"), rule=decision.rule),
        )


class DatabaseMetrics(Collector):
    """The metrics read from the database at each scrape, the same whichever worker answers:
    the audit queue's depth and the sequencer's lag, and the alerts raised by rule."""

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self.factory = factory

    def collect(self) -> Iterable[Metric]:
        """The families, read now (only `genecommons_database_up` 0 when the database fails)."""
        up = GaugeMetricFamily(
            "genecommons_database_up", "Whether the database answered this scrape (1) or not (0)."
        )
        try:
            state = audit_service.queue_state(self.factory)
            alerts = audit_service.alerts_raised(self.factory)
        except Exception:  # the scrape still answers, saying the database did not
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        depth = GaugeMetricFamily(
            "genecommons_audit_queue_depth",
            "Audit events queued for the sequencer, not yet in the Merkle tree.",
        )
        depth.add_metric([], state.depth)
        yield depth
        lag = GaugeMetricFamily(
            "genecommons_audit_sequencer_lag_seconds",
            "How long the oldest queued audit event has waited for the sequencer (0: none).",
        )
        lag.add_metric([], state.lag_seconds(clock.now()))
        yield lag
        raised = CounterMetricFamily(
            "genecommons_alerts_raised",
            "Early-warning alerts raised, by rule (from the alerts table: every process's).",
            labels=["rule"],
        )
        for rule, count in sorted(alerts.items()):
            raised.add_metric([rule], count)
        yield raised


def exposition(factory: sessionmaker[Session], settings: Settings) -> bytes:
    """The node's metrics in Prometheus text format (every worker's under `serve`)."""
    return metrics.exposition(settings.metrics_multiprocess_dir, [DatabaseMetrics(factory)])
