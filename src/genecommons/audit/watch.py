"""Early-warning use cases: the watcher, the alerts and their delivery to a webhook.

The watcher reads the events past its durable cursor (after sequencing queued ones), feeds them
to the rules (`audit.alerts`), and in one short transaction stores the alerts they raise, each
also an audit event, and moves the cursor with the rules' state; a second watcher that read the
same events finds the cursor moved and stores nothing. Nothing here runs on a request's path.
Alerts waiting for the webhook are posted after that transaction, retried with a timeout, and
given up on after `alert_webhook_max_attempts`.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from genecommons import clock
from genecommons.access.reads import GrantSpan, grants_of
from genecommons.audit.alert_rule_data import AlertRuleSet, load_rule_set
from genecommons.audit.alerts import EarlyWarning, Finding, GrantEnd, WatchedEvent
from genecommons.audit.service import sequence_queued, signing_key, tree_head
from genecommons.audit.webhook import WebhookError, post_alert
from genecommons.config import Settings
from genecommons.db import write_transaction
from genecommons.errors import InvalidInputError
from genecommons.ledger.events import EventTag, record_event
from genecommons.ledger.merkle import MerkleTree
from genecommons.ledger.store import SqlNodeStore
from genecommons.ledger.tables import audit_alerts, audit_events, audit_watch
from genecommons.policy.decision import require
from genecommons.policy.models import Action, Resource, Subject

logger = logging.getLogger(__name__)

WATCHER = "early-warning"
BATCH = 5000
MAX_ALERTS = 100


@dataclass(frozen=True, slots=True)
class WatchReport:
    """What one pass of the watcher did."""

    read: int
    raised: int
    delivered: int
    position: int


class _GrantFacts:
    """`GrantFacts` from the grants table, for the events of one pass."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._cache: dict[tuple[str, tuple[str, ...]], list[GrantSpan]] = {}

    def ended_grant(self, account: str, datasets: Sequence[str], at: datetime) -> GrantEnd | None:
        key = (account, tuple(sorted(datasets)))
        if key not in self._cache:
            self._cache[key] = grants_of(self.session, account.removeprefix("user:"), key[1])
        ended: list[GrantEnd] = []
        for row in self._cache[key]:
            if clock.as_utc(row.granted_at) > at:
                continue
            expires = clock.as_utc(row.expires_at)
            revoked = clock.as_utc(row.revoked_at) if row.revoked_at is not None else None
            end, why = (
                (revoked, "revoked") if revoked and revoked < expires else (expires, "expired")
            )
            if end > at:
                return None  # a grant on one of them was in force
            ended.append(GrantEnd(int(row.id), row.dataset, end, why))
        return max(ended, key=lambda e: e.ended_at) if ended else None


def _cursor(session: Session) -> tuple[int, dict[str, Any]]:
    row = session.execute(
        select(audit_watch.c.position, audit_watch.c.state).where(audit_watch.c.name == WATCHER)
    ).first()
    if row is None:
        try:
            with session.begin_nested():
                session.execute(
                    insert(audit_watch).values(
                        name=WATCHER, position=0, state={}, updated_at=clock.now()
                    )
                )
        except IntegrityError:
            pass  # made by a concurrent watcher
        return 0, {}
    return int(row.position), dict(row.state)


def _event(row: Any) -> WatchedEvent:
    return WatchedEvent(
        leaf_index=int(row.leaf_index),
        occurred_at=clock.as_utc(row.occurred_at),
        tag=row.tag,
        actor=row.actor,
        subject=row.subject,
        details=row.details,
    )


