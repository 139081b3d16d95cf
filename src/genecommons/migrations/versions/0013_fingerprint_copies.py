"""recipients' fingerprinted copies of archived VCFs (DRS and htsget)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01 09:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "fingerprint_copies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("copy_id", sa.String(length=80), nullable=False),
        sa.Column("file_id", sa.Integer(), nullable=False),
        sa.Column("recipient", sa.String(length=200), nullable=False),
        sa.Column("dataset", sa.String(length=64), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("marked_positions", sa.Integer(), nullable=False),
        sa.Column("utility", sa.JSON(), nullable=False),
        sa.Column("object_key", sa.String(length=200), nullable=True),
        sa.Column("header", sa.LargeBinary(), nullable=True),
        sa.Column("body_size", sa.BigInteger(), nullable=True),
        sa.Column("plain_size", sa.BigInteger(), nullable=True),
        sa.Column("md5", sa.String(length=32), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("index_key", sa.String(length=200), nullable=True),
        sa.Column("index_header", sa.LargeBinary(), nullable=True),
        sa.Column("index_body_size", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["file_id"], ["files.id"], name=op.f("fk_fingerprint_copies_file_id_files")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fingerprint_copies")),
        sa.UniqueConstraint("copy_id", name=op.f("uq_fingerprint_copies_copy_id")),
        sa.UniqueConstraint(
            "file_id",
            "recipient",
            "key_id",
            name=op.f("uq_fingerprint_copies_file_id_recipient_key_id"),
        ),
    )


def downgrade() -> None:
    op.drop_table("fingerprint_copies")
