"""The data access workflow: requests matched against consent, DAC decisions, grants.

Use cases that open transactions, like service.py; split from it to keep modules small.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from genecommons import clock
from genecommons.access import notify
from genecommons.access.committees import dac_reviewers, user_id_of
from genecommons.access.duo_matching import match_purpose
from genecommons.access.duo_models import ResearchPurpose, Verdict
from genecommons.access.jurisdiction.facts import dataset_facts
from genecommons.access.jurisdiction.rules import evaluate
from genecommons.access.jurisdiction.verdicts import (
    ArchivedHere,
    request_jurisdiction,
    requester_of,
)
from genecommons.access.tables import (
    access_requests,
    dac_members,
    dacs,
    grants,
    request_datasets,
    users,
)
from genecommons.catalog import reads as catalog
from genecommons.db import write_transaction
from genecommons.errors import (
    AuthenticationError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
)
from genecommons.ledger.events import EventTag, record_event
from genecommons.policy.decision import require, require_visible
from genecommons.policy.models import Action, Resource, Subject

MAX_GRANT_DAYS = 3 * 366


@dataclass(frozen=True, slots=True)
class DatasetOutcome:
    """What the platform said of one dataset of a request."""

    dataset: str
    verdict: str
    violated: tuple[str, ...]
    reasons_en: tuple[str, ...]
    reasons_zh: tuple[str, ...]
    conditions: tuple[str, ...]
    status: str
    jurisdiction_rules: tuple[str, ...] = ()


def _dataset_facts(session: Session, accession: str, *, actor: Subject) -> Any:
    """A dataset the actor may see, for a request; NotFoundError alike when there is none and
    when its study is private to the actor."""
    datasets, studies = catalog.DATASETS, catalog.STUDIES
    row = session.execute(
        select(
            datasets.c.id,
            datasets.c.study_id,
            datasets.c.doc,
            datasets.c.access_tier,
            studies.c.public.label("study_public"),
        )
        .join(studies, studies.c.id == datasets.c.study_id)
        .where(datasets.c.accession == accession)
    ).first()
    missing = missing_dataset(accession)
    if row is None:
        raise missing
    resource = Resource("dataset", accession, public=bool(row.study_public))
    require_visible(actor, Action.REQUEST_ACCESS, resource, missing=missing)
    return row


def missing_dataset(accession: str) -> NotFoundError:
    """What asking for a dataset that does not exist answers (and asking for one the caller
    may not see)."""
    return NotFoundError(f"No dataset {accession}.", message_zh=f"不存在数据集 {accession}。")


def request_access(
    factory: sessionmaker[Session],
    *,
    actor: Subject,
    purpose: ResearchPurpose,
    datasets: list[str],
    agreement_version: str,
    archived_here: ArchivedHere,
    today: date | None = None,
) -> tuple[int, list[DatasetOutcome]]:
    """File a request for `datasets`; each is matched against its consent codes at once.

    Incompatible datasets are refused on the spot (status rejected, with the DUO terms
    violated); the others wait for their DAC. `archived_here` answers whether this node's
    archive holds a dataset's backup copy (the jurisdiction rules decide on it).
    """
    require(actor, Action.REQUEST_ACCESS, Resource("request"))
    if not datasets or len(datasets) > 100:
        raise InvalidInputError("Name 1 to 100 datasets.", message_zh="请指定 1 到 100 个数据集。")
    if actor.institution is None:
        raise InvalidInputError(
            "Your account belongs to no institution; ask an administrator to set it.",
            message_zh="您的账号未关联任何机构，请联系系统管理员设置。",
        )
    if not agreement_version.strip():
        raise InvalidInputError(
            "Accept a data access agreement version.", message_zh="请接受数据访问协议的某个版本。"
        )
    today = today or clock.now().date()
    email = actor.id.removeprefix("user:")
    outcomes: list[DatasetOutcome] = []
    counted = 0  # sequence individuals of this request's datasets so far
    with write_transaction(factory) as session:
        user_id = user_id_of(session, email)
        request_id = session.execute(
            insert(access_requests).returning(access_requests.c.id),
            {
                "user_id": user_id,
                "purpose": _purpose_json(purpose),
                "agreement_version": agreement_version.strip()[:100],
                "created_at": clock.now(),
            },
        ).scalar_one()
        for accession in dict.fromkeys(datasets):
            row = _dataset_facts(session, accession, actor=actor)
            doc = row.doc
            dac_id = None
            if doc.get("dac"):
                found = session.execute(select(dacs.c.id).where(dacs.c.alias == doc["dac"])).first()
                dac_id = found.id if found else None
            result = match_purpose(purpose, doc.get("duo_codes", []), today=today)
            status = "rejected" if result.verdict is Verdict.INCOMPATIBLE else "pending"
            reason = (
                "Incompatible with the dataset's consent: " + ", ".join(result.violated)
                if result.verdict is Verdict.INCOMPATIBLE
                else None
            )
            jurisdiction = request_jurisdiction(
                session, actor, row, counted, today=today, archived_here=archived_here
            )
            counted += jurisdiction.sequence_individuals
            if status == "pending" and not jurisdiction.decision.allowed:
                status = "rejected"
                reason = " ".join(jurisdiction.decision.reasons)
            if status == "pending" and dac_id is None:
                status = "rejected"  # no committee can approve it
                reason = "No data access committee is registered for this dataset."
            outcome = DatasetOutcome(
                dataset=accession,
                verdict=str(result.verdict),
                violated=result.violated,
                reasons_en=tuple(r.en for r in result.reasons)
                + tuple(jurisdiction.decision.reasons),
                reasons_zh=tuple(r.zh for r in result.reasons)
                + tuple(jurisdiction.decision.reasons_zh),
                conditions=tuple(c.en for c in result.conditions)
                + tuple(o.text for o in jurisdiction.decision.obligations),
                status=status,
                jurisdiction_rules=tuple(jurisdiction.decision.rules),
            )
            session.execute(
                insert(request_datasets).values(
                    request_id=request_id,
                    dataset_id=row.id,
                    dac_id=dac_id,
                    verdict=str(result.verdict),
                    match=dataclasses.asdict(outcome),
                    status=status,
                    decided_by="platform" if status == "rejected" else None,
                    decided_at=clock.now() if status == "rejected" else None,
                    reason=reason,
                )
            )
            outcomes.append(outcome)
        record_event(
            session,
            tag=EventTag.REQUEST_CREATED,
            actor=actor.id,
            subject=f"request:{request_id}",
            details={
                "datasets": [o.dataset for o in outcomes],
                "verdicts": [o.verdict for o in outcomes],
            },
        )
    return int(request_id), outcomes


def dataset_resource(
    session: Session,
    subject: Subject,
    accession: str,
    *,
    archived_here: ArchivedHere,
    today: date | None = None,
) -> Resource:
    """A dataset as the decision point sees it for a data read by `subject`: its tier, whether
    its study is public and, for a signed-in user of an institution, the jurisdiction rules'
    verdict on that institution (`archived_here`: whether this node's archive holds the
    dataset's backup copy)."""
    datasets, studies = catalog.DATASETS, catalog.STUDIES
    row = session.execute(
        select(datasets, studies.c.public.label("study_public"))
        .join(studies, studies.c.id == datasets.c.study_id)
        .where(datasets.c.accession == accession)
    ).first()
    if row is None:
        raise missing_dataset(accession)
    resource = Resource(
        "dataset", accession=accession, tier=row.access_tier, public=bool(row.study_public)
    )
    if accession not in subject.grants:
        return resource  # no grant: the decision point refuses record-level data anyway
    if subject.institution is None:  # the rules place a requester by their institution
        return dataclasses.replace(
            resource,
            jurisdiction_allows=False,
            jurisdiction_reasons=(
                "Your account is at no confirmed institution, so the jurisdiction rules cannot "
                "place you; ask your institution's data steward or an administrator to confirm "
                "it.",
            ),
            jurisdiction_reasons_zh=(
                "您的账号未关联已确认的机构，无法按管辖规则判定；请请所在机构的数据管理员或系统管理员确认。",
            ),
        )
    facts = dataset_facts(session, row, archived_here=archived_here(session, row.id))
    verdict = evaluate(
        requester=requester_of(session, subject),
        dataset=facts,
        cumulative_individuals=facts.sequence_individuals,
        on=today or clock.now().date(),
    )
    return dataclasses.replace(
        resource,
        jurisdiction_allows=verdict.allowed,
        jurisdiction_reasons=verdict.reasons if not verdict.allowed else (),
        jurisdiction_reasons_zh=verdict.reasons_zh if not verdict.allowed else (),
    )


def _purpose_json(purpose: ResearchPurpose) -> dict[str, Any]:
    data = dataclasses.asdict(purpose)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}


