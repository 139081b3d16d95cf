"""frequency detection budget per dataset

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-08 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # releases made before carry no charge: the budget row, made on a dataset's next release,
    # charges them from their stored tables
    with op.batch_alter_table("privacy_releases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("detection", sa.Float(), nullable=True))
    op.create_table(
        "privacy_frequency_budgets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dataset", sa.String(length=64), nullable=False),
        sa.Column("spent", sa.Float(), nullable=False),
        sa.Column("released", sa.Integer(), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_privacy_frequency_budgets")),
        sa.UniqueConstraint("dataset", name=op.f("uq_privacy_frequency_budgets_dataset")),
    )


def downgrade() -> None:
    op.drop_table("privacy_frequency_budgets")
    with op.batch_alter_table("privacy_releases", schema=None) as batch_op:
        batch_op.drop_column("detection")
