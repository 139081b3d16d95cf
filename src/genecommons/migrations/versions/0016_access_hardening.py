"""access hardening: session and API tokens, sealed TOTP secrets, institutions' e-mail
domains, affiliation claims confirmed before they count

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # every token made before is an API token: a session token is one a sign-in gives, and
    # none can be told apart by its label (a label is the caller's free text)
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("kind", sa.String(length=16), server_default="api", nullable=False)
        )

    # TOTP secrets sealed by the node key store; `genecommons init` seals the plaintext ones
    # (a migration cannot: it has no key), after which totp_secret stays empty
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("totp_sealed", sa.LargeBinary(), nullable=True))

    op.create_table(
        "institution_domains",
        sa.Column("institution_id", sa.Integer(), nullable=False),
        sa.Column("domain", sa.String(length=253), nullable=False),
        sa.Column("declared_by", sa.String(length=200), nullable=False),
        sa.Column("declared_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["institution_id"],
            ["institutions.id"],
            name=op.f("fk_institution_domains_institution_id_institutions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("institution_id", "domain", name=op.f("pk_institution_domains")),
    )
    op.create_table(
        "affiliation_claims",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("institution_id", sa.Integer(), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["institution_id"],
            ["institutions.id"],
            name=op.f("fk_affiliation_claims_institution_id_institutions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_affiliation_claims_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_affiliation_claims")),
        sa.UniqueConstraint("user_id", name=op.f("uq_affiliation_claims_user_id")),
    )
    with op.batch_alter_table("affiliation_claims", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_affiliation_claims_institution_id"), ["institution_id"], unique=False
        )
    # the institutions that self-registered accounts named were only ever claimed (nobody at
    # the institution confirmed them): they become claims, and the accounts are at no
    # institution until a data steward, an administrator or a declared e-mail domain confirms
    users = sa.table(
        "users",
        sa.column("id", sa.Integer()),
        sa.column("institution_id", sa.Integer()),
        sa.column("created_by", sa.String()),
        sa.column("created_at", sa.DateTime(timezone=True)),
    )
    claims = sa.table(
        "affiliation_claims",
        sa.column("user_id", sa.Integer()),
        sa.column("institution_id", sa.Integer()),
        sa.column("claimed_at", sa.DateTime(timezone=True)),
    )
    self_registered = (users.c.created_by == "self-registration") & users.c.institution_id.isnot(
        None
    )
    op.execute(
        claims.insert().from_select(
            ["user_id", "institution_id", "claimed_at"],
            sa.select(users.c.id, users.c.institution_id, users.c.created_at).where(
                self_registered
            ),
        )
    )
    op.execute(users.update().where(self_registered).values(institution_id=None))


def downgrade() -> None:
    # claims go back to being the accounts' institutions, as earlier versions kept them
    users = sa.table(
        "users", sa.column("id", sa.Integer()), sa.column("institution_id", sa.Integer())
    )
    claims = sa.table(
        "affiliation_claims",
        sa.column("user_id", sa.Integer()),
        sa.column("institution_id", sa.Integer()),
    )
    op.execute(
        users.update()
        .where(users.c.id.in_(sa.select(claims.c.user_id)))
        .values(
            institution_id=sa.select(claims.c.institution_id)
            .where(claims.c.user_id == users.c.id)
            .scalar_subquery()
        )
    )
    with op.batch_alter_table("affiliation_claims", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_affiliation_claims_institution_id"))
    op.drop_table("affiliation_claims")
    op.drop_table("institution_domains")
    # ALTER TABLE ... DROP COLUMN in place (SQLite >= 3.35 too): a batch copy of users would
    # drop the old table, and with foreign keys on, SQLite would cascade that to every row of
    # the tables that refer to it (roles, tokens, grants). The sealed TOTP secrets are lost:
    # accounts enrol again (`genecommons users totp`).
    op.drop_column("users", "totp_sealed")
    op.drop_column("api_tokens", "kind")