def get_request(
    factory: sessionmaker[Session], request_id: int, *, actor: Subject
) -> dict[str, Any]:
    """A request with its datasets; only its requester, reviewers, admins and auditors see it."""
    datasets = catalog.DATASETS
    with factory() as session:
        row = session.execute(
            select(access_requests, users.c.email)
            .join(users, users.c.id == access_requests.c.user_id)
            .where(access_requests.c.id == request_id)
        ).first()
        missing = NotFoundError(
            f"No request {request_id}.", message_zh=f"不存在申请 {request_id}。"
        )
        if row is None:
            raise missing
        items = session.execute(
            select(request_datasets, datasets.c.accession)
            .join(datasets, datasets.c.id == request_datasets.c.dataset_id)
            .where(request_datasets.c.request_id == request_id)
        ).all()
        reviewers = frozenset().union(*(dac_reviewers(session, i.dac_id) for i in items))
    require(  # someone else's request does not exist for the actor
        actor,
        Action.READ_REQUEST,
        Resource("request", str(request_id), owner=f"user:{row.email}", reviewers=reviewers),
        missing=missing,
    )
    return {
        "id": row.id,
        "requester": row.email,
        "purpose": row.purpose,
        "agreement_version": row.agreement_version,
        "created_at": clock.as_utc(row.created_at).isoformat(),
        "datasets": [
            {
                "id": i.id,
                "dataset": i.accession,
                "verdict": i.verdict,
                "status": i.status,
                "reason": i.reason,
                "match": i.match,
            }
            for i in items
        ],
    }


