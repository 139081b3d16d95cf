"""The jurisdiction rules' verdict on a dataset for a requester, with what it is decided on.

The requester is placed by their institution's country (as verified, else as declared); the
dataset's facts include whether this node's archive holds its backup copy; a request counts the
sequence individuals of every earlier request of the same institution, so that splitting a
request cannot avoid the security review. `access.workflow` asks for it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from genecommons.access.jurisdiction.facts import dataset_facts
from genecommons.access.jurisdiction.rules import JurisdictionDecision, Requester, evaluate
from genecommons.access.tables import access_requests, request_datasets, users
from genecommons.catalog import reads as catalog
from genecommons.policy.models import Subject

# Whether this node's archive holds every file of a dataset (session, dataset id): the HGR
# backup-copy fact. The archive answers it (archive.holdings.archived_here); the callers of
# access hand it in, so that access reads no table of the archive's.
ArchivedHere = Callable[[Session, int], bool]


@dataclass(frozen=True, slots=True)
class RequestJurisdiction:
    """The verdict on one dataset of a request, and the sequence individuals it counted."""

    decision: JurisdictionDecision
    sequence_individuals: int


def request_jurisdiction(
    session: Session,
    actor: Subject,
    dataset: Any,
    counted: int,
    *,
    today: date,
    archived_here: ArchivedHere,
) -> RequestJurisdiction:
    """The jurisdiction rules' verdict on this dataset for the requester's institution; the
    sequence individuals are counted over every request of that institution (so that
    splitting a request cannot avoid the security review)."""
    facts = dataset_facts(session, dataset, archived_here=archived_here(session, dataset.id))
    requester = requester_of(session, actor)
    earlier = institution_sequence_individuals(session, actor)
    decision = evaluate(
        requester=requester,
        dataset=facts,
        cumulative_individuals=earlier + counted + facts.sequence_individuals,
        on=today,
    )
    return RequestJurisdiction(decision, facts.sequence_individuals)


def requester_of(session: Session, actor: Subject) -> Requester:
    """The requester as the rules see `actor`: their institution's country and control."""
    country = actor.institution_country  # as verified by an administrator
    if country is None:  # not verified yet: the location the institution declared
        country = catalog.institution_country(session, actor.institution or "") or ""
    return Requester(
        institution_country=country, foreign_controlled=actor.foreign_party and country == "CN"
    )


def institution_sequence_individuals(session: Session, actor: Subject) -> int:
    """Sequence individuals in the institution's earlier requests that were not refused."""
    if actor.institution is None:
        return 0
    institutions = catalog.INSTITUTIONS
    datasets = catalog.DATASETS
    rows = (
        session.execute(
            select(datasets.c.id)
            .join(request_datasets, request_datasets.c.dataset_id == datasets.c.id)
            .join(access_requests, access_requests.c.id == request_datasets.c.request_id)
            .join(users, users.c.id == access_requests.c.user_id)
            .join(institutions, institutions.c.id == users.c.institution_id)
            .where(
                institutions.c.accession == actor.institution,
                request_datasets.c.status != "rejected",
            )
        )
        .scalars()
        .all()
    )
    return sum(catalog.sequence_individuals(session, dataset_id) for dataset_id in rows)
