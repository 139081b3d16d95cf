"""The policy decision point: default deny, tiers, grants, jurisdiction, obligations."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from genecommons.errors import AccessDeniedError, NotFoundError
from genecommons.policy.decision import (
    AUDIT,
    FINGERPRINT,
    decide,
    decide_new_token,
    require,
    visible,
)
from genecommons.policy.models import (
    Action,
    Credential,
    CredentialKind,
    Resource,
    Role,
    Subject,
)

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


def test_aggregates_of_a_controlled_dataset_come_with_a_grant() -> None:
    refused = decide(researcher(), Action.READ_AGGREGATES, dataset("controlled"))
    assert not refused.allowed and refused.rule == "controlled-aggregates"
    granted = researcher(grants=frozenset({"GCD00000001"}))
    assert decide(granted, Action.READ_AGGREGATES, dataset("controlled")).allowed


def user(email: str, *roles: Role, scopes: frozenset[str] | None = None) -> Subject:
    return Subject.user(
        email, roles=frozenset(str(r) for r in roles), institution="GCO1", scopes=scopes
    )


def test_who_may_know_that_a_record_exists() -> None:
    owner, stranger = user("o@example.org", Role.RESEARCHER), user("s@example.org")
    steward, admin = user("d@example.org", Role.DATA_STEWARD), user("a@example.org", Role.ADMIN)
    auditor, member = user("u@example.org", Role.AUDITOR), user("m@example.org", Role.DAC_MEMBER)
    private = Resource("dataset", "GCD00000001", public=False)
    assert visible(ANON, Resource("study", "GCS00000001", public=True))
    assert not visible(ANON, private) and not visible(stranger, private)
    assert visible(steward, private) and visible(admin, private)
    assert visible(researcher(grants=frozenset({"GCD00000001"})), private)
    grant = Resource("grant", "7", owner=owner.id, reviewers=frozenset({member.id}))
    assert [visible(s, grant) for s in (owner, member, admin, auditor, steward, stranger)] == [
        True,
        True,
        True,
        True,
        False,
        False,
    ]
    token = Resource("token", "3", owner=owner.id)
    assert [visible(s, token) for s in (owner, admin, auditor, stranger)] == [
        True,
        True,
        False,
        False,
    ]
    upload = Resource("upload", "u", owner=steward.id)
    assert visible(steward, upload) and not visible(admin, upload)
    # a steward's token scoped to something else sees what anyone sees
    scoped = user("d@example.org", Role.DATA_STEWARD, scopes=frozenset({str(Action.SUBMIT)}))
    assert not visible(scoped, private)
    assert visible(Subject.operator("x"), upload)


SUBJECTS = st.builds(
    lambda email, roles, grants: Subject.user(
        email, roles=roles, institution="GCO1", grants=grants
    ),
    st.sampled_from(["o@example.org", "s@example.org"]),
    st.frozensets(st.sampled_from([r.value for r in Role])),
    st.frozensets(st.sampled_from(["GCD00000001", "GCD00000002"])),
)
RESOURCES = st.builds(
    Resource,
    kind=st.sampled_from(
        ["study", "dataset", "file", "individual", "grant", "token", "request", "upload", "x"]
    ),
    accession=st.sampled_from(["GCD00000001", "GCD00000002", "7"]),
    public=st.booleans(),
    owner=st.sampled_from([None, "user:o@example.org"]),
    reviewers=st.sampled_from([frozenset(), frozenset({"user:s@example.org"})]),
    tier=st.sampled_from(["open", "registered", "controlled"]),
)


@given(subject=SUBJECTS | st.just(ANON), action=st.sampled_from(list(Action)), resource=RESOURCES)
def test_a_refusal_of_what_one_may_not_see_is_the_missing_answer(
    subject: Subject, action: Action, resource: Resource
) -> None:
    missing = NotFoundError("No such record.", message_zh="不存在该记录。", details={"id": "7"})
    decision = decide(subject, action, resource)
    if decision.allowed:
        assert require(subject, action, resource, missing=missing) == decision
        return
    with pytest.raises((AccessDeniedError, NotFoundError)) as raised:
        require(subject, action, resource, missing=missing)
    error = raised.value
    if visible(subject, resource):
        assert isinstance(error, AccessDeniedError)
    else:  # the very answer a missing record gets, the truth kept for the audit log
        assert isinstance(error, NotFoundError) and error.to_dict() == missing.to_dict()
    assert error.refusal is not None
    assert (error.refusal.actor, error.refusal.action) == (subject.id, str(action))
    assert (error.refusal.kind, error.refusal.rule) == (resource.kind, decision.rule)
    assert "refusal" not in str(error.to_dict())


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
