"""HTTP routes of the audit log under /api/v1/audit (RFC 9162 style)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from genecommons.audit import service, watch
from genecommons.deps import ServicesDep, SessionFactoryDep, SubjectDep

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])
Size = Annotated[int, Query(ge=0, le=2**62)]


@router.get("/sth", summary="The newest signed tree head")
def sth(services: ServicesDep, subject: SubjectDep) -> dict[str, Any]:
    """tree_size, root_hash (base64), timestamp (ms) and the Ed25519 signature (base64)."""
    head = service.tree_head(
        services.factory,
        services.tree_head_key,  # made by `genecommons init`: without it, init is asked for
        interval_seconds=services.settings.tree_head_interval_seconds,
        actor=subject,
    )
    return head.to_json()


@router.get("/proof/inclusion", summary="Inclusion proof of a leaf")
def proof_inclusion(
    factory: SessionFactoryDep, subject: SubjectDep, leaf_index: Size, tree_size: Size
) -> dict[str, Any]:
    """The audit path of leaf `leaf_index` in the tree of `tree_size` leaves."""
    return {
        "leaf_index": leaf_index,
        "tree_size": tree_size,
        "audit_path": service.inclusion(
            factory, leaf_index=leaf_index, tree_size=tree_size, actor=subject
        ),
    }


@router.get("/proof/consistency", summary="Consistency proof between two tree sizes")
def proof_consistency(
    factory: SessionFactoryDep, subject: SubjectDep, first: Size, second: Size
) -> dict[str, Any]:
    """The proof that the tree of `second` leaves extends the tree of `first`."""
    return {
        "first": first,
        "second": second,
        "consistency": service.consistency(factory, first=first, second=second, actor=subject),
    }


@router.get(
    "/get-entries",
    summary="Audit entries start..end, end included, as RFC 9162 get-entries (auditors)",
)
def get_entries(
    factory: SessionFactoryDep, subject: SubjectDep, start: Size, end: Size
) -> dict[str, Any]:
    """Entries `start` to `end`, both included, as RFC 9162 (section 4.6) and RFC 6962
    get-entries: each leaf's exact bytes (base64) and decoded. At most 1,000 are answered from
    `start`, fewer past the end of the log; ask again from the index after the last one
    received. 审计条目 start 至 end（含 end），与 RFC 9162 get-entries 一致。"""
    return {"entries": service.get_entries(factory, start=start, end=end, actor=subject)}


@router.get(
    "/entries",
    summary="Audit entries start..end-1, end excluded (deprecated: use /get-entries)",
    deprecated=True,
)
def entries(
    response: Response, factory: SessionFactoryDep, subject: SubjectDep, start: Size, end: Size
) -> dict[str, Any]:
    """Entries `start` to `end - 1`: `end` is **excluded**, unlike RFC 9162 get-entries, so a
    Certificate-Transparency monitor would miss the last entry it asks for. Kept unchanged for
    existing clients; new clients use `/api/v1/audit/get-entries`, whose `end` is included.
    已弃用：end 不含在内；请改用 /api/v1/audit/get-entries。"""
    found = service.entries(factory, start=start, end=end, actor=subject)
    # RFC 9745 and RFC 8288: deprecated, and where its successor is
    response.headers["Deprecation"] = "true"
    response.headers["Link"] = '</api/v1/audit/get-entries>; rel="successor-version"'
    return {"entries": found}


@router.get("/public-key", summary="The key that signs tree heads")
def public_key(services: ServicesDep, subject: SubjectDep) -> dict[str, str]:
    """The Ed25519 public key (PEM)."""
    return service.public_key_document(services.tree_head_key, actor=subject)


@router.get("/alerts", summary="Early-warning alerts with their evidence (auditors)")
def get_alerts(
    services: ServicesDep,
    subject: SubjectDep,
    after: Annotated[int, Query(ge=0, le=2**62)] = 0,
    limit: Annotated[int, Query(ge=1, le=watch.MAX_ALERTS)] = 20,
    rule: Annotated[str | None, Query(max_length=64)] = None,
) -> dict[str, Any]:
    """Alerts after id `after`, each with the log entries behind it and their inclusion proofs
    against the signed tree head given with them."""
    return watch.list_alerts(
        services.factory,
        services.settings,
        services.tree_head_key,
        actor=subject,
        after=after,
        limit=limit,
        rule=rule,
    )