def watch_once(
    factory: sessionmaker[Session],
    settings: Settings,
    *,
    rule_set: AlertRuleSet | None = None,
    batch: int = BATCH,
    client: httpx.Client | None = None,
) -> WatchReport:
    """Evaluate the rules over every event not read yet, store the alerts, deliver them."""
    rules = rule_set or load_rule_set(settings.alert_rules_file)
    sequence_queued(factory)
    read = raised = 0
    while True:
        with write_transaction(factory) as session:
            position, state = _cursor(session)
        with factory() as session:
            rows = session.execute(
                select(audit_events)
                .where(audit_events.c.leaf_index >= position)
                .order_by(audit_events.c.leaf_index)
                .limit(batch)
            ).all()
            warning = EarlyWarning(rules, state)
            facts = _GrantFacts(session)
            findings: list[Finding] = []
            for row in rows:
                findings.extend(warning.feed(_event(row), facts))
        if not rows:
            break
        warning.expire(clock.as_utc(rows[-1].occurred_at))
        with write_transaction(factory) as session:
            moved = session.execute(
                update(audit_watch)
                .where(audit_watch.c.name == WATCHER, audit_watch.c.position == position)
                .values(
                    position=int(rows[-1].leaf_index) + 1,
                    state=warning.state,
                    updated_at=clock.now(),
                )
            )
            if moved.rowcount != 1:  # type: ignore[attr-defined]
                continue  # another watcher read these events first
            for finding in findings:
                _store(session, finding, rules, pending=bool(settings.alert_webhook_url))
        read += len(rows)
        raised += len(findings)
        if len(rows) < batch:
            break
    delivered = deliver(factory, settings, client=client) if settings.alert_webhook_url else 0
    with factory() as session:
        position, _ = _cursor(session)
    return WatchReport(read=read, raised=raised, delivered=delivered, position=position)


def _store(session: Session, finding: Finding, rules: AlertRuleSet, *, pending: bool) -> None:
    alert_id = session.execute(
        insert(audit_alerts).returning(audit_alerts.c.id),
        {
            "rule": finding.rule,
            "rule_set": rules.name,
            "severity": finding.severity,
            "key": finding.key[:400],
            "summary": finding.summary,
            "summary_zh": finding.summary_zh,
            "details": finding.details,
            "leaf_indices": list(finding.leaf_indices),
            "first_at": finding.first_at,
            "last_at": finding.last_at,
            "raised_at": clock.now(),
            "delivery": "pending" if pending else "none",
            "delivery_attempts": 0,
            "delivered_at": None,
            "delivery_error": None,
        },
    ).scalar_one()
    record_event(
        session,
        tag=EventTag.ALERT_RAISED,
        actor=f"watcher:{WATCHER}",
        subject=f"alert:{alert_id}",
        details={
            "rule": finding.rule,
            "rule_set": rules.name,
            "key": finding.key[:400],
            "leaf_indices": list(finding.leaf_indices),
        },
    )


def alert_document(row: Any) -> dict[str, Any]:
    """An alert as the API, the CLI and the webhook show it."""
    return {
        "id": int(row.id),
        "rule": row.rule,
        "rule_set": row.rule_set,
        "severity": row.severity,
        "key": row.key,
        "summary": row.summary,
        "summary_zh": row.summary_zh,
        "details": row.details,
        "leaf_indices": list(row.leaf_indices),
        "first_at": clock.as_utc(row.first_at).isoformat(),
        "last_at": clock.as_utc(row.last_at).isoformat(),
        "raised_at": clock.as_utc(row.raised_at).isoformat(),
        "delivery": row.delivery,
    }


def _evidence(
    factory: sessionmaker[Session], key: Ed25519PrivateKey, settings: Settings, rows: Sequence[Any]
) -> dict[str, Any]:
    """The signed tree head and, for every alert, its leaves with their inclusion proofs."""
    head = tree_head(factory, key, interval_seconds=settings.tree_head_interval_seconds)
    wanted = sorted({int(i) for row in rows for i in row.leaf_indices if int(i) < head.tree_size})
    with factory() as session:
        leaves = (
            {
                int(r.leaf_index): bytes(r.leaf)
                for r in session.execute(
                    select(audit_events.c.leaf_index, audit_events.c.leaf).where(
                        audit_events.c.leaf_index.in_(wanted)
                    )
                )
            }
            if wanted
            else {}
        )
        tree = MerkleTree(SqlNodeStore(session))
        proofs = {
            index: [
                base64.b64encode(h).decode("ascii")
                for h in tree.inclusion_proof(leaf_index=index, tree_size=head.tree_size)
            ]
            for index in leaves
        }
    alerts = []
    for row in rows:
        document = alert_document(row)
        document["evidence"] = [
            {
                "leaf_index": index,
                "leaf": base64.b64encode(leaves[index]).decode("ascii"),
                "event": json.loads(leaves[index]),
                "audit_path": proofs[index],
            }
            for index in (int(i) for i in row.leaf_indices)
            if index in leaves
        ]
        alerts.append(document)
    return {"sth": head.to_json(), "alerts": alerts}


