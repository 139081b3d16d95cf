"""The policy decision point: default deny, tiers, grants, jurisdiction, obligations."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from genecommons.access.models import (
    Action,
    Credential,
    CredentialKind,
    Resource,
    Role,
    Subject,
)
from genecommons.access.policy import AUDIT, FINGERPRINT, decide, decide_new_token

ANON = Subject.anonymous()


def researcher(*, grants: frozenset[str] = frozenset(), verified: bool = True) -> Subject:
    return Subject.user(
        "r@example.org",
        roles=frozenset({"researcher"}),
        institution="GCO1",
        institution_verified=verified,
        grants=grants,
    )


def dataset(tier: str, **facts: object) -> Resource:
    return Resource("dataset", "GCD00000001", tier=tier, **facts)  # type: ignore[arg-type]


def test_aggregates_by_tier() -> None:
    assert decide(ANON, Action.READ_AGGREGATES, dataset("open")).allowed
    assert not decide(ANON, Action.READ_AGGREGATES, dataset("registered")).allowed
    assert decide(researcher(), Action.READ_AGGREGATES, dataset("registered")).allowed
    assert not decide(
        researcher(verified=False), Action.READ_AGGREGATES, dataset("registered")
    ).allowed


def test_records_need_a_grant_and_carry_obligations() -> None:
    for tier in ("open", "registered", "controlled"):
        refused = decide(researcher(), Action.READ_RECORDS, dataset(tier))
        assert not refused.allowed and refused.rule == "no-grant"
        assert refused.reasons_zh
    granted = decide(
        researcher(grants=frozenset({"GCD00000001"})), Action.READ_RECORDS, dataset("controlled")
    )
    assert granted.allowed and set(granted.obligations) == {FINGERPRINT, AUDIT}


def test_jurisdiction_overrides_a_grant() -> None:
    denied = decide(
        researcher(grants=frozenset({"GCD00000001"})),
        Action.READ_RECORDS,
        dataset(
            "controlled",
            jurisdiction_allows=False,
            jurisdiction_reasons=("No provision-abroad filing is recorded.",),
            jurisdiction_reasons_zh=("未登记对外提供备案。",),
        ),
    )
    assert not denied.allowed and denied.rule == "jurisdiction"
    assert denied.reasons == ("No provision-abroad filing is recorded.",)


def test_stewards_and_scoped_tokens() -> None:
    steward = Subject.user("s@example.org", roles=frozenset({"data_steward"}), institution=None)
    assert decide(steward, Action.READ_INDIVIDUAL_RECORDS, Resource("individual")).allowed
    scoped = Subject.user(
        "s@example.org",
        roles=frozenset({"data_steward"}),
        institution=None,
        scopes=frozenset({str(Action.READ_METADATA)}),
    )
    assert not decide(scoped, Action.READ_INDIVIDUAL_RECORDS, Resource("individual")).allowed
    assert decide(scoped, Action.READ_METADATA, Resource("study", public=False)).allowed


@given(
    roles=st.frozensets(st.sampled_from([r.value for r in Role])),
    action=st.sampled_from(list(Action)),
    kind=st.sampled_from(["study", "dataset", "individual", "sample", "submission", "x"]),
)
def test_every_decision_is_explained(roles: frozenset[str], action: Action, kind: str) -> None:
    subject = Subject.user("p@example.org", roles=roles, institution=None)
    decision = decide(subject, action, Resource(kind))
    assert decision.rule
    assert decision.reasons and decision.reasons_zh
    assert len(decision.reasons) == len(decision.reasons_zh)


@given(
    action=st.sampled_from(list(Action)),
    kind=st.sampled_from(["individual", "sample", "submission", "user", "token", "dac"]),
)
def test_anonymous_is_denied_all_but_public_reads(action: Action, kind: str) -> None:
    assert not decide(ANON, action, Resource(kind)).allowed


def test_a_token_reads_no_data_outside_its_scopes() -> None:
    """A grant holder's token scoped to managing tokens reads no records or counts with it."""
    holder = Subject.user(
        "r@example.org",
        roles=frozenset({"researcher"}),
        institution="GCO00000001",
        institution_verified=True,
        grants=frozenset({"GCD00000001"}),
    )
    dataset = Resource("dataset", accession="GCD00000001", tier="controlled")
    registered = Resource("dataset", accession="GCD00000002", tier="registered")
    assert decide(holder, Action.READ_RECORDS, dataset).allowed
    assert decide(holder, Action.READ_AGGREGATES, registered).allowed
    scoped = dataclasses.replace(holder, scopes=frozenset({str(Action.MANAGE_TOKENS)}))
    assert not decide(scoped, Action.READ_RECORDS, dataset).allowed
    assert not decide(scoped, Action.READ_AGGREGATES, registered).allowed
    reader = dataclasses.replace(holder, scopes=frozenset({str(Action.READ_RECORDS)}))
    assert decide(reader, Action.READ_RECORDS, dataset).allowed
    assert not decide(reader, Action.READ_AGGREGATES, registered).allowed


_SCOPES = st.frozensets(st.sampled_from([str(a) for a in Action]))


@given(
    own=st.one_of(st.none(), _SCOPES),
    asked=st.one_of(st.none(), _SCOPES),
    kind=st.sampled_from(list(CredentialKind)),
    own_days=st.integers(min_value=1, max_value=366),
    asked_days=st.integers(min_value=1, max_value=366),
)
def test_a_new_token_is_worth_no_more_than_its_maker(
    own: frozenset[str] | None,
    asked: frozenset[str] | None,
    kind: CredentialKind,
    own_days: int,
    asked_days: int,
) -> None:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    maker = Subject.user(
        "m@example.org",
        roles=frozenset({"researcher"}),
        institution=None,
        scopes=own,
        credential=Credential(kind=kind, expires_at=now + timedelta(days=own_days)),
    )
    decision = decide_new_token(maker, scopes=asked, expires_at=now + timedelta(days=asked_days))
    assert decision.reasons and decision.reasons_zh
    wider = own is not None and (asked is None or not asked <= own)
    longer = kind is CredentialKind.API and asked_days > own_days
    assert decision.allowed is (not wider and not longer)
