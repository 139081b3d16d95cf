"""The one exception hierarchy of GeneCommons.

Core code raises these; `app.py` maps them to HTTP problem responses and `cli.py` to exit codes,
each in one place. Every message is given in English and Chinese.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Refusal:
    """What the decision point refused, for the audit log only: never part of an answer.

    A refusal answered "not found" (a record the caller may not see) keeps the truth here, so
    the log records it as the refusal it is.
    """

    actor: str  # the subject's id ("anonymous" when nobody signed in)
    action: str
    kind: str  # the kind of resource: dataset, file, grant, token, ...
    rule: str  # the rule that refused
    accession: str | None = None
    datasets: tuple[str, ...] = ()  # the datasets concerned, when a file or a dataset


class GeneCommonsError(Exception):
    """Base of every error GeneCommons raises on purpose.

    Recover by reading `message` (English) or `message_zh` (Chinese): each subclass says what to
    change. `details` carries structured data (for example a validation report).
    """

    http_status = 500
    exit_code = 1
    code = "error"

    def __init__(
        self,
        message: str,
        *,
        message_zh: str | None = None,
        details: Any = None,
        refusal: Refusal | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.message_zh = message_zh or message
        self.details = details
        self.refusal = refusal  # set when the decision point refused: audited, never shown

    def to_dict(self) -> dict[str, Any]:
        """The error as a JSON-ready problem document."""
        problem: dict[str, Any] = {
            "code": self.code,
            "message": self.message,
            "message_zh": self.message_zh,
        }
        if self.details is not None:
            problem["details"] = self.details
        return problem


class InvalidInputError(GeneCommonsError):
    """The input is malformed or breaks a rule. Fix the input as the details say, then retry."""

    http_status = 422
    exit_code = 2
    code = "invalid_input"


class SubmissionRejectedError(InvalidInputError):
    """A submission failed validation; nothing was stored.

    `details` holds the full report (every problem with file, row, column, value, rule and a
    suggestion). Correct all listed problems and submit again.
    """

    code = "submission_rejected"


class RequestTooLargeError(InvalidInputError):
    """The request is larger than the endpoint accepts (a body, or a bulk request's list of
    ids). Send less in one request, or split it into several."""

    http_status = 413
    code = "request_too_large"


class NotFoundError(GeneCommonsError):
    """The named record does not exist (or is not visible to you). Check the accession."""

    http_status = 404
    exit_code = 3
    code = "not_found"


class AccessDeniedError(GeneCommonsError):
    """The caller may not do this. Sign in, or request access to the dataset, then retry."""

    http_status = 403
    exit_code = 4
    code = "access_denied"


class AuthenticationError(GeneCommonsError):
    """The credentials are missing, wrong, expired or revoked. Sign in again or ask for a new
    API token (`genecommons tokens create EMAIL`)."""

    http_status = 401
    exit_code = 4
    code = "unauthenticated"


class TooManyAttemptsError(GeneCommonsError):
    """Too many failed sign-ins for this account or address. Wait until the time given in
    `details.retry_after`, then try again."""

    http_status = 429
    exit_code = 4
    code = "too_many_attempts"


class ConflictError(GeneCommonsError):
    """Another change touched the same records at the same time. Re-run to apply on top of it."""

    http_status = 409
    exit_code = 5
    code = "conflict"


class ConfigurationError(GeneCommonsError):
    """A setting is missing or unsafe. Fix the named GENECOMMONS_* variable and restart."""

    exit_code = 6
    code = "configuration"


class DatabaseKeyError(ConfigurationError):
    """The node's SQLite database (encrypted with SQLCipher under a key derived from the node
    key) does not open: either it is a plaintext database of an earlier release (run
    `genecommons init`, which encrypts it in place), or the node key in use is not the one it
    was encrypted with (restore `keys/` and the node key passphrase from the backup that goes
    with this database), or the file is damaged (restore it from that backup)."""

    code = "database_key"


class StorageError(GeneCommonsError):
    """The archive's storage failed; nothing was half written. Retry; if it persists, the
    operator checks the object store."""

    http_status = 503
    exit_code = 8
    code = "storage_error"


class StorageFullError(StorageError):
    """The archive's storage is full; nothing was half written. The operator frees or adds
    space, then the upload or ingest is repeated (an upload resumes where it stopped)."""

    http_status = 507
    code = "storage_full"


def human_size(count: float) -> str:
    """A byte count as people read it (1.5 MiB), for messages."""
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if count < 1024 or unit == "TiB":
            return f"{count:,.0f} {unit}" if unit == "bytes" else f"{count:,.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


class NestingTooDeepError(InvalidInputError):
    """A JSON or YAML document nests arrays and objects deeper than GeneCommons reads (see
    `details.max_nesting`). Flatten the document; no format of the node needs such depth."""

    code = "nesting_too_deep"


class PayloadTooLargeError(InvalidInputError):
    """The request body is larger than this kind of request may be (see `details.max_bytes`).
    Send a smaller body; large files go through the resumable uploads instead."""

    http_status = 413
    code = "payload_too_large"


class NotReadyError(GeneCommonsError):
    """What was asked for is being prepared (a recipient's fingerprinted copy). Send the same
    request again after `retry_after` seconds (the Retry-After header)."""

    http_status = 503
    exit_code = 9
    code = "not_ready"

    def __init__(self, message: str, *, retry_after: int, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class BusyError(GeneCommonsError):
    """The database stayed busy with other writes for longer than a write waits for it; the
    write was not done (nothing of it was kept). Send the same request again after
    `retry_after` seconds (the Retry-After header); if it persists, the operator looks for a
    long-running job holding the database."""

    http_status = 503
    exit_code = 10
    code = "busy"

    def __init__(self, message: str, *, retry_after: int, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class BackupInvalidError(InvalidInputError):
    """A backup cannot be restored: it is incomplete (its manifest is missing, as after an
    interrupted backup), damaged (a checksum differs) or hostile (a path outside the backup).
    Restore another backup, or make a new one with `genecommons backup DEST`."""

    code = "backup_invalid"


class BackupPassphraseError(InvalidInputError):
    """The passphrase does not open the backup's key bundle. Give the passphrase the backup was
    made with (`--passphrase-file F`)."""

    code = "backup_passphrase"


class RestoreTargetNotEmptyError(ConflictError):
    """`restore` writes only into an empty data directory and an empty database, so that it
    never mixes two nodes' data. Point GENECOMMONS_DATA_DIR (and GENECOMMONS_DATABASE_URL) at
    empty ones, or empty them, then restore again."""

    code = "restore_target_not_empty"
