"""Notifications: written to an outbox in the transaction of the action that causes them,
then delivered by a transport (SMTP in production). An e-mail exists if and only if its
action happened, and a mail server that is down loses nothing.

The outbox is a queue, not an archive: a message leaves it once delivered, so that what some
messages carry (the verification code of a registration) is not kept after it was sent. What
happened is in the audit log, written by the action itself."""

from __future__ import annotations

import logging
import smtplib
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Protocol

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session, sessionmaker

from genecommons import clock
from genecommons.access.tables import outbox
from genecommons.db import write_transaction

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Message:
    """One notification."""

    id: int
    recipient: str
    subject: str
    body: str


def enqueue(session: Session, *, recipient: str, subject: str, body: str) -> None:
    """Put a notification in the outbox, inside the caller's transaction."""
    session.execute(
        insert(outbox).values(
            recipient=recipient,
            subject=subject[:300],
            body=body[:20000],
            created_at=clock.now(),
        )
    )


class Transport(Protocol):
    """Where delivered notifications go."""

    def deliver(self, messages: Sequence[Message]) -> None:
        """Send every message or raise."""
        ...


class SmtpTransport:
    """Delivery through an SMTP server (STARTTLS and login when configured)."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        sender: str,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = True,
    ) -> None:
        self.host, self.port, self.sender = host, port, sender
        self.username, self.password, self.starttls = username, password, starttls

    def deliver(self, messages: Sequence[Message]) -> None:
        """Send the messages in one SMTP session."""
        with smtplib.SMTP(self.host, self.port, timeout=30) as client:
            if self.starttls:
                client.starttls()
            if self.username and self.password:
                client.login(self.username, self.password)
            for message in messages:
                mail = EmailMessage()
                mail["From"], mail["To"], mail["Subject"] = (
                    self.sender,
                    message.recipient,
                    message.subject,
                )
                mail.set_content(message.body)
                client.send_message(mail)


def pending(factory: sessionmaker[Session], *, limit: int = 100) -> list[Message]:
    """Notifications not yet delivered, oldest first."""
    with factory() as session:
        rows = session.execute(
            select(outbox).where(outbox.c.sent_at.is_(None)).order_by(outbox.c.id).limit(limit)
        ).all()
    return [Message(r.id, r.recipient, r.subject, r.body) for r in rows]


def deliver_pending(factory: sessionmaker[Session], transport: Transport) -> int:
    """Deliver what waits in the outbox, then remove what was sent (a failed delivery keeps
    every message for the next try). Returns how many."""
    messages = pending(factory)
    if not messages:
        return 0
    transport.deliver(messages)
    with write_transaction(factory) as session:
        session.execute(delete(outbox).where(outbox.c.id.in_([m.id for m in messages])))
    return len(messages)


def purge_sent(factory: sessionmaker[Session]) -> int:
    """Remove the messages an earlier version kept in the outbox after sending them; how
    many."""
    with write_transaction(factory) as session:
        removed = session.execute(delete(outbox).where(outbox.c.sent_at.is_not(None)))
    return int(removed.rowcount)  # type: ignore[attr-defined]
