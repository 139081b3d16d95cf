"""Datasets' fingerprint settings: whether a dataset's record-level deliveries carry the
recipient's fingerprint (no row: yes, the decision point's `fingerprint-delivery` obligation)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from genecommons.fingerprint.tables import fingerprint_policies


def fingerprint_required(session: Session, dataset: str) -> bool:
    """The dataset's setting: whether record-level deliveries are fingerprinted (default yes)."""
    found = session.execute(
        select(fingerprint_policies.c.fingerprint).where(fingerprint_policies.c.dataset == dataset)
    ).scalar_one_or_none()
    return True if found is None else bool(found)


def fingerprinted_dataset(session: Session, datasets: tuple[str, ...]) -> str | None:
    """The dataset whose setting marks a file's deliveries (the first in order), if any."""
    for dataset in sorted(datasets):
        if fingerprint_required(session, dataset):
            return dataset
    return None