def review_queue(factory: sessionmaker[Session], *, actor: Subject) -> list[dict[str, Any]]:
    """Pending dataset requests for the DACs the actor sits on."""
    if actor.kind != "user":
        raise AuthenticationError("Sign in first.", message_zh="请先登录。")
    email = actor.id.removeprefix("user:")
    datasets = catalog.DATASETS
    with factory() as session:
        rows = session.execute(
            select(
                request_datasets,
                datasets.c.accession,
                dacs.c.alias.label("dac"),
                access_requests.c.purpose,
            )
            .join(datasets, datasets.c.id == request_datasets.c.dataset_id)
            .join(dacs, dacs.c.id == request_datasets.c.dac_id)
            .join(dac_members, dac_members.c.dac_id == dacs.c.id)
            .join(users, users.c.id == dac_members.c.user_id)
            .join(access_requests, access_requests.c.id == request_datasets.c.request_id)
            .where(users.c.email == email, request_datasets.c.status == "pending")
            .order_by(request_datasets.c.id)
        ).all()
    return [
        {
            "item": r.id,
            "request": r.request_id,
            "dataset": r.accession,
            "dac": r.dac,
            "verdict": r.verdict,
            "title": r.purpose.get("title"),
        }
        for r in rows
    ]


def decide_request(
    factory: sessionmaker[Session],
    *,
    item_id: int,
    approve: bool,
    reason: str,
    actor: Subject,
    expires: date | None = None,
    conditions: list[str] | None = None,
) -> int | None:
    """A DAC member approves or rejects one dataset of a request; approval creates a grant.

    Returns the grant id on approval. The requester is notified either way.
    """
    if not reason.strip():
        raise InvalidInputError("Give a reason for the decision.", message_zh="请说明决定的理由。")
    now = clock.now()
    datasets = catalog.DATASETS
    with write_transaction(factory) as session:
        item = session.execute(
            select(request_datasets, access_requests.c.user_id, users.c.email, datasets.c.accession)
            .join(access_requests, access_requests.c.id == request_datasets.c.request_id)
            .join(users, users.c.id == access_requests.c.user_id)
            .join(datasets, datasets.c.id == request_datasets.c.dataset_id)
            .where(request_datasets.c.id == item_id)
        ).first()
        missing = NotFoundError(
            f"No request item {item_id}.", message_zh=f"不存在申请项 {item_id}。"
        )
        if item is None:
            raise missing
        require(  # an item of someone else's request, not for the actor's DAC, does not exist
            actor,
            Action.REVIEW_REQUEST,
            Resource(
                "request",
                str(item.request_id),
                owner=f"user:{item.email}",
                reviewers=dac_reviewers(session, item.dac_id),
            ),
            missing=missing,
        )
        if item.status != "pending":
            raise ConflictError(
                f"Request item {item_id} was decided already ({item.status}).",
                message_zh=f"申请项 {item_id} 已有决定（{item.status}）。",
            )
        if approve and item.verdict == str(Verdict.INCOMPATIBLE):
            raise ConflictError(
                "The purpose is incompatible with the dataset's consent.",
                message_zh="研究目的与数据集的知情同意不相容。",
            )
        expires_at = datetime.combine(
            expires or (now.date() + timedelta(days=365)), datetime.min.time(), tzinfo=UTC
        )
        if approve and not now < expires_at <= now + timedelta(days=MAX_GRANT_DAYS):
            raise InvalidInputError(
                "A grant expires between tomorrow and three years from now.",
                message_zh="授权的到期日须在明天到三年之内。",
            )
        status = "approved" if approve else "rejected"
        session.execute(
            update(request_datasets)
            .where(request_datasets.c.id == item_id)
            .values(
                status=status, decided_by=actor.id, decided_at=now, reason=reason.strip()[:2000]
            )
        )
        grant_id = None
        if approve:
            all_conditions = [*item.match.get("conditions", []), *(conditions or [])]
            grant_id = session.execute(
                insert(grants).returning(grants.c.id),
                {
                    "user_id": item.user_id,
                    "dataset_id": item.dataset_id,
                    "request_dataset_id": item_id,
                    "conditions": all_conditions,
                    "granted_at": now,
                    "granted_by": actor.id,
                    "expires_at": expires_at,
                    "revoked_at": None,
                    "revoked_by": None,
                },
            ).scalar_one()
        record_event(
            session,
            tag=EventTag.GRANT_CREATED if approve else EventTag.REQUEST_REJECTED,
            actor=actor.id,
            subject=f"user:{item.email}",
            details={
                "dataset": item.accession,
                "request": item.request_id,
                "grant": grant_id,
                "reason": reason.strip()[:500],
            },
        )
        verb_en, verb_zh = ("approved", "已批准") if approve else ("rejected", "未获批准")
        notify.enqueue(
            session,
            recipient=item.email,
            subject=f"GeneCommons: access to {item.accession} {verb_en} / 访问申请{verb_zh}",
            body=(
                f"Your request {item.request_id} for dataset {item.accession} was {verb_en}.\n"
                f"Reason: {reason.strip()}\n"
                + (f"Access expires on {expires_at.date().isoformat()}.\n" if approve else "")
                + f"\n您对数据集 {item.accession} 的访问申请（编号 {item.request_id}）{verb_zh}。\n"
                f"理由：{reason.strip()}\n"
            ),
        )
    return int(grant_id) if grant_id is not None else None


