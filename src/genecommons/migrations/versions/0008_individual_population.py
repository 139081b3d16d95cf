"""individuals: population (genetic ancestry group)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24 08:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("individuals") as batch:
        batch.add_column(sa.Column("population", sa.String(length=100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("individuals") as batch:
        batch.drop_column("population")
