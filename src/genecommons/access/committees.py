"""Data access committees: creating them, their members, and who reviews a request.

Datasets name their committee by its alias (their `dac` column); a request for a dataset is
reviewed by that committee's members (`access.workflow`).
"""

from __future__ import annotations

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from genecommons import clock
from genecommons.access.tables import dac_members, dacs, users
from genecommons.db import write_transaction
from genecommons.errors import ConflictError, NotFoundError
from genecommons.policy.decision import require
from genecommons.policy.models import Action, Resource, Subject


def user_id_of(session: Session, email: str) -> int:
    """The id of the account `email`; NotFoundError if there is none."""
    found = session.execute(select(users.c.id).where(users.c.email == email)).first()
    if found is None:
        raise NotFoundError(f"No account {email}.", message_zh=f"不存在账号 {email}。")
    return int(found.id)


def create_dac(factory: sessionmaker[Session], *, alias: str, name: str, actor: Subject) -> None:
    """Create a data access committee; datasets name it by `alias` in their `dac` column."""
    require(actor, Action.MANAGE_DACS, Resource("dac"))
    with write_transaction(factory) as session:
        try:
            session.execute(
                insert(dacs).values(alias=alias.strip(), name=name.strip(), created_at=clock.now())
            )
        except IntegrityError as error:
            raise ConflictError(
                f"A DAC {alias} exists already.", message_zh=f"数据访问委员会 {alias} 已存在。"
            ) from error


def ensure_dac(factory: sessionmaker[Session], *, alias: str, name: str, actor: Subject) -> bool:
    """The DAC `alias`, created (True) unless it exists already (False): safe to run again."""
    require(actor, Action.MANAGE_DACS, Resource("dac"))
    with factory() as session:
        if session.execute(select(dacs.c.id).where(dacs.c.alias == alias.strip())).first():
            return False
    try:
        create_dac(factory, alias=alias, name=name, actor=actor)
    except ConflictError:  # made meanwhile by another process: there it is
        return False
    return True


def add_member(
    factory: sessionmaker[Session],
    *,
    dac: str,
    email: str,
    chair: bool,
    actor: Subject,
    exist_ok: bool = False,
) -> bool:
    """Make the account `email` a member of the DAC `dac`: True when it was made one now;
    a member already is a ConflictError, or False with `exist_ok`."""
    require(actor, Action.MANAGE_DACS, Resource("dac"))
    with write_transaction(factory) as session:
        dac_id = _dac_id(session, dac)
        user_id = user_id_of(session, email.strip().lower())
        member = select(dac_members.c.dac_id).where(
            dac_members.c.dac_id == dac_id, dac_members.c.user_id == user_id
        )
        if exist_ok and session.execute(member).first() is not None:
            return False
        try:
            session.execute(insert(dac_members).values(dac_id=dac_id, user_id=user_id, chair=chair))
        except IntegrityError as error:
            raise ConflictError(
                f"{email} is a member of {dac} already.", message_zh=f"{email} 已是 {dac} 的成员。"
            ) from error
    return True


def _dac_id(session: Session, alias: str) -> int:
    found = session.execute(select(dacs.c.id).where(dacs.c.alias == alias)).first()
    if found is None:
        raise NotFoundError(f"No DAC {alias}.", message_zh=f"不存在数据访问委员会 {alias}。")
    return int(found.id)


def dac_reviewers(session: Session, dac_id: int | None) -> frozenset[str]:
    """The e-mail addresses of the members of the DAC `dac_id` (none for no DAC)."""
    if dac_id is None:
        return frozenset()
    emails = session.execute(
        select(users.c.email)
        .join(dac_members, dac_members.c.user_id == users.c.id)
        .where(dac_members.c.dac_id == dac_id)
    )
    return frozenset(f"user:{e}" for e in emails.scalars())
