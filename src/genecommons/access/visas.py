"""GA4GH Passport visas: their types, their claims, what their fields must be, why one is refused.

The vocabulary of `passports` (issuing and verifying visas): `Visa` is a verified visa's claims,
`VisaRejection` the reason a visa was refused, carried in `AccessDeniedError.details["reason"]`.
Pure: no web, database or network.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from urllib.parse import urlsplit

from genecommons.errors import AccessDeniedError

PASSPORT_CLAIM = "ga4gh_passport_v1"
VISA_CLAIM = "ga4gh_visa_v1"
MAX_URL_LENGTH = 255
NO_ORGANIZATION = "https://no.organization"
_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*$")
_ROLE_RE = re.compile(r"^(faculty|student|member|[a-z][a-z0-9_-]*\.[a-z][a-z0-9_-]*)$")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN_RE = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})+$")


class VisaType(StrEnum):
    """The GA4GH standard visa types this node issues and accepts."""

    CONTROLLED_ACCESS_GRANTS = "ControlledAccessGrants"
    AFFILIATION_AND_ROLE = "AffiliationAndRole"
    ACCEPTED_TERMS_AND_POLICIES = "AcceptedTermsAndPolicies"
    RESEARCHER_STATUS = "ResearcherStatus"


class VisaBy(StrEnum):
    """Who in the `source` organisation made the assertion (the visa's `by` field)."""

    SELF = "self"
    PEER = "peer"
    SYSTEM = "system"
    SO = "so"
    DAC = "dac"


# the passport spec says these two types MUST carry "by"
BY_REQUIRED = frozenset({VisaType.CONTROLLED_ACCESS_GRANTS, VisaType.ACCEPTED_TERMS_AND_POLICIES})


class VisaRejection(StrEnum):
    """Why a visa was refused; `AccessDeniedError.details["reason"]` holds one of these."""

    MALFORMED = "malformed"  # not a compact JWS of JSON objects, or a standard claim is wrong
    ALG_NONE = "alg_none"  # unsigned token
    SYMMETRIC_ALG = "symmetric_alg"  # HS256/384/512: a shared secret cannot prove the issuer
    UNSUPPORTED_ALG = "unsupported_alg"  # any other algorithm, or one that does not fit the key
    UNTRUSTED_ISSUER = "untrusted_issuer"
    UNKNOWN_KID = "unknown_kid"  # the issuer publishes no key of that id
    BAD_SIGNATURE = "bad_signature"  # wrong key, or header/payload changed after signing
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    NOT_A_VISA = "not_a_visa"  # no ga4gh_visa_v1 object
    UNKNOWN_TYPE = "unknown_type"
    BAD_VALUE = "bad_value"  # value does not fit the type
    BAD_VISA = "bad_visa"  # asserted, source, by or conditions malformed
    CONDITIONS_NOT_MET = "conditions_not_met"


@dataclass(frozen=True, slots=True)
class ConditionClause:
    """One clause of a visa's `conditions`: another visa of `type` whose fields match."""

    type: str
    fields: tuple[tuple[str, str], ...]  # (field name, "<const|pattern|split_pattern>:<text>")

    def to_json(self) -> dict[str, str]:
        """The clause as it is written in a visa."""
        return {"type": self.type, **dict(self.fields)}


@dataclass(frozen=True, slots=True)
class Visa:
    """The verified claims of one visa (times are aware UTC datetimes)."""

    issuer: str
    subject: str
    jti: str
    issued_at: datetime
    expires: datetime
    type: VisaType
    asserted: datetime
    value: str
    source: str
    by: VisaBy | None
    # disjunctive normal form: any inner tuple whose clauses all match; None when unconditional
    conditions: tuple[tuple[ConditionClause, ...], ...] | None
    key_id: str
    token: str = field(repr=False)
    # the RFC 7638 thumbprint of the public key that verified the signature (whatever kid the
    # issuer's JWKS gives it): who really signed, whichever issuer the visa names
    key_thumbprint: str = ""

    @property
    def identity(self) -> tuple[str, str]:
        """The Passport Visa Identity: the (iss, sub) pair."""
        return (self.issuer, self.subject)

    def valid_at(self, now: datetime) -> bool:
        """Whether the visa is in force at `now` (issued and not expired)."""
        return self.issued_at <= now < self.expires


@dataclass(frozen=True, slots=True)
class RejectedVisa:
    """A visa of a passport that was not accepted, and why (in English and Chinese)."""

    index: int
    reason: VisaRejection
    message: str
    message_zh: str


def value_problem(visa_type: VisaType, value: object) -> tuple[str, str] | None:
    """What `value` should be for `visa_type` (English, Chinese), or None if it fits."""
    if visa_type is VisaType.CONTROLLED_ACCESS_GRANTS:
        if isinstance(value, str) and _is_absolute_uri(value):
            return None
        return ("the absolute URL or URN of the dataset", "数据集的绝对 URL 或 URN")
    if visa_type is VisaType.AFFILIATION_AND_ROLE:
        if isinstance(value, str) and "@" in value:
            role, _, domain = value.partition("@")
            if _ROLE_RE.match(role) and _DOMAIN_RE.match(domain) and len(value) <= MAX_URL_LENGTH:
                return None
        return (
            "role@domain, with role faculty, student, member or namespace.role "
            "(e.g. faculty@med.stanford.edu, public.citizen-scientist@no.organization)",
            "role@domain 格式，role 为 faculty、student、member 或 namespace.role"
            "（如 faculty@med.stanford.edu、public.citizen-scientist@no.organization）",
        )
    if isinstance(value, str) and is_url(value, schemes=("https", "http")):
        return None
    return (
        "an http(s) URL (e.g. https://doi.org/10.1038/s41431-018-0219-y)",
        "http(s) URL（如 https://doi.org/10.1038/s41431-018-0219-y）",
    )


def is_url(text: str, *, schemes: tuple[str, ...]) -> bool:
    """Whether `text` is an absolute URL of one of `schemes` with a host, fit for a URL field."""
    if not _is_absolute_uri(text):
        return False
    parts = urlsplit(text)
    return parts.scheme in schemes and bool(parts.hostname)


def _is_absolute_uri(text: str) -> bool:
    """Whether `text` is an RFC 3986 absolute URI (http(s) with a host) of at most 255 chars."""
    if not text or len(text) > MAX_URL_LENGTH or any(c.isspace() or ord(c) < 32 for c in text):
        return False
    scheme, colon, rest = text.partition(":")
    if not colon or not rest or not _SCHEME_RE.match(scheme):
        return False
    if scheme.lower() in ("http", "https"):
        try:
            return bool(urlsplit(text).hostname)
        except ValueError:
            return False
    if scheme.lower() == "urn":
        nid, colon, nss = rest.partition(":")
        return bool(re.match(r"^[A-Za-z0-9][A-Za-z0-9-]{0,31}$", nid)) and bool(colon and nss)
    return True


def denied(
    reason: VisaRejection, message: str, message_zh: str, *, issuer: str | None = None
) -> AccessDeniedError:
    """The refusal of a visa for `reason`, naming the issuer when it is known."""
    details: dict[str, str] = {"reason": reason.value}
    if issuer is not None:
        details["issuer"] = issuer
    return AccessDeniedError(message, message_zh=message_zh, details=details)


def malformed(problem: str, problem_zh: str) -> AccessDeniedError:
    """The refusal of a visa that is not a well-formed signed JWT."""
    return denied(
        VisaRejection.MALFORMED,
        f"The visa is not a well-formed signed JWT: {problem}.",
        f"签证不是格式正确的已签名 JWT：{problem_zh}。",
    )


def bad_visa(problem: str, problem_zh: str) -> AccessDeniedError:
    """The refusal of a visa whose ga4gh_visa_v1 object is not valid."""
    return denied(
        VisaRejection.BAD_VISA,
        f"The visa's {VISA_CLAIM} object is not valid: {problem}.",
        f"签证的 {VISA_CLAIM} 对象无效：{problem_zh}。",
    )


def rejection(index: int, error: AccessDeniedError) -> RejectedVisa:
    """The passport's visa at `index`, refused with `error`."""
    details = error.details if isinstance(error.details, dict) else {}
    return RejectedVisa(
        index=index,
        reason=VisaRejection(details.get("reason", VisaRejection.MALFORMED)),
        message=error.message,
        message_zh=error.message_zh,
    )
