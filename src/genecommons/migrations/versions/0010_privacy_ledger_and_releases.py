"""privacy: the Beacon budget ledger and the stored open-tier frequency releases

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "privacy_budgets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("party", sa.String(length=300), nullable=False),
        sa.Column("dataset", sa.String(length=64), nullable=False),
        sa.Column("spent", sa.Float(), nullable=False),
        sa.Column("warned", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_privacy_budgets")),
        sa.UniqueConstraint("party", "dataset", name=op.f("uq_privacy_budgets_party_dataset")),
    )
    op.create_table(
        "privacy_charges",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("party", sa.String(length=300), nullable=False),
        sa.Column("dataset", sa.String(length=64), nullable=False),
        sa.Column("variant", sa.String(length=600), nullable=False),
        sa.Column("exposure", sa.Float(), nullable=False),
        sa.Column("charged_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_privacy_charges")),
        sa.UniqueConstraint(
            "party",
            "dataset",
            "variant",
            name=op.f("uq_privacy_charges_party_dataset_variant"),
        ),
    )
    op.create_table(
        "privacy_releases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dataset", sa.String(length=64), nullable=False),
        sa.Column("variant", sa.String(length=600), nullable=False),
        sa.Column("epsilon", sa.Float(), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_privacy_releases")),
        sa.UniqueConstraint("dataset", "variant", name=op.f("uq_privacy_releases_dataset_variant")),
    )


def downgrade() -> None:
    op.drop_table("privacy_releases")
    op.drop_table("privacy_charges")
    op.drop_table("privacy_budgets")
