"""access hardening: session and API tokens, sealed TOTP secrets, institutions' e-mail
domains, affiliation claims confirmed before they count

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
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


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("totp_sealed")
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_column("kind")
