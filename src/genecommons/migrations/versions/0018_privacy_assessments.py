"""re-identification attacks measured on a dataset, for the privacy report

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-08 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "privacy_assessments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dataset", sa.String(length=64), nullable=False),
        sa.Column("members", sa.Integer(), nullable=False),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("figures", sa.JSON(), nullable=False),
        sa.Column("measured_by", sa.String(length=300), nullable=False),
        sa.Column("measured_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_privacy_assessments")),
    )
    op.create_index(
        op.f("ix_privacy_assessments_dataset"), "privacy_assessments", ["dataset"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_privacy_assessments_dataset"), table_name="privacy_assessments")
    op.drop_table("privacy_assessments")