def list_alerts(
    factory: sessionmaker[Session],
    settings: Settings,
    key: Ed25519PrivateKey,
    *,
    actor: Subject,
    after: int = 0,
    limit: int = 20,
    rule: str | None = None,
) -> dict[str, Any]:
    """Alerts after id `after`, oldest first, each with the log entries behind it and their
    inclusion proofs against the signed tree head returned with them (auditors, admins)."""
    require(actor, Action.READ_AUDIT, Resource("audit"))
    if not 1 <= limit <= MAX_ALERTS or after < 0:
        raise InvalidInputError(
            f"Ask for 1 to {MAX_ALERTS} alerts after an id of 0 or more.",
            message_zh=f"每次可查询 1 到 {MAX_ALERTS} 条预警，after 须不小于 0。",
        )
    query = select(audit_alerts).where(audit_alerts.c.id > after)
    if rule:
        query = query.where(audit_alerts.c.rule == rule)
    with factory() as session:
        rows = session.execute(query.order_by(audit_alerts.c.id).limit(limit)).all()
    return _evidence(factory, key, settings, rows)


def deliver(
    factory: sessionmaker[Session], settings: Settings, *, client: httpx.Client | None = None
) -> int:
    """Post pending alerts to the webhook, oldest first; how many were delivered. Stops at
    the first alert the webhook does not take (the rest wait for the next pass)."""
    url = settings.alert_webhook_url
    if not url:
        return 0
    secret = (
        settings.alert_webhook_secret.get_secret_value().encode("utf-8")
        if settings.alert_webhook_secret
        else None
    )
    with factory() as session:
        rows = session.execute(
            select(audit_alerts)
            .where(audit_alerts.c.delivery == "pending")
            .order_by(audit_alerts.c.id)
            .limit(MAX_ALERTS)
        ).all()
    if not rows:
        return 0
    documents = _evidence(factory, signing_key(settings), settings, rows)
    delivered = 0
    own = client is None
    http = client or httpx.Client(timeout=settings.alert_webhook_timeout_seconds)
    try:
        for row, document in zip(rows, documents["alerts"], strict=True):
            payload = {"alert": document, "sth": documents["sth"]}
            try:
                attempts = post_alert(
                    http,
                    url,
                    payload,
                    secret=secret,
                    tries=settings.alert_webhook_tries,
                    backoff_seconds=settings.alert_webhook_backoff_seconds,
                )
            except WebhookError as error:
                total = int(row.delivery_attempts) + error.attempts
                gave_up = total >= settings.alert_webhook_max_attempts
                with write_transaction(factory) as session:
                    session.execute(
                        update(audit_alerts)
                        .where(audit_alerts.c.id == row.id)
                        .values(
                            delivery="failed" if gave_up else "pending",
                            delivery_attempts=total,
                            delivery_error=str(error)[:500],
                        )
                    )
                logger.warning("alert %s not delivered to the webhook: %s", row.id, error)
                break
            with write_transaction(factory) as session:
                session.execute(
                    update(audit_alerts)
                    .where(audit_alerts.c.id == row.id)
                    .values(
                        delivery="delivered",
                        delivery_attempts=int(row.delivery_attempts) + attempts,
                        delivered_at=clock.now(),
                        delivery_error=None,
                    )
                )
            delivered += 1
    finally:
        if own:
            http.close()
    return delivered


def alert_counts(factory: sessionmaker[Session]) -> dict[str, int]:
    """How many alerts each delivery state holds."""
    with factory() as session:
        return {
            str(state): int(count)
            for state, count in session.execute(
                select(audit_alerts.c.delivery, func.count()).group_by(audit_alerts.c.delivery)
            )
        }


class Background:
    """`genecommons serve`'s background work: sequence queued events often, watch less often.

    A failed pass is logged and tried again at the next tick, so that a database restart
    does not stop the node's early warning for good."""

    def __init__(self, factory: sessionmaker[Session], settings: Settings) -> None:
        self.factory = factory
        self.settings = settings
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="audit-background", daemon=True)

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop after the current pass."""
        self._stop.set()
        self._thread.join(timeout=60)

    def _run(self) -> None:
        tick = self.settings.audit_sequence_interval_seconds
        every = max(1, round(self.settings.audit_watch_interval_seconds / tick))
        count = 0
        while not self._stop.wait(tick):
            count += 1
            try:
                if count % every == 0:
                    watch_once(self.factory, self.settings)
                else:
                    sequence_queued(self.factory)
            except Exception:  # logged; the next tick tries again
                logger.exception("the audit log's background pass failed")
