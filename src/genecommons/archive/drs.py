"""GA4GH DRS 1.4's bulk requests: many objects, or many access URLs, in one request. Each id is
answered as its own request would be (`delivery.drs_object`, `delivery.drs_access_url`: the same
decision, the same audit events); the ones that could not be answered are listed with the status
their own request would have had.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from genecommons.access.models import Subject, SubjectKind
from genecommons.archive import delivery
from genecommons.config import Settings
from genecommons.errors import (
    AccessDeniedError,
    GeneCommonsError,
    NotReadyError,
    RequestTooLargeError,
)

# the most ids one bulk request may name (service-info's maxBulkRequestLength)
MAX_BULK = 100


def status_of(error: GeneCommonsError, *, anonymous: bool) -> int:
    """The HTTP status DRS answers `error` with: input errors are 400 there, and a refusal of a
    caller who sent no credentials is 401 (authenticate, then ask again), not 403, and an
    object still being prepared is 202 (ask again after Retry-After)."""
    if isinstance(error, AccessDeniedError) and anonymous:
        return 401
    if isinstance(error, NotReadyError):  # an object being prepared: DRS 1.4 answers 202
        return 202
    return 400 if error.http_status == 422 else error.http_status


def _bounded(count: int) -> None:
    if count > MAX_BULK:
        raise RequestTooLargeError(
            f"A bulk request names at most {MAX_BULK} ids (maxBulkRequestLength); it named "
            f"{count}. Split it into several requests.",
            message_zh=f"批量请求最多包含 {MAX_BULK} 个标识（maxBulkRequestLength），"
            f"本次为 {count} 个；请拆分为多个请求。",
        )


def _bulk(
    keys: list[Any], answer: Callable[[Any], Any], *, subject: Subject
) -> tuple[list[Any], list[dict[str, Any]]]:
    """Each key's answer, and the keys without one grouped by the status of their error."""
    resolved: list[Any] = []
    failed: dict[int, list[str]] = {}
    anonymous = subject.kind is SubjectKind.ANONYMOUS
    for key in keys:
        try:
            resolved.append(answer(key))
        except GeneCommonsError as error:
            object_id = key if isinstance(key, str) else key[0]
            failed.setdefault(status_of(error, anonymous=anonymous), []).append(object_id)
    unresolved = [
        {"error_code": code, "object_ids": list(dict.fromkeys(ids))}
        for code, ids in sorted(failed.items())
    ]
    return resolved, unresolved


def _summary(requested: int, resolved: int) -> dict[str, int]:
    return {"requested": requested, "resolved": resolved, "unresolved": requested - resolved}


def drs_objects(
    factory: sessionmaker[Session],
    settings: Settings,
    *,
    subject: Subject,
    object_ids: Sequence[str],
    base_url: str,
) -> dict[str, Any]:
    """DRS `GetBulkObjects`: the DrsObject of each id the subject may read."""
    _bounded(len(object_ids))
    ids = list(dict.fromkeys(object_ids))  # each id answered once, in the order first named
    resolved, unresolved = _bulk(
        ids,
        lambda object_id: delivery.drs_object(
            factory, settings, subject=subject, object_id=object_id, base_url=base_url
        ),
        subject=subject,
    )
    return {
        "summary": _summary(len(ids), len(resolved)),
        "unresolved_drs_objects": unresolved,
        "resolved_drs_object": resolved,
    }


def drs_access_urls(
    factory: sessionmaker[Session],
    settings: Settings,
    *,
    subject: Subject,
    wanted: Sequence[tuple[str, Sequence[str]]],
    base_url: str,
    headers: list[str],
) -> dict[str, Any]:
    """DRS `GetBulkAccessURL`: an access URL for each (object id, access id) pair the subject
    may fetch."""
    _bounded(sum(max(len(access), 1) for _, access in wanted))
    pairs = list(
        dict.fromkeys(
            (object_id, access_id) for object_id, access in wanted for access_id in access
        )
    )

    def access_url(pair: tuple[str, str]) -> dict[str, Any]:
        object_id, access_id = pair
        url = delivery.drs_access_url(
            factory,
            settings,
            subject=subject,
            object_id=object_id,
            access_id=access_id,
            base_url=base_url,
            headers=headers,
        )
        return {"drs_object_id": object_id, "drs_access_id": access_id, **url}

    resolved, unresolved = _bulk(pairs, access_url, subject=subject)
    return {
        "summary": _summary(len(pairs), len(resolved)),
        "unresolved_drs_objects": unresolved,
        "resolved_drs_object_access_urls": resolved,
    }
