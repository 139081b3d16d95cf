"""What the demo's datasets name on the node they are submitted to: the data access committee
(`sheets.DAC`) and an account that sits on it, so that a request for demo data can be decided.

Made through the access capability's use cases, as an operator would with `genecommons dac
create`, `users add` and `dac add-member`; safe to run again (nothing is made twice)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from genecommons.access import committees
from genecommons.access import service as access_service
from genecommons.config import Settings
from genecommons.demo.sheets import DAC
from genecommons.errors import ConflictError
from genecommons.policy.models import Role, Subject

DAC_NAME = "GeneCommons demo data access committee"
DAC_MEMBER_EMAIL = "demo-dac@localhost"


@dataclass(frozen=True, slots=True)
class DemoCommittee:
    """The demo's committee on this node; the member's credentials only when its account was
    made by this call (they are shown once, never stored in the clear)."""

    dac: str
    dac_created: bool
    member: str
    member_added: bool
    password: str | None = None
    totp_secret: str | None = None
    totp_uri: str | None = None


def ensure_committee(
    factory: sessionmaker[Session], settings: Settings, *, actor: Subject
) -> DemoCommittee:
    """The DAC the demo's datasets name, with a member account (a generated password and an
    authenticator secret, as DAC members sign in with both): each made unless it exists."""
    dac_created = committees.ensure_dac(factory, alias=DAC, name=DAC_NAME, actor=actor)
    created: access_service.NewUser | None = None
    try:
        created = access_service.add_user(
            factory,
            email=DAC_MEMBER_EMAIL,
            roles=[str(Role.DAC_MEMBER)],
            institution=None,
            actor=actor,
            generate_password=True,
            totp=settings,
        )
    except ConflictError:  # made by an earlier run: its credentials were shown then
        created = None
    added = committees.add_member(
        factory, dac=DAC, email=DAC_MEMBER_EMAIL, chair=True, actor=actor, exist_ok=True
    )
    return DemoCommittee(
        dac=DAC,
        dac_created=dac_created,
        member=DAC_MEMBER_EMAIL,
        member_added=added,
        password=created.password if created else None,
        totp_secret=created.totp_secret if created else None,
        totp_uri=created.totp_uri if created else None,
    )
