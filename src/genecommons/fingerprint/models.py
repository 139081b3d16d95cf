"""The fingerprint capability's domain types: recorded deliveries, what tracing a leak found,
recipients' copies of archived VCFs and the jobs that build them. No database, no web."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from genecommons import clock
from genecommons.fingerprint.trace import Verdict


@dataclass(frozen=True, slots=True)
class Delivery:
    """A recorded delivery."""

    delivery_id: str
    recipient: str
    dataset: str
    delivered_at: datetime
    channel: str
    fingerprinted: bool
    what: dict[str, Any]
    key_id: str
    utility: dict[str, Any]


@dataclass(frozen=True, slots=True)
class TraceResult:
    """What tracing a leaked file found."""

    file: str
    format: str
    dataset: str
    matched_sites: int
    matched_samples: int
    verdict: Verdict
    deliveries: dict[str, list[str]]  # recipient -> delivery ids


@dataclass(frozen=True, slots=True)
class Copy:
    """A recipient's copy (`object_key` None: nothing could be marked; the original is served)."""

    copy_id: str
    file_id: int
    accession: str
    recipient: str
    dataset: str
    key_id: str
    marked_positions: int
    utility: dict[str, Any]
    object_key: str | None
    header: bytes | None
    body_size: int | None
    plain_size: int | None
    md5: str | None
    sha256: str | None
    index_key: str | None
    index_header: bytes | None
    index_body_size: int | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class CopyJob:
    """A job that builds (or built) a recipient's copy."""

    id: int
    accession: str
    recipient: str
    dataset: str
    key_id: str
    state: str
    attempts: int
    progress: float
    error: dict[str, Any] | None
    attempt_copy_id: str | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    heartbeat_at: datetime | None

    def as_json(self) -> dict[str, Any]:
        """The job as the CLI shows it."""
        return {
            "id": self.id,
            "file": self.accession,
            "recipient": self.recipient,
            "dataset": self.dataset,
            "state": self.state,
            "attempts": self.attempts,
            "progress": round(self.progress, 3),
            "error": self.error,
            "created_at": clock.as_utc(self.created_at).isoformat(),
            "updated_at": clock.as_utc(self.updated_at).isoformat(),
        }


@dataclass(frozen=True, slots=True)
class BuildReport:
    """What one run of the builder did."""

    built: int = 0
    failed: int = 0
    retrying: int = 0
    lost: int = 0

    def add(self, outcome: str) -> BuildReport:
        """The report with one more job ended as `outcome`."""
        counts = {
            "built": self.built,
            "failed": self.failed,
            "retrying": self.retrying,
            "lost": self.lost,
        }
        counts[outcome] += 1
        return BuildReport(**counts)
