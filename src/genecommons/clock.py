"""Time in one place: every stored moment is UTC."""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> datetime:
    """The current moment, in UTC."""
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """A stored moment with its time zone (SQLite keeps none; every stored time is UTC)."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
