"""Subjects, actions, resources and decisions of the policy decision point."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class SubjectKind(StrEnum):
    """Who is asking."""

    ANONYMOUS = "anonymous"
    OPERATOR = "operator"  # someone running the CLI on the node, with its database
    USER = "user"


class Role(StrEnum):
    """What a user does on the platform."""

    SUBMITTER = "submitter"
    RESEARCHER = "researcher"
    DAC_MEMBER = "dac_member"
    DATA_STEWARD = "data_steward"
    AUDITOR = "auditor"
    ADMIN = "admin"


class Action(StrEnum):
    """What they want to do."""

    READ_METADATA = "catalog:metadata:read"
    READ_INDIVIDUAL_RECORDS = "catalog:individual:read"
    SUBMIT = "catalog:submission:create"
    READ_SUBMISSIONS = "catalog:submission:read"
    MANAGE_USERS = "access:user:manage"
    VERIFY_INSTITUTIONS = "access:institution:verify"
    CONFIRM_AFFILIATIONS = "access:affiliation:confirm"  # that an account is at an institution
    MANAGE_TOKENS = "access:token:manage"
    MANAGE_DACS = "access:dac:manage"
    REQUEST_ACCESS = "access:request:create"
    READ_REQUEST = "access:request:read"
    REVIEW_REQUEST = "access:request:review"
    REVOKE_GRANT = "access:grant:revoke"
    READ_COMPLIANCE = "compliance:report:read"
    READ_AUDIT = "audit:entry:read"
    READ_AUDIT_PROOFS = "audit:proof:read"
    READ_AGGREGATES = "data:aggregate:read"  # counts (registered tier)
    READ_RECORDS = "data:record:read"  # genotypes, files, record-level answers (controlled)
    UPLOAD_FILES = "archive:file:upload"
    LIST_FILES = "archive:file:list"
    REGISTER_KEY = "archive:key:register"
    READ_METRICS = "ops:metrics:read"  # the node's Prometheus metrics (GET /metrics)
    READ_PRIVACY_REPORT = "privacy:report:read"  # how private a dataset is (privacy report)


class CredentialKind(StrEnum):
    """What kind of token a signed-in user's request carries."""

    SESSION = "session"  # given by a sign-in (password and one-time code, or OpenID Connect)
    API = "api"  # made for a program (POST /api/v1/tokens, `genecommons tokens create`)


@dataclass(frozen=True, slots=True)
class Credential:
    """The token a request was authenticated by: its kind and when it expires."""

    kind: CredentialKind
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Subject:
    """The caller."""

    kind: SubjectKind
    id: str
    roles: frozenset[str] = frozenset()
    institution: str | None = None  # accession of the user's institution
    scopes: frozenset[str] | None = None  # a token's scopes; None: all the roles allow
    institution_verified: bool = False
    institution_country: str | None = None  # where the institution is, as verified
    foreign_party: bool = False  # located abroad, or >= 50% foreign-owned or -controlled
    grants: frozenset[str] = frozenset()  # datasets with a grant in force now
    credential: Credential | None = None  # the token of the request (None: not by token)

    def has_role(self, *roles: Role) -> bool:
        """Whether the subject holds any of `roles`."""
        return any(str(role) in self.roles for role in roles)

    @classmethod
    def anonymous(cls) -> Subject:
        """A caller who has not signed in."""
        return cls(SubjectKind.ANONYMOUS, "anonymous")

    @classmethod
    def operator(cls, name: str) -> Subject:
        """The node's operator, acting through the CLI."""
        return cls(SubjectKind.OPERATOR, f"operator:{name}")

    @classmethod
    def user(
        cls,
        email: str,
        *,
        roles: frozenset[str],
        institution: str | None,
        scopes: frozenset[str] | None = None,
        institution_country: str | None = None,
        foreign_party: bool = False,
        institution_verified: bool = False,
        grants: frozenset[str] = frozenset(),
        credential: Credential | None = None,
    ) -> Subject:
        """A signed-in user."""
        return cls(
            kind=SubjectKind.USER,
            id=f"user:{email}",
            roles=roles,
            institution=institution,
            scopes=scopes,
            institution_verified=institution_verified,
            institution_country=institution_country,
            foreign_party=foreign_party,
            grants=grants,
            credential=credential,
        )


@dataclass(frozen=True, slots=True)
class Resource:
    """What is asked for: a kind of record and what policy needs to know of it."""

    kind: str  # e.g. "study", "dataset", "individual", "sample", "submission"
    accession: str | None = None
    public: bool = False
    owner: str | None = None  # the subject id that owns it (a request's researcher)
    reviewers: frozenset[str] = frozenset()  # subject ids of the DAC members responsible
    tier: str | None = None  # a dataset's access tier: open | registered | controlled
    # a dataset's jurisdiction verdict for this subject (access.jurisdiction.rules), when it applies
    jurisdiction_allows: bool | None = None
    jurisdiction_reasons: tuple[str, ...] = ()
    jurisdiction_reasons_zh: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Decision:
    """Allow or deny, with reasons in English and Chinese and obligations to fulfil."""

    allowed: bool
    reasons: tuple[str, ...] = ()
    reasons_zh: tuple[str, ...] = ()
    rule: str = ""
    obligations: tuple[str, ...] = field(default_factory=tuple)