MAX_REASON_LENGTH = 2000


def revocation_reason(reason: str | None) -> str:
    """The reason given for revoking a grant, trimmed; InvalidInputError when it is blank or
    longer than `MAX_REASON_LENGTH` (the researcher is told it, the audit log keeps it)."""
    text = (reason or "").strip()
    if not text:
        raise InvalidInputError(
            "Give the reason for revoking the grant (--reason, or the reason parameter): the "
            "researcher is told it and the audit log keeps it.",
            message_zh="请说明撤销授权的理由（--reason 或 reason 参数）：理由将告知研究人员并记入审计日志。",
            details={"place": "reason"},
        )
    if len(text) > MAX_REASON_LENGTH:
        raise InvalidInputError(
            f"The reason is {len(text)} characters long; keep it to {MAX_REASON_LENGTH}.",
            message_zh=f"理由长度为 {len(text)} 个字符；请不超过 {MAX_REASON_LENGTH} 个字符。",
            details={"place": "reason"},
        )
    return text


def revoke_grant(
    factory: sessionmaker[Session], *, grant_id: int, reason: str, actor: Subject
) -> None:
    """Revoke a grant at once (its DAC or an administrator), for a reason that is required."""
    reason = revocation_reason(reason)
    with write_transaction(factory) as session:
        row = session.execute(
            select(grants, request_datasets.c.dac_id, users.c.email)
            .join(request_datasets, request_datasets.c.id == grants.c.request_dataset_id)
            .join(users, users.c.id == grants.c.user_id)
            .where(grants.c.id == grant_id)
        ).first()
        missing = NotFoundError(f"No grant {grant_id}.", message_zh=f"不存在授权 {grant_id}。")
        if row is None:
            raise missing
        require(  # someone else's grant, not of the actor's DAC, does not exist for the actor
            actor,
            Action.REVOKE_GRANT,
            Resource(
                "grant",
                str(grant_id),
                owner=f"user:{row.email}",
                reviewers=dac_reviewers(session, row.dac_id),
            ),
            missing=missing,
        )
        if row.revoked_at is not None:
            raise ConflictError(
                f"Grant {grant_id} is revoked already.", message_zh=f"授权 {grant_id} 已被撤销。"
            )
        session.execute(
            update(grants)
            .where(grants.c.id == grant_id)
            .values(revoked_at=clock.now(), revoked_by=actor.id)
        )
        record_event(
            session,
            tag=EventTag.GRANT_REVOKED,
            actor=actor.id,
            subject=f"user:{row.email}",
            details={"grant": grant_id, "reason": reason},
        )
        notify.enqueue(
            session,
            recipient=row.email,
            subject=f"GeneCommons: grant {grant_id} revoked / 授权已撤销",
            body=f"Your access grant {grant_id} was revoked: {reason}\n"
            f"您的访问授权 {grant_id} 已被撤销：{reason}\n",
        )


def active_grants(
    factory: sessionmaker[Session], *, email: str, now: datetime | None = None
) -> list[dict[str, Any]]:
    """The account's grants that are in force now (not expired, not revoked)."""
    now = now or clock.now()
    datasets = catalog.DATASETS
    with factory() as session:
        rows = session.execute(
            select(grants, datasets.c.accession)
            .join(datasets, datasets.c.id == grants.c.dataset_id)
            .join(users, users.c.id == grants.c.user_id)
            .where(users.c.email == email, grants.c.revoked_at.is_(None))
        ).all()
    return [
        {
            "id": r.id,
            "dataset": r.accession,
            "expires_at": clock.as_utc(r.expires_at).isoformat(),
            "conditions": r.conditions,
        }
        for r in rows
        if clock.as_utc(r.expires_at) > now
    ]
