"""Passport use cases: this node's visas for a signed-in user, its JWKS, and the grants that
visas from trusted issuers (another node's DAC) carry."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from genecommons import clock
from genecommons.access.keys import FileKeyStore, KeyStore
from genecommons.access.passports import (
    TrustedIssuers,
    VisaBy,
    VisaType,
    controlled_access_datasets,
    issue_visa,
    passport_claim,
    verify_passport,
)
from genecommons.access.tables import access_requests, grants, users
from genecommons.catalog import reads as catalog
from genecommons.config import Settings
from genecommons.errors import AuthenticationError, ConfigurationError
from genecommons.policy.models import Role, Subject
from genecommons.secrets import derived_passphrase, node_keys

RESEARCHER_STATUS = "https://doi.org/10.1038/s41431-018-0219-y"  # the Bona Fide definition


VISA_KEY_PURPOSE = "visa-signing-key-passphrase"


def key_store(settings: Settings) -> FileKeyStore:
    """The visa signing keys of this node: encrypted PEM, under GENECOMMONS_VISA_KEY_PASSPHRASE
    or, when none is configured, a passphrase derived from the node key store (both made by
    `genecommons init`)."""
    configured = settings.visa_key_passphrase

    def passphrase() -> bytes:
        if configured is not None:
            return configured.get_secret_value().encode("utf-8")
        return derived_passphrase(node_keys(settings), purpose=VISA_KEY_PURPOSE)

    return FileKeyStore(settings.visa_key_dir, passphrase=passphrase)


def protect_keys(settings: Settings) -> int:
    """Encrypt the visa signing keys an earlier version wrote unencrypted; how many."""
    return key_store(settings).encrypt_plaintext_keys()


def trusted_issuers(settings: Settings, keys: KeyStore) -> TrustedIssuers:
    """This node and the issuers configured in `trusted_issuers_file`."""
    configured: dict[str, Any] = {}
    if settings.trusted_issuers_file is not None:
        try:
            configured = json.loads(settings.trusted_issuers_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise ConfigurationError(
                f"GENECOMMONS_TRUSTED_ISSUERS_FILE cannot be read as JSON: {error}",
                message_zh=f"无法以 JSON 读取 GENECOMMONS_TRUSTED_ISSUERS_FILE：{error}",
            ) from error
    return TrustedIssuers({**configured, settings.issuer_url: keys.jwks()})


def dataset_uri(settings: Settings, accession: str) -> str:
    """The URI that names a dataset of this node in a ControlledAccessGrants visa."""
    return f"{settings.issuer_url}/datasets/{accession}"


def passport(
    factory: sessionmaker[Session],
    *,
    subject: Subject,
    settings: Settings,
    keys: KeyStore,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The signed-in user's GA4GH passport: a ControlledAccessGrants visa per grant in force,
    AcceptedTermsAndPolicies per agreement accepted, and, for an account at a confirmed
    institution, AffiliationAndRole and (researchers) ResearcherStatus."""
    if subject.kind != "user":
        raise AuthenticationError("Sign in first.", message_zh="请先登录。")
    now = now or clock.now()
    email = subject.id.removeprefix("user:")
    issuer = settings.issuer_url
    lifetime = timedelta(hours=settings.visa_lifetime_hours)
    datasets = catalog.DATASETS
    with factory() as session:
        rows = session.execute(
            select(datasets.c.accession, grants.c.granted_at, grants.c.expires_at)
            .join(grants, grants.c.dataset_id == datasets.c.id)
            .join(users, users.c.id == grants.c.user_id)
            .where(users.c.email == email, grants.c.revoked_at.is_(None))
        ).all()
        agreements = sorted(
            set(
                session.execute(
                    select(access_requests.c.agreement_version)
                    .join(users, users.c.id == access_requests.c.user_id)
                    .where(users.c.email == email)
                ).scalars()
            )
        )
        created = session.execute(
            select(users.c.created_at).where(users.c.email == email)
        ).scalar_one()
    visas = []

    def visa(
        kind: VisaType, value: str, by: VisaBy | None, asserted: datetime, expires: datetime
    ) -> None:
        visas.append(
            issue_visa(
                keys=keys,
                issuer=issuer,
                subject=email,
                visa_type=kind,
                value=value,
                source=issuer,
                by=by,
                asserted=asserted,
                expires=expires,
                now=now,
            )
        )

    for accession, granted_at, expires_at in rows:
        expires_at, granted_at = clock.as_utc(expires_at), clock.as_utc(granted_at)
        if expires_at > now:
            visa(
                VisaType.CONTROLLED_ACCESS_GRANTS,
                dataset_uri(settings, accession),
                VisaBy.DAC,
                min(granted_at, now),
                min(expires_at, now + lifetime),
            )
    created = clock.as_utc(created)
    domain = email.rsplit("@", 1)[-1]
    # an affiliation only for an account whose institution someone vouched for (an
    # administrator, its data steward, or a domain it declared): a claim says nothing
    if subject.institution is not None:
        visa(
            VisaType.AFFILIATION_AND_ROLE,
            f"member@{domain}",
            VisaBy.SYSTEM,
            min(created, now),
            now + lifetime,
        )
    for version in agreements:
        visa(
            VisaType.ACCEPTED_TERMS_AND_POLICIES,
            f"{issuer}/policies/data-access-agreement/{_slug(version)}",
            VisaBy.SELF,
            min(created, now),
            now + lifetime,
        )
    if subject.has_role(Role.RESEARCHER) and subject.institution is not None:
        visa(
            VisaType.RESEARCHER_STATUS,
            RESEARCHER_STATUS,
            VisaBy.SYSTEM,
            min(created, now),
            now + lifetime,
        )
    return {"sub": email, **passport_claim(visas)}


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-._" else "-" for c in text)[:100] or "v"


def granted_by_passport(
    document: Any,
    *,
    subject: Subject,
    settings: Settings,
    trusted: TrustedIssuers,
    keys: KeyStore,
    now: datetime | None = None,
    refused: list[str] | None = None,
) -> frozenset[str]:
    """The datasets of this node that valid visas of the caller from ANOTHER trusted issuer
    grant (another node's DAC may have approved them); visas for someone else are ignored. Why
    each other visa was refused (a `VisaRejection`, or `someone_else`) is appended to
    `refused`, for the audit log.

    A ControlledAccessGrants visa this node signed grants nothing: this node's own grants are
    its grants table, which the caller's subject already reflects as it stands now (revoked or
    expired: gone). A visa counts as this node's when it names this node as its issuer or when
    one of this node's keys signed it, whatever issuer it names."""
    now = now or clock.now()
    email = subject.id.removeprefix("user:")
    accepted, rejected = verify_passport(document, trusted=trusted, now=now)
    if refused is not None:
        refused.extend(str(r.reason) for r in rejected)
        refused.extend("someone_else" for v in accepted if v.subject != email)
    own_keys = frozenset(keys.kids())  # RFC 7638 thumbprints, as `Visa.key_thumbprint`
    theirs = [
        v
        for v in accepted
        if v.subject == email
        and v.issuer != settings.issuer_url
        and v.key_thumbprint not in own_keys
    ]
    prefix = f"{settings.issuer_url}/datasets/"
    return frozenset(
        uri.removeprefix(prefix)
        for uri in controlled_access_datasets(theirs, now=now)
        if uri.startswith(prefix)
    )
