"""record_history's index on accession dropped: its unique (accession, revision) index serves

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-08 00:10:00
"""

from __future__ import annotations

from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # a record's history is read by accession in revision order: the unique index on
    # (accession, revision) answers that by itself; the index on accession alone only made
    # every history row written (one per record a submission creates) update one more B-tree
    op.drop_index("ix_record_history_accession", table_name="record_history")


def downgrade() -> None:
    op.create_index("ix_record_history_accession", "record_history", ["accession"], unique=False)
