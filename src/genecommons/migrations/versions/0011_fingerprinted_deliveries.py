"""fingerprinted deliveries and datasets' fingerprint settings

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 08:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "fingerprint_deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("delivery_id", sa.String(length=36), nullable=False),
        sa.Column("recipient", sa.String(length=200), nullable=False),
        sa.Column("dataset", sa.String(length=64), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("fingerprinted", sa.Boolean(), nullable=False),
        sa.Column("what", sa.JSON(), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("scheme", sa.JSON(), nullable=False),
        sa.Column("utility", sa.JSON(), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fingerprint_deliveries")),
        sa.UniqueConstraint("delivery_id", name=op.f("uq_fingerprint_deliveries_delivery_id")),
    )
    op.create_index(
        op.f("ix_fingerprint_deliveries_dataset"), "fingerprint_deliveries", ["dataset"]
    )
    op.create_index(
        op.f("ix_fingerprint_deliveries_recipient"), "fingerprint_deliveries", ["recipient"]
    )
    op.create_table(
        "fingerprint_policies",
        sa.Column("dataset", sa.String(length=64), nullable=False),
        sa.Column("fingerprint", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("dataset", name=op.f("pk_fingerprint_policies")),
    )


def downgrade() -> None:
    op.drop_table("fingerprint_policies")
    op.drop_index(op.f("ix_fingerprint_deliveries_recipient"), table_name="fingerprint_deliveries")
    op.drop_index(op.f("ix_fingerprint_deliveries_dataset"), table_name="fingerprint_deliveries")
    op.drop_table("fingerprint_deliveries")
