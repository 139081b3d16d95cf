"""SQLAlchemy mappings of identities: users, their roles, API tokens, failed sign-ins,
linked OpenID Connect identities, pending sign-ins, self-registrations, institutions' e-mail
domains and the affiliations accounts claim."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Table,
    UniqueConstraint,
)

import genecommons.catalog.tables  # noqa: F401  (users reference catalog institutions)
from genecommons.db import Base

users = Table(
    "users",
    Base.metadata,
    Column("id", Integer, primary_key=True),
    Column("email", String(200), nullable=False, unique=True),
    Column("display_name", String(200), nullable=True),
    Column("institution_id", ForeignKey("institutions.id"), nullable=True, index=True),
    Column("password_hash", String(200), nullable=True),
    # the TOTP secret, sealed by the node key store (access/second_factor.py); set once enrolled
    Column("totp_sealed", LargeBinary, nullable=True),
    Column(
        "totp_secret", String(64), nullable=True
    ),  # plaintext of earlier versions; init seals it
    Column("active", Boolean, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(200), nullable=False),
)

user_roles = Table(
    "user_roles",
    Base.metadata,
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("role", String(32), primary_key=True),
)

api_tokens = Table(
    "api_tokens",
    Base.metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("digest", String(64), nullable=False),
    Column("label", String(200), nullable=True),
    Column("scopes", JSON, nullable=True),
    # "session" (given by a sign-in) or "api" (made for a program): what it may make
    Column("kind", String(16), nullable=False, server_default="api"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    Column("last_used_at", DateTime(timezone=True), nullable=True),
    UniqueConstraint("digest"),
)

login_failures = Table(
    "login_failures",
    Base.metadata,
    Column("id", Integer, primary_key=True),
    Column("key", String(250), nullable=False, index=True),  # "account:EMAIL" or "address:IP"
    Column("failed_at", DateTime(timezone=True), nullable=False),
)

dacs = Table(
    "dacs",
    Base.metadata,
    Column("id", Integer, primary_key=True),
    Column("alias", String(128), nullable=False, unique=True),  # what datasets' `dac` names
    Column("name", String(200), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

dac_members = Table(
    "dac_members",
    Base.metadata,
    Column("dac_id", ForeignKey("dacs.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("chair", Boolean, nullable=False),
)

access_requests = Table(
    "access_requests",
    Base.metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", ForeignKey("users.id"), nullable=False, index=True),
    Column("purpose", JSON, nullable=False),  # the ResearchPurpose as stated
    Column("agreement_version", String(100), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

request_datasets = Table(
    "request_datasets",
    Base.metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "request_id",
        ForeignKey("access_requests.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("dataset_id", ForeignKey("datasets.id"), nullable=False, index=True),
    Column("dac_id", ForeignKey("dacs.id"), nullable=True, index=True),
    Column("verdict", String(16), nullable=False),  # the DUO match: compatible | ...
    Column("match", JSON, nullable=False),
    Column("status", String(16), nullable=False),  # pending | approved | rejected
    Column("decided_by", String(200), nullable=True),
    Column("decided_at", DateTime(timezone=True), nullable=True),
    Column("reason", String(2000), nullable=True),
    UniqueConstraint("request_id", "dataset_id"),
)

grants = Table(
    "grants",
    Base.metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", ForeignKey("users.id"), nullable=False, index=True),
    Column("dataset_id", ForeignKey("datasets.id"), nullable=False, index=True),
    Column("request_dataset_id", ForeignKey("request_datasets.id"), nullable=False),
    Column("conditions", JSON, nullable=False),
    Column("granted_at", DateTime(timezone=True), nullable=False),
    Column("granted_by", String(200), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    Column("revoked_by", String(200), nullable=True),
)

outbox = Table(
    "outbox",
    Base.metadata,
    Column("id", Integer, primary_key=True),
    Column("recipient", String(200), nullable=False, index=True),
    Column("subject", String(300), nullable=False),
    Column("body", String(20000), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("sent_at", DateTime(timezone=True), nullable=True),
)

institution_verifications = Table(
    "institution_verifications",
    Base.metadata,
    Column("institution_id", ForeignKey("institutions.id", ondelete="CASCADE"), primary_key=True),
    Column("country", String(2), nullable=False),  # as verified, ISO 3166-1 alpha-2
    Column("foreign_controlled", Boolean, nullable=False),  # >= 50% foreign owned/controlled
    Column("attestation", String(2000), nullable=False),
    Column("verified_by", String(200), nullable=False),
    Column("verified_at", DateTime(timezone=True), nullable=False),
)

institution_domains = Table(
    "institution_domains",
    Base.metadata,
    Column("institution_id", ForeignKey("institutions.id", ondelete="CASCADE"), primary_key=True),
    Column("domain", String(253), primary_key=True),  # lower case, IDNA; subdomains count too
    Column("declared_by", String(200), nullable=False),
    Column("declared_at", DateTime(timezone=True), nullable=False),
)

# an institution a self-registered account says it belongs to, until a data steward of it, an
# administrator or a declared e-mail domain confirms it (access/affiliation.py); meanwhile the
# account has no institution (users.institution_id is null)
affiliation_claims = Table(
    "affiliation_claims",
    Base.metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), nullable=False, unique=True),
    Column(
        "institution_id",
        ForeignKey("institutions.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("claimed_at", DateTime(timezone=True), nullable=False),
)

oidc_identities = Table(
    "oidc_identities",
    Base.metadata,
    Column("id", Integer, primary_key=True),
    Column("issuer", String(500), nullable=False),
    Column("subject", String(255), nullable=False),  # the provider's `sub`, stable per issuer
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("email", String(200), nullable=False),  # as the provider last asserted it
    Column("linked_at", DateTime(timezone=True), nullable=False),
    Column("last_sign_in_at", DateTime(timezone=True), nullable=True),
    UniqueConstraint("issuer", "subject"),
)

oidc_logins = Table(
    "oidc_logins",
    Base.metadata,
    Column("id", Integer, primary_key=True),
    Column("state_digest", String(64), nullable=False, unique=True),  # SHA-256 of the state
    Column("nonce", String(100), nullable=False),
    Column("code_verifier", String(128), nullable=False),  # PKCE, sent once at the exchange
    # set when a signed-in user links the provider's identity to their account
    Column("link_user_id", ForeignKey("users.id", ondelete="CASCADE"), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False, index=True),
)

sign_in_tickets = Table(
    "sign_in_tickets",
    Base.metadata,
    Column("id", Integer, primary_key=True),
    Column("digest", String(64), nullable=False, unique=True),  # SHA-256 of the ticket
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("method", String(600), nullable=False),  # how the first factor was given
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)

registrations = Table(
    "registrations",
    Base.metadata,
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("code_digest", String(64), nullable=True),  # SHA-256 of the e-mailed code
    Column("code_expires_at", DateTime(timezone=True), nullable=False),
    Column("requested_at", DateTime(timezone=True), nullable=False),
    Column("address", String(100), nullable=False),  # where the registration came from
    Column("email_verified_at", DateTime(timezone=True), nullable=True),
)
