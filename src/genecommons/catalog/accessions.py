"""Accession numbers: allocated from their counters, reserved for a submission ahead of it."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from genecommons.catalog.models import format_accession
from genecommons.catalog.tables import accession_counters


def allocate_accessions(session: Session, prefix: str, count: int) -> list[str]:
    """Reserve `count` new accessions with `prefix`; numbers are never reused."""
    if count == 0:
        return []
    row = session.execute(
        select(accession_counters.c.last_number)
        .where(accession_counters.c.prefix == prefix)
        .with_for_update()
    ).first()
    if row is None:
        try:
            with session.begin_nested():
                session.execute(insert(accession_counters).values(prefix=prefix, last_number=0))
        except IntegrityError:
            pass  # created by a concurrent transaction
        last = session.execute(
            select(accession_counters.c.last_number)
            .where(accession_counters.c.prefix == prefix)
            .with_for_update()
        ).scalar_one()
    else:
        last = row.last_number
    session.execute(
        update(accession_counters)
        .where(accession_counters.c.prefix == prefix)
        .values(last_number=last + count)
    )
    return [format_accession(prefix, n) for n in range(last + 1, last + count + 1)]


@dataclass(slots=True)
class Reservation:
    """Accession numbers set aside for one submission by `reserve_accessions`, committed before
    the submission's own transaction begins: a submission that does not commit (rolled back,
    or its process killed) leaves its numbers used, so that no later record is ever given an
    accession that something else (a variant store, an archived object) was made for."""

    blocks: dict[str, tuple[int, int]]  # prefix -> (first, last) number reserved
    used: dict[str, int]  # prefix -> last number handed out

    def take(self, prefix: str, count: int) -> list[str]:
        """The next `count` accessions of the reservation with `prefix`."""
        if count == 0:
            return []
        first, last = self.blocks[prefix]
        start = self.used.get(prefix, first - 1) + 1
        if start + count - 1 > last:
            raise ValueError(f"reservation of {prefix} exceeded")
        self.used[prefix] = start + count - 1
        return [format_accession(prefix, n) for n in range(start, start + count)]


def reserve_accessions(session: Session, needs: dict[str, int]) -> Reservation:
    """Set aside up to `needs[prefix]` new accessions of each prefix (the caller commits this
    transaction before the submission's)."""
    blocks = {}
    for prefix, count in sorted(needs.items()):
        if count:
            numbers = allocate_accessions(session, prefix, count)
            blocks[prefix] = (int(numbers[0][3:]), int(numbers[-1][3:]))
    return Reservation(blocks, {})


def settle_reservation(session: Session, reservation: Reservation) -> None:
    """Give back the reserved numbers past the last one handed out, where no one has reserved
    after them (so that a committed submission leaves no gap); the others stay used."""
    for prefix, (first, last) in reservation.blocks.items():
        session.execute(
            update(accession_counters)
            .where(accession_counters.c.prefix == prefix, accession_counters.c.last_number == last)
            .values(last_number=reservation.used.get(prefix, first - 1))
        )
