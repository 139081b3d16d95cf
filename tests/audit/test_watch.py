"""The early-warning watcher on the database: it reads each event once past its durable cursor,
stores alerts that are themselves events, and posts them to a webhook (a real HTTP server on
loopback) with retries that never hold it for long."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from genecommons.audit import service, watch
from genecommons.audit.sth import SignedTreeHead
from genecommons.audit.webhook import SIGNATURE_HEADER
from genecommons.config import Settings
from genecommons.errors import AccessDeniedError
from genecommons.ledger.events import EventTag, record_event, record_soon
from genecommons.ledger.tables import audit_alerts, audit_events
from genecommons.policy.models import Subject

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def failed_sign_ins(factory: Any, count: int, *, address: str = "203.0.113.9") -> None:
    with factory() as session, session.begin():
        for number in range(count):
            record_event(
                session,
                tag=EventTag.SIGN_IN_FAILED,
                actor=f"address:{address}",
                subject="user:u@example.org",
                now=T0 + timedelta(seconds=number),
            )


class Hook:
    """A webhook receiver on loopback: answers with the next status of `statuses` (then 200),
    after `delay` seconds; keeps what it received."""

    def __init__(self) -> None:
        self.statuses: list[int] = []
        self.delay = 0.0
        self.received: list[tuple[dict[str, str], bytes]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                time.sleep(hook.delay)
                hook.received.append((dict(self.headers), body))
                status = hook.statuses.pop(0) if hook.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)


@pytest.fixture
def hook() -> Iterator[Hook]:
    receiver = Hook()
    receiver.thread.start()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


def with_hook(settings: Settings, hook: Hook, **changes: Any) -> Settings:
    return settings.model_copy(
        update={
            "alert_webhook_url": hook.url,
            "alert_webhook_secret": SecretStr("hook-secret"),
            "alert_webhook_backoff_seconds": 0.0,
            **changes,
        }
    )


def test_each_event_is_read_once_and_alerts_are_events(factory: Any, settings: Settings) -> None:
    service.signing_key(settings, create=True)
    failed_sign_ins(factory, 9)
    first = watch.watch_once(factory, settings)
    assert (first.read, first.raised, first.position) == (9, 0, 9)
    failed_sign_ins(factory, 1)
    with factory() as session, session.begin():
        record_soon(session, tag=EventTag.TOKEN_USED, actor="user:a@example.org")
    second = watch.watch_once(factory, settings)
    # the tenth failure in the window: one alert for the address, one for the account
    assert (second.read, second.raised) == (2, 2)
    third = watch.watch_once(factory, settings)
    assert (third.read, third.raised) == (2, 0)  # only the two alert events themselves
    with factory() as session:
        alerts = session.execute(select(audit_alerts).order_by(audit_alerts.c.id)).all()
        raised = session.execute(
            select(audit_events.c.subject, audit_events.c.details).where(
                audit_events.c.tag == "audit:alert:raise"
            )
        ).all()
    assert [a.key for a in alerts] == ["address:203.0.113.9", "user:u@example.org"]
    assert alerts[0].leaf_indices == list(range(10)) and alerts[0].delivery == "none"
    assert [r.subject for r in raised] == [f"alert:{a.id}" for a in alerts]
    assert raised[0].details["leaf_indices"] == list(range(10))
    key = service.signing_key(settings)
    assert service.verify(factory, key.public_key()).problems == []


def test_listing_gives_proofs_and_is_for_auditors(factory: Any, settings: Settings) -> None:
    key = service.signing_key(settings, create=True)
    failed_sign_ins(factory, 10)
    watch.watch_once(factory, settings)
    auditor = Subject.user("a@example.org", roles=frozenset({"auditor"}), institution=None)
    listed = watch.list_alerts(factory, settings, key, actor=auditor, limit=1)
    head = SignedTreeHead.from_json(listed["sth"])
    (alert,) = listed["alerts"]
    assert [e["leaf_index"] for e in alert["evidence"]] == list(range(10))
    for evidence in alert["evidence"]:
        leaf = base64.b64decode(evidence["leaf"])
        assert json.loads(leaf) == evidence["event"]
        assert service.check_inclusion(
            leaf=leaf,
            leaf_index=evidence["leaf_index"],
            head=head,
            proof=evidence["audit_path"],
        )
    later = watch.list_alerts(factory, settings, key, actor=auditor, after=alert["id"])
    assert [a["key"] for a in later["alerts"]] == ["user:u@example.org"]
    researcher = Subject.user("r@example.org", roles=frozenset({"researcher"}), institution=None)
    with pytest.raises(AccessDeniedError):
        watch.list_alerts(factory, settings, key, actor=researcher)


def test_alerts_are_posted_signed_and_retried(factory: Any, settings: Settings, hook: Hook) -> None:
    service.signing_key(settings, create=True)
    configured = with_hook(settings, hook)
    hook.statuses = [500, 503]  # the first alert needs three tries
    failed_sign_ins(factory, 10)
    report = watch.watch_once(factory, configured)
    assert report.delivered == 2
    assert len(hook.received) == 4
    headers, body = hook.received[-1]
    expected = hmac.new(b"hook-secret", body, hashlib.sha256).hexdigest()
    assert headers[SIGNATURE_HEADER] == f"sha256={expected}"
    posted = json.loads(body)
    assert posted["alert"]["key"] == "user:u@example.org"
    assert posted["alert"]["evidence"][0]["audit_path"]
    assert posted["sth"]["tree_size"] >= 10
    with factory() as session:
        rows = session.execute(select(audit_alerts).order_by(audit_alerts.c.id)).all()
    assert [(r.delivery, r.delivery_attempts) for r in rows] == [
        ("delivered", 3),
        ("delivered", 1),
    ]


def test_a_dead_webhook_holds_the_watcher_briefly_then_is_given_up(
    factory: Any, settings: Settings, hook: Hook
) -> None:
    service.signing_key(settings, create=True)
    configured = with_hook(
        settings,
        hook,
        alert_webhook_timeout_seconds=0.2,
        alert_webhook_tries=2,
        alert_webhook_max_attempts=4,
    )
    hook.delay = 1.0  # never answers within the timeout
    failed_sign_ins(factory, 10)
    report = watch.watch_once(factory, configured)  # 2 tries of 0.2 s, then the pass ends
    assert report.raised == 2 and report.delivered == 0
    watch.watch_once(factory, configured)
    with factory() as session:
        rows = session.execute(select(audit_alerts).order_by(audit_alerts.c.id)).all()
    # the pass stops at the first alert the webhook does not take; the second one waits
    assert [(r.delivery, r.delivery_attempts) for r in rows] == [("failed", 4), ("pending", 0)]
    assert rows[0].delivery_error and "ReadTimeout" in rows[0].delivery_error
    hook.delay = 0.0
    assert watch.watch_once(factory, configured).delivered == 1
    assert watch.alert_counts(factory) == {"failed": 1, "delivered": 1}


def test_the_cli_watches_once_and_lists_alerts(
    factory: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from genecommons import runtime
    from genecommons.cli import app

    service.signing_key(settings, create=True)
    failed_sign_ins(factory, 10)
    monkeypatch.setenv("GENECOMMONS_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("GENECOMMONS_DATABASE_URL", settings.effective_database_url)
    runtime.reset()
    try:
        watched = CliRunner().invoke(app, ["audit", "watch", "--once"])
        assert watched.exit_code == 0, watched.output
        assert "Read 10 events" in watched.output and "raised 2 alert(s)" in watched.output
        listed = CliRunner().invoke(app, ["audit", "alerts"])
        assert listed.exit_code == 0, listed.output
        assert "repeated-refusals" in listed.output and "多次被拒绝" in listed.output
        as_json = CliRunner().invoke(app, ["audit", "alerts", "--json", "--rule", "nothing"])
        assert json.loads(as_json.output)["alerts"] == []
    finally:
        runtime.reset()


def test_the_background_sequences_and_watches(factory: Any, settings: Settings) -> None:
    service.signing_key(settings, create=True)
    failed_sign_ins(factory, 10)
    with factory() as session, session.begin():
        record_soon(session, tag=EventTag.TOKEN_USED, actor="user:a@example.org")
    background = watch.Background(
        factory,
        settings.model_copy(
            update={"audit_sequence_interval_seconds": 0.05, "audit_watch_interval_seconds": 0.1}
        ),
    )
    background.start()
    try:
        deadline = time.monotonic() + 30
        while watch.alert_counts(factory).get("none", 0) < 2:
            assert time.monotonic() < deadline, "the background did not raise the alerts"
            time.sleep(0.05)
    finally:
        background.stop()
    with factory() as session:
        tags = session.execute(select(audit_events.c.tag)).scalars().all()
    assert "access:token:use" in tags
